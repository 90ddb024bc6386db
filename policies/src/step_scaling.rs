//! `step-scaling`: AWS Application Auto Scaling step-scaling semantics.
//!
//! Params (JSON):
//! ```json
//! {
//!   "metric": "request_rate",
//!   "min_capacity": 1,
//!   "max_capacity": 20,
//!   "alarms": [
//!     {"comparison": "greater_than", "threshold": 100,
//!      "adjustment_type": "change_in_capacity",
//!      "steps": [{"lower_bound": 0, "adjustment": 1}]},
//!     {"comparison": "less_than", "threshold": 20,
//!      "steps": [{"upper_bound": 0, "adjustment": -1}]}
//!   ]
//! }
//! ```
//! - An alarm is breached when `metric <comparison> threshold`. Step bounds are
//!   relative to the threshold (`metric - threshold`); a missing bound is
//!   infinite. Above the threshold the lower bound is inclusive and the upper
//!   exclusive; below it, the other way round (as AWS documents).
//! - `adjustment_type`: `change_in_capacity` (default), `exact_capacity` or
//!   `percent_change_in_capacity`. Percent changes round toward zero, but a
//!   change between -1 and 1 becomes -1 or 1; `min_adjustment_magnitude` then
//!   raises the magnitude of a percent change to at least that many replicas.
//! - The result is clamped to `min_capacity`/`max_capacity` (the scalable
//!   target's bounds, default 0 and unbounded). Breached scale-out alarms win over
//!   scale-in alarms. A missing metric is an error (the host holds).

use serde::Deserialize;
use wasmscale_sdk::{Decision, Policy, Reason, Snapshot, parse_params};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    metric: String,
    #[serde(default)]
    min_capacity: u32,
    #[serde(default)]
    max_capacity: Option<u32>,
    alarms: Vec<Alarm>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Comparison {
    GreaterThan,
    GreaterThanOrEqual,
    LessThan,
    LessThanOrEqual,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(clippy::enum_variant_names, reason = "AWS's own names")]
enum AdjustmentType {
    #[default]
    ChangeInCapacity,
    ExactCapacity,
    PercentChangeInCapacity,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Alarm {
    comparison: Comparison,
    threshold: f64,
    #[serde(default)]
    adjustment_type: AdjustmentType,
    steps: Vec<Step>,
    #[serde(default)]
    min_adjustment_magnitude: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    #[serde(default)]
    lower_bound: Option<f64>,
    #[serde(default)]
    upper_bound: Option<f64>,
    adjustment: f64,
}

impl Comparison {
    fn breached(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::GreaterThan => value > threshold,
            Comparison::GreaterThanOrEqual => value >= threshold,
            Comparison::LessThan => value < threshold,
            Comparison::LessThanOrEqual => value <= threshold,
        }
    }
}

impl Step {
    /// Does `diff = metric - threshold` fall in this step? AWS: for an alarm that
    /// fires above its threshold the lower bound is inclusive and the upper
    /// exclusive; for one that fires below it, the other way round.
    fn contains(&self, diff: f64, above: bool) -> bool {
        let lower = self.lower_bound.unwrap_or(f64::NEG_INFINITY);
        let upper = self.upper_bound.unwrap_or(f64::INFINITY);
        if above {
            lower <= diff && diff < upper
        } else {
            lower < diff && diff <= upper
        }
    }
}

impl Alarm {
    /// New capacity if the alarm is breached, given the current capacity.
    fn apply(&self, value: f64, current: u32) -> Option<i64> {
        if !self.comparison.breached(value, self.threshold) {
            return None;
        }
        let diff = value - self.threshold;
        let step = self
            .steps
            .iter()
            .find(|s| s.contains(diff, self.scales_out()))?;
        let current = i64::from(current);
        Some(match self.adjustment_type {
            AdjustmentType::ChangeInCapacity => current + step.adjustment as i64,
            AdjustmentType::ExactCapacity => step.adjustment as i64,
            AdjustmentType::PercentChangeInCapacity => {
                let raw = current as f64 * step.adjustment / 100.0;
                let mut delta = if raw > 0.0 && raw < 1.0 {
                    1
                } else if raw < 0.0 && raw > -1.0 {
                    -1
                } else {
                    raw.trunc() as i64
                };
                if let Some(min) = self.min_adjustment_magnitude {
                    let min = i64::from(min);
                    if delta != 0 && delta.abs() < min {
                        delta = delta.signum() * min;
                    }
                }
                current + delta
            }
        })
    }

    fn scales_out(&self) -> bool {
        matches!(
            self.comparison,
            Comparison::GreaterThan | Comparison::GreaterThanOrEqual
        )
    }
}

/// AWS step scaling as a policy.
#[derive(Debug, Default)]
pub struct StepScaling {
    params: Option<Params>,
}

impl Policy for StepScaling {
    fn configure(&mut self, params: &str) -> Result<(), String> {
        let p: Params = parse_params(params)?;
        if p.alarms.is_empty() {
            return Err("params.alarms: give at least one alarm".into());
        }
        for (i, a) in p.alarms.iter().enumerate() {
            if !a.threshold.is_finite() {
                return Err(format!(
                    "params.alarms[{i}].threshold must be a finite number"
                ));
            }
            if a.steps.is_empty() {
                return Err(format!("params.alarms[{i}].steps: give at least one step"));
            }
            for (j, s) in a.steps.iter().enumerate() {
                if let (Some(l), Some(u)) = (s.lower_bound, s.upper_bound)
                    && l >= u
                {
                    return Err(format!(
                        "params.alarms[{i}].steps[{j}]: lower_bound {l} must be below upper_bound {u}"
                    ));
                }
                if !s.adjustment.is_finite() {
                    return Err(format!(
                        "params.alarms[{i}].steps[{j}].adjustment must be finite"
                    ));
                }
            }
        }
        if let Some(max) = p.max_capacity
            && max < p.min_capacity
        {
            return Err(format!(
                "params.max_capacity {max} is below min_capacity {}",
                p.min_capacity
            ));
        }
        self.params = Some(p);
        Ok(())
    }

