//! Config validation and the controller's tick, end to end with real
//! components: every config error at once with line, column and hint; the
//! example configs; stabilization that survives a restart; missing metrics;
//! fallback; the audit log.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail by panicking"
)]

use std::path::Path;
use wasmscale::audit;
use wasmscale::config::{self, Config};
use wasmscale::controller::{self, RunOptions, Scaler};
use wasmscale_tests::{block_on, from_root, host};

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const BAD: &str = r#"
[[scaler]]
name = "chat"
policy = "builtin:target-tracking"
params = { metrics = [{ type = "object", name = "gpu_utilization", target = { value = 60 } }] }
min_replicas = 5
max_replicas = 3
interval_seconds = 0
metrics = { queue_depth = 3 }

[[scaler]]
name = "docs"
polciy = "builtin:queue-depth"

[[scaler]]
name = "ghost"
policy = "builtin:does-not-exist"
min_replicas = 1
max_replicas = 2
"#;

#[test]
fn validation_reports_every_error_with_position_and_hint() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "bad.toml", BAD);
    let errors = controller::load(&path, &host()).unwrap_err();
    let text = errors.to_string();
    // The unknown key is reported first, on its own line, with the nearest name.
    assert!(
        text.contains("bad.toml:13:1: unknown key `polciy` in [scaler]"),
        "{text}"
    );
    assert!(text.contains("did you mean `policy`?"), "{text}");

    // With the typo fixed, the semantic errors all come out together.
    let fixed = BAD.replace("polciy", "policy").replace(
        "name = \"docs\"",
        "name = \"docs\"\nmin_replicas = 0\nmax_replicas = 4\nparams = { target_per_replica = 5 }",
    );
    let path = write(dir.path(), "bad2.toml", &fixed);
    let errors = controller::load(&path, &host()).unwrap_err();
    let text = errors.to_string();
    for expected in [
        "bad2.toml:6:1: min_replicas (5) is greater than max_replicas (3)",
        "bad2.toml:8:1: tick interval must be between 0.001 and 86400 seconds",
        "looks like a percent",
        "did you mean 0.6?",
        "params need `gpu_utilization`, but nothing fills it",
        "policy `builtin:queue-depth` cannot decide with the metrics this scaler provides: queue_depth is missing",
        "unknown built-in policy \"does-not-exist\"",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(errors.errors.len() >= 6, "{text}");
    assert!(errors.errors.iter().all(|e| e.line > 1), "{text}");
}

/// A one-scaler config around `scaler` (extra keys) and `top` (top-level keys).
fn one_scaler(top: &str, scaler: &str) -> String {
    format!(
        r#"{top}
[[scaler]]
name = "s"
policy = "builtin:queue-depth"
params = {{ target_per_replica = 10 }}
min_replicas = 1
max_replicas = 10
metrics = {{ queue_depth = 35 }}
{scaler}
"#
    )
}

#[test]
fn validation_bounds_every_duration() {
    let dir = tempfile::tempdir().unwrap();
    let host = host();
    for (scaler, expected) in [
        ("interval_seconds = 1e20", "tick interval must be between"),
        ("interval_seconds = 1e300", "tick interval must be between"),
        ("interval_seconds = nan", "tick interval must be between"),
        ("interval_seconds = 0.0001", "tick interval must be between"),
        (
            "source = { type = \"prometheus\", url = \"http://127.0.0.1:9\", timeout_ms = 0 }\nmetrics = { queue_depth = \"q\" }",
            "source.timeout_ms must be between 1 and 600000 ms",
        ),
        (
            "target = { type = \"kubernetes\", name = \"x\", timeout_ms = 18446744073709551615 }",
            "target.timeout_ms must be between",
        ),
        (
            "[scaler.guard]\nscale_up_cooldown_seconds = 18446744073709551615",
            "guard.scale_up_cooldown_seconds must be between 0 and 604800 seconds",
        ),
        (
            "[scaler.guard]\nflap_breaker = { max_direction_changes = 2, window_seconds = 18446744073709551615, freeze_seconds = 10 }",
            "guard.flap_breaker.window_seconds must be between",
        ),
        (
            "[scaler.guard]\nrate = { behavior = { scale_down = { stabilization_window_seconds = 86400, policies = [] } } }",
            "guard.rate.behavior.scale_down.stabilization_window_seconds must be between 0 and 3600",
        ),
        (
            "[scaler.guard]\nrate = { behavior = { scale_up = { policies = [{ type = \"pods\", value = 4, period_seconds = 0 }] } } }",
            "guard.rate.behavior.scale_up.policies.0.period_seconds must be between 1 and 1800",
        ),
        (
            "[scaler.limits]\ndeadline = 0",
            "limits.deadline must be between 1 and 10000 ms",
        ),
    ] {
        let mut text = one_scaler("[admin]\nlisten = \"\"", scaler);
        if scaler.contains("metrics =") {
            text = text.replace("metrics = { queue_depth = 35 }\n", "");
        }
        let path = write(dir.path(), "d.toml", &text);
        let text = controller::load(&path, &host).unwrap_err().to_string();
        assert!(
            text.contains(expected),
            "{scaler}: missing {expected:?} in\n{text}"
        );
    }
}

