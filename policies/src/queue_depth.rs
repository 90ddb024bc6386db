//! `queue-depth`: KEDA-style scaling on a queue, to and from zero.
//!
//! Params (JSON):
//! ```json
//! {"metric": "queue_depth", "target_per_replica": 10, "activation_threshold": 0,
//!  "min_replicas": 0, "cooldown_seconds": 300, "tolerance": 0.1}
//! ```
//! - Active when `metric > activation_threshold`. While active, desired is
//!   `ceil(metric / target_per_replica)` (at least 1), gated by the HPA tolerance
//!   on `metric / (target_per_replica * current)`, as KEDA's AverageValue target is.
//! - Inactive: once nothing has been active for `cooldown_seconds` (snapshot
//!   time), scale to `min_replicas` (0 by default: scale to zero). Until then, hold.
//! - A missing metric is an error, so the host holds (it never reads as zero).

use serde::{Deserialize, Serialize};
use wasmscale_sdk::{Decision, Num, Policy, Snapshot, load_json, parse_params, save_json};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default = "default_metric")]
    metric: String,
    target_per_replica: f64,
    #[serde(default)]
    activation_threshold: f64,
    #[serde(default)]
    min_replicas: u32,
    #[serde(default = "default_cooldown")]
    cooldown_seconds: u64,
    #[serde(default = "default_tolerance")]
    tolerance: f64,
}

fn default_metric() -> String {
    "queue_depth".into()
}
fn default_cooldown() -> u64 {
    300
}
fn default_tolerance() -> f64 {
    0.1
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    last_active_ms: Option<u64>,
}

/// KEDA-like queue scaler.
#[derive(Debug, Default)]
pub struct QueueDepth {
    params: Option<Params>,
    state: State,
}

impl Policy for QueueDepth {
    fn configure(&mut self, params: &str) -> Result<(), String> {
        let p: Params = parse_params(params)?;
        if !(p.target_per_replica.is_finite() && p.target_per_replica > 0.0) {
            return Err(
                "params.target_per_replica must be > 0 (items one replica should have queued)"
                    .into(),
            );
        }
        if !(p.activation_threshold.is_finite() && p.activation_threshold >= 0.0) {
            return Err("params.activation_threshold must be >= 0".into());
        }
        if !(p.tolerance.is_finite() && p.tolerance >= 0.0) {
            return Err("params.tolerance must be >= 0".into());
        }
        self.params = Some(p);
        Ok(())
    }

    fn evaluate(&mut self, s: &Snapshot) -> Result<Decision, String> {
        let p = wasmscale_sdk::configured!(self.params, "queue-depth")?;
        let q = s.require(&p.metric)?.max(0.0);
        let current = s.replicas.current;
        if q > p.activation_threshold {
            self.state.last_active_ms = Some(s.time_ms);
            let want = (q / p.target_per_replica).ceil().max(1.0);
            if current > 0 {
                let ratio = q / (p.target_per_replica * f64::from(current));
                if (1.0 - p.tolerance) <= ratio && ratio <= (1.0 + p.tolerance) {
                    return Ok(Decision::hold(
                        s,
                        format!("{} = {}: within tolerance", p.metric, Num(q)),
                    ));
                }
            }
            let want = want.max(f64::from(p.min_replicas));
            return Ok(Decision::new(
                want,
                format!(
                    "{} = {}, {} per replica -> {want}",
                    p.metric,
                    Num(q),
                    Num(p.target_per_replica)
                ),
            ));
        }
        let idle_ms = self
            .state
            .last_active_ms
            .map_or(u64::MAX, |t| s.time_ms.saturating_sub(t));
        if idle_ms >= p.cooldown_seconds.saturating_mul(1000) {
            let floor = f64::from(p.min_replicas);
            Ok(Decision::new(
                floor,
                format!(
                    "{} = {}: inactive past cooldown -> {floor}",
                    p.metric,
                    Num(q)
                ),
            ))
        } else {
            Ok(Decision::hold(
                s,
                format!("{} = {}: inactive, cooling down", p.metric, Num(q)),
            ))
        }
    }

    fn save_state(&self) -> Vec<u8> {
        save_json(&self.state)
    }

    fn load_state(&mut self, state: &[u8]) -> Result<(), String> {
        self.state = load_json(state)?;
        Ok(())
    }
}

use wasmscale_sdk::v2::{Declares, signal_for};

/// Under 0.2 (`wasmscale_sdk::export_policy_as_v2!`): what it reads.
impl Declares for QueueDepth {
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

    fn policy() -> QueueDepth {
        let mut p = QueueDepth::default();
        p.configure(r#"{"target_per_replica": 10, "cooldown_seconds": 60}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        p
    }

    fn desired(p: &mut QueueDepth, t_s: u64, current: u32, q: f64) -> f64 {
        p.evaluate(&Snapshot::new(t_s * 1000, current).with("queue_depth", q))
            .map(|d| d.desired)
            .unwrap_or(-1.0)
    }

    #[test]
    fn scales_from_zero_and_back_after_cooldown() {
        let mut p = policy();
        assert_eq!(desired(&mut p, 0, 0, 0.0), 0.0);
        assert_eq!(desired(&mut p, 10, 0, 3.0), 1.0);
        assert_eq!(desired(&mut p, 20, 1, 45.0), 5.0);
        assert_eq!(desired(&mut p, 30, 5, 0.0), 5.0); // cooling down
        assert_eq!(desired(&mut p, 79, 5, 0.0), 5.0);
        assert_eq!(desired(&mut p, 80, 5, 0.0), 0.0); // 60 s after last activity
    }

    #[test]
    fn state_survives_a_round_trip() {
        let mut p = policy();
        desired(&mut p, 10, 0, 30.0);
        let saved = p.save_state();
        let mut q = policy();
        q.load_state(&saved).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(desired(&mut q, 30, 3, 0.0), 3.0); // still cooling down
        assert!(p.evaluate(&Snapshot::new(0, 1)).is_err());
    }
}
