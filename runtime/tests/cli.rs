//! The `wasmscale` binary, end to end: the seed threshold example, `check`,
//! bad input, and `new` + `build` of a policy written from scratch.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail by panicking"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{free_port, root, stderr, stdout, wasmscale};

#[test]
fn seed_threshold_example_reproduces_its_table() {
    let out = wasmscale(&[
        "eval",
        "builtin:step-scaling",
        "--params",
        "examples/seed-thresholds/params.json",
        "--snapshots",
        "examples/seed-thresholds/snapshots.jsonl",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let desired: Vec<u64> = stdout(&out)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert!(v["fuel"].as_u64().unwrap() > 0, "fuel reported: {l}");
            assert!(v["reason"].is_string());
            assert!(v.get("spot_fraction").is_some());
            v["desired"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(desired, [1, 1, 2, 2, 2, 1]);
}

#[test]
fn check_reports_size_compile_time_and_fuel_for_every_builtin() {
    let names: Vec<&str> = wasmscale::host::builtin_names().collect();
    assert_eq!(names.len(), 6, "{names:?}");
    for name in names {
        let out = wasmscale(&["check", &format!("builtin:{name}")]);
        let text = stdout(&out);
        assert!(out.status.success(), "{name}: {}{}", text, stderr(&out));
        for field in ["size:", "compile time:", "fuel", "contract:"] {
            assert!(text.contains(field), "{name}: missing {field} in\n{text}");
        }
    }
}

#[test]
fn bad_input_gets_a_one_line_error_and_nonzero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"request_rate\": 1}\n{not json\n").unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["check".into(), "/no/such.wasm".into()],
            "cannot read policy",
        ),
        (
            vec![
                "eval".into(),
                "builtin:step-scaling".into(),
                "--snapshots".into(),
                bad.display().to_string(),
            ],
            ":2: malformed JSON",
        ),
        (
            vec![
                "eval".into(),
                "builtin:step-scaling".into(),
                "--params".into(),
                r#"{"metric": "x"}"#.into(),
                "--snapshots".into(),
                "examples/seed-thresholds/snapshots.jsonl".into(),
            ],
            "rejected its params",
        ),
        (
            vec!["check".into(), "builtin:nope".into()],
            "unknown built-in",
        ),
        (
            vec![
                "eval".into(),
                "builtin:queue-depth".into(),
                "--snapshots".into(),
                "/no/such.jsonl".into(),
            ],
            "cannot open",
        ),
    ];
    for (args, expect) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = wasmscale(&args);
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(err.contains(expect), "{args:?}: {err}");
        assert_eq!(
            err.trim().lines().count(),
            1,
            "{args:?}: one line, no backtrace:\n{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn eval_marks_failed_snapshots_as_held() {
    let dir = tempfile::tempdir().unwrap();
    let snaps = dir.path().join("s.jsonl");
    std::fs::write(
        &snaps,
        "{\"replicas\": {\"current\": 4}}\n{\"queue_depth\": 30}\n",
    )
    .unwrap();
    let out = wasmscale(&[
        "eval",
        "builtin:queue-depth",
        "--snapshots",
        snaps.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["desired"], 4);
    assert_eq!(lines[0]["kind"], "policy-error");
    assert_eq!(lines[1]["desired"], 4); // 30 / 8 per replica -> 4
}

#[test]
fn eval_runs_the_tick_unguarded_unless_a_config_gives_guardrails() {
    let dir = tempfile::tempdir().unwrap();
    let snaps = dir.path().join("s.jsonl");
    std::fs::write(
        &snaps,
        "{\"queue_depth\": 1000, \"replicas\": {\"current\": 2}}\n",
    )
    .unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        "[[scaler]]\nname = \"q\"\npolicy = \"builtin:queue-depth\"\nparams = { target_per_replica = 10 }\nmin_replicas = 1\nmax_replicas = 3\nmetrics = { queue_depth = 5 }\n",
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "eval",
            "builtin:queue-depth",
            "--params",
            r#"{"target_per_replica": 10}"#,
            "--snapshots",
            snaps.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = wasmscale(&args);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_str::<serde_json::Value>(stdout(&out).trim()).unwrap()
    };
    // Without guardrails the policy's decision is the line.
    let bare = run(&[]);
    assert_eq!(bare["desired"], 100);
    assert!(bare.get("replicas").is_none(), "{bare}");
    // With the config's scaler (its bounds, HPA behavior), the same
    // decision is capped at max_replicas, and the line says by what.
    let guarded = run(&["--config", config.to_str().unwrap()]);
    assert_eq!(guarded["desired"], 100);
    assert_eq!(guarded["replicas"], 3);
    assert_eq!(guarded["guardrails"][0]["after"], 3, "{guarded}");
    let out = wasmscale(&[
        "eval",
        "builtin:queue-depth",
        "--snapshots",
        snaps.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--scaler",
        "nope",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no such scaler"), "{}", stderr(&out));
}

#[test]
fn new_refuses_names_cargo_would_and_vendors_the_sdk() {
    let dir = tempfile::tempdir().unwrap();
    for (name, says) in [
        ("9lives", "must start with a letter"),
        ("test", "reserved"),
        ("a b", "has ' '"),
        ("", "needs a name"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_wasmscale"))
            .args(["new", name])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{name:?} accepted");
        assert!(stderr(&out).contains(says), "{name:?}: {}", stderr(&out));
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing written"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_wasmscale"))
        .args(["new", "anywhere"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let manifest = std::fs::read_to_string(dir.path().join("anywhere/Cargo.toml")).unwrap();
    assert!(
        manifest
            .contains(r#"wasmscale-sdk = { path = "vendor/wasmscale-sdk", features = ["v2"] }"#),
        "no path into the checkout the binary came from:\n{manifest}"
    );
    for file in ["vendor/wasmscale-sdk/src/lib.rs", "vendor/wit/policy.wit"] {
        assert!(dir.path().join("anywhere").join(file).is_file(), "{file}");
    }
}

#[test]
fn new_scaffolds_a_policy_that_builds_tests_and_checks() {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_wasmscale"))
        .args(["new", "gpu-queue"])
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let crate_dir = dir.path().join("gpu-queue");
    // Share compiled dependencies with the workspace's guest builds.
    let target = root().join("target").join("guests");
    let test = Command::new(env!("CARGO"))
        .args(["test", "--quiet"])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(&crate_dir)
        .output()
        .unwrap();
    assert!(
        test.status.success(),
        "cargo test in the scaffold: {}",
        stderr(&test)
    );
    let build = Command::new(env!("CARGO_BIN_EXE_wasmscale"))
        .args(["build"])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(&crate_dir)
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "wasmscale build: {}",
        stderr(&build)
    );
    let wasm = crate_dir.join("gpu_queue.wasm");
    let check = wasmscale(&["check", wasm.to_str().unwrap()]);
    assert!(
        check.status.success(),
        "{}{}",
        stdout(&check),
        stderr(&check)
    );
    assert!(stdout(&check).contains("desired 6"), "{}", stdout(&check));
    assert!(
        stdout(&check).contains("contract:      wasmscale:policy@0.2.0"),
        "{}",
        stdout(&check)
    );
    assert!(
        stdout(&check).contains("signals:       queue_depth, gpu_utilization, replicas.ready"),
        "{}",
        stdout(&check)
    );
}

#[test]
fn example_policy_written_from_scratch_builds_and_runs() {
    let target = root().join("target").join("guests");
    let out_dir = tempfile::tempdir().unwrap();
    let wasm = out_dir.path().join("ttft_guard.wasm");
    let build = Command::new(env!("CARGO_BIN_EXE_wasmscale"))
        .args([
            "build",
            "examples/ttft-guard",
            "--out",
            wasm.to_str().unwrap(),
        ])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "wasmscale build: {}",
        stderr(&build)
    );
    let out = wasmscale(&[
        "eval",
        wasm.to_str().unwrap(),
        "--snapshots",
        "examples/ttft-guard/snapshots.jsonl",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let desired: Vec<u64> = stdout(&out)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["desired"]
                .as_u64()
                .unwrap()
        })
        .collect();
    // 2 replicas at TTFT 1600 ms vs an 800 ms SLO -> 4; smoothed 1250 ms -> 7;
    // KV cache at 95 % -> +1; then inside the band -> hold.
    assert_eq!(desired, [4, 7, 8, 8]);
}

#[test]
fn limits_are_configurable_from_the_command_line() {
    // Configuring the policy alone needs more than 1,000 fuel.
    let out = wasmscale(&[
        "eval",
        "builtin:step-scaling",
        "--fuel",
        "1000",
        "--params",
        "examples/seed-thresholds/params.json",
        "--snapshots",
        "examples/seed-thresholds/snapshots.jsonl",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("ran out of fuel (limit 1000 units"),
        "{}",
        stderr(&out)
    );
    let out = wasmscale(&["check", "builtin:queue-depth", "--deadline-ms", "0"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--deadline-ms must be > 0"));
}

/// Wait (up to 30 s) until `run`'s admin endpoint says every scaler has ticked.
fn wait_until_ready(port: u16) {
    use std::io::{Read as _, Write as _};
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let ready = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok_and(|mut s| {
            let _ = s.write_all(b"GET /readyz HTTP/1.1\r\nConnection: close\r\n\r\n");
            let mut t = String::new();
            let _ = s.read_to_string(&mut t);
            t.starts_with("HTTP/1.1 200")
        });
        if ready {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "run never became ready"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A config with one fast static scaler writing its audit log in `dir`.
fn fast_config(dir: &Path, listen: &str) -> PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        format!(
            r#"state_dir = "state"
[admin]
listen = "{listen}"
[audit]
path = "audit.jsonl"

[[scaler]]
name = "chat"
tenant = "acme"
policy = "builtin:queue-depth"
params = {{ target_per_replica = 10 }}
min_replicas = 1
max_replicas = 8
interval_seconds = 0.05
metrics = {{ queue_depth = 55 }}
[scaler.guard]
rate = "none"
"#
        ),
    )
    .unwrap();
    path
}

#[test]
fn validate_run_explain_and_replay_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let config = fast_config(dir.path(), "");
    let config = config.to_str().unwrap();
    let out = wasmscale(&["validate", config]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("ok (1 scalers)"));

    let out = wasmscale(&["run", config, "--ticks", "4"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("chat: 1 -> 6"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("stopped: 4 ticks, 0 with failures"),
        "{}",
        stderr(&out)
    );

    let audit = dir.path().join("audit.jsonl");
    let out = wasmscale(&[
        "audit",
        "explain",
        "chat",
        "--file",
        audit.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(
        text.contains("chat [acme]: builtin:queue-depth proposed 6")
            && text.contains("scaled 1 -> 6"),
        "{text}"
    );

    // The same snapshots through another policy: 55 queued at 20 per replica -> 3.
    let out = wasmscale(&[
        "replay",
        audit.to_str().unwrap(),
        "--policy",
        "builtin:queue-depth",
        "--params",
        r#"{"target_per_replica": 20}"#,
        "--config",
        config,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("4 of 4 decisions changed"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("chat") && l.contains("6") && l.contains("3*")),
        "{text}"
    );

    // A bad config: every error, and nothing runs.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[scaler]]\nname = \"x\"\npolicy = \"builtin:queue-depth\"\nmin_replicas = 3\nmax_replicas = 1\nintervl_seconds = 5\n").unwrap();
    let out = wasmscale(&["run", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("bad.toml:6:1: unknown key `intervl_seconds`"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("did you mean `interval_seconds`?"),
        "{}",
        stderr(&out)
    );
}

#[cfg(unix)]
#[test]
fn sigterm_flushes_and_sigkill_leaves_a_readable_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = fast_config(dir.path(), &format!("127.0.0.1:{port}"));
    let audit = dir.path().join("audit.jsonl");
    for signal in ["-TERM", "-KILL"] {
        let child = Command::new(env!("CARGO_BIN_EXE_wasmscale"))
            .args(["run", config.to_str().unwrap(), "--no-cache"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until it serves /readyz (every scaler ticked), then signal it.
        wait_until_ready(port);
        std::thread::sleep(std::time::Duration::from_millis(200));
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let out = child.wait_with_output().unwrap();
        if signal == "-TERM" {
            assert!(
                out.status.success(),
                "SIGTERM is a clean stop: {}",
                stderr(&out)
            );
            assert!(stderr(&out).contains("stopped:"), "{}", stderr(&out));
        }
    }
    // Whatever the kill cut off, every complete record reads back.
    let out = wasmscale(&[
        "audit",
        "explain",
        "chat",
        "--file",
        audit.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).lines().count() >= 4);
}

#[test]
fn operators_freeze_and_release_a_scaler_over_http() {
    use std::io::{Read as _, Write as _};
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // A load that swings every tick: 1 <-> 9 replicas without a breaker.
    std::fs::write(dir.path().join("swing.csv"), "queue_depth\n10\n90\n").unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"[admin]
listen = "127.0.0.1:{port}"
[audit]
path = "audit.jsonl"
[[scaler]]
name = "swing"
policy = "builtin:queue-depth"
params = {{ target_per_replica = 10, cooldown_seconds = 0 }}
min_replicas = 1
max_replicas = 10
interval_seconds = 0.1
source = {{ type = "replay", path = "swing.csv", repeat = true }}
[scaler.guard]
rate = "none"
"#
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_wasmscale"))
        .args(["run", config.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let http = |request: &str| -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                let _ = s.write_all(request.as_bytes());
                let mut t = String::new();
                let _ = s.read_to_string(&mut t);
                return t;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "admin endpoint never came up"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    let reply = http(
        "POST /scalers/swing/breaker?mode=freeze&seconds=600 HTTP/1.1\r\nConnection: close\r\n\r\n",
    );
    assert!(reply.starts_with("HTTP/1.1 202"), "{reply}");
    assert!(
        http("POST /scalers/nope/breaker?mode=freeze HTTP/1.1\r\nConnection: close\r\n\r\n")
            .starts_with("HTTP/1.1 404")
    );
    assert!(
        http("POST /scalers/swing/breaker?mode=sideways HTTP/1.1\r\nConnection: close\r\n\r\n")
            .starts_with("HTTP/1.1 400")
    );
    std::thread::sleep(std::time::Duration::from_millis(800));
    let reply = http("DELETE /scalers/swing/breaker HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert!(reply.starts_with("HTTP/1.1 202"), "{reply}");
    std::thread::sleep(std::time::Duration::from_millis(600));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait_with_output();
    let (records, _) = wasmscale::audit::read(&dir.path().join("audit.jsonl")).unwrap();
    let frozen = records
        .iter()
        .filter(|r| r.guardrails.iter().any(|g| g.guard == "circuit-breaker"))
        .count();
    assert!(
        frozen >= 3,
        "the breaker held the count while frozen ({frozen} records)"
    );
    let after: Vec<u32> = records
        .iter()
        .rev()
        .take(3)
        .map(|r| r.final_replicas)
        .collect();
    assert!(
        after.contains(&1) && after.contains(&9),
        "swinging again after release: {after:?}"
    );
}

#[cfg(unix)]
#[test]
fn sighup_reloads_a_valid_config_and_keeps_running_on_an_invalid_one() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = fast_config(dir.path(), &format!("127.0.0.1:{port}"));
    let child = Command::new(env!("CARGO_BIN_EXE_wasmscale"))
        .args(["run", config.to_str().unwrap(), "--no-watch"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_ready(port);
    let hup = || {
        assert!(
            Command::new("kill")
                .args(["-HUP", &child.id().to_string()])
                .status()
                .unwrap()
                .success()
        )
    };
    let text = std::fs::read_to_string(&config).unwrap();
    // Valid change: 55 queued at 5 per replica -> 8 (the max).
    std::fs::write(
        &config,
        text.replace("target_per_replica = 10", "target_per_replica = 5"),
    )
    .unwrap();
    hup();
    std::thread::sleep(std::time::Duration::from_millis(700));
    // Invalid change: reported, and the running scalers go on.
    std::fs::write(&config, "[[scaler]]\nname = \"chat\"\n").unwrap();
    hup();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("the new config is invalid"), "{err}");
    let (records, _) = wasmscale::audit::read(&dir.path().join("audit.jsonl")).unwrap();
    let counts: Vec<u32> = records.iter().map(|r| r.final_replicas).collect();
    let first_eight = counts
        .iter()
        .position(|&c| c == 8)
        .unwrap_or_else(|| panic!("never reloaded: {counts:?}"));
    assert!(counts[..first_eight].contains(&6), "{counts:?}");
    // The reloaded scaler kept its state: it started from 6, not from min_replicas.
    assert_eq!(records[first_eight].previous_replicas, 6, "{counts:?}");
    assert!(
        counts[first_eight..].iter().all(|&c| c == 8),
        "kept running after the bad reload: {counts:?}"
    );
}

/// Issue 9's reproductions, through the binary: each is a clear error and a
/// non-zero exit, never a panic or a silent exit 0.
#[test]
fn hostile_inputs_from_the_hardening_issue_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    // 9.1: an interval of 1e20 s used to validate, then panic in `run`, exit 0.
    let text = std::fs::read_to_string(root().join("examples/configs/gpu-inference.toml"))
        .unwrap()
        .replace("interval_seconds = 1", "interval_seconds = 1e20");
    let x = dir.path().join("x.toml");
    std::fs::write(&x, text).unwrap();
    let x = x.display().to_string();
    let out = wasmscale(&["validate", &x]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("tick interval must be between"),
        "{}",
        stderr(&out)
    );
    let out = wasmscale(&["run", &x, "--ticks", "2"]);
    assert!(!out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    // 9.2: a time of 1e308 wrapped the step count and indexed an empty vector.
    let t = dir.path().join("t.csv");
    std::fs::write(&t, "arrival_s\n0\n1\n1e308\n").unwrap();
    let out = wasmscale(&[
        "simulate",
        "--trace",
        &t.display().to_string(),
        "--policy",
        "builtin:target-tracking",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("steps"), "{}", stderr(&out));
    // 9.5: `check` on a device or a FIFO refuses at once.
    let out = wasmscale(&["check", "/dev/zero"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not a regular file (a character device)"),
        "{}",
        stderr(&out)
    );
    let fifo = dir.path().join("p.wasm");
    if Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .is_ok_and(|s| s.success())
    {
        let out = wasmscale(&["check", &fifo.display().to_string()]);
        assert!(stderr(&out).contains("a FIFO"), "{}", stderr(&out));
    }
}

/// 9.9: with no kubeconfig every tick fails; the first failure of the kind
/// is logged at warn with what to fix (later ones go to the audit log only).
#[test]
fn a_kubernetes_target_without_a_kubeconfig_says_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("k.toml");
    std::fs::write(
        &config,
        r#"[admin]
listen = ""
[audit]
path = "audit.jsonl"
[[scaler]]
name = "web"
policy = "builtin:queue-depth"
params = { target_per_replica = 10 }
min_replicas = 1
max_replicas = 9
interval_seconds = 0.05
metrics = { queue_depth = 30 }
target = { type = "kubernetes", name = "web" }
"#,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wasmscale"))
        .args(["run", &config.display().to_string(), "--ticks", "3"])
        .env("KUBECONFIG", dir.path().join("none"))
        .env("HOME", dir.path())
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(
        err.matches("the kubernetes target failed").count(),
        1,
        "once: {err}"
    );
    assert!(err.contains("set KUBECONFIG"), "{err}");
    assert!(err.contains("stopped: 3 ticks, 3 with failures"), "{err}");
}

/// Compiled 0.1 policies keep running unchanged: the checked-in 0.1 builds of
/// three built-ins (`tests/fixtures/v0.1/`) decide exactly as the built-ins,
/// now 0.2, do, through `eval`, `run` and `simulate`. Only the fuel differs
/// (0.2's one call includes the checkpoint 0.1 made in a second call).
#[test]
fn the_checked_in_0_1_builds_decide_as_the_builtins() {
    let dir = tempfile::tempdir().unwrap();
    let snapshots = dir.path().join("s.jsonl");
    let lines: String = [
        (40, 300),
        (400, 900),
        (900, 1500),
        (120, 700),
        (0, 200),
        (0, 100),
    ]
    .iter()
    .enumerate()
    .map(|(i, (q, p95))| {
        // target-tracking reads GPU utilization and each pod's CPU.
        let cpu = |k: usize| ((i * 7 + k * 3) % 10) as f64 / 10.0;
        let pods: Vec<String> = (0..3)
            .map(|k| {
                format!(
                    r#"{{"state": "ready", "metrics": [{{"name": "cpu", "value": {}}}], "request": 1.0}}"#,
                    cpu(k)
                )
            })
            .collect();
        format!(
            "{{\"queue_depth\": {q}, \"latency_p95_ms\": {p95}, \"gpu_utilization\": {}, \"pods\": [{}]}}\n",
            cpu(5),
            pods.join(", ")
        )
    })
    .collect();
    std::fs::write(&snapshots, lines).unwrap();
    for name in ["step-scaling", "queue-depth", "target-tracking"] {
        let fixture = format!("tests/fixtures/v0.1/{name}.wasm");
        let builtin = format!("builtin:{name}");
        let params = format!("policies/params/{name}.json");
        for (policy, contract) in [(&fixture, "0.1.0"), (&builtin, "0.2.0")] {
            let check = wasmscale(&["check", policy, "--params", &params]);
            assert!(
                stdout(&check).contains(&format!("contract:      wasmscale:policy@{contract}")),
                "{}",
                stdout(&check)
            );
        }

        // eval: the same decisions, line by line.
        let eval = |policy: &str| {
            let out = wasmscale(&[
                "eval",
                policy,
                "--params",
                &params,
                "--snapshots",
                snapshots.to_str().unwrap(),
            ]);
            assert!(out.status.success(), "{}", stderr(&out));
            stdout(&out)
                .lines()
                .map(|l| {
                    let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                    v.as_object_mut().unwrap().remove("fuel");
                    v
                })
                .collect::<Vec<_>>()
        };
        let lines = eval(&builtin);
        assert_eq!(lines.len(), 6);
        assert_eq!(eval(&fixture), lines, "{name}: eval");

        // simulate: the same score.
        let simulate = |policy: &str| {
            let out = wasmscale(&[
                "simulate",
                "--trace",
                "examples/traces/alibaba_servegen_m_small_10min.csv",
                "--model",
                "fluid",
                "--policy",
                &format!("{policy}@{params}"),
                "--json",
            ]);
            assert!(out.status.success(), "{}", stderr(&out));
            let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
            let mut score = report["policies"][0]["score"].clone();
            score.as_object_mut().unwrap().remove("fuel_per_tick");
            score
        };
        assert_eq!(simulate(&fixture), simulate(&builtin), "{name}: simulate");
    }

    // run: two scalers, one on each build, the same decisions every tick.
    let config = dir.path().join("both.toml");
    let scaler = |label: &str, policy: &str| {
        format!(
            "[[scaler]]\nname = \"{label}\"\npolicy = {policy:?}\nparams = {{ target_per_replica = 10 }}\nmin_replicas = 1\nmax_replicas = 20\ninterval_seconds = 0.05\nmetrics = {{ queue_depth = 75 }}\n"
        )
    };
    std::fs::write(
        &config,
        format!(
            "[admin]\nlisten = \"\"\n[audit]\npath = \"audit.jsonl\"\n{}{}",
            scaler(
                "fixture",
                &root()
                    .join("tests/fixtures/v0.1/queue-depth.wasm")
                    .display()
                    .to_string()
            ),
            scaler("builtin", "builtin:queue-depth")
        ),
    )
    .unwrap();
    let out = wasmscale(&["run", config.to_str().unwrap(), "--ticks", "4"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let log = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    let decisions = |scaler: &str| -> Vec<(u64, String)> {
        log.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|r| r["scaler"] == scaler)
            .map(|r| {
                (
                    r["final_replicas"].as_u64().unwrap(),
                    r["decision"]["reason"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    };
    let fixture = decisions("fixture");
    assert_eq!(fixture.len(), 4, "{log}");
    assert_eq!(fixture, decisions("builtin"));
}

/// A reload is a diff: a changed scaler is rebuilt (keeping its state), an
/// unchanged one is left alone, a new one starts, and a bad entry refuses
/// only its own scaler, which goes on as it was.
#[cfg(unix)]
#[test]
fn sighup_reloads_only_what_changed_and_a_bad_entry_refuses_only_its_scaler() {
    reload_as_a_diff(true);
}

/// The same, with no signal: saving the file is enough (the file watch).
#[cfg(unix)]
#[test]
fn saving_the_config_file_reloads_it_as_a_diff() {
    reload_as_a_diff(false);
}

#[cfg(unix)]
fn reload_as_a_diff(by_signal: bool) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let scaler = |name: &str, target: u32, policy: &str| {
        format!(
            r#"
[[scaler]]
name = "{name}"
policy = "{policy}"
params = {{ target_per_replica = {target} }}
min_replicas = 1
max_replicas = 8
interval_seconds = 0.05
metrics = {{ queue_depth = 55 }}
[scaler.guard]
rate = "none"
"#
        )
    };
    let head = format!(
        "state_dir = \"state\"\n[admin]\nlisten = \"127.0.0.1:{port}\"\n[audit]\npath = \"audit.jsonl\"\n"
    );
    let config = dir.path().join("config.toml");
    let qd = "builtin:queue-depth";
    std::fs::write(
        &config,
        format!(
            "{head}{}{}{}",
            scaler("a", 10, qd),
            scaler("b", 10, qd),
            scaler("c", 10, qd)
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_wasmscale"))
        .args(["run", config.to_str().unwrap()])
        .args(by_signal.then_some("--no-watch"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until_ready(port);
    std::thread::sleep(std::time::Duration::from_millis(300));
    // a: 55 at 5 per replica -> 8 (the max); b: unchanged; c: a policy that
    // does not exist (refused: c goes on at 6); d: new, at 20 per replica -> 3.
    std::fs::write(
        &config,
        format!(
            "{head}{}{}{}{}",
            scaler("a", 5, qd),
            scaler("b", 10, qd),
            scaler("c", 5, "builtin:no-such-policy"),
            scaler("d", 20, qd)
        ),
    )
    .unwrap();
    if by_signal {
        assert!(
            Command::new("kill")
                .args(["-HUP", &child.id().to_string()])
                .status()
                .unwrap()
                .success()
        );
    }
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // The log's colours stripped: ESC [ ... m.
    let mut err = String::new();
    let mut in_escape = false;
    for c in stderr(&out).chars() {
        match (in_escape, c) {
            (false, '\u{1b}') => in_escape = true,
            (true, 'm') => in_escape = false,
            (false, c) => err.push(c),
            (true, _) => {}
        }
    }
    assert!(err.contains("reloading the config as a diff"), "{err}");
    let trigger = if by_signal {
        "trigger=\"SIGHUP\""
    } else {
        "trigger=\"file-changed\""
    };
    assert_eq!(err.matches(trigger).count(), 1, "{err}");
    assert_eq!(
        err.matches("reloading the config as a diff").count(),
        1,
        "one reload: {err}"
    );
    assert!(
        err.contains("changed=2") && err.contains("rejected=1") && err.contains("unchanged=1"),
        "{err}"
    );
    assert!(
        err.contains("no-such-policy"),
        "the refused entry is named: {err}"
    );
    let (records, _) = wasmscale::audit::read(&dir.path().join("audit.jsonl")).unwrap();
    let last = |name: &str| {
        records
            .iter()
            .rev()
            .find(|r| &*r.scaler == name)
            .unwrap_or_else(|| panic!("no record of {name}"))
            .final_replicas
    };
    assert_eq!(
        (last("a"), last("b"), last("c"), last("d")),
        (8, 6, 6, 3),
        "a changed, b unchanged, c refused and still running, d new"
    );
    // a kept its state across its rebuild: its first tick after started at 6.
    let a: Vec<_> = records.iter().filter(|r| &*r.scaler == "a").collect();
    let first_eight = a.iter().position(|r| r.final_replicas == 8).unwrap();
    assert_eq!(a[first_eight].previous_replicas, 6);
}

/// `wasmscale policy ...` and `wasmscale scaler ...` against a running
/// `wasmscale run`: the tables, `-o json`, and the API's errors as the CLI
/// shows them.
#[test]
fn the_policy_and_scaler_commands_drive_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // The registry holds the built-in queue-depth as `qd` version 1, active.
    let qd = dir.path().join("qd.wasm");
    std::fs::write(&qd, wasmscale::host::builtin_bytes("queue-depth").unwrap()).unwrap();
    {
        let r = wasmscale::registry::Registry::open(&dir.path().join("state/registry")).unwrap();
        let v = r
            .put(
                "qd",
                &std::fs::read(&qd).unwrap(),
                wasmscale::registry::Upload::default(),
            )
            .unwrap();
        r.activate("qd", v.version, "seed").unwrap();
    }
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"state_dir = "state"
[admin]
listen = "127.0.0.1:{port}"
[audit]
path = "audit.jsonl"
[[scaler]]
name = "chat"
policy = "registry:qd"
params = {{ target_per_replica = 10 }}
min_replicas = 1
max_replicas = 8
interval_seconds = 0.1
metrics = {{ queue_depth = 55 }}
"#
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_wasmscale"))
        .args(["run", config.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until_ready(port);
    let server = format!("http://127.0.0.1:{port}");
    let cli = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--server", &server]);
        wasmscale(&all)
    };
    let v01 = root().join("tests/fixtures/v0.1/queue-depth.wasm");
    let out = cli(&["policy", "push", "qd", v01.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("pushed qd version 2"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("wasmscale:policy@0.1.0"),
        "{}",
        stdout(&out)
    );
    let out = cli(&["policy", "list"]);
    assert!(
        stdout(&out).contains("qd") && stdout(&out).contains(" 2 "),
        "{}",
        stdout(&out)
    );
    let out = cli(&["policy", "shadow", "qd", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("shadows the active one on: chat"),
        "{}",
        stdout(&out)
    );
    std::thread::sleep(std::time::Duration::from_millis(400));
    let out = cli(&["scaler", "status", "chat"]);
    assert!(
        stdout(&out).contains("shadow registry:qd@2"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("differed on 0 of"),
        "{}",
        stdout(&out)
    );
    let out = cli(&["policy", "promote", "qd"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("qd version 2 is active"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("swapped chat"), "{}", stdout(&out));
    let out = cli(&["policy", "show", "qd", "-o", "json"]);
    let shown: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(shown["policy"]["active"], 2);
    assert_eq!(shown["scalers"], serde_json::json!(["chat"]));
    let out = cli(&["policy", "rollback", "qd"]);
    assert!(
        stdout(&out).contains("qd version 1 is active"),
        "{}",
        stdout(&out)
    );
    // An error from the API: its message and hint, and a non-zero exit.
    let out = cli(&["policy", "activate", "qd", "9"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("404") && stderr(&out).contains("no version `9`"),
        "{}",
        stderr(&out)
    );
    let out = cli(&["scaler", "list"]);
    assert!(
        stdout(&out).contains("chat") && stdout(&out).contains("registry:qd@1"),
        "{}",
        stdout(&out)
    );
    let out = cli(&[
        "scaler",
        "decisions",
        "chat",
        "--since",
        "1h",
        "--limit",
        "2",
    ]);
    assert_eq!(stdout(&out).lines().count(), 2, "{}", stdout(&out));
    let out = cli(&["scaler", "pause", "chat", "--for", "10m"]);
    assert!(stdout(&out).contains("chat: paused"), "{}", stdout(&out));
    let out = cli(&["scaler", "resume", "chat"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Scalers from a file of [[scaler]] entries, through the API.
    let entries = dir.path().join("more.toml");
    std::fs::write(
        &entries,
        r#"[[scaler]]
name = "batch"
policy = "builtin:queue-depth"
params = { target_per_replica = 5 }
min_replicas = 1
max_replicas = 4
interval_seconds = 0.1
metrics = { queue_depth = 12 }

[[scaler]]
name = "bad"
policy = "builtin:queue-depth"
min_replicas = 3
max_replicas = 2
"#,
    )
    .unwrap();
    let out = cli(&["scaler", "apply", entries.to_str().unwrap()]);
    assert!(!out.status.success(), "the bad entry fails the command");
    assert!(stdout(&out).contains("batch: applied"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("scaler bad")
            && stderr(&out).contains("422")
            && stderr(&out).contains("min_replicas (3) is greater than max_replicas (2)")
            && stderr(&out).contains("hint: swap them"),
        "each problem with its hint: {}",
        stderr(&out)
    );
    let out = cli(&["scaler", "list", "-o", "json"]);
    let list: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let origins: Vec<(String, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().into(),
                s["origin"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        origins,
        [
            ("batch".into(), "api".into()),
            ("chat".into(), "file".into())
        ]
    );
    let out = cli(&["scaler", "delete", "chat"]);
    assert!(
        !out.status.success() && stderr(&out).contains("comes from the config file"),
        "{}",
        stderr(&out)
    );
    let out = cli(&["scaler", "delete", "batch"]);
    assert!(stdout(&out).contains("batch: deleted"), "{}", stderr(&out));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait_with_output();
    // With no server: a clear error, not a hang.
    let out = wasmscale(&["scaler", "list", "--server", "http://127.0.0.1:9"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot reach the admin API"),
        "{}",
        stderr(&out)
    );
}

/// Signed policies: `keygen`, `sign`, and a scaler that requires a key
/// refuses unsigned, wrongly signed and other-key uploads with a clear error.
#[test]
fn a_scaler_that_requires_a_signature_takes_only_policies_signed_by_its_key() {
    use wasmscale::registry::{Registry, Upload, digest_of, signatures};
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let keygen = |name: &str| {
        let out = wasmscale(&["policy", "keygen", "--out", path(name).to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
        std::fs::read_to_string(path(&format!("{name}.pub")))
            .unwrap()
            .trim()
            .to_owned()
    };
    let release = keygen("release");
    let other = keygen("other");
    let out = wasmscale(&[
        "policy",
        "keygen",
        "--out",
        path("release").to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "never overwrites a key");
    // Version 1, signed by the release key, is active.
    let qd = wasmscale::host::builtin_bytes("queue-depth").unwrap();
    {
        let r = Registry::open(&path("state/registry")).unwrap();
        let v = r.put("qd", qd, Upload::default()).unwrap();
        let secret = std::fs::read_to_string(path("release")).unwrap();
        r.add_signature(
            &v.digest,
            &release,
            &signatures::sign(secret.trim(), &v.digest).unwrap(),
        )
        .unwrap();
        r.activate("qd", 1, "seed").unwrap();
    }
    let port = free_port();
    let config = path("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"state_dir = "state"
[admin]
listen = "127.0.0.1:{port}"
[audit]
path = "audit.jsonl"
[[scaler]]
name = "chat"
policy = "registry:qd"
params = {{ target_per_replica = 10 }}
min_replicas = 1
max_replicas = 8
interval_seconds = 0.1
metrics = {{ queue_depth = 55 }}
require_signed_by = ["{release}"]
"#
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_wasmscale"))
        .args(["run", config.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until_ready(port);
    let server = format!("http://127.0.0.1:{port}");
    let v01 = root().join("tests/fixtures/v0.1/queue-depth.wasm");
    let file = path("qd-v2.wasm");
    std::fs::copy(&v01, &file).unwrap();
    let file_s = file.to_str().unwrap();
    let push = |sig: Option<&str>| {
        let mut args = vec![
            "policy",
            "push",
            "qd",
            file_s,
            "--activate",
            "--server",
            &server,
        ];
        if let Some(s) = sig {
            args.extend(["--signature", s]);
        }
        wasmscale(&args)
    };
    let out = push(None);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("403") && stderr(&out).contains("is not signed"),
        "{}",
        stderr(&out)
    );
    // Signed, but by a key the scaler does not trust.
    let sign = |key: &str| {
        let out = wasmscale(&[
            "policy",
            "sign",
            file_s,
            "--key",
            path(key).to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        format!("{file_s}.sig")
    };
    let sig = sign("other");
    let out = push(Some(&sig));
    assert!(
        stderr(&out).contains("none of the keys"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains(&other), "{}", stderr(&out));
    // A signature over other bytes.
    let sig = sign("release");
    let mut forged: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&sig).unwrap()).unwrap();
    let secret = std::fs::read_to_string(path("release")).unwrap();
    forged["signature"] = signatures::sign(secret.trim(), &digest_of(b"something else"))
        .unwrap()
        .into();
    let forged_path = path("forged.sig");
    std::fs::write(&forged_path, forged.to_string()).unwrap();
    let out = push(Some(forged_path.to_str().unwrap()));
    assert!(stderr(&out).contains("bad signature"), "{}", stderr(&out));
    // Signed by the release key: taken and swapped in.
    let out = push(Some(&sig));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("swapped chat"), "{}", stdout(&out));
    let out = wasmscale(&["policy", "show", "qd", "-o", "json", "--server", &server]);
    let shown: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        shown["policy"]["versions"][1]["signed_by"],
        serde_json::json!([release])
    );
    assert_eq!(shown["policy"]["active"], 2);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait_with_output();
}
