//! Hot swap's two numbers, in one run:
//! - the pause a swap adds to the swapped scaler: `Scaler::swap_policy`
//!   (state hand-off, the new digest, the state file), with and without a
//!   state directory;
//! - upload to active for a built-in-sized policy, over the admin API of a
//!   running daemon with one following scaler: upload, validate, compile
//!   (new bytes each time, so nothing is cached), configure, smoke-evaluate,
//!   the registry's pointer, and the swap.
//!
//! `cargo bench -p wasmscale --bench swap` (run with RUST_BACKTRACE unset).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests and benches fail by panicking"
)]

use criterion::{BatchSize, Criterion};
use std::io::{Read as _, Write as _};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmscale::controller::{RunOptions, Scaler};
use wasmscale::host::{Host, HostConfig, PolicySource};

const PARAMS: &str = r#"{"target_per_replica": 10, "cooldown_seconds": 0}"#;

fn config_text(port: u16, policy: &str) -> String {
    format!(
        r#"state_dir = "state"
[audit]
path = "audit.jsonl"
[admin]
listen = "127.0.0.1:{port}"
[[scaler]]
name = "s"
policy = "{policy}"
params = {{ target_per_replica = 10, cooldown_seconds = 0 }}
min_replicas = 1
max_replicas = 10
interval_seconds = 1
metrics = {{ queue_depth = 35 }}
"#
    )
}

fn http(port: u16, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(
        format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let status = raw.split_whitespace().nth(1).unwrap().parse().unwrap();
    (
        status,
        raw.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned(),
    )
}

/// The component with a custom section appended: new bytes, same policy.
fn variant(bytes: &[u8], n: u32) -> Vec<u8> {
    let name = b"bench";
    let mut out = bytes.to_vec();
    out.push(0);
    out.push((1 + name.len() + 4) as u8);
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.extend_from_slice(&n.to_le_bytes());
    out
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn main() {
    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_secs(1));
    let host = Host::new(HostConfig::default()).unwrap();
    let builtin = wasmscale::host::builtin_bytes("queue-depth").unwrap();
    let v01 = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/v0.1/queue-depth.wasm"
    ))
    .unwrap();
    let versions = [
        host.load(&PolicySource::parse("builtin:queue-depth"))
            .unwrap(),
        host.load_bytes("v0.1", &v01).unwrap(),
    ];

    // 1. The pause: swap_policy alone, alternating two versions.
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(0, "builtin:queue-depth");
    let config = wasmscale::config::validate("bench.toml", &text, dir.path()).unwrap();
    let state_dir = dir.path().join("state");
    std::fs::create_dir_all(&state_dir).unwrap();
    let mut pauses = Vec::new();
    for (label, state) in [
        ("with state_dir", Some(state_dir.as_path())),
        ("in memory", None),
    ] {
        let mut scaler = Scaler::new(&config.scalers[0], dir.path(), &host, state).unwrap();
        let mut i = 0usize;
        c.bench_function(&format!("swap/pause ({label})"), |b| {
            b.iter_batched(
                || {
                    i += 1;
                    versions[i % 2].instantiate(PARAMS).unwrap()
                },
                |next| scaler.swap_policy(next, "bench"),
                BatchSize::SmallInput,
            )
        });
        let mut samples: Vec<Duration> = (0..2000)
            .map(|k| {
                let next = versions[k % 2].instantiate(PARAMS).unwrap();
                let t = Instant::now();
                std::hint::black_box(scaler.swap_policy(next, "bench"));
                t.elapsed()
            })
            .collect();
        samples.sort();
        pauses.push((label, percentile(&samples, 0.5), percentile(&samples, 0.99)));
    }

    // 2. Upload to active, over HTTP, against a running daemon.
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    {
        let r = wasmscale::registry::Registry::open(&dir.path().join("state/registry")).unwrap();
        let v = r
            .put("qd", builtin, wasmscale::registry::Upload::default())
            .unwrap();
        r.activate("qd", v.version, "bench").unwrap();
    }
    let path = dir.path().join("wasmscale.toml");
    std::fs::write(&path, config_text(port, "registry:qd")).unwrap();
    let base = dir.path().to_path_buf();
    std::thread::spawn(move || {
        let host = Arc::new(Host::new(HostConfig::default()).unwrap());
        let registry = wasmscale::cli::open_registry(&host, &path)
            .unwrap()
            .unwrap();
        let config = wasmscale::controller::load(&path, &host).unwrap();
        let server = wasmscale::admin::AdminServer::new(&config.admin.listen)
            .with_registry(registry, host.clone());
        wasmscale::controller::run(
            config,
            Path::new(&base),
            &host,
            RunOptions {
                services: vec![Box::new(server)],
                ..RunOptions::default()
            },
        )
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the admin API never came up");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_secs(2));
    let mut n = 0u32;
    let mut upload_once = || {
        n += 1;
        let bytes = variant(builtin, n);
        let t = Instant::now();
        let (status, body) = http(
            port,
            "POST",
            "/v1/policies/qd/versions?activate=true",
            &bytes,
        );
        let took = t.elapsed();
        assert_eq!(status, 201, "{body}");
        assert!(body.contains("\"swapped\":[{"), "{body}");
        took
    };
    let mut g = c.benchmark_group("swap");
    g.sample_size(20);
    g.bench_function("upload to active (HTTP, compile included)", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| upload_once()).sum())
    });
    g.finish();
    let mut uploads: Vec<Duration> = (0..30).map(|_| upload_once()).collect();
    uploads.sort();
    // What compilation alone takes of it, on a host of its own.
    let mut compiles: Vec<Duration> = (0..10u32)
        .map(|k| {
            let bytes = variant(builtin, 1_000_000 + k);
            let t = Instant::now();
            std::hint::black_box(host.load_bytes("compile", &bytes).unwrap());
            t.elapsed()
        })
        .collect();
    compiles.sort();
    c.final_summary();

    println!("\nswap pause (Scaler::swap_policy, 2000 swaps each): median / p99");
    for (label, median, p99) in pauses {
        println!(
            "  {label:<16} {:>8.1} µs / {:>8.1} µs",
            median.as_secs_f64() * 1e6,
            p99.as_secs_f64() * 1e6
        );
    }
    println!(
        "upload to active (30 uploads of {} bytes): median {:.1} ms, p99 {:.1} ms",
        builtin.len() + 10,
        percentile(&uploads, 0.5).as_secs_f64() * 1e3,
        percentile(&uploads, 0.99).as_secs_f64() * 1e3
    );
    println!(
        "of which compiling it (10 compiles): median {:.1} ms",
        percentile(&compiles, 0.5).as_secs_f64() * 1e3
    );
}
