//! Kubernetes HPA conformance: every row of the upstream-derived case table that
//! this suite covers, run through the real `builtin:target-tracking` component.
//!
//! The table is `$WASMSCALE_HPA_CASES` (relative paths are taken from the
//! repository root), default `../shared/hpa/hpa_cases_sample.csv`. One line is
//! printed per mismatch, then `hpa conformance: N/M rows match`; any mismatch
//! fails the test. Every row kind is covered:
//! - `RC`: the replica calculator, through the real `builtin:target-tracking` component;
//! - `SL`, `SB`, `CR`, `CL`, `BR`: the guardrail stages (`runtime/src/guard/hpa.rs`) on a fake clock;
//! - `HT`: the whole loop, component + guardrails with min/max (`guard::apply`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail by panicking"
)]

use serde_json::json;
use std::collections::HashMap;
use wasmscale::guard::hpa::{self, Behavior, Recommendation, ScaleEvent, ScalingRules};
use wasmscale::guard::{self, GuardConfig, GuardRules, GuardState, Rate, Tick};
use wasmscale::host::{CompiledPolicy, PolicySource};
use wasmscale::model::Snapshot;
use wasmscale::snapshot::{self, Defaults};
use wasmscale_tests::{from_root, host, shared};

type Row = HashMap<String, String>;

/// The HPA cases: `WASMSCALE_HPA_CASES`, else `../shared/hpa/` (skipped,
/// with a message, where that is absent).
fn read_rows() -> Option<(String, Vec<Row>)> {
    let full = match std::env::var("WASMSCALE_HPA_CASES") {
        Ok(path) => from_root(&path),
        Err(_) => shared("hpa/hpa_cases_sample.csv")?,
    };
    let mut reader = csv::Reader::from_path(&full).unwrap_or_else(|e| {
        panic!(
            "cannot read HPA cases at {} ({e}); set WASMSCALE_HPA_CASES",
            full.display()
        )
    });
    let headers = reader.headers().expect("header row").clone();
    let rows = reader
        .records()
        .map(|r| {
            let r = r.expect("csv row");
            headers
                .iter()
                .zip(r.iter())
                .map(|(h, v)| (h.to_owned(), v.trim().to_owned()))
                .collect()
        })
        .collect();
    Some((full.display().to_string(), rows))
}

