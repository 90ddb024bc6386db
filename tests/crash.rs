//! What breaks around a scaler, and what it does then: a full disk for the
//! audit log, policy calls that fail (their fuel counted, a rejected state
//! recorded), a scaler's own limits, a hung Prometheus.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail by panicking"
)]

use wasmscale::config::{self, Config};
use wasmscale::controller::{self, RunOptions, Scaler};
use wasmscale_tests::{block_on, host, one_scaler, write_file};

#[test]
fn failed_policy_calls_count_their_fuel_and_a_rejected_state_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let host = host();
    let text = one_scaler("", "").replace(
        "policy = \"builtin:queue-depth\"",
        &format!("policy = {:?}", wasmscale_tests::fixtures::INFINITE_LOOP),
    );
    let config: Config = toml::from_str(&text).unwrap();
    let mut scaler = Scaler::new(&config.scalers[0], dir.path(), &host, None).unwrap();
    let r = block_on(scaler.tick(1_700_000_000_000));
    assert_eq!(r.failures[0].kind, "out-of-fuel");
    assert_eq!(r.fuel, Some(1_000_000), "the whole budget burned: {r:?}");

    // A policy that rejects its saved state says so in the next record.
    let state_dir = dir.path().join("state");
    std::fs::create_dir_all(&state_dir).unwrap();
    let saved = controller::PersistedState {
        policy_state: b"previous state".to_vec(),
        ..Default::default()
    };
    std::fs::write(
        state_dir.join("s.json"),
        serde_json::to_vec(&saved).unwrap(),
    )
    .unwrap();
    let text = one_scaler("", "").replace(
        "policy = \"builtin:queue-depth\"",
        &format!("policy = {:?}", wasmscale_tests::fixtures::LOAD_STATE_PANIC),
    );
    let config: Config = toml::from_str(&text).unwrap();
    let mut scaler = Scaler::new(&config.scalers[0], dir.path(), &host, Some(&state_dir)).unwrap();
    let r = block_on(scaler.tick(1_700_000_000_000));
    assert!(
        r.failures
            .iter()
            .any(|f| f.kind == "load-state" && f.message.contains("started without it")),
        "{r:?}"
    );
    assert!(r.decision.is_some(), "the policy still decides: {r:?}");
    let next = block_on(scaler.tick(1_700_000_015_000));
    assert!(next.failures.is_empty(), "reported once: {next:?}");
    let metrics = controller::Metrics::new(1);
    metrics.scaler("s").observe(&r);
    assert!(
        metrics
            .render()
            .contains("stage=\"policy\",kind=\"load-state\"} 1"),
        "{}",
        metrics.render()
    );
}

#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_for_the_audit_log_does_not_stop_scaling() {
    // /dev/full accepts the open and fails every write with ENOSPC.
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(
        dir.path(),
        "full.toml",
        r#"[audit]
path = "/dev/full"
[admin]
listen = ""
[[scaler]]
name = "q"
policy = "builtin:queue-depth"
params = { target_per_replica = 10 }
min_replicas = 1
max_replicas = 10
interval_seconds = 0.05
metrics = { queue_depth = 35 }
"#,
    );
    let host = host();
    // Validation refuses a device as the audit log...
    let errors = controller::load(&path, &host).unwrap_err().to_string();
    assert!(errors.contains("audit.path /dev/full"), "{errors}");
    // ...but a disk that fills up at run time must not stop scaling: run the
    // config as parsed, unvalidated.
    let config: Config = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let summary = controller::run(
        config,
        dir.path(),
        &host,
        RunOptions {
            ticks: Some(3),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(summary.ticks, 3);
    assert_eq!(
        summary.audit_errors, 3,
        "every append failed, and each was counted"
    );
    assert_eq!(summary.failed_ticks, 0, "scaling itself went on");
}

#[test]
fn a_scalers_own_limits_apply_when_it_runs() {
    let host = host();
    let dir = tempfile::tempdir().unwrap();
    let params = serde_json::json!({"metric": "queue_depth", "target_per_replica": 5});
    let mut config =
        config::ScalerConfig::minimal("tight", "builtin:queue-depth", &params, 1, 10, 15.0)
            .unwrap();
    config.metrics = [("queue_depth".to_owned(), config::MetricQuery::Value(42.0))].into();
    let mut generous = Scaler::new(&config, dir.path(), &host, None).unwrap();
    let record = block_on(generous.tick(1_000));
    assert!(record.failures.is_empty(), "{:?}", record.failures);
    assert_eq!(record.decision.map(|d| d.desired), Some(9));

    // Too little fuel for one evaluation: the tick fails as out of fuel and
    // holds, exactly as the host's own limit would.
    config.limits = Some(wasmscale::host::Limits {
        fuel: 50,
        ..wasmscale::host::Limits::default()
    });
    let err = match Scaler::new(&config, dir.path(), &host, None) {
        Err(e) => e.cause.to_string(),
        Ok(mut tight) => {
            let record = block_on(tight.tick(1_000));
            assert_eq!(record.final_replicas, record.previous_replicas);
            record
                .failures
                .iter()
                .map(|f| f.kind.clone())
                .collect::<Vec<_>>()
                .join(",")
        }
    };
    assert!(err.contains("fuel"), "{err}");
}

#[test]
fn a_hung_prometheus_costs_one_timeout_per_tick_not_one_per_metric() {
    // Accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().take(64).collect();
        std::thread::sleep(std::time::Duration::from_secs(30));
        drop(held);
    });
    let dir = tempfile::tempdir().unwrap();
    let text = one_scaler("", "").replace(
        "metrics = { queue_depth = 35 }",
        &format!(
            "source = {{ type = \"prometheus\", url = \"http://127.0.0.1:{port}\", timeout_ms = 300 }}\n\
             metrics = {{ queue_depth = \"q1\", request_rate = \"q2\", latency_p95_ms = \"q3\", gpu_utilization = \"q4\" }}"
        ),
    );
    let config: Config = toml::from_str(&text).unwrap();
    let host = host();
    let mut scaler = Scaler::new(&config.scalers[0], dir.path(), &host, None).unwrap();
    let started = std::time::Instant::now();
    let r = block_on(scaler.tick(1_700_000_000_000));
    let took = started.elapsed();
    assert_eq!(r.failures[0].kind, "unavailable", "{r:?}");
    assert!(
        r.failures[0].message.contains("timed out after 300ms"),
        "{r:?}"
    );
    // Four queries at once under one deadline: about 300 ms. One after
    // another they could not take less than 4 x 300 = 1200 ms.
    assert!(took < std::time::Duration::from_millis(1150), "{took:?}");
}