#[test]
fn validation_catches_what_run_would_fail_on() {
    let dir = tempfile::tempdir().unwrap();
    let host = host();
    std::fs::write(dir.path().join("a-file"), "").unwrap();
    for (top, scaler, expected, hint) in [
        (
            "[admin]\nlisten = \"not-an-address\"",
            "",
            "admin.listen = \"not-an-address\" has no port",
            "127.0.0.1:9464",
        ),
        (
            "[admin]\nlisten = \"127.0.0.1:99999\"",
            "",
            "port 99999 is out of range",
            "127.0.0.1:9464",
        ),
        (
            "[admin]\nlisten = \"example.com:80\"",
            "",
            "is not an IP address and port",
            "127.0.0.1:9464",
        ),
        (
            "[admin]\nlisten = \"0.0.0.0:9464\"",
            "",
            "serves the admin endpoint beyond this machine",
            "allow_remote = true",
        ),
        (
            "[audit]\npath = \"\"",
            "",
            "audit.path is empty",
            "a file path",
        ),
        (
            "[audit]\npath = \"/\"",
            "",
            "audit.path / is a directory, not a file",
            "a file path",
        ),
        (
            "[audit]\npath = \"/dev/full\"",
            "",
            "audit.path /dev/full is in a kernel pseudo-filesystem",
            "a file path",
        ),
        (
            "[audit]\npath = \"/proc/self/mem\"",
            "",
            "audit.path /proc/self/mem is in a kernel pseudo-filesystem",
            "a file path",
        ),
        (
            "[audit]\npath = \"a-file/audit.jsonl\"",
            "",
            "is not a directory",
            "a file path",
        ),
        (
            "state_dir = \"/dev/null\"",
            "",
            "state_dir /dev/null is in a kernel pseudo-filesystem",
            "a directory",
        ),
        (
            "state_dir = \"/proc\"",
            "",
            "state_dir /proc is in a kernel pseudo-filesystem",
            "a directory",
        ),
        (
            "state_dir = \"a-file\"",
            "",
            "state_dir a-file is a regular file, not a directory",
            "a directory",
        ),
        (
            "",
            "[scaler.guard]\ncost_ceiling = { budget_per_hour = 10, price_per_replica_hour = nan }",
            "price_per_replica_hour must be a price > 0 (got NaN)",
            "e.g. 2.5",
        ),
        (
            "",
            "[scaler.guard]\ncost_ceiling = { budget_per_hour = 10, price_per_replica_hour = -5 }",
            "price_per_replica_hour must be a price > 0 (got -5)",
            "e.g. 2.5",
        ),
    ] {
        let source = one_scaler(top, scaler);
        let path = write(dir.path(), "v.toml", &source);
        let errors = controller::load(&path, &host).unwrap_err();
        let text = errors.to_string();
        assert!(
            text.contains(expected),
            "{top}{scaler}: missing {expected:?} in\n{text}"
        );
        assert!(
            text.contains(hint),
            "{top}{scaler}: no hint {hint:?} in\n{text}"
        );
        // Located on the offending line: the last line of `top`, or the
        // scaler's own.
        let key_line = |snippet: &str| {
            let last = snippet.lines().last().unwrap_or("");
            source.lines().position(|l| l == last).map_or(0, |i| i + 1)
        };
        let want = if top.is_empty() {
            key_line(scaler)
        } else {
            key_line(top)
        };
        assert!(
            errors.errors.iter().all(|e| e.line == want),
            "located: {text}"
        );
    }
    // A static utilization written as a percent.
    let text = one_scaler("[admin]\nlisten = \"\"", "").replace(
        "metrics = { queue_depth = 35 }",
        "metrics = { queue_depth = 35, gpu_utilization = 82 }",
    );
    let path = write(dir.path(), "p.toml", &text);
    let text = controller::load(&path, &host).unwrap_err().to_string();
    assert!(
        text.contains("metrics.gpu_utilization = 82 looks like a percent")
            && text.contains("did you mean 0.82?"),
        "{text}"
    );
    // What is asked for explicitly is fine.
    let path = write(
        dir.path(),
        "ok.toml",
        &one_scaler(
            "state_dir = \"state\"\n[admin]\nlisten = \"0.0.0.0:0\"\nallow_remote = true",
            "",
        ),
    );
    controller::load(&path, &host).unwrap();
}

