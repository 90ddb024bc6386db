//! `target-tracking`: the Kubernetes HPA replica calculator, exactly.
//!
//! Params (JSON):
//! ```json
//! {
//!   "metrics": [
//!     {"type": "resource", "name": "cpu", "target": {"average_utilization": 60}},
//!     {"type": "pods", "name": "qps", "target": {"average_value": 15}},
//!     {"type": "object", "name": "gpu_utilization", "target": {"value": 0.6}},
//!     {"type": "external", "name": "queue_depth", "target": {"average_value": 30}}
//!   ],
//!   "tolerance": 0.1,
//!   "tolerance_up": 0.1,
//!   "tolerance_down": 0.1
//! }
//! ```
//! - `resource` and `pods` metrics read per-replica samples (`snapshot.pods`, the
//!   metric named `name`; `resource` also reads each replica's `request`).
//! - `object` and `external` metrics read one value: a named snapshot signal
//!   (`queue_depth`, `gpu_utilization`, ...) or else a `custom` metric.
//! - Values are in natural units; like Kubernetes, the calculator works in
//!   milli-units with integer truncation where upstream truncates.
//!
//! Rules reproduced (upstream `replica_calculator.go` and `computeReplicasForMetrics`):
//! integer-percent utilization, an inclusive tolerance band with separate up and
//! down tolerances, unready/starting/pending/missing/failed/deleting replicas,
//! Value and AverageValue targets, scale from zero, and several metrics -> max
//! (an invalid metric blocks scale-down but not scale-up; all invalid -> error,
//! which the host treats as "hold").

