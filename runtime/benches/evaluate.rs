//! Per-call cost of the sandbox, beside the same policy compiled natively.
//!
//! `cargo bench -p wasmscale --bench evaluate` (run with RUST_BACKTRACE unset).
//! Criterion reports medians; after it, a plain loop times 200,000 single calls
//! to report the median and p99 of the latency distribution, and the ratio to
//! native in the same run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests and benches fail by panicking"
)]

use criterion::Criterion;
use std::hint::black_box;
use std::time::{Duration, Instant};
use wasmscale::host::{DiskCache, Host, HostConfig, PolicySource};
use wasmscale::snapshot::{Defaults, from_json};
use wasmscale_policies::step_scaling::StepScaling;
use wasmscale_policies::target_tracking::TargetTracking;
use wasmscale_sdk::{NamedValue, Policy, ReplicaSample, ReplicaState};

const STEP_PARAMS: &str = r#"{"metric":"request_rate","min_capacity":1,"alarms":[
    {"comparison":"greater_than","threshold":100,"steps":[{"lower_bound":0,"adjustment":1}]},
    {"comparison":"less_than","threshold":20,"steps":[{"upper_bound":0,"adjustment":-1}]}]}"#;
const TT_PARAMS: &str =
    r#"{"metrics":[{"type":"resource","name":"cpu","target":{"average_utilization":50}}]}"#;

fn host_snapshot(with_pods: bool) -> wasmscale::model::Snapshot {
    let json = if with_pods {
        r#"{"time_ms": 1000, "replicas": {"current": 3},
            "pods": [{"state":"ready","metrics":[{"name":"cpu","value":0.3}],"request":1.0},
                     {"state":"ready","metrics":[{"name":"cpu","value":0.5}],"request":1.0},
                     {"state":"ready","metrics":[{"name":"cpu","value":0.7}],"request":1.0}]}"#
    } else {
        r#"{"time_ms": 1000, "replicas": {"current": 3}, "request_rate": 120}"#
    };
    from_json(
        json,
        Defaults {
            time_ms: 0,
            interval_ms: 1000,
            current: 3,
        },
    )
    .unwrap()
    .0
}

fn native_snapshot(with_pods: bool) -> wasmscale_sdk::Snapshot {
    let mut s = wasmscale_sdk::Snapshot::new(1000, 3);
    if with_pods {
        s.pods = [0.3, 0.5, 0.7]
            .iter()
            .map(|&v| ReplicaSample {
                state: ReplicaState::Ready,
                metrics: vec![NamedValue {
                    name: "cpu".into(),
                    value: v,
                }],
                request: Some(1.0),
            })
            .collect();
        s
    } else {
        s.with("request_rate", 120.0)
    }
}

/// Median and p99 of `n` timed calls of `f`.
fn distribution(n: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    for _ in 0..n / 10 {
        f();
    }
    let mut samples: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    samples.sort();
    (samples[n / 2], samples[n * 99 / 100])
}

fn main() {
    let host = Host::new(HostConfig::default()).unwrap();
    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_secs(1));

    let cases: [(&str, &str, bool); 2] = [
        ("step-scaling", STEP_PARAMS, false),
        ("target-tracking", TT_PARAMS, true),
    ];
    let mut report = Vec::new();
    for (name, params, pods) in cases {
        let compiled = host
            .load(&PolicySource::parse(&format!("builtin:{name}")))
            .unwrap();
        let snap = host_snapshot(pods);
        let nsnap = native_snapshot(pods);
        let mut instance = compiled.instantiate(params).unwrap();
        let mut raw = compiled.instantiate_raw().unwrap();
        raw.configure(params).unwrap();
        let mut native: Box<dyn FnMut(&wasmscale_sdk::Snapshot) -> f64> = match name {
            "step-scaling" => {
                let mut p = StepScaling::default();
                p.configure(params).unwrap();
                Box::new(move |s| p.evaluate(s).unwrap().desired)
            }
            _ => {
                let mut p = TargetTracking::default();
                p.configure(params).unwrap();
                Box::new(move |s| p.evaluate(s).unwrap().desired)
            }
        };
        let mut g = c.benchmark_group(format!("evaluate/{name}"));
        g.bench_function("native", |b| b.iter(|| native(black_box(&nsnap))));
        g.bench_function("wasm", |b| {
            b.iter(|| raw.evaluate(black_box(&snap)).unwrap())
        });
        g.bench_function("wasm+checkpoint", |b| {
            b.iter(|| instance.evaluate(black_box(&snap)).unwrap())
        });
        g.finish();

        let n = 200_000;
        let native_d = distribution(n, || {
            black_box(native(black_box(&nsnap)));
        });
        let wasm_d = distribution(n, || {
            black_box(raw.evaluate(black_box(&snap)).unwrap());
        });
        let full_d = distribution(n, || {
            black_box(instance.evaluate(black_box(&snap)).unwrap());
        });
        report.push((name, native_d, wasm_d, full_d));
    }

    // Instantiation from InstancePre, and loading a compiled policy from the cache.
    let compiled = host
        .load(&PolicySource::parse("builtin:target-tracking"))
        .unwrap();
    c.bench_function("instantiate/from-instance-pre", |b| {
        b.iter(|| compiled.instantiate_raw().unwrap())
    });
    let cache_dir = tempfile::tempdir().unwrap();
    let cached_host = Host::new(HostConfig {
        cache: Some(DiskCache::new(cache_dir.path())),
        ..HostConfig::default()
    })
    .unwrap();
    let source = PolicySource::parse("builtin:target-tracking");
    assert!(!cached_host.load(&source).unwrap().from_cache());
    c.bench_function("load/from-cache", |b| {
        b.iter(|| {
            cached_host.forget_loaded();
            let p = cached_host.load(&source).unwrap();
            assert!(p.from_cache());
            p
        })
    });
    let pooled = Host::new(HostConfig {
        pooling_instances: Some(1000),
        ..HostConfig::default()
    })
    .unwrap();
    let pooled_compiled = pooled.load(&source).unwrap();
    c.bench_function("instantiate/from-instance-pre-pooling", |b| {
        b.iter(|| pooled_compiled.instantiate_raw().unwrap())
    });
    let inst = distribution(20_000, || {
        black_box(compiled.instantiate_raw().unwrap());
    });
    let load = distribution(500, || {
        cached_host.forget_loaded();
        black_box(cached_host.load(&source).unwrap());
    });
    c.final_summary();

    println!(
        "\nlatency distribution (plain loop, {} calls each):",
        200_000
    );
    println!(
        "{:<18} {:>22} {:>22} {:>22} {:>8}",
        "policy", "native med/p99", "wasm med/p99", "wasm+ckpt med/p99", "ratio"
    );
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    for (name, (nm, np), (wm, wp), (fm, fp)) in report {
        println!(
            "{name:<18} {:>10.3}/{:<8.3}µs {:>10.3}/{:<8.3}µs {:>10.3}/{:<8.3}µs {:>7.1}x",
            us(nm),
            us(np),
            us(wm),
            us(wp),
            us(fm),
            us(fp),
            us(wm) / us(nm).max(1e-9)
        );
    }
    println!(
        "instantiate from InstancePre: median {:.1} µs, p99 {:.1} µs",
        us(inst.0),
        us(inst.1)
    );
    println!(
        "load compiled policy from cache: median {:.1} µs, p99 {:.1} µs",
        us(load.0),
        us(load.1)
    );
}
