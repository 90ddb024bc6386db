//! Turning what the user typed into [`SimPolicy`]s: policy specs, params
//! matched to the service model for built-ins, configs, and sweeps.

use super::{ServiceModel, SimPolicy};
use crate::config::ScalerConfig;
use serde_json::{Value, json};

/// Built-ins `simulate` runs when no policy is named (and `demo` runs).
pub const DEFAULT_POLICIES: &[&str] = &[
    "builtin:target-tracking",
    "builtin:step-scaling",
    "builtin:predictive",
];

/// Params for a built-in, matched to the service model: its capacity, its SLO
/// utilization and its cold start. These are the tuned defaults the README's
/// results use. `None` for built-ins that need params of their own (`scheduled`,
/// `spot-mix`).
pub fn tuned_params(builtin: &str, model: &ServiceModel, interval_seconds: f64) -> Option<Value> {
    let slo_u = model.slo_utilization();
    let capacity = model.capacity_per_replica;
    if model.kind == super::ModelKind::Requests
        && let Some(params) = request_model_params(builtin, model, interval_seconds)
    {
        return Some(params);
    }
    match builtin {
        // The HPA on GPU utilization (as with DCGM metrics), aiming below the
        // SLO's utilization by more than its 10 % tolerance band.
        "target-tracking" => Some(json!({
            "metrics": [{"type": "object", "name": "gpu_utilization",
                         "target": {"value": round2(slo_u * 0.8)}}]
        })),
        // AWS-style steps on GPU utilization: out fast when hot, in slowly.
        "step-scaling" => Some(step_alarms(
            "gpu_utilization",
            model,
            round2(slo_u * 0.85),
            0.1,
            round2(slo_u * 0.55),
        )),
        "predictive" => Some(predictive_params(model, interval_seconds)),
        // KEDA-style on items in the system (Little's law: rate x latency).
        "queue-depth" => {
            let u = slo_u * 0.8;
            let items = capacity * u * (model.light_load_p95_ms / 1000.0) / (1.0 - u);
            Some(json!({
            "metric": "queue_depth",
            "target_per_replica": round2(items),
            "activation_threshold": 0,
            "min_replicas": model.min_replicas,
            "cooldown_seconds": 300
            }))
        }
        _ => None,
    }
}

/// The request model's SLO signals as guards: each SLO limit, aimed at below
/// it (half of it for TTFT, whose floor is one prefill; 70 % for ITL, whose
/// floor is one decode iteration).
fn slo_guards(model: &ServiceModel) -> Vec<(&'static str, f64)> {
    [
        ("ttft_p95_ms", model.slo_ttft_p95_ms, 0.5),
        ("itl_p95_ms", model.slo_itl_p95_ms, 0.7),
        ("latency_p95_ms", model.slo_e2e_p95_ms, 0.7),
    ]
    .into_iter()
    .filter_map(|(signal, limit, share)| limit.map(|l| (signal, round2(l * share))))
    .collect()
}

/// Built-ins on the request model: GPU utilization is near 100 % whenever a
/// replica has any request (continuous batching keeps it busy), so the load
/// signal is arriving tokens per second, and each SLO signal is a second
/// metric (the HPA's max over metrics).
fn request_model_params(
    builtin: &str,
    model: &ServiceModel,
    interval_seconds: f64,
) -> Option<Value> {
    let per_replica = model.capacity_per_replica * model.slo_utilization();
    let guards = slo_guards(model);
    match builtin {
        "target-tracking" => {
            let mut metrics = vec![json!({"type": "external", "name": "tokens_per_second",
                "target": {"average_value": round2(per_replica * 0.8)}})];
            metrics.extend(guards.iter().map(|(name, target)| {
                json!({"type": "object", "name": name, "target": {"value": target}})
            }));
            Some(json!({ "metrics": metrics }))
        }
        // AWS-style steps on the SLO signal itself: out when TTFT passes half
        // its limit (faster past the limit), in below a fifth of it.
        "step-scaling" => {
            let limit = model.slo_ttft_p95_ms?;
            Some(step_alarms(
                "ttft_p95_ms",
                model,
                round2(limit * 0.5),
                round2(limit * 0.5),
                round2(limit * 0.2),
            ))
        }
        "predictive" => {
            let mut params = predictive_params(model, interval_seconds);
            params["slo"] = guards
                .iter()
                .map(|(signal, target)| json!({"signal": signal, "target": target}))
                .collect();
            Some(params)
        }
        _ => None,
    }
}

/// Step-scaling on `metric`: out by 10 % above `out_above` (30 % past it by
/// more than `band`), in by 10 % below `in_below`.
fn step_alarms(
    metric: &str,
    model: &ServiceModel,
    out_above: f64,
    band: f64,
    in_below: f64,
) -> Value {
    json!({
        "metric": metric,
        "min_capacity": model.min_replicas,
        "max_capacity": model.max_replicas,
        "alarms": [
            {"comparison": "greater_than", "threshold": out_above,
             "adjustment_type": "percent_change_in_capacity", "min_adjustment_magnitude": 1,
             "steps": [{"lower_bound": 0, "upper_bound": band, "adjustment": 10},
                       {"lower_bound": band, "adjustment": 30}]},
            {"comparison": "less_than", "threshold": in_below,
             "adjustment_type": "percent_change_in_capacity", "min_adjustment_magnitude": 1,
             "steps": [{"upper_bound": 0, "adjustment": -10}]}
        ]
    })
}

