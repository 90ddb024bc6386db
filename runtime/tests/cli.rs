//! The `wasmscale` binary, end to end: the seed threshold example, `check`,
//! bad input, and `new` + `build` of a policy written from scratch.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn wasmscale(args: &[&str]) -> Output {
    let cache =
        std::env::temp_dir().join(format!("wasmscale-cli-test-cache-{}", std::process::id()));
    Command::new(env!("CARGO_BIN_EXE_wasmscale"))
        .args(args)
        .arg("--cache-dir")
        .arg(&cache)
        .current_dir(root())
        .output()
        .expect("run wasmscale")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

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
    for name in [
        "target-tracking",
        "step-scaling",
        "queue-depth",
        "scheduled",
        "predictive",
        "spot-mix",
    ] {
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