    fn evaluate(&mut self, s: &Snapshot) -> Result<Decision, String> {
        let p = wasmscale_sdk::configured!(self.params, "step-scaling")?;
        let value = s.require(&p.metric)?;
        let current = s.replicas.current;
        // Scale-out alarms first: when several are breached, the largest wins.
        let mut out: Option<i64> = None;
        let mut inward: Option<i64> = None;
        for a in &p.alarms {
            if let Some(n) = a.apply(value, current) {
                if a.scales_out() {
                    out = Some(out.map_or(n, |o| o.max(n)));
                } else {
                    inward = Some(inward.map_or(n, |o| o.min(n)));
                }
            }
        }
        let max = i64::from(p.max_capacity.unwrap_or(u32::MAX));
        let Some(target) = out.or(inward) else {
            return Ok(Decision::hold(
                s,
                Reason::new()
                    .text(&p.metric)
                    .text(" = ")
                    .num(value)
                    .text(": no alarm breached")
                    .build(),
            ));
        };
        let clamped = target.clamp(i64::from(p.min_capacity), max);
        Ok(Decision::new(
            clamped as f64,
            Reason::new()
                .text(&p.metric)
                .text(" = ")
                .num(value)
                .text(": alarm breached -> ")
                .num(clamped as f64)
                .text(" (from ")
                .num(f64::from(current))
                .text(")")
                .build(),
        ))
    }
}

use wasmscale_sdk::v2::{Declares, signal_for};

/// Under 0.2 (`wasmscale_sdk::export_policy_as_v2!`): what it reads.
impl Declares for StepScaling {
    fn declares(&self) -> Vec<String> {
        self.params
            .as_ref()
            .map(|p| vec![signal_for(&p.metric)])
            .unwrap_or_default()
    }

    /// No replica count beyond `current`.
    fn declares_counts(&self) -> &'static [&'static str] {
        &[]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = r#"{
        "metric": "request_rate", "min_capacity": 1,
        "alarms": [
            {"comparison": "greater_than", "threshold": 100, "steps": [{"lower_bound": 0, "adjustment": 1}]},
            {"comparison": "less_than", "threshold": 20, "steps": [{"upper_bound": 0, "adjustment": -1}]}
        ]}"#;

    #[test]
    fn seed_threshold_table_in_a_closed_loop() {
        let mut p = StepScaling::default();
        p.configure(SEED).unwrap_or_else(|e| panic!("{e}"));
        let mut replicas = 1u32;
        let mut out = vec![];
        for load in [10.0, 50.0, 120.0, 80.0, 30.0, 5.0] {
            let s = Snapshot::new(0, replicas).with("request_rate", load);
            replicas = p.evaluate(&s).map(|d| d.desired as u32).unwrap_or(replicas);
            out.push(replicas);
        }
        assert_eq!(out, [1, 1, 2, 2, 2, 1]);
    }

    #[test]
    fn step_bounds_pick_the_right_adjustment() {
        let params = r#"{"metric":"queue_depth","alarms":[{"comparison":"greater_than_or_equal","threshold":50,
            "steps":[{"lower_bound":0,"upper_bound":10,"adjustment":1},{"lower_bound":10,"adjustment":3}]}]}"#;
        let mut p = StepScaling::default();
        p.configure(params).unwrap_or_else(|e| panic!("{e}"));
        let mut d = |q| {
            p.evaluate(&Snapshot::new(0, 4).with("queue_depth", q))
                .map(|d| d.desired)
        };
        assert_eq!(d(50.0), Ok(5.0)); // diff 0: lower bound inclusive
        assert_eq!(d(59.9), Ok(5.0));
        assert_eq!(d(60.0), Ok(7.0)); // diff 10: next step
        assert_eq!(d(49.0), Ok(4.0)); // not breached
    }

    #[test]
    fn percent_change_rounds_and_respects_min_magnitude() {
        let params = r#"{"metric":"request_rate","alarms":[{"comparison":"greater_than","threshold":0,
            "adjustment_type":"percent_change_in_capacity","min_adjustment_magnitude":2,
            "steps":[{"lower_bound":0,"adjustment":25}]}]}"#;
        let mut p = StepScaling::default();
        p.configure(params).unwrap_or_else(|e| panic!("{e}"));
        let mut d = |n| {
            p.evaluate(&Snapshot::new(0, n).with("request_rate", 1.0))
                .map(|d| d.desired)
        };
        assert_eq!(d(2), Ok(4.0)); // 0.5 -> 1 -> min magnitude 2
        assert_eq!(d(10), Ok(12.0)); // 2.5 -> 2
        assert_eq!(d(20), Ok(25.0)); // 5
    }

    #[test]
    fn exact_capacity_and_missing_metric() {
        let params = r#"{"metric":"queue_depth","alarms":[{"comparison":"less_than_or_equal","threshold":0,
            "adjustment_type":"exact_capacity","steps":[{"upper_bound":0,"adjustment":0}]}]}"#;
        let mut p = StepScaling::default();
        p.configure(params).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            p.evaluate(&Snapshot::new(0, 5).with("queue_depth", 0.0))
                .map(|d| d.desired),
            Ok(0.0)
        );
        assert!(p.evaluate(&Snapshot::new(0, 5)).is_err());
    }
}
