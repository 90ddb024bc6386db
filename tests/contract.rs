//! The 0.2 contract draft (`wit/v0.2`), with a real 0.2 component (the
//! `v2-queue` fixture) beside the 0.1 built-ins: the version is told from the
//! component, declared signals arrive in order with unknown as unknown, a
//! tick is one sandbox call, state comes back only when it changed and is
//! capped, bad manifests are typed errors, `hold` is no recommendation, a
//! decision's per-pool counts and replicas to remove first are checked
//! against the tick, guarded, and reach the simulated cluster (or are
//! recorded as ignored by a target without pools).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail by panicking"
)]

use wasmscale::guard::{self, GuardConfig, GuardRules, GuardState, Tick};
use wasmscale::host::{Contract, PolicyError, PolicySource};
use wasmscale_tests::{block_on, fixtures, host, snapshot};

/// The checked-in 0.1 build of `builtin:queue-depth` (`tests/fixtures/v0.1/`).
const V1_QUEUE_DEPTH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/v0.1/queue-depth.wasm"
);

fn v2(params: &str) -> Result<wasmscale::host::PolicyInstance, PolicyError> {
    host()
        .load(&PolicySource::parse(fixtures::V2_QUEUE))
        .unwrap()
        .instantiate(params)
}

#[test]
fn the_contract_version_is_told_from_the_component() {
    let v2 = host()
        .load(&PolicySource::parse(fixtures::V2_QUEUE))
        .unwrap();
    assert_eq!(v2.contract(), Contract::V2);
    let v1 = host().load(&PolicySource::parse(V1_QUEUE_DEPTH)).unwrap();
    assert_eq!(v1.contract(), Contract::V1);
    // The built-ins are 0.2 now.
    let builtin = host()
        .load(&PolicySource::parse("builtin:queue-depth"))
        .unwrap();
    assert_eq!(builtin.contract(), Contract::V2);
    let instance = v2.instantiate(r#"{"target_per_replica": 10}"#).unwrap();
    assert_eq!(
        instance.contract(),
        (
            Some(Contract::V2),
            vec!["queue_depth".to_owned(), "custom:backlog".to_owned()]
        )
    );
}

#[test]
fn declared_signals_arrive_in_order_and_unknown_stays_unknown() {
    let mut p = v2(r#"{"target_per_replica": 10}"#).unwrap();
    let both = snapshot(
        r#"{"queue_depth": 30, "custom": [{"name": "backlog", "value": 20}]}"#,
        1,
    );
    let d = p.evaluate(&both).unwrap().decision;
    assert_eq!((d.desired, d.hold), (5, false), "{}", d.reason);
    // The custom metric unknown: the policy sees none, not 0 from the host.
    let queue_only = snapshot(r#"{"queue_depth": 30}"#, 5);
    assert_eq!(p.evaluate(&queue_only).unwrap().decision.desired, 3);
    // Its first signal unknown: it holds, at the current count.
    let none = snapshot(r#"{"request_rate": 5}"#, 4);
    let held = p.evaluate(&none).unwrap().decision;
    assert!(held.hold, "{}", held.reason);
    assert_eq!(held.desired, 4);
}

#[test]
fn a_tick_is_one_sandbox_call_and_state_comes_back_only_when_it_changed() {
    let mut p = v2(r#"{"target_per_replica": 10}"#).unwrap();
    let s = snapshot(r#"{"queue_depth": 30}"#, 1);
    let before = p.sandbox_calls();
    p.evaluate(&s).unwrap();
    assert_eq!(
        p.sandbox_calls() - before,
        1,
        "0.2: evaluate and state in one call"
    );
    assert_eq!(p.last_good_state(), 1u32.to_le_bytes());
    // The same decision: no new state, the last one is kept.
    p.evaluate(&s).unwrap();
    assert_eq!(p.last_good_state(), 1u32.to_le_bytes());
    p.evaluate(&snapshot(r#"{"queue_depth": 90}"#, 3)).unwrap();
    assert_eq!(p.last_good_state(), 2u32.to_le_bytes());
    assert_eq!(
        p.save_state().unwrap(),
        2u32.to_le_bytes(),
        "no call needed"
    );

    // A 0.1 policy takes two calls a tick: evaluate, then save-state.
    let mut old = host()
        .load(&PolicySource::parse(V1_QUEUE_DEPTH))
        .unwrap()
        .instantiate(r#"{"target_per_replica": 10}"#)
        .unwrap();
    let before = old.sandbox_calls();
    old.evaluate(&s).unwrap();
    assert_eq!(old.sandbox_calls() - before, 2);
}

#[test]
fn state_past_the_cap_is_a_typed_error_and_the_last_good_state_stays() {
    let mut p = v2(r#"{"target_per_replica": 10, "state_bytes": 100000}"#).unwrap();
    let e = p
        .evaluate(&snapshot(r#"{"queue_depth": 30}"#, 1))
        .unwrap_err();
    assert_eq!(e.kind(), "state-limit", "{e}");
    assert!(p.last_good_state().is_empty());
}

#[test]
fn bad_manifests_are_refused_at_configure() {
    for (params, says) in [
        (
            r#"{"signals": ["gpu_utilisation"]}"#,
            "unknown signal `gpu_utilisation`",
        ),
        (r#"{"signals": ["queue_depth"]}"#, "declared twice"),
        (r#"{"signals": ["custom:"]}"#, "unknown signal"),
        (r#"{"many": 1000}"#, "at most 256"),
    ] {
        let e = v2(params).unwrap_err();
        assert_eq!(e.kind(), "manifest", "{params}: {e}");
        assert!(e.to_string().contains(says), "{params}: {e}");
        assert!(e.to_string().len() < 1000, "bounded: {e}");
    }
}

#[test]
fn a_hold_enters_no_recommendation() {
    // Scale-down stabilization over 300 s: a recommendation of 10 at t=0 keeps
    // the count at 10 for 300 s. Holds in between add nothing, so once the
    // window has passed a low proposal goes through.
    let config = GuardConfig::new(1, 20, GuardRules::default());
    let mut state = GuardState::default();
    let v = guard::apply(&config, &mut state, Tick::new(0, 10, Some(10)));
    assert_eq!(v.replicas, 10);
    let history = |s: &GuardState| s.recommendations.as_ref().map_or(0, Vec::len);
    let recorded = history(&state);
    for t in [60_000, 120_000, 240_000] {
        let hold = Tick {
            hold: true,
            ..Tick::new(t, 10, Some(10))
        };
        let v = guard::apply(&config, &mut state, hold);
        assert_eq!((v.replicas, v.act), (10, true));
        assert_eq!(
            history(&state),
            recorded,
            "a hold at {t} ms is not recorded"
        );
    }
    // The same proposals as plain decisions are recorded.
    let mut plain = GuardState::default();
    guard::apply(&config, &mut plain, Tick::new(0, 10, Some(10)));
    guard::apply(&config, &mut plain, Tick::new(60_000, 10, Some(10)));
    assert!(history(&plain) > recorded);
}

#[test]
fn validate_checks_that_the_source_fills_every_declared_signal() {
    let dir = tempfile::tempdir().unwrap();
    let config = |metrics: &str| {
        format!(
            "[admin]\nlisten = \"\"\n[[scaler]]\nname = \"q\"\npolicy = {:?}\nparams = {{ target_per_replica = 10 }}\nmin_replicas = 1\nmax_replicas = 9\nmetrics = {{ {metrics} }}\n",
            fixtures::V2_QUEUE
        )
    };
    // The queue is what it cannot decide without (it holds): an error that
    // names it and how to fill it.
    let path = wasmscale_tests::write_file(dir.path(), "c.toml", &config("backlog = 5"));
    let errors = wasmscale::controller::load(&path, &host())
        .unwrap_err()
        .to_string();
    assert!(
        errors.contains(
            "reads `queue_depth` (its manifest), which this scaler's source does not fill, and cannot decide without: it holds: queue_depth unknown"
        ),
        "{errors}"
    );
    assert!(errors.contains("add metrics.queue_depth"), "{errors}");
    // The backlog is optional to it (it counts 0): no error without it.
    for metrics in ["queue_depth = 5", "queue_depth = 5, backlog = 2"] {
        let path = wasmscale_tests::write_file(dir.path(), "ok.toml", &config(metrics));
        wasmscale::controller::load(&path, &host()).unwrap_or_else(|e| panic!("{metrics}: {e}"));
    }
}

#[test]
fn a_built_in_under_0_2_decides_as_its_0_1_build() {
    let params = std::fs::read_to_string(wasmscale_tests::from_root(
        "examples/seed-thresholds/params.json",
    ))
    .unwrap();
    let load = |p: &str| {
        host()
            .load(&PolicySource::parse(p))
            .unwrap()
            .instantiate(&params)
            .unwrap()
    };
    let (mut v1, mut v2) = (
        load(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/v0.1/step-scaling.wasm"
        )),
        load("builtin:step-scaling"),
    );
    assert_eq!(
        v2.contract().1,
        ["request_rate"],
        "it reads what its params name, and no replica count beyond the current one"
    );
    let text = std::fs::read_to_string(wasmscale_tests::from_root(
        "examples/seed-thresholds/snapshots.jsonl",
    ))
    .unwrap();
    let mut current = 1;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let s = snapshot(line, current);
        let (a, b) = (v1.evaluate(&s).unwrap(), v2.evaluate(&s).unwrap());
        assert_eq!(a.decision, b.decision, "{line}");
        current = a.decision.desired;
    }
    // Its (empty) state never changes, so it is never sent.
    assert!(v2.last_good_state().is_empty());
}

#[test]
fn a_0_2_component_that_also_exports_save_state_is_refused() {
    let e = host()
        .load(&PolicySource::parse(fixtures::V2_EXPORTS_SAVE_STATE))
        .unwrap_err();
    assert_eq!(e.kind(), "contract", "{e}");
    assert!(
        e.to_string().contains("a 0.2 policy exports save-state"),
        "{e}"
    );
    // The host stays healthy.
    assert!(v2(r#"{"target_per_replica": 10}"#).is_ok());
}

#[test]
fn a_hold_goes_through_the_tick_as_a_decision_not_a_failure() {
    use wasmscale::actuators::Memory;
    use wasmscale::config::{MetricQuery, ScalerConfig};
    use wasmscale::controller::Scaler;
    use wasmscale::sources::Fixed;
    let params = serde_json::json!({ "target_per_replica": 10 });
    let config = ScalerConfig::minimal("q", fixtures::V2_QUEUE, &params, 1, 20, 15.0).unwrap();
    let host = host();
    // The source fills no queue depth: the policy holds, every tick.
    let metrics = [("request_rate".to_owned(), MetricQuery::Value(3.0))].into();
    let mut scaler = Scaler::with_io(
        &config,
        std::path::Path::new("."),
        &host,
        Box::new(Fixed::new(&metrics)),
        Box::new(Memory::new(4)),
    )
    .unwrap();
    for tick in 0..3 {
        let record = block_on(scaler.tick(1_000_000 + tick * 15_000));
        assert!(record.failures.is_empty(), "{:?}", record.failures);
        let decision = record.decision.unwrap();
        assert!(decision.hold, "{}", decision.reason);
        assert_eq!((record.previous_replicas, record.final_replicas), (4, 4));
        assert!(record.guardrails.is_empty(), "{:?}", record.guardrails);
    }
    assert_eq!(
        scaler.state().failed_ticks,
        0,
        "a hold is not a failed tick"
    );
}

/// Two pools and three replicas, as a target with pools would report them.
const POOLED: &str = r#"{"queue_depth": 60, "replicas": {"current": 4},
    "pools": [{"name": "on-demand", "capacity": "on-demand", "current": 4, "price_per_hour": 2.5},
              {"name": "spot", "capacity": "spot", "current": 0, "price_per_hour": 0.9,
               "interruptions_per_hour": 0.05, "max": 3}],
    "pods": [{"id": "a", "pool": "on-demand", "state": "ready", "age_s": 900,
              "metrics": [{"name": "kv", "value": 0.4}]},
             {"id": "b", "pool": "on-demand", "state": "ready", "age_s": 60,
              "metrics": [{"name": "kv", "value": 0.0}], "requests": [{"name": "kv", "value": 1.0}]},
             {"id": "c", "pool": "on-demand", "state": "ready", "age_s": 30,
              "metrics": [{"name": "kv", "value": 0.0}]}]}"#;

#[test]
fn a_decision_sets_a_count_per_pool_and_the_host_checks_it_against_the_tick() {
    let s = snapshot(POOLED, 4);
    let mut p = v2(r#"{"spot_share": 0.5}"#).unwrap();
    let d = p.evaluate(&s).unwrap().decision;
    assert_eq!(d.desired, 6);
    let pools: Vec<(&str, u32)> = d
        .pools
        .iter()
        .map(|t| (t.pool.as_str(), t.replicas))
        .collect();
    assert_eq!(pools, [("on-demand", 3), ("spot", 3)]);
    // Hostile: targets that do not sum, and a pool the tick lacks, are typed
    // errors; the instance keeps deciding afterwards.
    for (params, why) in [
        (r#"{"spot_share": 0.5, "bad_sum": true}"#, "sum to 5"),
        (
            r#"{"spot_share": 0.5, "ghost_pool": true}"#,
            "reserved-nowhere",
        ),
    ] {
        let mut bad = v2(params).unwrap();
        let e = bad.evaluate(&s).unwrap_err();
        assert!(matches!(e, PolicyError::InvalidDecision(_)), "{e}");
        assert!(e.to_string().contains(why), "{e}");
        assert_eq!(e.kind(), "invalid-decision");
    }
    // A tick with no pools: a split is a decision about pools that do not exist.
    let e = p
        .evaluate(&snapshot(r#"{"queue_depth": 60}"#, 4))
        .unwrap_err();
    assert!(e.to_string().contains("none"), "{e}");
    assert_eq!(p.evaluate(&s).unwrap().decision.desired, 6);
}

#[test]
fn replicas_arrive_with_id_pool_state_age_values_and_requests_and_a_decision_names_victims() {
    let s = snapshot(POOLED, 4);
    let mut p = v2(r#"{"replica_signals": ["kv"]}"#).unwrap();
    // What `check` prints: the per-replica signals a policy declared.
    assert_eq!(p.replica_signals(), Some(vec!["kv".to_owned()]));
    let d = p.evaluate(&s).unwrap().decision;
    // Idle (kv 0) replicas, youngest first: c (30 s), then b (60 s).
    assert_eq!(d.remove_first, ["c", "b"]);
    // A policy that names a replica the tick lacks: a typed error.
    let mut ghost = v2(r#"{"replica_signals": ["kv"], "ghost_victim": true}"#).unwrap();
    let e = ghost.evaluate(&s).unwrap_err();
    assert!(matches!(e, PolicyError::InvalidDecision(_)), "{e}");
    assert!(e.to_string().contains("no-such-replica"), "{e}");
    // A policy that declares no replica signals gets no replicas at all.
    let mut blind = v2("{}").unwrap();
    assert_eq!(blind.replica_signals(), None);
    assert!(blind.evaluate(&s).unwrap().decision.remove_first.is_empty());
    // Empty per-replica names are refused at configure.
    let e = v2(r#"{"replica_signals": [""]}"#).unwrap_err();
    assert!(matches!(e, PolicyError::Manifest(_)), "{e}");
}

#[test]
fn the_guard_fits_pool_targets_to_the_settled_total_and_each_pools_bounds() {
    use wasmscale::guard::{PoolBounds, PoolLimits};
    use wasmscale::model::PoolTarget;
    let target = |pool: &str, replicas| PoolTarget {
        pool: pool.into(),
        replicas,
    };
    let limits: PoolLimits = [(
        "spot".to_owned(),
        PoolBounds {
            min: 0,
            max: Some(3),
        },
    )]
    .into();
    let config = GuardConfig::bounds(1, 8).with_pools(limits);
    let mut state = GuardState::default();
    // 10 asked (2 on demand, 8 spot): bounds cut the total to 8, the split
    // scales to it (2:6, largest remainder), and spot's max of 3 moves 3 to
    // on demand.
    let wanted = [target("on-demand", 2), target("spot", 8)];
    let tick = Tick {
        pools: &wanted,
        ..Tick::new(0, 4, Some(10))
    };
    let v = guard::apply(&config, &mut state, tick);
    assert_eq!(v.replicas, 8);
    assert_eq!(v.pools, [target("on-demand", 5), target("spot", 3)]);
    let pools = v.interventions.iter().find(|i| i.guard == "pools").unwrap();
    assert_eq!(
        pools.why,
        "asked on-demand 2, spot 6; kept on-demand 5, spot 3"
    );
    // A split no bounds can hold is dropped; the total stands.
    let tight: PoolLimits = [
        (
            "on-demand".to_owned(),
            PoolBounds {
                min: 0,
                max: Some(1),
            },
        ),
        (
            "spot".to_owned(),
            PoolBounds {
                min: 0,
                max: Some(1),
            },
        ),
    ]
    .into();
    let config = GuardConfig::bounds(1, 8).with_pools(tight);
    let v = guard::apply(&config, &mut GuardState::default(), tick);
    assert_eq!((v.replicas, v.pools.len()), (8, 0));
    assert!(
        v.interventions
            .iter()
            .any(|i| i.why.contains("no split of 8"))
    );
}

/// A scaler on the `v2-queue` fixture with `params`, bounds 1..20, no rate limit.
fn pooled_scaler(
    params: &str,
    source: wasmscale::sources::Recorded,
    target: Box<dyn wasmscale::Actuator>,
) -> wasmscale::Scaler {
    let text = format!(
        r#"[[scaler]]
name = "pooled"
policy = {policy:?}
params = {params}
min_replicas = 1
max_replicas = 20
[scaler.guard]
rate = "none"
"#,
        policy = fixtures::V2_QUEUE,
    );
    let config: wasmscale::Config = toml::from_str(&text).unwrap();
    wasmscale::Scaler::builder(&config.scalers[0], std::path::Path::new("."), &host())
        .io(Box::new(source), target)
        .build()
        .unwrap()
}

#[test]
fn pools_reach_the_simulated_cluster_and_a_target_without_pools_records_it_ignored_them() {
    use wasmscale::sim::{Cluster, ServiceModel, SimulatedCluster};
    use wasmscale::sources::Recorded;
    let queue = |q: u32| {
        (
            snapshot(&format!(r#"{{"queue_depth": {q}}}"#), 4),
            Vec::new(),
        )
    };
    let model = ServiceModel {
        spot_interruptions_per_hour: 0.0,
        ..ServiceModel::fluid()
    };
    let cluster = SimulatedCluster::new(Cluster::new(model, 4, 1));
    let mut s = pooled_scaler(
        r#"{ spot_share = 0.5 }"#,
        Recorded::new([queue(60)]),
        Box::new(cluster.clone()),
    );
    let r = block_on(s.tick(0));
    assert!(r.failures.is_empty(), "{r:?}");
    // The cluster's pools reached the policy, and its split reached the cluster.
    let seen = r.snapshot.as_ref().unwrap();
    assert_eq!(
        seen.pools
            .iter()
            .map(|p| (p.name.as_str(), p.current))
            .collect::<Vec<_>>(),
        [("on-demand", 4), ("spot", 0)]
    );
    let split: Vec<(&str, u32)> = r
        .pools
        .iter()
        .map(|t| (t.pool.as_str(), t.replicas))
        .collect();
    assert_eq!(split, [("on-demand", 3), ("spot", 3)]);
    assert!(r.ignored.is_empty(), "{r:?}");
    assert_eq!(r.final_replicas, 6);
    // Over time the running on-demand replica beyond 3 is replaced by spot.
    for _ in 0..2000 {
        cluster.lock().advance(10.0, 0.0);
    }
    let [on_demand, spot] = cluster.lock().pools();
    assert_eq!((on_demand.1, spot.1), (3, 3), "ready on demand, ready spot");

    // A target without pools (and without scale-in choice) sets the count
    // alone and says what it ignored.
    let mut pooled = snapshot(POOLED, 4);
    pooled.queue_depth = Some(20.0);
    let mut s = pooled_scaler(
        r#"{ spot_share = 0.5, replica_signals = ["kv"] }"#,
        Recorded::new([(pooled, Vec::new())]),
        Box::new(wasmscale::actuators::Memory::new(4)),
    );
    let r = block_on(s.tick(0));
    assert!(r.failures.is_empty(), "{r:?}");
    let d = r.decision.as_ref().unwrap();
    assert_eq!(d.remove_first, ["c", "b"]);
    assert_eq!((r.final_replicas, r.wrote), (2, true));
    assert_eq!(r.ignored, ["pools", "remove-first"]);
    // The audit line carries both, and reads back.
    let line = serde_json::to_string(&r).unwrap();
    assert!(
        line.contains(r#""ignored":["pools","remove-first"]"#),
        "{line}"
    );
    let back: wasmscale::AuditRecord = serde_json::from_str(&line).unwrap();
    assert_eq!(back.snapshot.unwrap().pods[1].id.as_deref(), Some("b"));
}
