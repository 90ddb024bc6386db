//! Many scalers in one process: `run` with N scalers (default 10,000) at a 1 s
//! tick, static sources and the log target, for S seconds (default 40).
//! Reports CPU use as a share of one core (the median of 5-s windows once
//! start-up is over, with the min and max), tick lag p50/p99, and peak
//! memory per scaler.
//!
//! `env -u RUST_BACKTRACE cargo bench -p wasmscale --bench controller`
//! (`WASMSCALE_SCALERS`, `WASMSCALE_SECONDS` to change the size;
//! `WASMSCALE_POLICY` for another component than `builtin:queue-depth`;
//! `WASMSCALE_TENANTS=100` to spread the scalers over that many tenants of a
//! tenants store, each on a tier with a concurrency and a fuel budget, so
//! every evaluation goes through its tenant's lane).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests and benches fail by panicking"
)]

use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// CPU is measured over windows of this length; the median is reported.
const WINDOW: Duration = Duration::from_secs(5);
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
        .unwrap_or(40);
    // Another component in place of the 0.1 built-in, e.g. the 0.2 build of
    // the same queue-depth code (the tests crate's `v2-queue-depth` fixture).
    let policy = std::env::var("WASMSCALE_POLICY").unwrap_or_else(|_| "builtin:queue-depth".into());
    let tenants: usize = std::env::var("WASMSCALE_TENANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from(
        "[admin]\nlisten = \"\"\n[audit]\npath = \"audit.jsonl\"\nmax_bytes = 67108864\nkeep = 1\n\
         [tiers.bench.quotas]\nconcurrency = 2\nfuel_per_second = 1000000000000\n",
    );
    let store = (tenants > 0).then(|| {
        let store = wasmscale::tenants::Tenants::open(&dir.path().join("state")).unwrap();
        for t in 0..tenants {
            store.create(&format!("t{t}"), Some("bench")).unwrap();
        }
        std::sync::Arc::new(store)
    });
    for i in 0..n {
        let tenant = if tenants > 0 {
            format!("t{}", i % tenants)
        } else {
            "default".into()
        };
        let _ = write!(
            text,
            "[[scaler]]\nname = \"s{i}\"\ntenant = \"{tenant}\"\npolicy = {policy:?}\nparams = {{ target_per_replica = 10 }}\nmin_replicas = 1\nmax_replicas = 10\ninterval_seconds = 1\nmetrics = {{ queue_depth = {} }}\n[scaler.guard]\nrate = \"none\"\n",
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
    let audit = dir.path().join("audit.jsonl");
    let measure = |ticks: u64| {
        let config = wasmscale::controller::load(&path, &host).unwrap();
        let _ = std::fs::remove_file(&audit);
        let wall = Instant::now();
        let running = std::sync::atomic::AtomicBool::new(true);
        std::thread::scope(|scope| {
            // Sample CPU time in windows while the scalers tick: from 2 s
            // after the first audit record (start-up is over) until the run
            // ends. The median window is the figure: this machine is noisy.
            let sampler = scope.spawn(|| {
                let running = || running.load(std::sync::atomic::Ordering::Relaxed);
                while running() && std::fs::metadata(&audit).map_or(true, |m| m.len() == 0) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                std::thread::sleep(Duration::from_secs(2));
                let mut windows = Vec::new();
                let (mut cpu0, mut t0) = (cpu_seconds(), Instant::now());
                while running() {
                    std::thread::sleep(Duration::from_millis(100));
                    if t0.elapsed() >= WINDOW && running() {
                        let (cpu, t) = (cpu_seconds(), Instant::now());
                        windows.push((cpu - cpu0) / (t - t0).as_secs_f64() * 100.0);
                        (cpu0, t0) = (cpu, t);
                    }
                }
                windows
            });
            let summary = run(
                config,
                dir.path(),
                &host,
                RunOptions {
                    ticks: Some(ticks),
                    tenants: store.clone(),
                    ..RunOptions::default()
                },
            )
            .unwrap();
            running.store(false, std::sync::atomic::Ordering::Relaxed);
            (
                summary,
                sampler.join().unwrap(),
                wall.elapsed().as_secs_f64(),
            )
        })
    };
    let (summary, mut windows, wall) = measure(seconds);
    let peak = proc_status("VmHWM:").unwrap_or(0);
    windows.sort_by(f64::total_cmp);
    let median = windows.get(windows.len() / 2).copied().unwrap_or(f64::NAN);
    let throttled: u64 = summary.throttled_by_tenant.values().sum();
    println!(
        "{n} scalers in {} tenant(s), {throttled} ticks throttled",
        tenants.max(1)
    );
    println!(
        "{n} scalers x {seconds} ticks at 1 s: {} ticks in {wall:.1} s; steady-state CPU, {}-s windows after start-up: \
         median {median:.1}% of one core ({:.1} µs per tick), min {:.1}%, max {:.1}%, {} windows; lag p50 {} ms, p99 {} ms; missed {}, failed {}",
        summary.ticks,
        WINDOW.as_secs(),
        median / 100.0 / n as f64 * 1e6,
        windows.first().copied().unwrap_or(f64::NAN),
        windows.last().copied().unwrap_or(f64::NAN),
        windows.len(),
        summary.lag_percentile_ms(50.0).unwrap_or(0),
        summary.lag_percentile_ms(99.0).unwrap_or(0),
        summary.missed_ticks,
        summary.failed_ticks,
    );
    if let Some(store) = &store {
        authentication(store, tenants);
    }
    println!(
        "memory: peak resident {:.0} MiB, {:.1} KiB per scaler above the {:.0} MiB baseline",
        peak as f64 / (1 << 20) as f64,
        peak.saturating_sub(baseline) as f64 / n as f64 / 1024.0,
        baseline as f64 / (1 << 20) as f64
    );
}

/// What checking a request's token costs (it is per API request, not per
/// tick): one tenant-admin token per tenant, checked in turn, against a bad
/// secret and an unknown id.
fn authentication(store: &wasmscale::tenants::Tenants, tenants: usize) {
    use wasmscale::tenants::Role;
    let good: Vec<String> = (0..tenants)
        .map(|t| {
            store
                .issue(Some(&format!("t{t}")), Role::TenantAdmin, "bench", None)
                .unwrap()
                .token
        })
        .collect();
    let wrong_secret = format!("{}{}", &good[0][..good[0].len() - 1], "0");
    let unknown = format!("wst_{}_{}", "f".repeat(16), "0".repeat(64));
    let time = |label: &str, tokens: &[&str], ok: bool| {
        let calls = 20_000;
        let mut took = Vec::with_capacity(calls);
        for i in 0..calls {
            let token = tokens[i % tokens.len()];
            let t = Instant::now();
            let verdict = store.authenticate(token);
            took.push(t.elapsed());
            assert_eq!(verdict.is_ok(), ok, "{label}");
        }
        took.sort();
        let median = took[calls / 2];
        println!(
            "authentication, {label}: median {:.1} µs, p99 {:.1} µs per request ({calls} calls); \
             at one request per tenant per second ({tenants}/s) {:.3} % of one core",
            median.as_secs_f64() * 1e6,
            took[calls * 99 / 100].as_secs_f64() * 1e6,
            median.as_secs_f64() * tenants as f64 * 100.0,
        );
    };
    let refs: Vec<&str> = good.iter().map(String::as_str).collect();
    time(&format!("{tenants} good tokens in turn"), &refs, true);
    time("a wrong secret", &[&wrong_secret], false);
    time("an unknown id", &[&unknown], false);
}