/// The policy params and snapshot that pose one `RC` row to the calculator.
fn rc_case(row: &Row) -> Result<(String, Snapshot), String> {
    // HT rows give pod totals that the upstream harness splits into two
    // containers of `level / 2` (integer division): odd values lose 1m.
    let split = row["case_id"].starts_with("HT") && row["metric_source"].starts_with("Resource");
    let source = row["metric_source"].as_str();
    let words: Vec<&str> = source.split_whitespace().collect();
    let kind = words.first().copied().unwrap_or("").to_lowercase();
    let target = row["target"].as_str();
    let milli = |s: &str| -> Result<f64, String> {
        s.trim()
            .trim_end_matches('m')
            .parse::<f64>()
            .map(|v| v / 1000.0)
            .map_err(|_| format!("bad number {s:?}"))
    };
    let target_json = if let Some(p) = target.strip_suffix('%') {
        json!({"average_utilization": p.parse::<u32>().map_err(|e| e.to_string())?})
    } else if let Some(v) = target.strip_prefix("avg ") {
        json!({"average_value": milli(v)?})
    } else if let Some(v) = target.strip_prefix("value ") {
        json!({"value": milli(v)?})
    } else {
        return Err(format!("unknown target {target:?}"));
    };
    let metric_name = match kind.as_str() {
        "resource" => words.get(1).copied().unwrap_or("cpu").to_owned(),
        _ => "m".to_owned(),
    };
    let tol = |c: &str| row[c].parse::<f64>().unwrap_or(0.1);
    let params = json!({
        "metrics": [{"type": kind, "name": metric_name, "target": target_json}],
        "tolerance_down": tol("tolerance_down"),
        "tolerance_up": tol("tolerance_up"),
    });

    let current: u32 = row["current_replicas"]
        .parse()
        .map_err(|_| "bad current_replicas")?;
    let states: Vec<&str> = row["pod_states"]
        .split(';')
        .filter(|s| !s.is_empty())
        .collect();
    let values: Vec<&str> = row["per_pod_metric"]
        .split(';')
        .filter(|s| !s.is_empty())
        .collect();
    let requests: Vec<&str> = row["per_pod_request"]
        .split(';')
        .filter(|s| !s.is_empty())
        .collect();
    let mut snap = json!({"replicas": {"current": current}});
    if let Ok(status) = row["status_replicas"].parse::<u32>() {
        snap["replicas"]["observed"] = json!(status);
    }
    match kind.as_str() {
        "resource" | "pods" => {
            let pods: Vec<_> = states
                .iter()
                .enumerate()
                .map(|(i, code)| {
                    let mut pod = json!({"state": pod_state(code)});
                    if let Some(v) = values.get(i).filter(|v| **v != "-") {
                        let mut value = milli(v)?;
                        if split {
                            value = ((value * 1000.0).round() as i64 / 2 * 2) as f64 / 1000.0;
                        }
                        pod["metrics"] = json!([{"name": metric_name, "value": value}]);
                    }
                    if let Some(r) = requests.get(i) {
                        pod["request"] = json!(milli(r)?);
                    }
                    Ok(pod)
                })
                .collect::<Result<_, String>>()?;
            snap["pods"] = json!(pods);
        }
        _ => {
            // Object/External: the metric's total (summed across series).
            let total = values
                .iter()
                .filter(|v| **v != "-")
                .map(|v| milli(v))
                .sum::<Result<f64, _>>()?;
            snap["custom"] = json!({metric_name.clone(): total});
            snap["pods"] = json!(
                states
                    .iter()
                    .map(|c| json!({"state": pod_state(c)}))
                    .collect::<Vec<_>>()
            );
        }
    }
    let defaults = Defaults {
        time_ms: 0,
        interval_ms: 15_000,
        current,
    };
    let (snapshot, _) = snapshot::from_value(snap, defaults)?;
    Ok((params.to_string(), snapshot))
}

/// Pod codes of the table → replica states. Deletion and failure win over
/// everything; then Pending; then readiness.
fn pod_state(code: &str) -> &'static str {
    if code.contains('D') {
        "deleting"
    } else if code.contains('F') {
        "failed"
    } else if code.contains('P') {
        "pending"
    } else if code.contains('U') {
        "unready"
    } else if code.contains('H') {
        "starting"
    } else {
        "ready"
    }
}

/// The clock of every timed row: ages in the table are relative to this.
const NOW_MS: u64 = 1_000_000_000;

fn num(row: &Row, col: &str) -> Result<u32, String> {
    row[col]
        .parse()
        .map_err(|_| format!("{col} is {:?}", row[col]))
}

fn seconds(s: &str) -> Result<u32, String> {
    let s = s.trim();
    let (n, mult) = if let Some(m) = s.strip_suffix('m') {
        (m, 60)
    } else {
        (s.trim_end_matches('s'), 1)
    };
    n.parse::<u32>()
        .map(|v| v * mult)
        .map_err(|_| format!("bad duration {s:?}"))
}

