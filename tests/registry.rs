//! The policy registry, the admin API and hot swap, over real HTTP against
//! a daemon running in this process: uploads good and bad, activation and
//! rollback across scalers, the pipeline's named failures, probation, the
//! breaker and recent decisions, and a hundred swaps while 200 scalers tick.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail by panicking"
)]

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmscale::controller::{self, RunSummary};
use wasmscale::registry::{Registry, Upload, digest_of};
use wasmscale_tests::admin_http::{exchange, json, read_response, wait_up};
use wasmscale_tests::{fixtures, free_port, host, write_file};

/// One exchange as user `tester`: the status and the body.
fn http(port: u16, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    exchange(port, method, path, &[("X-Wasmscale-User", "tester")], body)
}

/// The built-in queue-depth component, and the same policy as a 0.1 build
/// (the checked-in fixture): both decide alike.
fn queue_depth() -> Vec<u8> {
    wasmscale::host::builtin_bytes("queue-depth")
        .unwrap()
        .to_vec()
}

fn queue_depth_v1() -> Vec<u8> {
    std::fs::read(wasmscale_tests::from_root(
        "tests/fixtures/v0.1/queue-depth.wasm",
    ))
    .unwrap()
}

/// The hostile fixture that proposes 1, 2, 3, ... (its evaluation count).
fn flaky_counter() -> Vec<u8> {
    std::fs::read(fixtures::FLAKY_COUNTER).unwrap()
}

/// The same component with a custom section appended: other bytes, the
/// same behaviour.
fn variant(bytes: &[u8], n: u8) -> Vec<u8> {
    let name = b"wasmscale-test";
    let mut out = bytes.to_vec();
    out.push(0);
    out.push((1 + name.len() + 1) as u8);
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.push(n);
    out
}

/// A registry under `dir/state/registry` holding `qd` version 1 (the
/// built-in queue-depth), active.
fn seeded_registry(dir: &Path) {
    let r = Registry::open(&dir.join("state/registry")).unwrap();
    let v = r
        .put(
            "qd",
            &queue_depth(),
            Upload {
                uploader: "seed".into(),
                contract: "wasmscale:policy@0.2.0".into(),
                signals: vec![],
            },
        )
        .unwrap();
    r.activate("qd", v.version, "seed").unwrap();
}

/// Scalers `s0..sN` following `registry:qd`, at `interval` seconds.
fn config(port: u16, scalers: usize, interval: f64, rollout: &str) -> String {
    let mut text = format!(
        "state_dir = \"state\"\n[audit]\npath = \"audit.jsonl\"\n[admin]\nlisten = \"127.0.0.1:{port}\"\n"
    );
    for i in 0..scalers {
        text.push_str(&format!(
            r#"
[[scaler]]
name = "s{i}"
policy = "registry:qd"
params = {{ target_per_replica = 10, cooldown_seconds = 0 }}
min_replicas = 1
max_replicas = 10
interval_seconds = {interval}
metrics = {{ queue_depth = 35 }}
[scaler.guard]
rate = "none"
{rollout}
"#
        ));
    }
    text
}

/// Start `wasmscale run`'s daemon on `dir/wasmscale.toml` in a thread, as
/// the binary does (the registry under its state_dir, the admin server).
fn serve(dir: &Path, text: &str, ticks: u64) -> std::thread::JoinHandle<RunSummary> {
    let path = write_file(dir, "wasmscale.toml", text);
    std::thread::spawn(move || {
        wasmscale::cli::serve(Arc::new(host()), &path, Some(ticks), false).unwrap()
    })
}

fn upload(port: u16, name: &str, bytes: &[u8]) -> (u16, serde_json::Value) {
    let (status, body) = http(
        port,
        "POST",
        &format!("/v1/policies/{name}/versions"),
        bytes,
    );
    (status, json(&body))
}

fn activate(port: u16, version: u32) -> (u16, serde_json::Value) {
    let (status, body) = http(
        port,
        "POST",
        "/v1/policies/qd/activate",
        format!("{{\"version\": {version}}}").as_bytes(),
    );
    (status, json(&body))
}

