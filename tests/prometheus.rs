//! End to end: a real Prometheus (Debian's `prometheus`, installed by
//! `.ci/setup`) started here on 127.0.0.1, scraping a metrics endpoint this test
//! serves; the controller ticks, the real policy component decides, the fake
//! Kubernetes API (tests/fake_kube.rs) receives the PATCH, and the audit record
//! matches. Then Prometheus is stopped mid-run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail by panicking"
)]

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use wasmscale::controller;
use wasmscale::controller::Scaler;
use wasmscale_tests::fake_kube::{Shared, start_fake};
use wasmscale_tests::{free_port, host};

/// Serve `/metrics` with `test_queue_depth <value>` until the process ends.
fn serve_metrics(value: Arc<AtomicU64>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let body = format!(
                "# TYPE test_queue_depth gauge\ntest_queue_depth{{queue=\"a\"}} {}\ntest_queue_depth{{queue=\"b\"}} 0\n",
                value.load(Ordering::SeqCst)
            );
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

struct Prometheus {
    child: Child,
    port: u16,
    /// Every query Prometheus answered, one JSON line each (its query log).
    query_log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_prometheus(target_port: u16) -> Prometheus {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n  query_log_file: {}\nscrape_configs:\n  - job_name: test\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n",
            dir.path().join("queries.jsonl").display()
        ),
    )
    .unwrap();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start prometheus ({e}); run .ci/setup to install Debian's prometheus")
        });
    Prometheus {
        child,
        port,
        query_log: dir.path().join("queries.jsonl"),
        _dir: dir,
    }
}