#[test]
fn validation_tells_a_limit_from_a_bad_param() {
    let dir = tempfile::tempdir().unwrap();
    let host = host();
    // Too little fuel to configure: not "rejected its params".
    let path = write(
        dir.path(),
        "f.toml",
        &one_scaler("[admin]\nlisten = \"\"", "[scaler.limits]\nfuel = 10"),
    );
    let errors = controller::load(&path, &host).unwrap_err().to_string();
    assert!(
        errors.contains("failed while configuring [out-of-fuel]")
            && !errors.contains("rejected its params"),
        "{errors}"
    );
    assert!(errors.contains("raise [scaler.limits] fuel"), "{errors}");
    assert!(!errors.contains("fill the metric"), "{errors}");
    // Configures, then loops in its trial evaluation: a limit, not a metric.
    let text = one_scaler("[admin]\nlisten = \"\"", "").replace(
        "policy = \"builtin:queue-depth\"",
        &format!("policy = {:?}", wasmscale_tests::fixtures::INFINITE_LOOP),
    );
    let path = write(dir.path(), "e.toml", &text);
    let errors = controller::load(&path, &host).unwrap_err().to_string();
    assert!(
        errors.contains("failed its trial evaluation [out-of-fuel]"),
        "{errors}"
    );
    assert!(errors.contains("raise [scaler.limits] fuel"), "{errors}");
    assert!(!errors.contains("fill the metric"), "{errors}");
}

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
    let metrics = wasmscale::admin::Metrics::new(1);
    metrics.scaler("s").observe(&r);
    assert!(
        metrics.render().contains("kind=\"policy/load-state\"} 1"),
        "{}",
        metrics.render()
    );
}

#[test]
fn syntax_errors_have_a_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "syntax.toml",
        "[[scaler]]\nname = \"x\nmin_replicas = 1\n",
    );
    let errors = controller::load(&path, &host()).unwrap_err();
    assert_eq!(errors.errors.len(), 1);
    assert_eq!(errors.errors[0].line, 2, "{errors}");
}

#[test]
fn example_configs_validate_and_run() {
    for name in ["gpu-inference", "batch-training", "three-tier-saas"] {
        let src = from_root(format!("examples/configs/{name}.toml"));
        let text = std::fs::read_to_string(&src).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "config.toml", &text);
        let host = host();
        let config: Config =
            controller::load(&path, &host).unwrap_or_else(|e| panic!("{name}: {e}"));
        let scalers = config.scalers.len() as u64;
        let audit_path = dir.path().join(&config.audit.path);
        let summary = controller::run(
            config,
            dir.path(),
            &host,
            RunOptions {
                ticks: Some(2),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(summary.ticks, 2 * scalers, "{name}");
        assert_eq!(
            (summary.failed_ticks, summary.audit_errors),
            (0, 0),
            "{name}"
        );
        let (records, skipped) = audit::read(&audit_path).unwrap();
        assert_eq!((records.len() as u64, skipped), (2 * scalers, 0), "{name}");
        for r in &records {
            assert!(
                r.snapshot.is_some() && r.decision.is_some() && r.fuel.is_some(),
                "{name}: {r:?}"
            );
            assert_eq!(r.policy_digest.len(), 64);
        }
    }
}

fn replay_config(dir: &Path, trace: &str, extra: &str) -> Config {
    write(dir, "trace.csv", trace);
    let text = format!(
        r#"state_dir = "state"
[audit]
path = "audit.jsonl"

[[scaler]]
name = "svc"
policy = "builtin:target-tracking"
params = {{ metrics = [
  {{ type = "external", name = "queue_depth", target = {{ average_value = 10 }} }},
  {{ type = "object", name = "gpu_utilization", target = {{ value = 0.5 }} }},
] }}
min_replicas = 1
max_replicas = 20
interval_seconds = 15
source = {{ type = "replay", path = "trace.csv" }}
{extra}
"#
    );
    let path = write(dir, "config.toml", &text);
    controller::load(&path, &host()).unwrap_or_else(|e| panic!("{e}"))
}

/// Decisions of scaler `svc` for `ticks` (time offset in seconds, trace row),
/// optionally restarting (a new `Scaler` over the same state dir, or none) after
/// the first tick.
fn run_with_restart(persist: bool, restart: bool) -> Vec<u32> {
    let dir = tempfile::tempdir().unwrap();
    let high = replay_config(
        dir.path(),
        "queue_depth,gpu_utilization\n80,0.5\n10,0.1\n10,0.1\n",
        "",
    );
    let host = host();
    let state_dir = dir.path().join("state");
    let state = persist.then_some(state_dir.as_path());
    let t0 = 1_700_000_000_000;
    let mut scaler = Scaler::new(&high.scalers[0], dir.path(), &host, state).unwrap();
    let mut out = vec![block_on(scaler.tick(t0)).final_replicas];
    if restart {
        drop(scaler);
        // The new process replays from the trace's second row on.
        let low_dir = dir.path().join("after");
        std::fs::create_dir_all(&low_dir).unwrap();
        let low = replay_config(
            &low_dir,
            "queue_depth,gpu_utilization\n10,0.1\n10,0.1\n",
            "",
        );
        // Without persisted guard state the target still runs 5 replicas:
        // model that with a state file that only knows the count.
        let amnesia = dir.path().join("amnesia");
        std::fs::create_dir_all(&amnesia).unwrap();
        std::fs::write(
            amnesia.join("svc.json"),
            r#"{"guard": {"recommendations": null, "scale_up_events": [],
            "scale_down_events": [], "last_scale_up_ms": null, "last_scale_down_ms": null,
            "direction_changes": [], "breaker": null}, "policy_state": [], "failed_ticks": 0,
            "policy_digest": "", "last_replicas": 5}"#,
        )
        .unwrap();
        let state = if persist {
            state
        } else {
            Some(amnesia.as_path())
        };
        scaler = Scaler::new(&low.scalers[0], &low_dir, &host, state).unwrap();
        if !persist {
            // What a restarted HPA does: it only knows the current count.
            block_on(scaler.tick(t0 + 30_000));
        }
    }
    out.push(block_on(scaler.tick(t0 + 60_000)).final_replicas);
    out.push(block_on(scaler.tick(t0 + 301_000)).final_replicas);
    out
}

