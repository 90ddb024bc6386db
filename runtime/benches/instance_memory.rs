//! Resident memory per idle policy instance, at 10,000 instances.
//!
//! `cargo bench -p wasmscale --bench instance_memory`. Each instance is
//! instantiated, configured and has evaluated once (so its stack and heap pages
//! are touched, as in production), then sits idle. Resident memory is read
//! from /proc/self/statm before and after.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests and benches fail by panicking"
)]

use wasmscale::host::{Host, HostConfig, PolicySource};
use wasmscale::snapshot::{Defaults, from_json};

fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo bench -- --list` support.
    }
    let count: usize = std::env::var("WASMSCALE_INSTANCES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let host = Host::new(HostConfig::default()).unwrap();
    let snap = from_json(
        r#"{"request_rate": 120, "latency_p95_ms": 500, "gpu_utilization": 0.5,
            "pods": [{"state":"ready","metrics":[{"name":"cpu","value":0.3}],"request":1}]}"#,
        Defaults {
            time_ms: 0,
            interval_ms: 1000,
            current: 1,
        },
    )
    .unwrap()
    .0;
    for name in ["step-scaling", "target-tracking", "predictive"] {
        let compiled = host
            .load(&PolicySource::parse(&format!("builtin:{name}")))
            .unwrap();
        let params = wasmscale::host::builtin_example_params(name).unwrap();
        // Warm up allocator arenas and the engine before measuring.
        drop(
            (0..100)
                .map(|_| compiled.instantiate(params).unwrap())
                .collect::<Vec<_>>(),
        );
        let before = resident_bytes().unwrap_or(0);
        let mut instances = Vec::with_capacity(count);
        for _ in 0..count {
            let mut i = compiled.instantiate(params).unwrap();
            i.evaluate(&snap).unwrap();
            instances.push(i);
        }
        let after = resident_bytes().unwrap_or(0);
        let per = after.saturating_sub(before) as f64 / count as f64;
        println!(
            "{name}: {count} idle instances, resident +{:.1} MiB, {:.1} KiB per instance",
            after.saturating_sub(before) as f64 / (1 << 20) as f64,
            per / 1024.0
        );
        drop(instances);
    }
}