/// `select=Min;window=300s;policies=Pods:2/60s,Percent:50/60s`, `default`,
/// `default(...)` or a bare `window=0s`, onto the direction's defaults.
fn parse_rules(text: &str, defaults: ScalingRules) -> Result<ScalingRules, String> {
    let text = text.trim();
    let inner = text
        .strip_prefix("default")
        .map(|r| r.trim_start_matches('(').trim_end_matches(')'))
        .unwrap_or(text);
    let mut rules = defaults;
    for part in inner.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| format!("bad behavior part {part:?}"))?;
        match key.trim() {
            "select" => {
                rules.select_policy = match value.trim() {
                    "Max" => hpa::SelectPolicy::Max,
                    "Min" => hpa::SelectPolicy::Min,
                    "Disabled" => hpa::SelectPolicy::Disabled,
                    other => return Err(format!("bad select {other:?}")),
                }
            }
            "window" => rules.stabilization_window_seconds = seconds(value)?,
            "policies" => {
                rules.policies = value
                    .split(',')
                    .map(|p| {
                        let (kind, rest) = p.trim().split_once(':').ok_or("bad policy")?;
                        let (v, period) = rest.split_once('/').ok_or("bad policy")?;
                        Ok(hpa::RatePolicy {
                            kind: match kind {
                                "Pods" => hpa::RatePolicyKind::Pods,
                                "Percent" => hpa::RatePolicyKind::Percent,
                                other => return Err(format!("bad policy type {other:?}")),
                            },
                            value: v.parse().map_err(|_| "bad policy value")?,
                            period_seconds: seconds(period)?,
                        })
                    })
                    .collect::<Result<_, String>>()?
            }
            other => return Err(format!("unknown behavior key {other:?}")),
        }
    }
    Ok(rules)
}

fn behavior(row: &Row) -> Result<Behavior, String> {
    Ok(Behavior {
        scale_up: parse_rules(&row["scale_up_behavior"], ScalingRules::default_scale_up())?,
        scale_down: parse_rules(
            &row["scale_down_behavior"],
            ScalingRules::default_scale_down(),
        )?,
    })
}

/// The controller's memory: recommendations (None = a fresh controller) and events.
struct History {
    recommendations: Option<Vec<Recommendation>>,
    up: Vec<ScaleEvent>,
    down: Vec<ScaleEvent>,
}

fn history(row: &Row) -> Result<History, String> {
    let mut h = History {
        recommendations: Some(Vec::new()),
        up: Vec::new(),
        down: Vec::new(),
    };
    let at = |item: &str| -> Result<(u32, u64), String> {
        let (n, age) = item
            .trim()
            .split_once("@-")
            .ok_or_else(|| format!("bad history item {item:?}"))?;
        let n = n
            .trim_start_matches(['+', '-'])
            .parse::<u32>()
            .map_err(|_| format!("bad count in {item:?}"))?;
        Ok((n, NOW_MS - u64::from(seconds(age)?) * 1000))
    };
    for part in row["history"]
        .split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| format!("bad history {part:?}"))?;
        let value = value.trim();
        let items = || {
            value
                .trim_matches(['[', ']'])
                .split(',')
                .filter(|i| !i.trim().is_empty())
        };
        match key.trim() {
            "recommendations" if value.starts_with("nil") => h.recommendations = None,
            "recommendations" => {
                h.recommendations = Some(
                    items()
                        .map(|i| at(i).map(|(replicas, at_ms)| Recommendation { at_ms, replicas }))
                        .collect::<Result<_, _>>()?,
                )
            }
            "scaleUpEvents" => {
                h.up = items()
                    .map(|i| at(i).map(|(change, at_ms)| ScaleEvent { at_ms, change }))
                    .collect::<Result<_, _>>()?
            }
            "scaleDownEvents" => {
                h.down = items()
                    .map(|i| at(i).map(|(change, at_ms)| ScaleEvent { at_ms, change }))
                    .collect::<Result<_, _>>()?
            }
            other => return Err(format!("unknown history key {other:?}")),
        }
    }
    Ok(h)
}

fn min_max(row: &Row) -> (u32, u32) {
    (
        row["min_replicas"].parse().unwrap_or(1),
        row["max_replicas"].parse().unwrap_or(u32::MAX),
    )
}

