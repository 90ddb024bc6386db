//! Config checks and the policy probe, end to end with real components:
//! every error at once with line, column and hint; bounds on every duration;
//! what `run` would fail on; limits told from bad params; the example configs
//! validate and run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail by panicking"
)]

use wasmscale::audit;
use wasmscale::config::Config;
use wasmscale::controller::{self, RunOptions};
use wasmscale_tests::{from_root, host, one_scaler, write_file};

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
    let path = write_file(dir.path(), "bad.toml", BAD);
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
    let path = write_file(dir.path(), "bad2.toml", &fixed);
    let errors = controller::load(&path, &host()).unwrap_err();
    let text = errors.to_string();
    for expected in [
        "bad2.toml:6:1: min_replicas (5) is greater than max_replicas (3)",
        "bad2.toml:8:1: tick interval must be between 0.001 and 86400 seconds",
        "looks like a percent",
        "did you mean 0.6?",
        "params need `gpu_utilization`, but nothing fills it",
        "policy `builtin:queue-depth` reads `queue_depth` (its manifest), which this scaler's source does not fill, and cannot decide without: queue_depth is missing",
        "unknown built-in policy \"does-not-exist\"",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(errors.errors.len() >= 6, "{text}");
    assert!(errors.errors.iter().all(|e| e.line > 1), "{text}");
    // The config's own problems and the policy probe's, in file order.
    assert!(
        errors
            .errors
            .windows(2)
            .all(|w| (w[0].line, w[0].column) <= (w[1].line, w[1].column)),
        "{text}"
    );
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
        let path = write_file(dir.path(), "d.toml", &text);
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
        let path = write_file(dir.path(), "v.toml", &source);
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
    let path = write_file(dir.path(), "p.toml", &text);
    let text = controller::load(&path, &host).unwrap_err().to_string();
    assert!(
        text.contains("metrics.gpu_utilization = 82 looks like a percent")
            && text.contains("did you mean 0.82?"),
        "{text}"
    );
    // What is asked for explicitly is fine.
    let path = write_file(
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
    let path = write_file(
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
    let path = write_file(dir.path(), "e.toml", &text);
    let errors = controller::load(&path, &host).unwrap_err().to_string();
    assert!(
        errors.contains("failed its trial evaluation [out-of-fuel]"),
        "{errors}"
    );
    assert!(errors.contains("raise [scaler.limits] fuel"), "{errors}");
    assert!(!errors.contains("fill the metric"), "{errors}");
}

#[test]
fn syntax_errors_have_a_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(
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
        let path = write_file(dir.path(), "config.toml", &text);
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
