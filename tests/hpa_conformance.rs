//! Kubernetes HPA conformance: every row of the upstream-derived case table that
//! this suite covers, run through the real `builtin:target-tracking` component.
//!
//! The table is `$WASMSCALE_HPA_CASES` (relative paths are taken from the
//! repository root), default `../shared/hpa/hpa_cases_sample.csv`. One line is
//! printed per mismatch, then `hpa conformance: N/M rows match`; any mismatch
//! fails the test. Covered now: `RC` rows (the replica calculator). The
//! guardrail rows (`SL`, `SB`, `CR`, `CL`, `BR`, `HT`) belong to the guardrail
//! module and are counted as not covered until it exists.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::json;
use std::collections::HashMap;
use wasmscale::host::{PolicySource, Snapshot};
use wasmscale::snapshot::{self, Defaults};
use wasmscale_tests::{from_root, host};

type Row = HashMap<String, String>;

fn read_rows() -> (String, Vec<Row>) {
    let path = std::env::var("WASMSCALE_HPA_CASES")
        .unwrap_or_else(|_| "../shared/hpa/hpa_cases_sample.csv".into());
    let full = from_root(&path);
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
    (full.display().to_string(), rows)
}

/// The policy params and snapshot that pose one `RC` row to the calculator.
fn rc_case(row: &Row) -> Result<(String, Snapshot), String> {
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
                        pod["metrics"] = json!([{"name": metric_name, "value": milli(v)?}]);
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

#[test]
fn hpa_conformance() {
    let (path, rows) = read_rows();
    let host = host();
    let policy = host
        .load(&PolicySource::parse("builtin:target-tracking"))
        .expect("built-in loads");
    let (mut covered, mut matched, mut skipped) = (0, 0, 0);
    for row in &rows {
        let id = row["case_id"].as_str();
        if !id.starts_with("RC") {
            skipped += 1;
            continue;
        }
        covered += 1;
        let expected = row["expected_replicas"].as_str();
        let got = match rc_case(row) {
            Err(e) => format!("unrunnable: {e}"),
            Ok((params, snap)) => match policy.instantiate(&params) {
                Err(e) => format!("configure error: {e}"),
                Ok(mut instance) => match instance.evaluate(&snap) {
                    Ok(eval) => eval.decision.desired.to_string(),
                    Err(e) => format!("error: {e}"),
                },
            },
        };
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
    println!(
        "hpa conformance: {matched}/{covered} rows match ({path}; {skipped} guardrail rows not yet covered)"
    );
    assert!(covered > 0, "no RC rows in {path}");
    assert_eq!(
        matched, covered,
        "HPA conformance mismatches (see lines above)"
    );
}
