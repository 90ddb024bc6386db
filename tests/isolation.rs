//! One process shared by a hostile tenant and a quiet one. Tenant A runs an
//! infinite loop, a memory bomb, log spam, a state bomb and 200 scalers that
//! each burn their whole 10 ms deadline; tenant B's 1,000 scalers tick
//! beside them. B's decisions must be those of a run without A, A's
//! scalers must hold and say why, and both runs' tick lag is printed (the
//! README quotes it).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail by panicking"
)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use wasmscale_tests::{fixtures, host, write_file};

const B_SCALERS: usize = 1000;
const A_BURNERS: usize = 200;
const TICKS: u64 = 8;

fn b_scalers() -> String {
    (0..B_SCALERS)
        .map(|i| {
            format!(
                "[[scaler]]\nname = \"b-{i}\"\ntenant = \"b\"\npolicy = \"builtin:queue-depth\"\n\
                 params = {{ target_per_replica = 10 }}\nmin_replicas = 1\nmax_replicas = 8\n\
                 interval_seconds = 1\nmetrics = {{ queue_depth = {} }}\n",
                i % 50
            )
        })
        .collect()
}

fn a_scalers() -> String {
    // Each passes its trial evaluation and its first tick, then turns.
    let hostile = |name: &str, then: &str, limits: &str| {
        format!(
            "[[scaler]]\nname = \"a-{name}\"\ntenant = \"a\"\npolicy = \"{}\"\n\
             params = {{ after = 1, then = \"{then}\" }}\n\
             min_replicas = 2\nmax_replicas = 8\ninterval_seconds = 1\n\
             metrics = {{ queue_depth = 10 }}\n{limits}",
            fixtures::SLEEPER
        )
    };
    // Fuel to spare: each evaluation runs until its wall-clock deadline.
    let burn = "limits = { fuel = 1000000000000, deadline = 10 }\n";
    let mut out: String = (0..A_BURNERS)
        .map(|i| hostile(&format!("burn-{i}"), "loop", burn))
        .collect();
    out += &hostile("loop", "loop", "");
    out += &hostile("memory-bomb", "memory", "");
    out += &hostile("log-spam", "log", "");
    out += &hostile("state-bomb", "state", "");
    out
}

const TOP: &str = r#"state_dir = "state"
[audit]
path = "audit.jsonl"
[admin]
listen = ""
auth = "tokens"
[tiers.free.quotas]
concurrency = 1
fuel_per_second = 200000000
"#;

/// Run the config to the end; its summary, and its audit records by scaler.
fn run(
    dir: &Path,
    scalers: &str,
) -> (
    wasmscale::RunSummary,
    BTreeMap<String, Vec<serde_json::Value>>,
) {
    let store = wasmscale::tenants::Tenants::open(&dir.join("state")).unwrap();
    store.create("a", Some("free")).unwrap();
    store.create("b", None).unwrap();
    drop(store);
    let path = write_file(dir, "wasmscale.toml", &format!("{TOP}{scalers}"));
    let summary = wasmscale::cli::serve(Arc::new(host()), &path, Some(TICKS), false).unwrap();
    let mut by_scaler: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    for line in std::fs::read_to_string(dir.join("audit.jsonl"))
        .unwrap()
        .lines()
    {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        by_scaler
            .entry(r["scaler"].as_str().unwrap().to_owned())
            .or_default()
            .push(r);
    }
    (summary, by_scaler)
}

/// What a B scaler decided on each tick: the proposal, the replicas set,
/// and any failure.
fn decisions(records: &[serde_json::Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| {
            format!(
                "{} -> {} {:?}",
                r["decision"]["desired"], r["final_replicas"], r["failures"]
            )
        })
        .collect()
}

#[test]
fn a_hostile_tenant_changes_nothing_of_a_quiet_one() {
    let alone = tempfile::tempdir().unwrap();
    let (quiet, quiet_records) = run(alone.path(), &b_scalers());
    let shared = tempfile::tempdir().unwrap();
    let (noisy, noisy_records) = run(shared.path(), &format!("{}{}", a_scalers(), b_scalers()));

    // B decides exactly as it did alone.
    for i in 0..B_SCALERS {
        let name = format!("b-{i}");
        let alone = decisions(&quiet_records[&name]);
        assert_eq!(alone.len() as u64, TICKS, "{name}");
        assert_eq!(decisions(&noisy_records[&name]), alone, "{name}");
        assert!(
            alone.iter().all(|d| d.ends_with(" Null")),
            "{name}: {alone:?}"
        );
    }
    // A's scalers hold at what they run and say why on every tick.
    // What each may fail with: its own misbehaviour, or a throttle (its
    // tenant's one evaluation slot is busy with 200 burners, so which ticks
    // of a given scaler are evaluated varies from run to run; the host's
    // answer to each misbehaviour is tested alone in tests/hostile.rs), or
    // the deadline: A's isolated evaluations run at the lowest OS priority,
    // so on a busy machine the clock may run out before the fuel or memory.
    let expected = |name: &str| -> &[&str] {
        match name {
            "a-loop" => &["out-of-fuel", "throttled", "deadline"],
            "a-memory-bomb" => &["memory-limit", "throttled", "deadline"],
            "a-log-spam" => &["log-limit", "throttled", "deadline"],
            "a-state-bomb" => &["state-limit", "throttled", "deadline"],
            _ => &["deadline", "throttled"],
        }
    };
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for (name, records) in noisy_records.iter().filter(|(n, _)| n.starts_with("a-")) {
        assert_eq!(records.len() as u64, TICKS, "{name}");
        // The first tick behaves; every later one fails, and says why.
        assert!(records[0]["failures"].is_null(), "{name}: {}", records[0]);
        for r in &records[1..] {
            let failures = r["failures"].as_array().map_or(&[][..], Vec::as_slice);
            assert!(!failures.is_empty(), "{name} decided: {r}");
            for f in failures {
                let kind = f["kind"].as_str().unwrap();
                assert!(expected(name).contains(&kind), "{name}: {f}");
                assert!(!f["message"].as_str().unwrap().is_empty());
                *kinds.entry(kind.to_owned()).or_default() += 1;
            }
            assert_eq!(
                r["final_replicas"], r["previous_replicas"],
                "{name} held: {r}"
            );
        }
    }
    for kind in ["deadline", "throttled"] {
        assert!(
            kinds.contains_key(kind),
            "no A scaler failed with {kind}: {kinds:?}"
        );
    }
    let throttled = noisy.throttled_by_tenant.get("a").copied().unwrap_or(0);
    assert!(throttled > 0, "{noisy:?}");
    assert_eq!(
        noisy.throttled_by_tenant.get("b"),
        None,
        "B is never throttled"
    );
    assert!(noisy.lost_scalers.is_empty() && quiet.lost_scalers.is_empty());

    let p = |s: &wasmscale::RunSummary, t: &str, q: f64| s.tenant_lag_percentile_ms(t, q).unwrap();
    println!(
        "isolation: B tick lag p50/p99 alone {}/{} ms, beside A {}/{} ms; A's ticks: {kinds:?} ({} throttled)",
        p(&quiet, "b", 50.0),
        p(&quiet, "b", 99.0),
        p(&noisy, "b", 50.0),
        p(&noisy, "b", 99.0),
        throttled
    );
}