use serde::Deserialize;
use wasmscale_sdk::{Decision, Num, Policy, ReplicaState, Snapshot, parse_params};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    metrics: Vec<MetricSpec>,
    #[serde(default)]
    tolerance: Option<f64>,
    #[serde(default)]
    tolerance_up: Option<f64>,
    #[serde(default)]
    tolerance_down: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum MetricType {
    Resource,
    Pods,
    Object,
    External,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricSpec {
    #[serde(rename = "type")]
    kind: MetricType,
    name: String,
    target: Target,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Target {
    /// Whole percent of the request (resource metrics only).
    AverageUtilization(u32),
    /// Per-replica average, natural units.
    AverageValue(f64),
    /// Total value, natural units (object/external metrics only).
    Value(f64),
}

/// Inclusive "no change" band: `1 - down <= ratio <= 1 + up`.
#[derive(Debug, Clone, Copy)]
struct Tolerances {
    up: f64,
    down: f64,
}

impl Tolerances {
    fn is_within(self, ratio: f64) -> bool {
        (1.0 - self.down) <= ratio && ratio <= (1.0 + self.up)
    }
}

/// The HPA replica calculator as a policy.
#[derive(Debug, Default)]
pub struct TargetTracking {
    params: Option<Params>,
}

fn milli(v: f64) -> i64 {
    (v * 1000.0).round() as i64
}

impl Policy for TargetTracking {
    fn configure(&mut self, params: &str) -> Result<(), String> {
        let p: Params = parse_params(params)?;
        if p.metrics.is_empty() {
            return Err("params.metrics: give at least one metric".into());
        }
        for (i, m) in p.metrics.iter().enumerate() {
            match (m.kind, m.target) {
                (MetricType::Resource, Target::Value(_)) => {
                    return Err(format!(
                        "params.metrics[{i}]: resource metrics take average_utilization or average_value, not value"
                    ));
                }
                (MetricType::Pods, t) if !matches!(t, Target::AverageValue(_)) => {
                    return Err(format!(
                        "params.metrics[{i}]: pods metrics take average_value"
                    ));
                }
                (MetricType::Object | MetricType::External, Target::AverageUtilization(_)) => {
                    return Err(format!(
                        "params.metrics[{i}]: average_utilization is for resource metrics; use value or average_value"
                    ));
                }
                _ => {}
            }
            let positive = match m.target {
                Target::AverageUtilization(u) => u > 0,
                Target::AverageValue(v) | Target::Value(v) => v.is_finite() && milli(v) > 0,
            };
            if !positive {
                return Err(format!("params.metrics[{i}].target must be > 0"));
            }
        }
        for (name, t) in [
            ("tolerance", p.tolerance),
            ("tolerance_up", p.tolerance_up),
            ("tolerance_down", p.tolerance_down),
        ] {
            if let Some(t) = t
                && !(t.is_finite() && t >= 0.0)
            {
                return Err(format!("params.{name} must be a number >= 0 (e.g. 0.1)"));
            }
        }
        self.params = Some(p);
        Ok(())
    }

    fn evaluate(&mut self, s: &Snapshot) -> Result<Decision, String> {
        let p = wasmscale_sdk::configured!(self.params, "target-tracking")?;
        let base = p.tolerance.unwrap_or(0.1);
        let tol = Tolerances {
            up: p.tolerance_up.unwrap_or(base),
            down: p.tolerance_down.unwrap_or(base),
        };
        let current = s.replicas.current;
        let mut best: Option<(u32, String)> = None;
        let mut first_error: Option<String> = None;
        let mut invalid = 0usize;
        for m in &p.metrics {
            match replicas_for_metric(m, s, tol) {
                Ok((n, why)) => {
                    if best.as_ref().is_none_or(|(b, _)| *b == 0 || n > *b) {
                        best = Some((n, why));
                    }
                }
                Err(e) => {
                    invalid += 1;
                    first_error.get_or_insert(format!("{}: {e}", m.name));
                }
            }
        }
        let proposal = best.as_ref().map_or(0, |(n, _)| *n);
        if invalid >= p.metrics.len() || (invalid > 0 && proposal < current) {
            return Err(first_error.unwrap_or_else(|| "no metric could be computed".into()));
        }
        let (n, why) = best.unwrap_or((current, String::new()));
        Ok(Decision::new(f64::from(n), why))
    }
}

/// Which replicas a pod-based calculation uses (upstream `groupPods`).
#[derive(Default)]
struct Groups {
    ready_count: usize,
    /// (milli value, milli request) of replicas with a usable sample.
    metrics: Vec<(i64, i64)>,
    unready_requests: Vec<i64>,
    missing_requests: Vec<i64>,
}

fn group_pods(
    s: &Snapshot,
    name: &str,
    cpu_rules: bool,
    need_requests: bool,
) -> Result<Groups, String> {
    if s.pods.is_empty() {
        return Err("no replicas reported samples (snapshot.pods is empty)".into());
    }
    let mut g = Groups::default();
    for pod in &s.pods {
        let request = match (pod.request, need_requests) {
            (Some(r), _) => milli(r),
            (None, true) => return Err(format!("a replica has no request for {name}")),
            (None, false) => 0,
        };
        match pod.state {
            ReplicaState::Failed | ReplicaState::Deleting => continue,
            ReplicaState::Pending => {
                g.unready_requests.push(request);
                continue;
            }
            _ => {}
        }
        let Some(value) = pod.metrics.iter().find(|m| m.name == name).map(|m| m.value) else {
            g.missing_requests.push(request);
            continue;
        };
        if !value.is_finite() {
            g.missing_requests.push(request);
            continue;
        }
        if cpu_rules && matches!(pod.state, ReplicaState::Unready | ReplicaState::Starting) {
            g.unready_requests.push(request);
            continue;
        }
        g.ready_count += 1;
        g.metrics.push((milli(value), request));
    }
    if g.metrics.is_empty() {
        return Err(format!("no samples of {name} from ready replicas"));
    }
    Ok(g)
}

/// The two-pass calculation shared by utilization and plain per-pod targets:
/// `ratio_of` turns a set of (value, request) samples into a usage ratio.
fn two_pass(
    g: Groups,
    current: u32,
    tol: Tolerances,
    first_pass_count: usize,
    missing_down_value: impl Fn(i64) -> i64,
    ratio_of: impl Fn(&[(i64, i64)]) -> Result<f64, String>,
) -> Result<u32, String> {
    let usage_ratio = ratio_of(&g.metrics)?;
    let scale_up_with_unready = !g.unready_requests.is_empty() && usage_ratio > 1.0;
    if !scale_up_with_unready && g.missing_requests.is_empty() {
        if tol.is_within(usage_ratio) {
            return Ok(current);
        }
        return Ok((usage_ratio * first_pass_count as f64).ceil() as u32);
    }
    let mut metrics = g.metrics;
    if usage_ratio < 1.0 {
        metrics.extend(
            g.missing_requests
                .iter()
                .map(|&r| (missing_down_value(r), r)),
        );
    } else if usage_ratio > 1.0 {
        metrics.extend(g.missing_requests.iter().map(|&r| (0, r)));
    }
    if scale_up_with_unready {
        metrics.extend(g.unready_requests.iter().map(|&r| (0, r)));
    }
    let new_ratio = ratio_of(&metrics)?;
    if tol.is_within(new_ratio)
        || (usage_ratio > 1.0 && new_ratio < 1.0)
        || (usage_ratio < 1.0 && new_ratio > 1.0)
    {
        return Ok(current);
    }
    let new_replicas = (new_ratio * metrics.len() as f64).ceil() as u32;
    if (new_ratio < 1.0 && new_replicas > current) || (new_ratio > 1.0 && new_replicas < current) {
        return Ok(current);
    }
    Ok(new_replicas)
}

fn ready_pod_count(s: &Snapshot) -> u32 {
    if s.pods.is_empty() {
        s.ready_replicas()
    } else {
        // Running and Ready: `starting` replicas are ready, just recently started.
        s.pods
            .iter()
            .filter(|p| matches!(p.state, ReplicaState::Ready | ReplicaState::Starting))
            .count() as u32
    }
}

fn replicas_for_metric(
    m: &MetricSpec,
    s: &Snapshot,
    tol: Tolerances,
) -> Result<(u32, String), String> {
    let current = s.replicas.current;
    let name = m.name.as_str();
    match (m.kind, m.target) {
        (MetricType::Resource, Target::AverageUtilization(target)) => {
            let g = group_pods(s, name, name == "cpu", true)?;
            let ready = g.ready_count;
            let target = i64::from(target);
            let utilization = |ms: &[(i64, i64)]| -> Result<i64, String> {
                let (usage, requests) = ms
                    .iter()
                    .fold((0i64, 0i64), |(u, r), &(v, q)| (u + v, r + q));
                if requests == 0 {
                    return Err(format!("requests for {name} sum to zero"));
                }
                Ok(usage * 100 / requests)
            };
            let first = utilization(&g.metrics)?;
            let n = two_pass(
                g,
                current,
                tol,
                ready,
                |request| request * target.max(100) / 100,
                |ms| Ok(utilization(ms)? as f64 / target as f64),
            )?;
            Ok((
                n,
                format!("{name} utilization {first}% vs target {target}% -> {n}"),
            ))
        }
        (MetricType::Resource | MetricType::Pods, Target::AverageValue(target)) => {
            let cpu_rules = m.kind == MetricType::Resource && name == "cpu";
            let g = group_pods(s, name, cpu_rules, false)?;
            let target = milli(target);
            let average =
                |ms: &[(i64, i64)]| ms.iter().map(|&(v, _)| v).sum::<i64>() / ms.len() as i64;
            let first = average(&g.metrics);
            let count = g.metrics.len();
            let n = two_pass(
                g,
                current,
                tol,
                count,
                |_| target,
                |ms| Ok(average(ms) as f64 / target as f64),
            )?;
            Ok((
                n,
                format!(
                    "{name} average {} vs target {} -> {n}",
                    Num(first as f64 / 1000.0),
                    Num(target as f64 / 1000.0)
                ),
            ))
        }
        (MetricType::Object | MetricType::External, Target::Value(target)) => {
            let usage = s
                .signal(name)
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("{name} is missing"))?;
            let ratio = milli(usage) as f64 / milli(target) as f64;
            let n = if current != 0 {
                if tol.is_within(ratio) {
                    current
                } else {
                    let ready = ready_pod_count(s);
                    if ready == 0 && !s.pods.is_empty() {
                        return Err("no ready replicas".into());
                    }
                    (ratio * f64::from(ready)).ceil() as u32
                }
            } else {
                ratio.ceil() as u32
            };
            Ok((
                n,
                format!("{name} {} vs target {} -> {n}", Num(usage), Num(target)),
            ))
        }
        (MetricType::Object | MetricType::External, Target::AverageValue(target)) => {
            let usage = s
                .signal(name)
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("{name} is missing"))?;
            let status = s.replicas.observed.unwrap_or(current);
            let (usage_m, target_m) = (milli(usage) as f64, milli(target) as f64);
            let ratio = usage_m / (target_m * f64::from(status));
            let n = if tol.is_within(ratio) {
                status
            } else {
                (usage_m / target_m).ceil() as u32
            };
            Ok((
                n,
                format!(
                    "{name} {} total vs {} per replica -> {n}",
                    Num(usage),
                    Num(target)
                ),
            ))
        }
        _ => Err("unsupported metric/target combination".into()),
    }
}

