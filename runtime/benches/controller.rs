//! Many scalers in one process: `run` with N scalers (default 10,000) at a 1 s
//! tick, static sources and the log target, for S seconds (default 20).
//! Reports CPU use as a share of one core, tick lag p50/p99, and peak memory
//! per scaler.
//!
//! `env -u RUST_BACKTRACE cargo bench -p wasmscale --bench controller`
//! (`WASMSCALE_SCALERS`, `WASMSCALE_SECONDS` to change the size).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::time::Instant;
use wasmscale::controller::{RunOptions, run};
use wasmscale::host::{Host, HostConfig};

fn proc_status(field: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace()
        .nth(1)?
        .parse::<u64>()
        .ok()
        .map(|kib| kib * 1024)
}

/// User + system CPU seconds of this process.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n: usize = std::env::var("WASMSCALE_SCALERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let seconds: u64 = std::env::var("WASMSCALE_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from(
        "[admin]\nlisten = \"\"\n[audit]\npath = \"audit.jsonl\"\nmax_bytes = 67108864\nkeep = 1\n",
    );
    for i in 0..n {
        let _ = write!(
            text,
            "[[scaler]]\nname = \"s{i}\"\npolicy = \"builtin:queue-depth\"\nparams = {{ target_per_replica = 10 }}\nmin_replicas = 1\nmax_replicas = 10\ninterval_seconds = 1\nmetrics = {{ queue_depth = {} }}\n[scaler.guard]\nrate = \"none\"\n",
            30 + i % 50
        );
    }
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text).unwrap();
    let host = Host::new(HostConfig {
        pooling_instances: None,
        ..HostConfig::default()
    })
    .unwrap();
    let baseline = proc_status("VmRSS:").unwrap_or(0);
    // Two runs: a short one (start-up plus 2 ticks) and the full one. The
    // difference is the steady state: what N scalers cost per second of ticking.
    let measure = |ticks: u64| {
        let config = wasmscale::config::load(&path, &host).unwrap();
        let cpu0 = cpu_seconds();
        let wall = Instant::now();
        let summary = run(
            config,
            dir.path(),
            &host,
            RunOptions {
                ticks: Some(ticks),
                ..RunOptions::default()
            },
        )
        .unwrap();
        (cpu_seconds() - cpu0, wall.elapsed().as_secs_f64(), summary)
    };
    let (cpu_short, wall_short, _) = measure(2);
    let (cpu, wall, summary) = measure(seconds);
    let peak = proc_status("VmHWM:").unwrap_or(0);
    let steady_cpu = cpu - cpu_short;
    let steady_wall = wall - wall_short;
    let steady_ticks = (seconds - 2) * n as u64;
    println!(
        "{n} scalers x {seconds} ticks at 1 s: {} ticks in {wall:.1} s; steady state (run of {seconds} minus run of 2): \
         CPU {:.1}% of one core ({:.1} µs per tick); whole run incl. start-up {:.1}%; lag p50 {} ms, p99 {} ms; missed {}, failed {}",
        summary.ticks,
        steady_cpu / steady_wall * 100.0,
        steady_cpu / steady_ticks.max(1) as f64 * 1e6,
        cpu / wall * 100.0,
        summary.lag_percentile_ms(50.0).unwrap_or(0),
        summary.lag_percentile_ms(99.0).unwrap_or(0),
        summary.missed_ticks,
        summary.failed_ticks,
    );
    println!(
        "memory: peak resident {:.0} MiB, {:.1} KiB per scaler above the {:.0} MiB baseline",
        peak as f64 / (1 << 20) as f64,
        peak.saturating_sub(baseline) as f64 / n as f64 / 1024.0,
        baseline as f64 / (1 << 20) as f64
    );
}