/// Query Prometheus's HTTP API by hand until it has scraped the test target.
fn wait_for_scrape(port: u16, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = write!(
                s,
                "GET /api/v1/query?query=sum(test_queue_depth) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            );
            let mut text = String::new();
            let _ = s.read_to_string(&mut text);
            if text.contains(&format!("\"{want}\"]")) {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("prometheus on port {port} did not scrape the test target within 60 s");
}

#[test]
fn controller_reads_a_real_prometheus_and_survives_it_going_down() {
    let value = Arc::new(AtomicU64::new(42));
    let target = serve_metrics(value.clone());
    let mut prometheus = start_prometheus(target);
    wait_for_scrape(prometheus.port, 42);

    let cluster: Shared = Arc::default();
    cluster
        .lock()
        .unwrap()
        .objects
        .insert("queue".into(), (1, 1));
    let kube_port = start_fake(cluster.clone());

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        format!(
            r#"[[scaler]]
name = "queue"
policy = {policy:?}
params = {{ target_per_replica = 10 }}
min_replicas = 1
max_replicas = 20
interval_seconds = 1
source = {{ type = "prometheus", url = "http://127.0.0.1:{}", timeout_ms = 2000 }}
metrics = {{ queue_depth = "sum(test_queue_depth)", missing_one = "sum(no_such_metric)" }}
target = {{ type = "kubernetes", name = "queue", api_server = "http://127.0.0.1:{}", timeout_ms = 2000 }}
[scaler.guard]
rate = "none"
[scaler.fallback]
after_failed_ticks = 2
replicas = 3
"#,
            prometheus.port,
            kube_port,
            policy = wasmscale_tests::fixtures::V2_QUEUE,
        ),
    )
    .unwrap();
    // `missing_one` is not used by the policy: validation says so.
    let errors = controller::load(&path, &host()).unwrap_err();
    assert!(
        errors
            .to_string()
            .contains("metrics.missing_one is neither a snapshot signal nor used"),
        "{errors}"
    );
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("missing_one", "backlog");
    std::fs::write(&path, text).unwrap();
    let config = controller::load(&path, &host()).unwrap_or_else(|e| panic!("{e}"));
    let host = host();
    let mut scaler = Scaler::new(&config.scalers[0], dir.path(), &host, None).unwrap();

    let t0 = 1_700_000_000_000;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let r = runtime.block_on(scaler.tick(t0));
    assert!(r.failures.is_empty(), "{r:?}");
    assert_eq!(r.snapshot.as_ref().and_then(|s| s.queue_depth), Some(42.0));
    // A query with no data is missing, never zero (the policy reads the
    // backlog, and counts it 0 when unknown).
    assert_eq!(r.missing, ["backlog"]);
    assert!(
        r.snapshot.as_ref().is_some_and(|s| s.custom.is_empty()),
        "{r:?}"
    );
    assert_eq!(r.decision.as_ref().map(|d| d.desired), Some(5));
    assert_eq!(
        (r.previous_replicas, r.final_replicas, r.wrote),
        (1, 5, true)
    );
    // The fake API server received the PATCH, and the audit record says so.
    let patches = |c: &Shared| {
        c.lock()
            .unwrap()
            .log
            .iter()
            .filter(|(m, _, _)| m == "PATCH")
            .count()
    };
    assert_eq!(cluster.lock().unwrap().objects["queue"].0, 5);
    assert_eq!(patches(&cluster), 1);
    let line = serde_json::to_value(&r).unwrap();
    assert_eq!(
        (line["final_replicas"].as_u64(), line["wrote"].as_bool()),
        (Some(5), Some(true))
    );

    // Prometheus goes down: the source is unavailable, the count is held, and
    // after two failed ticks the fallback applies.
    let _ = prometheus.child.kill();
    let _ = prometheus.child.wait();
    let down = runtime.block_on(scaler.tick(t0 + 1_000));
    assert_eq!(
        down.failures
            .first()
            .map(|f| (f.stage.as_str(), f.kind.as_str())),
        Some(("source", "unavailable")),
        "{down:?}"
    );
    assert_eq!(down.final_replicas, 5);
    assert_eq!(patches(&cluster), 1, "held: nothing written");
    let fallback = runtime.block_on(scaler.tick(t0 + 2_000));
    assert_eq!(fallback.final_replicas, 3, "{fallback:?}");
    assert_eq!(cluster.lock().unwrap().objects["queue"].0, 3);
}

/// A 0.2 policy names what it reads, so its Prometheus source sends only
/// those queries; a 0.1 policy reads the whole snapshot and gets them all.
#[test]
fn a_0_2_policy_gets_only_the_queries_it_reads() {
    let target = serve_metrics(Arc::new(AtomicU64::new(42)));
    let prometheus = start_prometheus(target);
    wait_for_scrape(prometheus.port, 42);
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let host = host();
    let v1 = wasmscale_tests::from_root("tests/fixtures/v0.1/queue-depth.wasm");
    for (policy, unread) in [
        ("builtin:queue-depth", "vector(0.25)"),
        (v1.to_str().unwrap(), "vector(0.5)"),
    ] {
        let text = format!(
            "[admin]\nlisten = \"\"\n[[scaler]]\nname = \"q\"\npolicy = {policy:?}\nparams = {{ target_per_replica = 10 }}\nmin_replicas = 1\nmax_replicas = 20\nsource = {{ type = \"prometheus\", url = \"http://127.0.0.1:{}\" }}\nmetrics = {{ queue_depth = \"sum(test_queue_depth)\", gpu_utilization = \"{unread}\" }}\n",
            prometheus.port
        );
        let path = wasmscale_tests::write_file(dir.path(), "c.toml", &text);
        let config = controller::load(&path, &host).unwrap_or_else(|e| panic!("{e}"));
        let mut scaler = Scaler::new(&config.scalers[0], dir.path(), &host, None).unwrap();
        let record = runtime.block_on(scaler.tick(1_700_000_000_000));
        assert!(record.failures.is_empty(), "{:?}", record.failures);
        assert_eq!(record.decision.map(|d| d.desired), Some(5), "{policy}");
    }
    let log = std::fs::read_to_string(&prometheus.query_log).unwrap();
    assert!(
        !log.contains("vector(0.25)"),
        "the 0.2 policy does not read gpu_utilization: not queried\n{log}"
    );
    assert!(
        log.contains("vector(0.5)"),
        "the 0.1 policy gets every query\n{log}"
    );
}

/// Query Prometheus for one instant value of `query` (None before it has one).
fn instant(port: u16, query: &str) -> Option<f64> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    let _ = write!(
        s,
        "GET /api/v1/query?query={query} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let body: serde_json::Value = serde_json::from_str(text.split_once("\r\n\r\n")?.1).ok()?;
    body["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

/// The admin server's `/metrics`, scraped by a real Prometheus: it parses
/// the exposition (the target is up) and holds the series the README names.
#[test]
fn a_real_prometheus_scrapes_the_admin_metrics() {
    let admin = free_port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        format!(
            r#"[audit]
path = "audit.jsonl"
[admin]
listen = "127.0.0.1:{admin}"
[[scaler]]
name = "chat"
tenant = "acme"
policy = "builtin:queue-depth"
params = {{ target_per_replica = 10 }}
min_replicas = 1
max_replicas = 8
interval_seconds = 0.1
metrics = {{ queue_depth = 35 }}
"#
        ),
    )
    .unwrap();
    let daemon = std::thread::spawn(move || {
        wasmscale::cli::serve(Arc::new(host()), &path, Some(200), false).unwrap()
    });
    let prometheus = start_prometheus(admin);
    // The daemon ticks for 20 s; Prometheus scrapes every second.
    let deadline = Instant::now() + Duration::from_secs(18);
    let mut seen = (None, None, None);
    while Instant::now() < deadline {
        seen = (
            instant(prometheus.port, "up"),
            instant(
                prometheus.port,
                "wasmscale_ticks_total%7Bscaler%3D%22chat%22%2Ctenant%3D%22acme%22%7D",
            ),
            instant(
                prometheus.port,
                "wasmscale_tick_duration_seconds_count%7Bscaler%3D%22chat%22%7D",
            ),
        );
        if matches!(seen, (Some(1.0), Some(t), Some(c)) if t > 0.0 && c > 0.0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let (up, ticks, count) = seen;
    assert_eq!(
        up,
        Some(1.0),
        "Prometheus could not scrape or parse /metrics"
    );
    assert!(ticks.is_some_and(|t| t > 0.0), "{ticks:?}");
    assert!(count.is_some_and(|c| c > 0.0), "{count:?}");
    assert_eq!(
        instant(prometheus.port, "wasmscale_desired_replicas"),
        Some(4.0)
    );
    assert!(instant(prometheus.port, "process_resident_memory_bytes").is_some_and(|b| b > 1e6));
    daemon.join().unwrap();
}