/// Predictive: trend + daily profile one cold start (plus a tick) ahead, with
/// a margin learned from its own forecast errors, on the load in the model's
/// capacity unit.
fn predictive_params(model: &ServiceModel, interval_seconds: f64) -> Value {
    json!({
        "metric": match model.capacity_unit {
            super::CapacityUnit::Requests => "request_rate",
            super::CapacityUnit::Tokens => "tokens_per_second",
        },
        "capacity_per_replica": model.capacity_per_replica,
        "target_utilization": round2(model.slo_utilization() * 0.95),
        "lead_time_seconds": (model.cold_start_seconds + interval_seconds).ceil() as u64,
        "period_seconds": 86400,
        "bins": 144,
        "min_replicas": model.min_replicas,
        "headroom_quantile": 0.99,
        "error_window_seconds": 3600,
        "max_headroom": 2.5
    })
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A policy spec that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SpecError(pub String);

/// Parse `POLICY[@PARAMS]`: POLICY is `builtin:NAME` or a `.wasm` path;
/// PARAMS is inline JSON (`{...}`) or a JSON file. Without PARAMS a built-in
/// gets [`tuned_params`]; a file policy gets `{}`.
pub fn parse_policy(
    spec: &str,
    model: &ServiceModel,
    interval_seconds: f64,
) -> Result<SimPolicy, SpecError> {
    let (policy, params) = match spec.split_once('@') {
        Some((p, params)) => (p.trim(), Some(params.trim())),
        None => (spec.trim(), None),
    };
    if policy.is_empty() {
        return Err(SpecError(format!("empty policy in {spec:?}")));
    }
    let params: Value = match params {
        Some(text) if text.starts_with('{') => serde_json::from_str(text)
            .map_err(|e| SpecError(format!("{policy}: params are not valid JSON: {e}")))?,
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| SpecError(format!("{policy}: cannot read params file {file}: {e}")))?;
            serde_json::from_str(&text)
                .map_err(|e| SpecError(format!("{policy}: params file {file}: {e}")))?
        }
        None => match policy.strip_prefix("builtin:") {
            Some(name) => tuned_params(name, model, interval_seconds).ok_or_else(|| {
                SpecError(format!(
                    "{policy} has no simulation defaults; give params: {policy}@params.json"
                ))
            })?,
            None => json!({}),
        },
    };
    let label = policy.to_owned();
    Ok(SimPolicy {
        scaler: ScalerConfig::minimal(
            &label,
            policy,
            &params,
            model.min_replicas,
            model.max_replicas,
            interval_seconds,
        )
        .map_err(SpecError)?,
        label,
    })
}

/// `--sweep` on the policies given: exactly one, varied by `spec` (`KEY=VALUES`,
/// or just `VALUES` for a built-in's [`main_parameter`]).
pub fn sweep_policies(policies: &[SimPolicy], spec: &str) -> Result<Vec<SimPolicy>, SpecError> {
    let [one] = policies else {
        return Err(SpecError(format!(
            "--sweep varies one policy; {} were given",
            policies.len()
        )));
    };
    if spec.contains('=') {
        return sweep(one, spec);
    }
    let builtin = one.scaler.policy.strip_prefix("builtin:").unwrap_or("");
    let key = main_parameter(builtin)
        .ok_or_else(|| SpecError(format!("--sweep {spec}: say which parameter, KEY={spec}")))?;
    sweep(one, &format!("{key}={spec}"))
}

/// Expand `KEY=V1,V2,...` or `KEY=START:END:STEP` into one policy per value,
/// each with `KEY` (a dotted path into the params, e.g.
/// `metrics.0.target.value`) set to the value.
pub fn sweep(base: &SimPolicy, spec: &str) -> Result<Vec<SimPolicy>, SpecError> {
    let (key, values) = spec.split_once('=').ok_or_else(|| {
        SpecError(format!(
            "--sweep wants KEY=V1,V2,... or KEY=START:END:STEP, got {spec:?}"
        ))
    })?;
    let values = sweep_values(values)?;
    let params = serde_json::to_value(&base.scaler.params).map_err(|e| SpecError(e.to_string()))?;
    let mut out = Vec::with_capacity(values.len());
    for v in values {
        let mut p = params.clone();
        let slot = path_mut(&mut p, key).ok_or_else(|| {
            SpecError(format!(
                "--sweep: {key:?} is not in {}'s params ({})",
                base.label,
                serde_json::to_string(&params).unwrap_or_default()
            ))
        })?;
        // Keep an integer parameter an integer (policies may insist).
        *slot = if (slot.is_i64() || slot.is_u64()) && v.fract() == 0.0 {
            json!(v as i64)
        } else {
            json!(v)
        };
        let label = format!("{} {key}={v}", base.label);
        let mut scaler = base.scaler.clone();
        scaler.params = serde_json::from_value(p).map_err(|e| SpecError(e.to_string()))?;
        scaler.name = label.clone();
        out.push(SimPolicy { label, scaler });
    }
    Ok(out)
}

