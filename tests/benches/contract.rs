//! The 0.1 and 0.2 contracts on the same policy, in one run: the built-in
//! step-scaling (0.1) and the very same code exported under 0.2 through the
//! SDK's adapter (the `v2-step-scaling` fixture).
//!
//! - 0.1 bare: `evaluate` alone;
//! - 0.1 production: `evaluate`, then `save-state` (two sandbox calls);
//! - 0.2 production: `evaluate` returning the state when it changed (one call).
//!
//! `env -u RUST_BACKTRACE cargo bench -p wasmscale-tests --bench contract`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests and benches fail by panicking"
)]

use criterion::Criterion;
use std::hint::black_box;
use std::time::{Duration, Instant};
use wasmscale::host::{Host, HostConfig, PolicySource};
use wasmscale::model::Snapshot;
use wasmscale::snapshot::{Defaults, from_json};
use wasmscale_tests::fixtures;

/// The same params as `runtime/benches/evaluate.rs`, so the rows compare.
const STEP_PARAMS: &str = r#"{"metric":"request_rate","min_capacity":1,"alarms":[
    {"comparison":"greater_than","threshold":100,"steps":[{"lower_bound":0,"adjustment":1}]},
    {"comparison":"less_than","threshold":20,"steps":[{"upper_bound":0,"adjustment":-1}]}]}"#;

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
    let snap: Snapshot = from_json(
        r#"{"request_rate": 120}"#,
        Defaults {
            time_ms: 0,
            interval_ms: 15_000,
            current: 3,
        },
    )
    .unwrap()
    .0;
    let v1 = host
        .load(&PolicySource::parse("builtin:step-scaling"))
        .unwrap();
    let v2 = host
        .load(&PolicySource::parse(fixtures::V2_STEP_SCALING))
        .unwrap();
    let mut bare = v1.instantiate_raw().unwrap();
    bare.configure(STEP_PARAMS).unwrap();
    let mut v1_full = v1.instantiate(STEP_PARAMS).unwrap();
    let mut v2_full = v2.instantiate(STEP_PARAMS).unwrap();
    assert_eq!(
        v1_full.evaluate(&snap).unwrap().decision.desired,
        v2_full.evaluate(&snap).unwrap().decision.desired
    );

    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_secs(1));
    let mut g = c.benchmark_group("contract/step-scaling");
    g.bench_function("0.1 evaluate alone", |b| {
        b.iter(|| bare.evaluate(black_box(&snap)).unwrap())
    });
    g.bench_function("0.1 evaluate + save-state", |b| {
        b.iter(|| v1_full.evaluate(black_box(&snap)).unwrap())
    });
    g.bench_function("0.2 evaluate with state", |b| {
        b.iter(|| v2_full.evaluate(black_box(&snap)).unwrap())
    });
    g.finish();

    let n = 200_000;
    let rows = [
        (
            "0.1 evaluate alone",
            distribution(n, || {
                black_box(bare.evaluate(black_box(&snap)).unwrap());
            }),
        ),
        (
            "0.1 evaluate + save-state",
            distribution(n, || {
                black_box(v1_full.evaluate(black_box(&snap)).unwrap());
            }),
        ),
        (
            "0.2 evaluate with state",
            distribution(n, || {
                black_box(v2_full.evaluate(black_box(&snap)).unwrap());
            }),
        ),
    ];
    println!("plain loop, {n} calls each: median / p99 (p99/median)");
    for (name, (median, p99)) in rows {
        println!(
            "{name:<28} {:>7.3} µs / {:>7.3} µs ({:.2}x)",
            median.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6,
            p99.as_secs_f64() / median.as_secs_f64()
        );
    }
}