/// Run one row; the answer as the table writes it.
fn run_row(row: &Row, policy: &CompiledPolicy) -> Result<String, String> {
    let id = row["case_id"].as_str();
    let kind = &id[..2];
    let current = || num(row, "current_replicas");
    let desired = || num(row, "prenormalized_desired");
    let answer = match kind {
        "RC" => {
            let (params, snap) = rc_case(row)?;
            let mut instance = policy
                .instantiate(&params)
                .map_err(|e| format!("configure error: {e}"))?;
            match instance.evaluate(&snap) {
                Ok(eval) => eval.decision.desired.to_string(),
                Err(e) => format!("error: {e}"),
            }
        }
        "SL" => {
            let text = row["scale_down_behavior"].as_str();
            let window = text
                .rsplit('=')
                .next()
                .map(seconds)
                .transpose()?
                .unwrap_or(300);
            let mut recs = history(row)?.recommendations.unwrap_or_default();
            hpa::stabilize_legacy(&mut recs, NOW_MS, desired()?, u64::from(window) * 1000)
                .to_string()
        }
        "SB" => {
            let mut recs = history(row)?.recommendations.unwrap_or_default();
            hpa::stabilize_with_behavior(&mut recs, NOW_MS, current()?, desired()?, &behavior(row)?)
                .to_string()
        }
        "CR" => {
            let (min, max) = min_max(row);
            hpa::convert_with_rules(current()?, desired()?, min, max)
                .0
                .to_string()
        }
        "CL" => {
            let h = history(row)?;
            let b = behavior(row)?;
            if row["layer"].contains("Down") {
                hpa::scale_down_limit(current()?, &h.up, &h.down, NOW_MS, &b.scale_down).to_string()
            } else {
                hpa::scale_up_limit(current()?, &h.up, &h.down, NOW_MS, &b.scale_up).to_string()
            }
        }
        "BR" => {
            let h = history(row)?;
            let (min, max) = min_max(row);
            hpa::convert_with_behavior_rate(
                current()?,
                desired()?,
                min,
                max,
                &h.up,
                &h.down,
                NOW_MS,
                &behavior(row)?,
            )
            .0
            .to_string()
        }
        "HT" => {
            let h = history(row)?;
            let (min, max) = min_max(row);
            let rate =
                if row["scale_up_behavior"].is_empty() && row["scale_down_behavior"].is_empty() {
                    Rate::Legacy {
                        downscale_stabilization_seconds: 300,
                    }
                } else {
                    Rate::Behavior(behavior(row)?)
                };
            let config = GuardConfig::new(
                min,
                max,
                GuardRules {
                    rate,
                    ..GuardRules::off()
                },
            );
            let mut state = GuardState {
                recommendations: h.recommendations,
                scale_up_events: h.up,
                scale_down_events: h.down,
                ..GuardState::default()
            };
            // A row the calculator cannot pose (e.g. only invalid metrics) or a
            // policy error is "no valid decision": the guard holds.
            let proposal = rc_case(row).ok().and_then(|(params, snap)| {
                policy
                    .instantiate(&params)
                    .ok()?
                    .evaluate(&snap)
                    .ok()
                    .map(|e| e.decision.desired)
            });
            let tick = Tick::new(NOW_MS, current()?, proposal);
            guard::apply(&config, &mut state, tick).replicas.to_string()
        }
        other => return Err(format!("unknown row kind {other}")),
    };
    Ok(answer)
}

#[test]
fn hpa_conformance() {
    let Some((path, rows)) = read_rows() else {
        return;
    };
    let host = host();
    let policy = host
        .load(&PolicySource::parse("builtin:target-tracking"))
        .expect("built-in loads");
    let (mut matched, total) = (0, rows.len());
    for row in &rows {
        let id = row["case_id"].as_str();
        let expected = row["expected_replicas"].as_str();
        let got = run_row(row, &policy).unwrap_or_else(|e| format!("unrunnable: {e}"));
        let ok = if expected.starts_with("error") {
            got.starts_with("error")
        } else {
            got == expected
        };
        if ok {
            matched += 1;
        } else {
            println!(
                "MISMATCH {id} ({}): expected {expected}, got {got}",
                row["test_function"]
            );
        }
    }
    println!("hpa conformance: {matched}/{total} rows match ({path})");
    assert!(total > 0, "no rows in {path}");
    assert_eq!(
        matched, total,
        "HPA conformance mismatches (see lines above)"
    );
}