fn sweep_values(text: &str) -> Result<Vec<f64>, SpecError> {
    let bad = || {
        SpecError(format!(
            "--sweep values {text:?}: want V1,V2,... or START:END:STEP"
        ))
    };
    let parts: Vec<&str> = text.split(':').collect();
    let values: Vec<f64> = if parts.len() == 3 {
        let n: Vec<f64> = parts
            .iter()
            .map(|p| p.trim().parse::<f64>().map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        let (start, end, step) = (n[0], n[1], n[2]);
        if !(step > 0.0 && end >= start) {
            return Err(bad());
        }
        let count = ((end - start) / step + 1e-9).floor() as usize + 1;
        if count > 200 {
            return Err(SpecError(format!(
                "--sweep {text:?} has {count} values; at most 200"
            )));
        }
        (0..count)
            .map(|i| ((start + step * i as f64) * 1e6).round() / 1e6)
            .collect()
    } else {
        text.split(',')
            .map(|p| p.trim().parse::<f64>().map_err(|_| bad()))
            .collect::<Result<_, _>>()?
    };
    if values.is_empty() || values.iter().any(|v| !v.is_finite()) {
        return Err(bad());
    }
    Ok(values)
}

fn path_mut<'a>(value: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    let mut v = value;
    for part in path.split('.') {
        v = match v {
            Value::Object(m) => m.get_mut(part)?,
            Value::Array(a) => a.get_mut(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(v)
}

/// The main parameter `--sweep` varies for a built-in when no key is given.
pub fn main_parameter(builtin: &str) -> Option<&'static str> {
    match builtin {
        "target-tracking" => Some("metrics.0.target.value"),
        "step-scaling" => Some("alarms.0.threshold"),
        "predictive" => Some("target_utilization"),
        "queue-depth" => Some("target_per_replica"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_with_and_without_params() {
        let m = ServiceModel::default();
        let p = parse_policy("builtin:predictive", &m, 15.0).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.label, "builtin:predictive");
        assert_eq!(
            p.scaler.params["capacity_per_replica"].as_float(),
            Some(10.0)
        );
        assert_eq!(p.scaler.params["lead_time_seconds"].as_integer(), Some(135));
        let p = parse_policy(
            r#"builtin:queue-depth@{"metric":"queue_depth","target_per_replica":5}"#,
            &m,
            15.0,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.scaler.params["target_per_replica"].as_integer(), Some(5));
        let e = parse_policy("builtin:scheduled", &m, 15.0).unwrap_err();
        assert!(e.0.contains("builtin:scheduled@params.json"), "{e}");
        let e = parse_policy("builtin:predictive@{oops", &m, 15.0).unwrap_err();
        assert!(e.0.contains("not valid JSON"), "{e}");
        let e = parse_policy("builtin:predictive@/nonexistent.json", &m, 15.0).unwrap_err();
        assert!(e.0.contains("cannot read params file"), "{e}");
    }

    #[test]
    fn sweeps_set_a_dotted_key() {
        let m = ServiceModel::default();
        let p = parse_policy("builtin:target-tracking", &m, 15.0).unwrap_or_else(|e| panic!("{e}"));
        let runs =
            sweep(&p, "metrics.0.target.value=0.5:0.7:0.1").unwrap_or_else(|e| panic!("{e}"));
        let labels: Vec<_> = runs.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "builtin:target-tracking metrics.0.target.value=0.5",
                "builtin:target-tracking metrics.0.target.value=0.6",
                "builtin:target-tracking metrics.0.target.value=0.7"
            ]
        );
        let v = serde_json::to_value(&runs[1].scaler.params).unwrap_or_default();
        assert_eq!(v["metrics"][0]["target"]["value"], json!(0.6));
        assert!(sweep(&p, "nope=1,2").unwrap_err().0.contains("not in"));
        let q = parse_policy("builtin:predictive", &m, 15.0).unwrap_or_else(|e| panic!("{e}"));
        let runs = sweep(&q, "error_window_seconds=1800,7200").unwrap_or_else(|e| panic!("{e}"));
        let v = serde_json::to_value(&runs[0].scaler.params).unwrap_or_default();
        assert_eq!(
            v["error_window_seconds"],
            json!(1800),
            "an integer stays an integer"
        );
        assert!(sweep(&p, "metrics.0.target.value=a,b").is_err());
        assert!(
            sweep(&p, "metrics.0.target.value=0:1000:1")
                .unwrap_err()
                .0
                .contains("at most 200")
        );
    }
}
