//! Per-call cost of the sandbox, beside the same policy compiled natively, for
//! both contracts in one run: native; 0.1 (the checked-in 0.1 builds of the
//! built-ins, `tests/fixtures/v0.1/`) with `evaluate` alone and with the
//! `save-state` call production makes after it; 0.2 (the built-ins) in
//! production, one call returning the state when it changed.
//!
//! `cargo bench -p wasmscale --bench evaluate` (run with RUST_BACKTRACE unset).
//! Criterion reports medians; after it, a plain loop times 200,000 single calls
//! to report the median and p99 of the latency distribution, and the 0.2 to
//! 0.1 ratio in the same run.
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
    // A generous deadline: a call preempted on a busy 2-core machine must not
    // end the run; the deadline's cost per call is the same.
    let host = Host::new(HostConfig {
        limits: wasmscale::Limits {
            deadline: Duration::from_secs(1),
            ..wasmscale::Limits::default()
        },
        // `WASMSCALE_PERF_MAP=1 perf record ...` names the guests' functions.
        perf_map: std::env::var_os("WASMSCALE_PERF_MAP").is_some(),
        ..HostConfig::default()
    })
    .unwrap();
    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_secs(1));

    let cases: [(&str, &str, bool); 2] = [
        ("step-scaling", STEP_PARAMS, false),
        ("target-tracking", TT_PARAMS, true),
    ];
    let mut report = Vec::new();
    for (name, params, pods) in cases {
        // 0.2: the built-in. 0.1: the same code as built for 0.1 before the
        // move, checked in (`tests/fixtures/v0.1/`).
        let v2 = host
            .load(&PolicySource::parse(&format!("builtin:{name}")))
            .unwrap();
        let v1_path = format!(
            "{}/../tests/fixtures/v0.1/{name}.wasm",
            env!("CARGO_MANIFEST_DIR")
        );
        let v1 = host.load(&PolicySource::parse(&v1_path)).unwrap();
        let snap = host_snapshot(pods);
        let nsnap = native_snapshot(pods);
        let mut v2_full = v2.instantiate(params).unwrap();
        let mut v1_full = v1.instantiate(params).unwrap();
        let mut v1_bare = v1.instantiate_raw().unwrap();
        v1_bare.configure(params).unwrap();
        assert_eq!(
            v1_full.evaluate(&snap).unwrap().decision,
            v2_full.evaluate(&snap).unwrap().decision,
            "{name}: 0.1 and 0.2 decide alike"
        );
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
        g.bench_function("0.1 evaluate alone", |b| {
            b.iter(|| v1_bare.evaluate(black_box(&snap)).unwrap())
        });
        g.bench_function("0.1 evaluate + save-state", |b| {
            b.iter(|| v1_full.evaluate(black_box(&snap)).unwrap())
        });
        g.bench_function("0.2 evaluate with state", |b| {
            b.iter(|| v2_full.evaluate(black_box(&snap)).unwrap())
        });
        g.finish();

        let n = 200_000;
        let native_d = distribution(n, || {
            black_box(native(black_box(&nsnap)));
        });
        let bare_d = distribution(n, || {
            black_box(v1_bare.evaluate(black_box(&snap)).unwrap());
        });
        let v1_d = distribution(n, || {
            black_box(v1_full.evaluate(black_box(&snap)).unwrap());
        });
        let v2_d = distribution(n, || {
            black_box(v2_full.evaluate(black_box(&snap)).unwrap());
        });
        report.push((name, [native_d, bare_d, v1_d, v2_d]));
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
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let columns = ["native", "0.1 alone", "0.1 + save-state", "0.2 production"];
    for (name, rows) in report {
        println!("{name}: median / p99 (p99/median)");
        for (column, (median, p99)) in columns.iter().zip(rows) {
            println!(
                "  {column:<18} {:>8.3} µs / {:>8.3} µs ({:.2}x)",
                us(median),
                us(p99),
                us(p99) / us(median).max(1e-9)
            );
        }
        let (v2, v1) = (us(rows[3].0), us(rows[1].0));
        println!("  0.2 production / 0.1 alone: {:.2}", v2 / v1);
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
