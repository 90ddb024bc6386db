//! The host's own promises with real components: the compiled-policy cache,
//! the pooling allocator, metering, and state handed between instances.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail by panicking"
)]

use wasmscale::host::{DiskCache, Host, HostConfig, Limits, PolicySource};
use wasmscale::snapshot::{Defaults, from_json};
use wasmscale_tests::{host, snapshot};

#[test]
fn cache_is_keyed_by_digest_and_survives_a_corrupt_entry() {
    let dir = tempfile::tempdir().unwrap();
    let config = || HostConfig {
        cache: Some(DiskCache::new(dir.path())),
        ..HostConfig::default()
    };
    let source = PolicySource::parse("builtin:queue-depth");
    let first = Host::new(config()).unwrap().load(&source).unwrap();
    assert!(!first.from_cache());
    let entries: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1);
    let name = entries[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(name.starts_with(first.digest()), "{name}");

    // A new process (a new host) loads it from the cache.
    let second = Host::new(config()).unwrap().load(&source).unwrap();
    assert!(second.from_cache());
    assert_eq!(second.digest(), first.digest());

    // A corrupt entry is ignored and replaced, never trusted.
    std::fs::write(&entries[0], b"not a compiled component").unwrap();
    let third = Host::new(config()).unwrap().load(&source).unwrap();
    assert!(!third.from_cache());
    let mut i = third.instantiate(r#"{"target_per_replica": 10}"#).unwrap();
    assert_eq!(
        i.evaluate(&snapshot(r#"{"queue_depth": 95}"#, 1))
            .unwrap()
            .decision
            .desired,
        10
    );
    assert!(
        Host::new(config())
            .unwrap()
            .load(&source)
            .unwrap()
            .from_cache()
    );
}

#[test]
fn pooling_allocator_host_runs_policies() {
    let host = Host::new(HostConfig {
        pooling_instances: Some(16),
        ..HostConfig::default()
    })
    .unwrap();
    let compiled = host
        .load(&PolicySource::parse("builtin:queue-depth"))
        .unwrap();
    let mut instances: Vec<_> = (0..16)
        .map(|_| {
            compiled
                .instantiate(r#"{"target_per_replica": 5}"#)
                .unwrap()
        })
        .collect();
    for i in &mut instances {
        assert_eq!(
            i.evaluate(&snapshot(r#"{"queue_depth": 12}"#, 1))
                .unwrap()
                .decision
                .desired,
            3
        );
    }
    // The pool is full: a 17th instance is a typed error, not a panic.
    let e = compiled.instantiate("{}").unwrap_err();
    assert_eq!(e.kind(), "instantiate", "{e:?}");
    drop(instances);
    assert!(compiled.instantiate(r#"{"target_per_replica": 5}"#).is_ok());
}

#[test]
fn every_evaluation_reports_fuel_and_time() {
    let host = host();
    let compiled = host
        .load(&PolicySource::parse("builtin:target-tracking"))
        .unwrap();
    let mut i = compiled
        .instantiate(wasmscale::host::builtin_example_params("target-tracking").unwrap())
        .unwrap();
    let eval = i
        .evaluate(&snapshot(
            r#"{"gpu_utilization": 0.9, "pods": [{"state": "ready", "metrics": [{"name": "cpu", "value": 0.9}], "request": 1}]}"#,
            1,
        ))
        .unwrap();
    assert!(
        eval.cost.fuel > 100 && eval.cost.fuel < Limits::default().fuel,
        "{:?}",
        eval.cost
    );
    assert!(eval.cost.elapsed.as_nanos() > 0);
    assert_eq!(eval.decision.desired, 2);
    assert!(
        eval.decision.reason.contains("utilization"),
        "{}",
        eval.decision.reason
    );
}

#[test]
fn state_moves_between_instances_like_a_hot_swap() {
    let host = host();
    let compiled = host
        .load(&PolicySource::parse("builtin:queue-depth"))
        .unwrap();
    let params = r#"{"target_per_replica": 10, "cooldown_seconds": 60}"#;
    let mut old = compiled.instantiate(params).unwrap();
    old.evaluate(
        &from_json(
            r#"{"time_ms": 0, "queue_depth": 30}"#,
            Defaults {
                time_ms: 0,
                interval_ms: 1000,
                current: 0,
            },
        )
        .unwrap()
        .0,
    )
    .unwrap();
    let state = old.save_state().unwrap();
    assert!(!state.is_empty());
    let mut new = compiled.instantiate(params).unwrap();
    new.load_state(&state).unwrap();
    // 30 s later the queue is empty: the new instance knows it is still cooling down.
    let later = from_json(
        r#"{"time_ms": 30000, "queue_depth": 0}"#,
        Defaults {
            time_ms: 0,
            interval_ms: 1000,
            current: 3,
        },
    )
    .unwrap()
    .0;
    assert_eq!(new.evaluate(&later).unwrap().decision.desired, 3);
    let fresh = compiled
        .instantiate(params)
        .unwrap()
        .evaluate(&later)
        .unwrap();
    assert_eq!(
        fresh.decision.desired, 0,
        "without the state it would scale to zero"
    );
    // Garbage state is refused with a typed error.
    let e = new.load_state(b"\xff\xfe").unwrap_err();
    assert_eq!(e.kind(), "load-state");
}

#[test]
fn one_host_compiles_a_policy_once() {
    let host = host();
    let source = PolicySource::parse("builtin:step-scaling");
    let first = host.load(&source).unwrap();
    for _ in 0..10 {
        assert!(host.load(&source).unwrap().same_compilation(&first));
    }
    host.forget_loaded();
    assert!(!host.load(&source).unwrap().same_compilation(&first));
}
