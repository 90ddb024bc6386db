//! The guard's rules in their documented order, through the real tick:
//! missing metrics block scale-down, then the fallback; the safety net is a
//! floor under the main policy; the fallback itself goes through the
//! guardrails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail by panicking"
)]

use wasmscale::controller::{self, Scaler};
use wasmscale_tests::{block_on, host, replay_config, write_file};

#[test]
fn missing_metric_blocks_scale_down_but_not_scale_up_then_fallback() {
    let dir = tempfile::tempdir().unwrap();
    // gpu_utilization goes missing from row 2 on.
    let trace = "queue_depth,gpu_utilization\n40,0.5\n10,\n90,\n10,\n10,\n";
    let config = replay_config(
        dir.path(),
        trace,
        "[scaler.guard]\nrate = \"none\"\n[scaler.fallback]\nafter_failed_ticks = 2\nreplicas = 7",
    );
    let host = host();
    let mut scaler = Scaler::new(&config.scalers[0], dir.path(), &host, None).unwrap();
    let t = |i: u64| 1_700_000_000_000 + i * 15_000;
    assert_eq!(block_on(scaler.tick(t(0))).final_replicas, 4);
    let down = block_on(scaler.tick(t(1)));
    assert_eq!(down.final_replicas, 4, "scale-down blocked: {down:?}");
    assert_eq!(down.missing, ["gpu_utilization"]);
    let up = block_on(scaler.tick(t(2)));
    assert_eq!(up.final_replicas, 9, "scale-up still happens: {up:?}");
    // Two failed ticks in a row (the policy refuses to scale down on partial
    // metrics) -> the fallback of 7 replicas.
    let f1 = block_on(scaler.tick(t(3)));
    assert_eq!(f1.final_replicas, 9);
    let f2 = block_on(scaler.tick(t(4)));
    // The documented order: the fallback wins over the missing-metric rule,
    // so it scales down (9 -> 7) while a metric is still missing.
    assert_eq!(f2.missing, ["gpu_utilization"]);
    assert_eq!((f2.previous_replicas, f2.final_replicas), (9, 7), "{f2:?}");
    assert!(f2.guardrails.iter().any(|g| g.guard == "fallback"));
    // The trace is exhausted: a source failure, recorded, never a panic.
    let end = block_on(scaler.tick(t(5)));
    assert_eq!(end.failures[0].kind, "exhausted");
    assert_eq!(end.final_replicas, 7);
}

#[test]
fn safety_net_is_a_floor_under_the_main_policy() {
    let dir = tempfile::tempdir().unwrap();
    // Queue depth says 2 replicas; p95 latency spikes on the second row.
    let trace = "queue_depth,latency_p95_ms\n20,400\n20,2800\n";
    write_file(dir.path(), "trace.csv", trace);
    let path = write_file(
        dir.path(),
        "net.toml",
        r#"[[scaler]]
name = "llm"
policy = "builtin:queue-depth"
params = { target_per_replica = 10, cooldown_seconds = 0 }
min_replicas = 1
max_replicas = 20
source = { type = "replay", path = "trace.csv" }
[scaler.safety_net]
policy = "builtin:step-scaling"
params = { metric = "latency_p95_ms", alarms = [{ comparison = "greater_than", threshold = 1500, steps = [{ lower_bound = 0, adjustment = 4 }] }] }
[scaler.guard]
rate = "none"
"#,
    );
    let host = host();
    let config = controller::load(&path, &host).unwrap_or_else(|e| panic!("{e}"));
    let mut scaler = Scaler::new(&config.scalers[0], dir.path(), &host, None).unwrap();
    let calm = block_on(scaler.tick(1_700_000_000_000));
    assert_eq!(calm.final_replicas, 2, "{calm:?}");
    let spike = block_on(scaler.tick(1_700_000_015_000));
    assert_eq!(spike.final_replicas, 6, "{spike:?}"); // 2 + 4 from the safety net
    assert!(
        spike
            .decision
            .as_ref()
            .is_some_and(|d| d.reason.starts_with("safety net:")),
        "{spike:?}"
    );

    // A safety net that does not load is a config error.
    let bad = std::fs::read_to_string(&path)
        .unwrap()
        .replace("builtin:step-scaling", "builtin:nope");
    let bad = write_file(dir.path(), "bad.toml", &bad);
    let errors = controller::load(&bad, &host).unwrap_err();
    assert!(
        errors
            .to_string()
            .contains("safety_net policy `builtin:nope`"),
        "{errors}"
    );
}

#[test]
fn the_fallback_goes_through_the_guardrails() {
    use wasmscale::guard::{BreakerMode, BreakerSetting};
    let dir = tempfile::tempdir().unwrap();
    // One row, then the trace is exhausted: every later tick fails.
    let config = replay_config(
        dir.path(),
        "queue_depth,gpu_utilization\n30,0.5\n",
        "[scaler.guard]\nrate = \"none\"\n[scaler.fallback]\nafter_failed_ticks = 1\nreplicas = 12",
    );
    let host = host();
    let mut scaler = Scaler::new(&config.scalers[0], dir.path(), &host, None).unwrap();
    let t = |i: u64| 1_700_000_000_000 + i * 15_000;
    assert_eq!(block_on(scaler.tick(t(0))).final_replicas, 3);
    // An operator froze the scaler: the fallback may not move it.
    scaler.set_breaker(Some(BreakerSetting {
        mode: BreakerMode::Freeze,
        until_ms: None,
        automatic: false,
    }));
    let frozen = block_on(scaler.tick(t(1)));
    assert_eq!(frozen.final_replicas, 3, "{frozen:?}");
    assert!(frozen.guardrails.iter().any(|g| g.guard == "fallback"));
    assert!(
        frozen
            .guardrails
            .iter()
            .any(|g| g.guard == "circuit-breaker")
    );
    // Released: the fallback applies, within max_replicas (20).
    scaler.set_breaker(None);
    assert_eq!(block_on(scaler.tick(t(2))).final_replicas, 12);
}