/// The digest scaler `name` runs now, as its task reports it.
fn running_digest(port: u16, name: &str) -> String {
    let (status, body) = http(port, "GET", &format!("/v1/scalers/{name}"), b"");
    assert_eq!(status, 200, "{body}");
    json(&body)["running"]["policy_digest"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap()
}

#[test]
fn the_admin_api_serves_http_properly_and_refuses_bad_uploads_with_json() {
    let dir = tempfile::tempdir().unwrap();
    seeded_registry(dir.path());
    let port = free_port();
    let _daemon = serve(dir.path(), &config(port, 1, 0.1, ""), 1200);
    wait_up(port);

    assert_eq!(http(port, "GET", "/healthz", b""), (200, "ok\n".into()));
    // HEAD answers without a body; POST to a GET route is refused.
    let (status, body) = http(port, "HEAD", "/metrics", b"");
    assert_eq!((status, body.as_str()), (200, ""));
    let (status, body) = http(port, "POST", "/metrics", b"");
    assert_eq!(status, 405, "{body}");
    assert!(json(&body)["error"].as_str().unwrap().contains("POST"));
    let (status, body) = http(port, "GET", "/nope", b"");
    assert_eq!(status, 404);
    assert!(
        json(&body)["hint"]
            .as_str()
            .unwrap()
            .contains("/v1/policies")
    );
    // A request split across two TCP sends.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /hea").unwrap();
    s.flush().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    s.write_all(b"lthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut s), (200, "ok\n".into()));

    // Bad uploads: each a JSON error, the failed step named where there is one.
    let good = queue_depth();
    let wat = |name: &str| std::fs::read(fixtures::wat(name)).unwrap();
    let cases: Vec<(&str, Vec<u8>, u16, Option<&str>)> = vec![
        ("not wasm", b"hello, world".to_vec(), 422, Some("compile")),
        (
            "truncated",
            good[..good.len() / 2].to_vec(),
            422,
            Some("compile"),
        ),
        ("a core module", wat("not_a_component"), 422, None),
        (
            "the wrong contract",
            wat("wrong_version"),
            422,
            Some("validate"),
        ),
        ("empty", Vec::new(), 400, None),
    ];
    for (what, bytes, want, step) in cases {
        let (status, body) = upload(port, "qd", &bytes);
        assert_eq!(status, want, "{what}: {body}");
        assert!(body["error"].is_string(), "{what}: {body}");
        if let Some(step) = step {
            assert_eq!(body["step"], step, "{what}: {body}");
        }
    }
    let (status, body) = upload(port, "Bad%20Name", &good);
    assert_eq!(status, 400, "{body}");
    // 100 MB: refused once past the host's module limit, not read to the end.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let total = 100usize << 20;
    s.write_all(
        format!("POST /v1/policies/qd/versions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {total}\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let mut writer = s.try_clone().unwrap();
    let feeding = std::thread::spawn(move || {
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..100 {
            if writer.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let (status, body) = read_response(&mut s);
    assert_eq!(status, 413, "{body}");
    assert!(
        json(&body)["hint"]
            .as_str()
            .unwrap()
            .contains("max_module_bytes")
    );
    feeding.join().unwrap();
    // Nothing bad was stored.
    let (status, body) = http(port, "GET", "/v1/policies/qd", b"");
    assert_eq!(status, 200);
    assert_eq!(
        json(&body)["policy"]["versions"].as_array().unwrap().len(),
        1,
        "{body}"
    );

    // Concurrent uploads of different bytes: each its own version.
    let uploads: Vec<_> = (0..6u8)
        .map(|i| {
            let bytes = variant(&good, i);
            std::thread::spawn(move || upload(port, "qd", &bytes))
        })
        .collect();
    let mut versions: Vec<u64> = uploads
        .into_iter()
        .map(|t| {
            let (status, body) = t.join().unwrap();
            assert_eq!(status, 201, "{body}");
            body["version"]["version"].as_u64().unwrap()
        })
        .collect();
    versions.sort_unstable();
    assert_eq!(versions, [2, 3, 4, 5, 6, 7]);
    // The same bytes again: the same version.
    let (status, body) = upload(port, "qd", &variant(&good, 0));
    assert_eq!(status, 201);
    assert!(body["version"]["version"].as_u64().unwrap() >= 2);
    let (status, body) = http(port, "GET", "/v1/policies", b"");
    assert_eq!(status, 200);
    assert_eq!(json(&body)[0]["versions"].as_array().unwrap().len(), 7);
}

#[test]
fn activation_swaps_every_follower_and_a_failed_step_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    seeded_registry(dir.path());
    let port = free_port();
    let _daemon = serve(dir.path(), &config(port, 2, 0.1, ""), 1200);
    wait_up(port);
    let v1 = digest_of(&queue_depth());
    // Let a few snapshots reach the audit log, for the smoke evaluation.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(running_digest(port, "s0"), hex(&v1));

    // Version 2 is the same policy built for 0.1: it takes the state and
    // decides alike.
    let (status, body) = upload(port, "qd", &queue_depth_v1());
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["version"]["contract"], "wasmscale:policy@0.1.0");
    let v2 = body["version"]["digest"].as_str().unwrap().to_owned();
    let (status, body) = activate(port, 2);
    assert_eq!(status, 200, "{body}");
    let swapped: Vec<&str> = body["swapped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["scaler"].as_str().unwrap())
        .collect();
    assert_eq!(swapped, ["s0", "s1"]);
    for s in body["swapped"].as_array().unwrap() {
        assert_eq!(s["to_digest"], hex(&v2));
        assert!(s["pause_us"].as_u64().unwrap() < 1_000_000);
    }
    for name in ["s0", "s1"] {
        assert_eq!(running_digest(port, name), hex(&v2));
    }
    let (_, body) = http(port, "GET", "/v1/scalers/s0", b"");
    assert_eq!(json(&body)["running"]["policy"], "registry:qd@2");
    std::thread::sleep(Duration::from_millis(400));
    let (status, body) = http(
        port,
        "GET",
        "/v1/scalers/s0/decisions?limit=3&since=1h",
        b"",
    );
    assert_eq!(status, 200, "{body}");
    let records = json(&body);
    let records = records.as_array().unwrap();
    assert_eq!(records.len(), 3);
    for r in records {
        assert_eq!(r["scaler"], "s0");
        assert_eq!(r["policy_digest"], hex(&v2), "{r}");
        assert_eq!(r["final_replicas"], 4, "{r}");
    }
    for bad in ["?limit=0", "?since=soon", "?limit=5000", "?color=red"] {
        let (status, body) = http(port, "GET", &format!("/v1/scalers/s0/decisions{bad}"), b"");
        assert_eq!(status, 400, "{bad}: {body}");
    }
    assert_eq!(http(port, "GET", "/v1/scalers/ghost/decisions", b"").0, 404);

    // A version that does not accept the scalers' params fails at configure,
    // and nothing changes.
    let step = wasmscale::host::builtin_bytes("step-scaling").unwrap();
    let (status, body) = upload(port, "qd", step);
    assert_eq!(status, 201, "{body}");
    let (status, body) = activate(port, 3);
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["step"], "configure", "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("scaler s0"),
        "{body}"
    );
    let (_, body) = http(port, "GET", "/v1/policies/qd", b"");
    assert_eq!(json(&body)["policy"]["active"], 2);
    assert_eq!(running_digest(port, "s1"), hex(&v2));
    assert_eq!(activate(port, 99).0, 404);

    // Roll back: version 1 everywhere.
    let (status, body) = http(port, "POST", "/v1/policies/qd/rollback", b"");
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["active"], 1);
    for name in ["s0", "s1"] {
        assert_eq!(running_digest(port, name), hex(&v1));
    }
    let (status, body) = http(port, "POST", "/v1/policies/qd/rollback", b"");
    assert_eq!(status, 409, "nothing older: {body}");

    // Deleting: never the active version; an unused one goes.
    assert_eq!(
        http(port, "DELETE", "/v1/policies/qd/versions/1", b"").0,
        409
    );
    assert_eq!(
        http(port, "DELETE", "/v1/policies/qd/versions/3", b"").0,
        204
    );
    assert_eq!(http(port, "GET", "/v1/policies/qd/versions/3", b"").0, 404);
    let (status, body) = http(port, "GET", &format!("/v1/policies/qd/versions/{v2}"), b"");
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["version"], 2);

    // The breaker, with a human duration.
    let (status, body) = http(
        port,
        "PUT",
        "/v1/scalers/s0/breaker",
        br#"{"mode": "freeze", "for": "1h"}"#,
    );
    assert_eq!(status, 202, "{body}");
    std::thread::sleep(Duration::from_millis(300));
    let (status, body) = http(port, "GET", "/v1/scalers/s0/breaker", b"");
    assert_eq!(status, 200);
    let breaker = &json(&body)["breaker"];
    assert_eq!(breaker["mode"], "freeze", "{body}");
    let left = breaker["until_ms"].as_u64().unwrap() - controller::wall_clock_ms();
    assert!((3_500_000..=3_600_000).contains(&left), "{left}");
    for bad in [
        &br#"{"mode": "melt"}"#[..],
        br#"{"mode": "pause", "for": "1 fortnight"}"#,
        b"{",
    ] {
        let (status, body) = http(port, "PUT", "/v1/scalers/s0/breaker", bad);
        assert_eq!(status, 400, "{body}");
        assert!(json(&body)["error"].is_string());
    }
    assert_eq!(
        http(
            port,
            "PUT",
            "/v1/scalers/ghost/breaker",
            br#"{"mode": "pause"}"#
        )
        .0,
        404
    );
    assert_eq!(http(port, "DELETE", "/v1/scalers/s0/breaker", b"").0, 202);
    std::thread::sleep(Duration::from_millis(300));
    let (_, body) = http(port, "GET", "/v1/scalers/s0/breaker", b"");
    assert!(json(&body)["breaker"].is_null(), "{body}");

    // The history says who did what.
    let (_, body) = http(port, "GET", "/v1/policies/qd", b"");
    let kinds: Vec<String> = json(&body)["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} v{} by {}",
                e["kind"].as_str().unwrap(),
                e["version"],
                e["by"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        kinds[..3],
        [
            "delete v3 by tester",
            "rollback v1 by tester",
            "upload v3 by tester"
        ],
        "{kinds:?}"
    );
}

#[test]
fn a_version_that_fails_its_probation_is_rolled_back_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    seeded_registry(dir.path());
    let port = free_port();
    // The flaky counter proposes 1, 2, 3, ...: past the band's 5 it fails.
    let rollout = "[scaler.rollout]\nprobation_ticks = 20\nmax_failures = 1\nband_max = 5";
    let _daemon = serve(dir.path(), &config(port, 2, 0.1, rollout), 1200);
    wait_up(port);
    std::thread::sleep(Duration::from_millis(300));
    let flaky = flaky_counter();
    let (status, body) = upload(port, "qd", &flaky);
    assert_eq!(status, 201, "{body}");
    let (status, body) = activate(port, 2);
    assert_eq!(status, 200, "smoke evaluation passes: {body}");
    // queue-depth's state is not the counter's: it starts fresh, and says so.
    let first = &body["swapped"][0];
    assert_eq!(first["state_handed_over"], false, "{body}");
    assert!(
        first["state_rejected"]
            .as_str()
            .unwrap()
            .contains("8 bytes"),
        "{body}"
    );
    let v1 = hex(&digest_of(&queue_depth())).to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = http(port, "GET", "/v1/policies/qd", b"");
        let info = json(&body);
        if info["policy"]["active"] == 1
            && running_digest(port, "s0") == v1
            && running_digest(port, "s1") == v1
        {
            let rollback = info["events"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["kind"] == "rollback")
                .cloned()
                .unwrap();
            assert_eq!(rollback["by"], "wasmscale (probation)", "{info}");
            assert!(
                rollback["detail"]
                    .as_str()
                    .unwrap()
                    .contains("outside the band"),
                "{info}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "never rolled back: {info}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The scaler's own record of it comes with its next tick.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (records, _) = wasmscale::audit::read(&dir.path().join("audit.jsonl")).unwrap();
        let rolled = records.iter().find_map(|r| {
            r.failures
                .iter()
                .find(|f| f.kind == "rolled-back")
                .map(|f| f.message.clone())
        });
        if let Some(message) = rolled {
            assert!(
                message.contains("registry:qd@2 rolled back to"),
                "{message}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the audit log never recorded the rollback"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_hundred_swaps_while_200_scalers_tick_each_tick_on_one_version_and_on_time() {
    let dir = tempfile::tempdir().unwrap();
    seeded_registry(dir.path());
    let port = free_port();
    let interval = 0.5;
    let ticks = 60;
    let daemon = serve(dir.path(), &config(port, 200, interval, ""), ticks);
    wait_up(port);
    std::thread::sleep(Duration::from_secs(1));
    let (status, body) = upload(port, "qd", &queue_depth_v1());
    assert_eq!(status, 201, "{body}");
    let digests = [
        hex(&digest_of(&queue_depth())).to_owned(),
        hex(&digest_of(&queue_depth_v1())).to_owned(),
    ];
    let mut pauses = Vec::new();
    let started = Instant::now();
    for i in 0..100 {
        let (status, body) = activate(port, if i % 2 == 0 { 2 } else { 1 });
        assert_eq!(status, 200, "swap {i}: {body}");
        let swapped = body["swapped"].as_array().unwrap();
        assert_eq!(swapped.len(), 200, "swap {i}");
        pauses.extend(swapped.iter().map(|s| s["pause_us"].as_u64().unwrap()));
    }
    let took = started.elapsed();
    let summary = daemon.join().unwrap();
    pauses.sort_unstable();
    eprintln!(
        "100 swaps of 200 scalers in {took:?}; swap pause median {} µs, max {} µs; tick lag p99 {:?} ms",
        pauses[pauses.len() / 2],
        pauses[pauses.len() - 1],
        summary.lag_percentile_ms(99.0)
    );
    assert!(
        summary.lost_scalers.is_empty(),
        "{:?}",
        summary.lost_scalers
    );
    assert_eq!(
        summary.missed_ticks, 0,
        "no tick was late by a whole interval"
    );
    assert_eq!(summary.ticks, 200 * ticks);
    let (records, skipped) = wasmscale::audit::read(&dir.path().join("audit.jsonl")).unwrap();
    assert_eq!(skipped, 0);
    assert_eq!(records.len() as u64, 200 * ticks);
    for r in &records {
        assert!(
            digests.contains(&r.policy_digest.to_string()),
            "one of the two versions: {r:?}"
        );
        assert!(r.failures.is_empty(), "{r:?}");
        assert_eq!(r.final_replicas, 4, "both versions decide alike: {r:?}");
    }
    // The last activation (the 100th) made version 1 active.
    for i in 0..200 {
        let last = records
            .iter()
            .rev()
            .find(|r| *r.scaler == *format!("s{i}"))
            .unwrap();
        assert_eq!(*last.policy_digest, *digests[0], "s{i}");
    }
}

/// The child side of the crash test: upload and activate in a loop until killed.
fn churn(dir: &Path) -> ! {
    let r = Registry::open(dir).unwrap();
    let bytes = queue_depth();
    let mut n = 0u32;
    loop {
        n += 1;
        let mut blob = bytes.clone();
        blob.extend_from_slice(&n.to_le_bytes());
        let v = r
            .put(
                "churn",
                &blob,
                Upload {
                    uploader: "child".into(),
                    ..Upload::default()
                },
            )
            .unwrap();
        r.activate("churn", v.version, "child").unwrap();
        if n.is_multiple_of(3) {
            let _ = r.rollback("churn", "child", "");
        }
        if n.is_multiple_of(5) && v.version > 2 {
            let _ = r.delete("churn", v.version - 2, "child");
        }
    }
}

#[test]
fn kill_9_during_uploads_and_activations_leaves_the_registry_whole() {
    if let Some(dir) = std::env::var_os("WASMSCALE_REGISTRY_CHURN") {
        churn(Path::new(&dir));
    }
    let dir = tempfile::tempdir().unwrap();
    let registry_dir = dir.path().join("registry");
    let mut last_versions = 0;
    for (round, delay_ms) in [150u64, 300, 450, 600, 750].into_iter().enumerate() {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "kill_9_during_uploads_and_activations_leaves_the_registry_whole",
                "--exact",
                "--test-threads=1",
            ])
            .env("WASMSCALE_REGISTRY_CHURN", &registry_dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Reopened: every version's blob is whole, the active one exists,
        // and no temporary file is left.
        let r = Registry::open(&registry_dir).unwrap();
        let Ok(info) = r.policy("churn") else {
            assert_eq!(round, 0, "killed before the first upload committed");
            continue;
        };
        for v in &info.versions {
            let bytes = r
                .blob(&v.digest)
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert_eq!(digest_of(&bytes), v.digest);
            assert_eq!(bytes.len() as u64, v.size);
        }
        if let Some(active) = info.active {
            assert!(
                info.versions.iter().any(|v| v.version == active),
                "round {round}"
            );
            r.blob(&r.active("churn").unwrap().digest).unwrap();
        }
        let leftovers: Vec<_> = std::fs::read_dir(registry_dir.join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        let newest = info.versions.iter().map(|v| v.version).max().unwrap_or(0);
        assert!(newest >= last_versions, "versions only grow");
        last_versions = newest;
    }
    assert!(
        last_versions > 0,
        "the child uploaded something in 2 seconds"
    );
}

#[test]
fn a_restarted_server_comes_back_with_the_active_version() {
    let dir = tempfile::tempdir().unwrap();
    seeded_registry(dir.path());
    let port = free_port();
    let daemon = serve(dir.path(), &config(port, 1, 0.1, ""), 30);
    wait_up(port);
    let (status, body) = upload(port, "qd", &queue_depth_v1());
    assert_eq!(status, 201, "{body}");
    assert_eq!(activate(port, 2).0, 200);
    let flaky = flaky_counter();
    assert_eq!(upload(port, "qd", &flaky).0, 201);
    let (status, body) = http(port, "PUT", "/v1/policies/qd/shadow", br#"{"version": 3}"#);
    assert_eq!(status, 200, "{body}");
    daemon.join().unwrap();
    // The same config again: the scaler starts on version 2, version 3 shadowing it.
    let daemon = serve(dir.path(), &config(free_port(), 1, 0.1, ""), 5);
    daemon.join().unwrap();
    let (records, _) = wasmscale::audit::read(&dir.path().join("audit.jsonl")).unwrap();
    let last = records.last().unwrap();
    assert_eq!(*last.policy_digest, *hex(&digest_of(&queue_depth_v1())));
    assert_eq!(
        last.shadow.as_ref().map(|s| s.digest.as_str()),
        Some(hex(&digest_of(&flaky))),
        "{last:?}"
    );
}

#[test]
fn a_shadow_evaluates_beside_the_active_version_never_acts_and_one_call_promotes_it() {
    let dir = tempfile::tempdir().unwrap();
    seeded_registry(dir.path());
    let port = free_port();
    let _daemon = serve(dir.path(), &config(port, 2, 0.1, ""), 1200);
    wait_up(port);
    std::thread::sleep(Duration::from_millis(300));
    // The flaky counter proposes 1, 2, 3, ... where queue-depth says 4.
    let flaky = flaky_counter();
    assert_eq!(upload(port, "qd", &flaky).0, 201);
    let (status, body) = http(port, "PUT", "/v1/policies/qd/shadow", br#"{"version": 1}"#);
    assert_eq!(
        status, 409,
        "the active version cannot shadow itself: {body}"
    );
    let (status, body) = http(port, "PUT", "/v1/policies/qd/shadow", br#"{"version": 2}"#);
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["scalers"], serde_json::json!(["s0", "s1"]));
    std::thread::sleep(Duration::from_millis(800));
    let (_, body) = http(port, "GET", "/v1/scalers/s0", b"");
    let view = json(&body);
    let stats = &view["running"]["shadow"];
    assert!(stats["evaluations"].as_u64().unwrap() >= 3, "{view}");
    assert!(stats["differing"].as_u64().unwrap() >= 2, "{view}");
    assert_eq!(
        view["counters"]["current"], 4,
        "the shadow never acts: {view}"
    );
    let (_, body) = http(port, "GET", "/v1/scalers/s0/decisions?limit=2", b"");
    for r in json(&body).as_array().unwrap() {
        assert_eq!(r["final_replicas"], 4);
        assert_eq!(r["shadow"]["digest"], hex(&digest_of(&flaky)), "{r}");
    }
    let (_, metrics) = http(port, "GET", "/metrics", b"");
    let differing = metrics
        .lines()
        .find(|l| l.starts_with("wasmscale_shadow_differing_total{scaler=\"s0\""))
        .unwrap_or_else(|| panic!("{metrics}"));
    assert_ne!(differing.rsplit(' ').next(), Some("0"), "{differing}");

    // A shadow that agrees (the 0.1 build), then promote it: it is active,
    // and nothing shadows any more.
    assert_eq!(upload(port, "qd", &queue_depth_v1()).0, 201);
    let (status, body) = http(port, "PUT", "/v1/policies/qd/shadow", br#"{"version": 3}"#);
    assert_eq!(status, 200, "{body}");
    std::thread::sleep(Duration::from_millis(500));
    let (_, body) = http(port, "GET", "/v1/scalers/s1", b"");
    let stats = json(&body)["running"]["shadow"].clone();
    assert_eq!(stats["label"], "registry:qd@3", "{stats}");
    assert!(stats["compared"].as_u64().unwrap() >= 2, "{stats}");
    assert_eq!(stats["differing"], 0, "{stats}");
    let (status, body) = http(port, "POST", "/v1/policies/qd/promote", b"");
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["active"], 3);
    for name in ["s0", "s1"] {
        let (_, body) = http(port, "GET", &format!("/v1/scalers/{name}"), b"");
        let view = json(&body);
        assert_eq!(view["running"]["policy"], "registry:qd@3", "{view}");
        assert!(view["running"]["shadow"].is_null(), "{view}");
    }
    let (_, body) = http(port, "GET", "/v1/policies/qd", b"");
    assert!(json(&body)["policy"]["shadow"].is_null(), "{body}");
    assert_eq!(
        http(port, "POST", "/v1/policies/qd/promote", b"").0,
        409,
        "no shadow now"
    );
    let (status, body) = http(port, "DELETE", "/v1/policies/qd/shadow", b"");
    assert_eq!(status, 200, "{body}");
}

/// An API scaler's entry: queue-depth at 0.1 s on a static queue of 35.
fn api_entry(name: &str, max: u32) -> Vec<u8> {
    serde_json::json!({
        "name": name,
        "policy": "builtin:queue-depth",
        "params": { "target_per_replica": 10, "cooldown_seconds": 0 },
        "min_replicas": 1,
        "max_replicas": max,
        "interval_seconds": 0.1,
        "metrics": { "queue_depth": 35 },
        "guard": { "rate": "none" },
    })
    .to_string()
    .into_bytes()
}

/// The audit records of scaler `name` so far.
fn records_of(dir: &Path, name: &str) -> Vec<wasmscale::audit::AuditRecord> {
    let (records, _) = wasmscale::audit::read(&dir.join("audit.jsonl")).unwrap();
    records.into_iter().filter(|r| *r.scaler == *name).collect()
}

#[test]
fn scalers_created_through_the_api_run_are_checked_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    seeded_registry(dir.path());
    let port = free_port();
    let daemon = serve(dir.path(), &config(port, 1, 0.1, ""), 80);
    wait_up(port);

    let (status, body) = http(port, "POST", "/v1/scalers", &api_entry("api-1", 5));
    assert_eq!(status, 201, "{body}");
    let v = json(&body);
    assert_eq!(v["origin"], "api", "{v}");
    assert_eq!(v["stored"]["updated_by"], "tester", "{v}");
    let (status, body) = http(port, "POST", "/v1/scalers", &api_entry("api-1", 5));
    assert_eq!(status, 409, "{body}");
    // The file's scaler is the file's.
    for method in ["PUT", "DELETE"] {
        let (status, body) = http(port, method, "/v1/scalers/s0", &api_entry("s0", 5));
        assert_eq!(status, 409, "{method}: {body}");
        assert!(
            json(&body)["hint"]
                .as_str()
                .unwrap()
                .contains("config file")
        );
    }
    let (status, body) = http(port, "GET", "/v1/scalers/s0", b"");
    assert_eq!(
        (status, json(&body)["origin"].clone()),
        (200, "file".into())
    );

    // Bad entries: each refused with a message, nothing stored or started.
    let bad: [(&[u8], u16, &str); 7] = [
        (b"not json", 400, "not JSON"),
        (b"[1, 2]", 400, "JSON object"),
        (br#"{"name": "x", "policy": "builtin:queue-depth", "min_replicas": 4, "max_replicas": 2}"#, 422, "min_replicas (4) is greater"),
        (br#"{"name": "x", "policy": "builtin:queue-depth", "min_replicas": 1, "max_replicas": 2, "colour": "red"}"#, 422, "colour"),
        (br#"{"name": "x", "policy": "builtin:no-such", "min_replicas": 1, "max_replicas": 2}"#, 422, "no-such"),
        (br#"{"name": "x", "policy": "builtin:queue-depth", "max_replicas": null}"#, 422, "null"),
        (br#"{"policy": "builtin:queue-depth", "min_replicas": 1, "max_replicas": 2}"#, 400, "no `name`"),
    ];
    for (body, want, needle) in bad {
        let (status, text) = http(port, "POST", "/v1/scalers", body);
        assert_eq!(status, want, "{}: {text}", String::from_utf8_lossy(body));
        assert!(text.contains(needle), "{needle}: {text}");
    }
    let (status, body) = http(port, "PUT", "/v1/scalers/y", &api_entry("x", 5));
    assert_eq!(
        status, 400,
        "the body and the path name two scalers: {body}"
    );
    let (status, body) = http(port, "GET", "/v1/scalers/x", b"");
    assert_eq!(status, 404, "{body}");

    // Replace: the new bounds apply, and the scaler goes on under its name.
    std::thread::sleep(Duration::from_millis(500));
    let (status, body) = http(port, "PUT", "/v1/scalers/api-1", &api_entry("api-1", 3));
    assert_eq!(status, 200, "{body}");
    // Create and delete.
    assert_eq!(
        http(port, "PUT", "/v1/scalers/api-2", &api_entry("api-2", 5)).0,
        201
    );
    let (status, body) = http(port, "DELETE", "/v1/scalers/api-2", b"");
    assert_eq!(status, 204, "{body}");
    assert_eq!(http(port, "GET", "/v1/scalers/api-2", b"").0, 404);
    assert_eq!(http(port, "DELETE", "/v1/scalers/api-2", b"").0, 404);
    std::thread::sleep(Duration::from_millis(500));
    let (_, body) = http(port, "GET", "/v1/scalers", b"");
    let names: Vec<String> = json(&body)
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["api-1", "s0"], "{body}");
    let summary = daemon.join().unwrap();
    assert!(summary.lost_scalers.is_empty(), "{summary:?}");
    let before = records_of(dir.path(), "api-1");
    assert!(
        before.iter().any(|r| r.final_replicas == 4) && before.last().unwrap().final_replicas == 3,
        "35 queued at 10 per replica wants 4; replaced with max 3, it holds 3: {:?}",
        before.iter().map(|r| r.final_replicas).collect::<Vec<_>>()
    );
    let api2 = records_of(dir.path(), "api-2");
    assert!(
        api2.len() < 40,
        "api-2 stopped when deleted ({} ticks)",
        api2.len()
    );

    // A restart brings api-1 back (with its new bounds), not api-2.
    let daemon = serve(dir.path(), &config(free_port(), 1, 0.1, ""), 5);
    let summary = daemon.join().unwrap();
    assert_eq!(
        summary.ticks, 10,
        "s0 and api-1, five ticks each: {summary:?}"
    );
    let after = records_of(dir.path(), "api-1");
    assert_eq!(after.len(), before.len() + 5);
    assert!(after[before.len()..].iter().all(|r| r.final_replicas == 3));
    assert_eq!(records_of(dir.path(), "api-2").len(), api2.len());

    // A file entry that takes api-1's name wins the name at start: the
    // stored one is listed as not running, not lost.
    let mut text = config(free_port(), 1, 0.1, "");
    text = text.replace("name = \"s0\"", "name = \"api-1\"");
    let daemon = serve(dir.path(), &text, 3);
    assert_eq!(daemon.join().unwrap().ticks, 3);
    let r = Registry::open(&dir.path().join("state/registry")).unwrap();
    assert_eq!(r.scalers().unwrap().len(), 1, "the stored entry is kept");
}

/// `/openapi.json` documents every route, and every documented route is
/// served: each answers something other than the "no such route" fallbacks.
#[test]
fn the_openapi_document_matches_the_routes() {
    let dir = tempfile::tempdir().unwrap();
    seeded_registry(dir.path());
    let port = free_port();
    let daemon = serve(dir.path(), &config(port, 1, 0.1, ""), 30);
    wait_up(port);
    let (status, body) = http(port, "GET", "/openapi.json", b"");
    assert_eq!(status, 200, "{body}");
    let doc = json(&body);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    let mut documented = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                documented.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    documented.sort();
    let mut expected = vec![
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
        "GET /v1/policies",
        "GET /v1/policies/{name}",
        "POST /v1/policies/{name}/versions",
        "GET /v1/policies/{name}/versions/{version}",
        "DELETE /v1/policies/{name}/versions/{version}",
        "POST /v1/policies/{name}/activate",
        "POST /v1/policies/{name}/rollback",
        "PUT /v1/policies/{name}/shadow",
        "DELETE /v1/policies/{name}/shadow",
        "POST /v1/policies/{name}/promote",
        "GET /v1/scalers",
        "POST /v1/scalers",
        "GET /v1/scalers/{name}",
        "PUT /v1/scalers/{name}",
        "DELETE /v1/scalers/{name}",
        "GET /v1/scalers/{name}/decisions",
        "GET /v1/scalers/{name}/breaker",
        "PUT /v1/scalers/{name}/breaker",
        "DELETE /v1/scalers/{name}/breaker",
        "POST /scalers/{name}/breaker",
        "DELETE /scalers/{name}/breaker",
        "GET /v1/tenants",
        "POST /v1/tenants",
        "DELETE /v1/tenants/{tenant}",
        "PATCH /v1/tenants/{tenant}",
        "GET /v1/usage",
        "GET /v1/tenants/{tenant}/tokens",
        "POST /v1/tenants/{tenant}/tokens",
        "DELETE /v1/tenants/{tenant}/tokens/{id}",
    ];
    expected.sort();
    assert_eq!(documented, expected);
    for route in &documented {
        let (method, path) = route.split_once(' ').unwrap();
        let name = if path.starts_with("/v1/policies") {
            "qd"
        } else {
            "s0"
        };
        let path = path.replace("{name}", name).replace("{version}", "1");
        // No body: every write is refused (400/409) or harmless.
        let (status, body) = http(port, method, &path, b"");
        assert_ne!(status, 405, "{route}: {body}");
        assert!(
            !(status == 404 && body.contains("no route")),
            "{route} is documented but not served: {body}"
        );
        // Every error is the documented JSON.
        if status >= 400 && path != "/readyz" {
            assert!(json(&body)["error"].is_string(), "{route}: {body}");
        }
    }
    // Nothing above changed what runs.
    assert_eq!(running_digest(port, "s0"), hex(&digest_of(&queue_depth())));
    daemon.join().unwrap();
}