#[test]
fn stabilization_window_survives_a_restart() {
    let uninterrupted = run_with_restart(true, false);
    // 1 -> 5 (+4 pods / 15 s), held by the 300 s down window, then down to 1.
    assert_eq!(uninterrupted, [5, 5, 1]);
    // A restart with persisted state is invisible.
    assert_eq!(run_with_restart(true, true), uninterrupted);
    // Without it (the HPA's in-memory history), the window starts over at the
    // restart and the scale-down comes late.
    assert_eq!(run_with_restart(false, true), [5, 5, 5]);
}

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

#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_for_the_audit_log_does_not_stop_scaling() {
    // /dev/full accepts the open and fails every write with ENOSPC.
    let dir = tempfile::tempdir().unwrap();
    let path = write(
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
fn safety_net_is_a_floor_under_the_main_policy() {
    let dir = tempfile::tempdir().unwrap();
    // Queue depth says 2 replicas; p95 latency spikes on the second row.
    let trace = "queue_depth,latency_p95_ms\n20,400\n20,2800\n";
    write(dir.path(), "trace.csv", trace);
    let path = write(
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
    let bad = write(dir.path(), "bad.toml", &bad);
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

#[test]
fn swapping_the_policy_keeps_the_guard_window_and_the_count() {
    let dir = tempfile::tempdir().unwrap();
    let host = host();
    // Old policy: target-tracking over the replay trace (high load -> 5).
    let old_config = replay_config(dir.path(), "queue_depth,gpu_utilization\n80,0.5\n", "");
    let mut old = Scaler::new(&old_config.scalers[0], dir.path(), &host, None).unwrap();
    let t0 = 1_700_000_000_000;
    assert_eq!(block_on(old.tick(t0)).final_replicas, 5);
    // New policy: queue-depth, which on a low queue wants 1 replica.
    let path = write(
        dir.path(),
        "v2.toml",
        r#"[[scaler]]
name = "svc"
policy = "builtin:queue-depth"
params = { target_per_replica = 10, cooldown_seconds = 0 }
min_replicas = 1
max_replicas = 20
metrics = { queue_depth = 5 }
"#,
    );
    let new_config = controller::load(&path, &host).unwrap_or_else(|e| panic!("{e}"));
    let mut new = Scaler::new(&new_config.scalers[0], dir.path(), &host, None).unwrap();
    new.adopt(old.state().clone());
    let r = block_on(new.tick(t0 + 60_000));
    assert_eq!(&*r.policy, "builtin:queue-depth");
    assert_eq!(r.previous_replicas, 5, "the count carried over");
    assert_eq!(r.decision.as_ref().map(|d| d.desired), Some(1));
    // The old policy's 300 s down-stabilization window still holds the count.
    assert_eq!(r.final_replicas, 5, "{r:?}");
    assert!(
        r.guardrails.iter().any(|g| g.guard == "stabilization"),
        "{r:?}"
    );
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
        Err(e) => e.message,
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
