//! Simulator throughput: simulated steps (1 s each) per second, through the
//! real controller (`Scaler::tick` every 15 s of simulated time, the
//! sandboxed built-in, the guardrails, an audit record per tick), beside a
//! native-Rust baseline in the same run: the same service model and the same
//! policy compiled natively, called directly with no controller or sandbox.
//!
//! The request model is measured beside it: simulated requests per second
//! through the engine alone (one core), and whole runs of the Azure LLM
//! trace and of one day of a per-interval trace, three policies each.
//!
//! `env -u RUST_BACKTRACE cargo bench -p wasmscale --bench simulate`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests and benches fail by panicking"
)]

use criterion::{Criterion, Throughput};
use std::hint::black_box;
use std::path::Path;
use std::time::Instant;
use wasmscale::host::{Host, HostConfig};
use wasmscale::sim::{self, Cluster, ServiceModel, SimOptions, TraceSpec, setup, trace};
use wasmscale_policies::step_scaling::StepScaling;
use wasmscale_sdk::Policy;

const DAY: usize = 86_400;

fn one_day(model: &ServiceModel) -> sim::Load {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/traces/alibaba_servegen_m_small_10min.csv");
    let mut load = trace::load(&path, &TraceSpec::default(), model.step_ms()).unwrap();
    load.arrivals.truncate(DAY);
    load.scored.truncate(DAY);
    trace::scale_to_peak(&mut load, model, 32.0).unwrap();
    load
}

fn through_controller(
    host: &Host,
    model: &ServiceModel,
    load: &sim::Load,
    policy: &sim::SimPolicy,
) -> f64 {
    let setting = sim::Setting {
        host,
        base: Path::new("."),
        model,
        load,
    };
    let options = SimOptions {
        plot_points: 1500,
        ..SimOptions::default()
    };
    let run = sim::run_policy(setting, policy, 9, &options, 0).unwrap();
    run.score.cost
}

/// The same model and policy with no controller, sandbox, guardrails or audit.
fn native(model: &ServiceModel, load: &sim::Load, params: &str) -> f64 {
    let mut policy = StepScaling::default();
    policy.configure(params).unwrap();
    let mut cluster = Cluster::new(model.clone(), 9, 0);
    let mut cost = 0u64;
    for (step, &a) in load.arrivals.iter().enumerate() {
        if step % 15 == 0 {
            let mut s = wasmscale_sdk::Snapshot::new(step as u64 * 1000, cluster.total());
            for (name, v) in cluster.read_signals() {
                if !name.starts_with("cost.") {
                    s = s.with(name, v);
                }
            }
            if let Ok(d) = policy.evaluate(&s) {
                let n = (d.desired.ceil().max(0.0) as u32)
                    .clamp(model.min_replicas, model.max_replicas);
                cluster.set_replicas(n, None);
            }
        }
        cluster.advance(a, 0.0);
        cost += u64::from(cluster.total());
    }
    cost as f64
}

/// The Azure trace's requests, scaled to a 32-replica peak, through the
/// engine alone on a fixed replica count: requests simulated per second.
fn engine_only(model: &ServiceModel, load: &sim::Load, replicas: u32) -> u64 {
    let source = load.requests.as_ref().unwrap();
    let mut engine = sim::batching::Engine::new(model.engine.clone(), model.slo_limits());
    engine.set_serving(replicas);
    let mut requests = Vec::new();
    let step_ns = load.step_ms * 1_000_000;
    let mut n = 0u64;
    for step in 0..load.arrivals.len() {
        source.fill(step, step_ns, load.arrivals[step], 1, &mut requests);
        n += requests.len() as u64;
        engine.run(&requests, (step as u64 + 1) * step_ns);
    }
    engine.run(&[], u64::MAX / 2);
    assert_eq!(engine.totals.completed, n);
    n
}

fn requests_load(model: &ServiceModel, file: &str, steps: Option<usize>) -> sim::Load {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/traces")
        .join(file);
    let mut load = trace::load(&path, &TraceSpec::default(), model.step_ms()).unwrap();
    if let Some(n) = steps {
        load.arrivals.truncate(n);
        load.scored.truncate(n);
        if let Some(t) = &mut load.tokens {
            t.truncate(n);
        }
    }
    trace::scale_to_peak(&mut load, model, 32.0).unwrap();
    load
}