use wasmscale_sdk::v2::{Declares, signal_for};

/// Under 0.2 (`wasmscale_sdk::export_policy_as_v2!`): what it reads.
impl Declares for TargetTracking {
    /// Object and external metrics are signals; resource and pods metrics
    /// are per-replica. It always reads the replicas: their states count for
    /// object metrics too (the HPA's ready-pod count).
    fn declares(&self) -> Vec<String> {
        let Some(p) = &self.params else {
            return Vec::new();
        };
        let mut reads: Vec<String> = Vec::new();
        for m in &p.metrics {
            let name = signal_for(&m.name);
            if matches!(m.kind, MetricType::Object | MetricType::External) && !reads.contains(&name)
            {
                reads.push(name);
            }
        }
        reads
    }

    fn declares_replicas(&self) -> Option<Vec<String>> {
        let p = self.params.as_ref()?;
        let mut per: Vec<String> = Vec::new();
        for m in &p.metrics {
            if matches!(m.kind, MetricType::Resource | MetricType::Pods) && !per.contains(&m.name) {
                per.push(m.name.clone());
            }
        }
        Some(per)
    }

    /// The observed count (an average-value object or external metric's
    /// ratio is taken against it, as the HPA's status replicas) and the
    /// ready count (the ready-pod count when no replica reports).
    fn declares_counts(&self) -> &'static [&'static str] {
        &["replicas.observed", "replicas.ready"]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmscale_sdk::{NamedValue, ReplicaSample};

    fn pod(state: ReplicaState, cpu: Option<f64>, request: f64) -> ReplicaSample {
        ReplicaSample {
            state,
            metrics: cpu
                .map(|v| {
                    vec![NamedValue {
                        name: "cpu".into(),
                        value: v,
                    }]
                })
                .unwrap_or_default(),
            request: Some(request),
        }
    }

    fn run(params: &str, s: &Snapshot) -> Result<f64, String> {
        let mut p = TargetTracking::default();
        p.configure(params)?;
        p.evaluate(s).map(|d| d.desired)
    }

    const CPU30: &str =
        r#"{"metrics":[{"type":"resource","name":"cpu","target":{"average_utilization":30}}]}"#;

    #[test]
    fn scale_up_on_cpu() {
        let mut s = Snapshot::new(0, 3);
        s.pods = [0.3, 0.5, 0.7]
            .iter()
            .map(|&v| pod(ReplicaState::Ready, Some(v), 1.0))
            .collect();
        assert_eq!(run(CPU30, &s), Ok(5.0));
    }

    #[test]
    fn unready_pods_count_zero_on_scale_up_and_can_flip_to_hold() {
        // 2 ready at 50%/target 30 -> ratio 1.66; with 2 unready at 0 -> (1000/4000)=25% -> flips -> hold.
        let mut s = Snapshot::new(0, 4);
        s.pods = vec![
            pod(ReplicaState::Ready, Some(0.5), 1.0),
            pod(ReplicaState::Ready, Some(0.5), 1.0),
            pod(ReplicaState::Unready, Some(0.9), 1.0),
            pod(ReplicaState::Unready, Some(0.9), 1.0),
        ];
        assert_eq!(run(CPU30, &s), Ok(4.0));
    }

    #[test]
    fn missing_pods_on_scale_down_use_max_of_100_percent_and_target() {
        let mut s = Snapshot::new(0, 4);
        s.pods = vec![
            pod(ReplicaState::Ready, Some(0.1), 1.0),
            pod(ReplicaState::Ready, Some(0.1), 1.0),
            pod(ReplicaState::Ready, None, 1.0),
            pod(ReplicaState::Failed, Some(5.0), 1.0),
        ];
        // first pass 10% / 50% = 0.2; missing at 100% -> (100+100+1000)/3000 = 40% -> 0.8 -> ceil(0.8*3)=3
        let p =
            r#"{"metrics":[{"type":"resource","name":"cpu","target":{"average_utilization":50}}]}"#;
        assert_eq!(run(p, &s), Ok(3.0));
    }

    #[test]
    fn object_value_and_scale_from_zero() {
        let p = r#"{"metrics":[{"type":"external","name":"queue_depth","target":{"value":10}}]}"#;
        let s = Snapshot::new(0, 0).with("queue_depth", 25.0);
        assert_eq!(run(p, &s), Ok(3.0));
        let s = Snapshot::new(0, 4).with("queue_depth", 25.0);
        assert_eq!(run(p, &s), Ok(10.0));
    }

    #[test]
    fn invalid_metric_blocks_scale_down_but_not_scale_up() {
        let p = r#"{"metrics":[
            {"type":"external","name":"queue_depth","target":{"value":10}},
            {"type":"external","name":"absent","target":{"value":10}}]}"#;
        let up = Snapshot::new(0, 2).with("queue_depth", 40.0);
        assert_eq!(run(p, &up), Ok(8.0));
        let down = Snapshot::new(0, 4).with("queue_depth", 5.0);
        assert!(run(p, &down).is_err());
    }

    #[test]
    fn bad_params_are_explained() {
        let mut p = TargetTracking::default();
        let e = p.configure(r#"{"metrics":[{"type":"pods","name":"x","target":{"value":3}}]}"#);
        assert!(e.is_err_and(|m| m.contains("average_value")));
        let e = p.configure(r#"{"metrics":[], "tolerence": 1}"#);
        assert!(e.is_err_and(|m| m.contains("tolerence")));
    }
}
