//! Hostile policies, each its own fixture: every one gets its typed error, the
//! host does not panic, and a healthy policy evaluated right after in the same
//! host still works.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail by panicking"
)]

use std::time::Duration;
use wasmscale::host::{Host, Limits, PolicyError, PolicySource};
use wasmscale::model::Snapshot;
use wasmscale::snapshot::{Defaults, from_json};
use wasmscale_tests::{fixtures, host, host_with};

fn snapshot(json: &str) -> Snapshot {
    from_json(
        json,
        Defaults {
            time_ms: 0,
            interval_ms: 1000,
            current: 2,
        },
    )
    .expect("snapshot")
    .0
}

/// The built-in step-scaling policy still answers correctly on this host.
fn assert_healthy(host: &Host) {
    let policy = host
        .load(&PolicySource::parse("builtin:step-scaling"))
        .expect("healthy policy loads");
    let params = r#"{"metric":"request_rate","min_capacity":1,"alarms":[
        {"comparison":"greater_than","threshold":100,"steps":[{"lower_bound":0,"adjustment":1}]}]}"#;
    let mut instance = policy
        .instantiate(params)
        .expect("healthy policy configures");
    let eval = instance
        .evaluate(&snapshot(r#"{"request_rate": 150}"#))
        .expect("healthy policy evaluates");
    assert_eq!(eval.decision.desired, 3);
}

fn evaluate_fixture(host: &Host, path: &str, params: &str) -> PolicyError {
    let policy = host
        .load(&PolicySource::parse(path))
        .expect("fixture loads");
    let mut instance = policy.instantiate(params).expect("fixture configures");
    instance
        .evaluate(&snapshot("{}"))
        .expect_err("fixture must fail")
}

#[test]
fn infinite_loop_runs_out_of_fuel() {
    let host = host();
    let e = evaluate_fixture(&host, fixtures::INFINITE_LOOP, "{}");
    assert!(
        matches!(e, PolicyError::OutOfFuel { limit: 1_000_000 }),
        "{e:?}"
    );
    assert_healthy(&host);
}

#[test]
fn infinite_loop_hits_the_deadline_when_fuel_is_plentiful() {
    let host = host_with(Limits {
        fuel: u64::MAX / 2,
        deadline: Duration::from_millis(20),
        ..Limits::default()
    });
    let started = std::time::Instant::now();
    let e = evaluate_fixture(&host, fixtures::INFINITE_LOOP, "{}");
    assert!(matches!(e, PolicyError::Deadline { .. }), "{e:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(20),
        "stopped before its deadline, after {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "deadline took {:?}",
        started.elapsed()
    );
    assert_healthy(&host);
}

#[test]
fn memory_bomb_hits_the_memory_limit() {
    let host = host();
    let e = evaluate_fixture(&host, fixtures::MEMORY_BOMB, "{}");
    assert!(
        matches!(e, PolicyError::MemoryLimit { limit } if limit == 16 << 20),
        "{e:?}"
    );
    assert_healthy(&host);
}

#[test]
fn deep_recursion_is_reported_as_a_stack_overflow() {
    let host = host();
    let e = evaluate_fixture(&host, fixtures::DEEP_RECURSION, "{}");
    match &e {
        PolicyError::Trap { code, message } => {
            assert_eq!(code.as_deref(), Some("StackOverflow"), "{e:?}");
            assert!(message.starts_with("stack overflow"), "{message}");
            assert!(message.contains("64 KiB stack"), "{message}");
        }
        other => panic!("expected a stack overflow trap, got {other:?}"),
    }
    assert_eq!(e.kind(), "trap", "{e:?}");
    assert_healthy(&host);
}

#[test]
fn a_panic_in_a_rust_policy_carries_its_message() {
    let host = host();
    let e = evaluate_fixture(&host, fixtures::UNREACHABLE, "{}");
    let text = e.to_string();
    assert!(
        text.contains("panicked at") && text.contains("policy bug"),
        "{text}"
    );
    assert!(text.contains("unreachable.rs"), "the location too: {text}");
}

#[test]
fn policy_state_is_capped_and_the_instance_keeps_its_last_good_state() {
    let host = host_with(Limits {
        max_state_bytes: 4096,
        ..Limits::default()
    });
    let policy = host
        .load(&PolicySource::parse(fixtures::HUGE_STATE))
        .expect("fixture loads");
    // 4000 bytes, growing by 50 a tick: the first evaluation fits, the
    // second does not.
    let mut instance = policy
        .instantiate(r#"{"bytes": 4000, "grow": 50}"#)
        .expect("configures");
    instance.evaluate(&snapshot("{}")).expect("4050 bytes fit");
    assert_eq!(instance.last_good_state().len(), 4050);
    let e = instance
        .evaluate(&snapshot("{}"))
        .expect_err("4100 bytes do not");
    assert!(
        matches!(
            e,
            PolicyError::StateTooLarge {
                size: 4100,
                max: 4096
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.kind(), "state-limit");
    assert!(e.poisons_instance());
    assert_eq!(
        instance.last_good_state().len(),
        4050,
        "the last good state stays"
    );
    // The default cap refuses a 900 KB state.
    let host = wasmscale_tests::host();
    let e = evaluate_fixture(&host, fixtures::HUGE_STATE, r#"{"bytes": 900000}"#);
    assert!(
        matches!(e, PolicyError::StateTooLarge { size: 900_000, max } if max == 64 << 10),
        "{e:?}"
    );
    // A saved state over the cap is refused before the policy sees it.
    let mut instance = host
        .load(&PolicySource::parse(fixtures::HUGE_STATE))
        .unwrap()
        .instantiate("{}")
        .unwrap();
    let e = instance.load_state(&vec![1; 100_000]).expect_err("too big");
    assert!(
        matches!(e, PolicyError::LoadState(ref m) if m.contains("max_state_bytes")),
        "{e:?}"
    );
    assert_healthy(&host);
}

#[test]
fn failed_calls_report_the_fuel_they_burned() {
    let host = host();
    let mut instance = host
        .load(&PolicySource::parse(fixtures::INFINITE_LOOP))
        .unwrap()
        .instantiate("{}")
        .unwrap();
    let e = instance.evaluate(&snapshot("{}")).expect_err("loops");
    assert!(matches!(e, PolicyError::OutOfFuel { .. }), "{e:?}");
    assert_eq!(instance.failed_fuel(), 1_000_000);
}

#[test]
fn policy_files_are_checked_before_they_are_read() {
    let host = host();
    // A device that never ends, and a FIFO that would block forever.
    let e = host
        .load(&PolicySource::parse("/dev/zero"))
        .expect_err("not a file");
    assert!(
        matches!(&e, PolicyError::Read { message, .. } if message.contains("character device")),
        "{e:?}"
    );
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("policy.wasm");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    if made.is_ok_and(|s| s.success()) {
        let e = host
            .load(&PolicySource::File(fifo))
            .expect_err("a FIFO is refused");
        assert!(
            matches!(&e, PolicyError::Read { message, .. } if message.contains("FIFO")),
            "{e:?}"
        );
    }
    // A file over the limit is refused from its length, without reading it.
    let big = dir.path().join("big.wasm");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(210 << 20).unwrap();
    let e = host.load(&PolicySource::File(big)).expect_err("too big");
    assert!(
        matches!(e, PolicyError::ModuleTooLarge { size, max } if size == 210 << 20 && max == 16 << 20),
        "{e:?}"
    );
}

#[test]
fn unreachable_traps_with_its_code() {
    let host = host();
    let e = evaluate_fixture(&host, fixtures::UNREACHABLE, "{}");
    match &e {
        PolicyError::Trap {
            code: Some(code), ..
        } => assert!(code.contains("Unreachable"), "{code}"),
        other => panic!("expected a trap with a code, got {other:?}"),
    }
    assert!(e.poisons_instance());
    assert_healthy(&host);
}

#[test]
fn nan_infinite_negative_and_absurd_decisions_are_invalid() {
    let host = host();
    for params in [
        r#"{"desired": "nan"}"#,
        r#"{"desired": "inf"}"#,
        r#"{"desired": "-inf"}"#,
        r#"{"desired": -3}"#,
        r#"{"desired": 1e12}"#,
        r#"{"desired": 2, "spot": 2.0}"#,
        r#"{"desired": 2, "spot": -0.1}"#,
    ] {
        let e = evaluate_fixture(&host, fixtures::BAD_DECISION, params);
        assert!(
            matches!(e, PolicyError::InvalidDecision(_)),
            "{params}: {e:?}"
        );
        assert!(!e.poisons_instance());
    }
    // A sane value from the same fixture passes, rounded up to whole replicas.
    let policy = host
        .load(&PolicySource::parse(fixtures::BAD_DECISION))
        .unwrap();
    let mut ok = policy
        .instantiate(r#"{"desired": 2.2, "spot": 0.5}"#)
        .unwrap();
    let eval = ok.evaluate(&snapshot("{}")).unwrap();
    assert_eq!(
        (eval.decision.desired, eval.decision.spot_fraction),
        (3, Some(0.5))
    );
    assert_healthy(&host);
}

#[test]
fn log_spam_exceeds_the_log_budget() {
    let host = host();
    let e = evaluate_fixture(&host, fixtures::LOG_SPAM, "{}");
    assert!(matches!(e, PolicyError::LogLimit { .. }), "{e:?}");
    assert_healthy(&host);
}

#[test]
fn load_state_that_panics_is_a_load_state_error() {
    let host = host();
    let policy = host
        .load(&PolicySource::parse(fixtures::LOAD_STATE_PANIC))
        .unwrap();
    let mut instance = policy.instantiate("{}").unwrap();
    let e = instance
        .load_state(b"previous state")
        .expect_err("load-state panics");
    assert!(matches!(e, PolicyError::LoadState(_)), "{e:?}");
    // The instance is rebuilt and keeps working, without the bad state.
    let eval = instance.evaluate(&snapshot("{}")).unwrap();
    assert_eq!(eval.decision.desired, 2);
    assert_healthy(&host);
}

#[test]
fn trapped_instance_is_rebuilt_with_its_last_good_state() {
    let host = host();
    let policy = host
        .load(&PolicySource::parse(fixtures::FLAKY_COUNTER))
        .unwrap();
    let mut instance = policy.instantiate("{}").unwrap();
    for n in 1..=3 {
        assert_eq!(
            instance.evaluate(&snapshot("{}")).unwrap().decision.desired,
            n
        );
    }
    let e = instance
        .evaluate(&snapshot(r#"{"custom": {"trap": 1}}"#))
        .expect_err("traps");
    assert!(matches!(e, PolicyError::Trap { .. }), "{e:?}");
    // The 4th evaluation trapped, so its count was never saved: the rebuilt
    // instance continues from the last good state (3).
    assert_eq!(
        instance.evaluate(&snapshot("{}")).unwrap().decision.desired,
        4
    );
    assert!(instance.rebuilds() >= 1);
    assert_healthy(&host);
}

#[test]
fn forbidden_imports_are_refused_and_listed() {
    let host = host();
    let path = fixtures::wat("forbidden_import");
    let e = host.load(&PolicySource::File(path)).expect_err("refused");
    match &e {
        PolicyError::ForbiddenImports { imports } => {
            assert_eq!(
                imports,
                &["wasi:filesystem/preopens@0.2.0", "wasi:sockets/tcp@0.2.0"]
            );
        }
        other => panic!("expected ForbiddenImports, got {other:?}"),
    }
    assert!(e.to_string().contains("wasi:filesystem/preopens@0.2.0"));
    assert_healthy(&host);
}

#[test]
fn wrong_contract_version_and_missing_exports_are_refused() {
    let host = host();
    let e = host
        .load(&PolicySource::File(fixtures::wat("wrong_version")))
        .expect_err("refused");
    assert!(
        matches!(&e, PolicyError::ContractVersion { built_for } if built_for == "0.9.0"),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "policy was built for contract 0.9.0; this host runs wasmscale:policy 0.1.x and 0.2.x"
    );
    assert_eq!(e.kind(), "contract");
    let e = host
        .load(&PolicySource::File(fixtures::wat("no_exports")))
        .expect_err("refused");
    assert!(
        matches!(&e, PolicyError::Contract(m) if m.contains("evaluate")),
        "{e:?}"
    );
    let e = host
        .load(&PolicySource::File(fixtures::wat("not_a_component")))
        .expect_err("refused");
    assert!(matches!(e, PolicyError::Compile(_)), "{e:?}");
    let e = host
        .load(&PolicySource::parse("builtin:nope"))
        .expect_err("refused");
    assert!(matches!(e, PolicyError::UnknownBuiltin { .. }), "{e:?}");
    assert_healthy(&host);
}

#[test]
fn oversized_module_is_refused_before_compiling() {
    // A real component, bigger than this host accepts.
    let host = host_with(Limits {
        max_module_bytes: 4 << 10,
        ..Limits::default()
    });
    let e = host
        .load(&PolicySource::parse(fixtures::FLAKY_COUNTER))
        .expect_err("refused");
    assert!(
        matches!(e, PolicyError::ModuleTooLarge { max, .. } if max == 4 << 10),
        "{e:?}"
    );
    let e = host
        .load(&PolicySource::parse("/no/such/policy.wasm"))
        .expect_err("refused");
    assert!(matches!(e, PolicyError::Read { .. }), "{e:?}");
    assert_healthy(&host_with(Limits::default()));
}

#[test]
fn every_hostile_fixture_in_one_host_then_healthy() {
    let host = host();
    for (path, params) in [
        (fixtures::INFINITE_LOOP, "{}"),
        (fixtures::MEMORY_BOMB, "{}"),
        (fixtures::DEEP_RECURSION, "{}"),
        (fixtures::UNREACHABLE, "{}"),
        (fixtures::BAD_DECISION, r#"{"desired":"nan"}"#),
        (fixtures::LOG_SPAM, "{}"),
    ] {
        let _ = evaluate_fixture(&host, path, params);
    }
    assert_healthy(&host);
}