/// Three built-ins and the oracle on `load`, as `simulate` runs them.
fn three_policies(host: &Host, model: &ServiceModel, load: &sim::Load) -> (f64, u64) {
    let policies: Vec<_> = setup::DEFAULT_POLICIES
        .iter()
        .map(|p| setup::parse_policy(p, model, 15.0).unwrap())
        .collect();
    let setting = sim::Setting {
        host,
        base: Path::new("."),
        model,
        load,
    };
    let t = Instant::now();
    let report = sim::simulate(setting, &policies, "bench", 1.0, &SimOptions::default()).unwrap();
    (t.elapsed().as_secs_f64(), report.steps)
}

fn request_model(c: &mut Criterion, host: &Host) {
    let model = ServiceModel::requests();
    let azure = requests_load(&model, "azure_llm_2023_requests.csv", None);
    let n = engine_only(&model, &azure, 32);
    let mut group = c.benchmark_group("request model");
    group.throughput(Throughput::Elements(n));
    group.bench_function("Azure trace, engine alone, 32 replicas", |b| {
        b.iter(|| black_box(engine_only(&model, &azure, 32)))
    });
    group.finish();
    let mut times: Vec<f64> = (0..9)
        .map(|_| {
            let t = Instant::now();
            black_box(engine_only(&model, &azure, 32));
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!(
        "request model, engine alone: {n} requests in {:.1} ms (median of 9): {:.2} M requests/s",
        times[4] * 1e3,
        n as f64 / times[4] / 1e6
    );
    let (secs, _) = three_policies(host, &model, &azure);
    println!("request model, Azure trace (58.6 min), three policies and the oracle: {secs:.2} s");
    let day = requests_load(&model, "alibaba_servegen_m_large_10min.csv", Some(DAY));
    let (secs, _) = three_policies(host, &model, &day);
    println!(
        "request model, one day of ServeGen m-large, three policies and the oracle: {secs:.1} s \
         (14 days: about {:.0} s)",
        secs * 14.0
    );
}

fn main() {
    let mut c = Criterion::default().configure_from_args().sample_size(10);
    let host = Host::new(HostConfig::default()).unwrap();
    request_model(&mut c, &host);
    let model = ServiceModel::fluid();
    let load = one_day(&model);
    let every_15s = setup::parse_policy("builtin:step-scaling", &model, 15.0).unwrap();
    let every_1s = setup::parse_policy("builtin:step-scaling", &model, 1.0).unwrap();
    let params = serde_json::to_string(&every_15s.scaler.params).unwrap();

    let mut group = c.benchmark_group("simulate one day at 1 s steps");
    group.throughput(Throughput::Elements(DAY as u64));
    group.bench_function(
        "step-scaling through the controller, tick every 15 s",
        |b| b.iter(|| black_box(through_controller(&host, &model, &load, &every_15s))),
    );
    group.bench_function("step-scaling through the controller, tick every 1 s", |b| {
        b.iter(|| black_box(through_controller(&host, &model, &load, &every_1s)))
    });
    group.bench_function(
        "native baseline: model + native step-scaling every 15 s",
        |b| b.iter(|| black_box(native(&model, &load, &params))),
    );
    group.finish();

    // Plain medians of whole runs, for the README (criterion agrees).
    let median = |f: &dyn Fn() -> f64| {
        let mut times: Vec<f64> = (0..9)
            .map(|_| {
                let t = Instant::now();
                black_box(f());
                t.elapsed().as_secs_f64()
            })
            .collect();
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    };
    let controller_15 = median(&|| through_controller(&host, &model, &load, &every_15s));
    let controller_1 = median(&|| through_controller(&host, &model, &load, &every_1s));
    let baseline = median(&|| native(&model, &load, &params));
    let rate = |secs: f64| DAY as f64 / secs;
    println!(
        "steps/s (median of 9 one-day runs): controller, tick every 15 s: {:.0}; every 1 s: {:.0}; \
         native baseline: {:.0} ({:.1}x faster than the 15 s controller run)",
        rate(controller_15),
        rate(controller_1),
        rate(baseline),
        controller_15 / baseline
    );
}
