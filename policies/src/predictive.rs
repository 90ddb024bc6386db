//! `predictive`: learns the seasonal pattern of its load signal from its own
//! history (kept in state), forecasts one cold-start lead time ahead, and
//! pre-warms replicas so they are ready when the load arrives. Never below the
//! reactive answer.
//!
//! Params (JSON):
//! ```json
//! {"metric": "request_rate", "capacity_per_replica": 10, "target_utilization": 0.8,
//!  "lead_time_seconds": 120, "period_seconds": 86400, "bins": 144, "min_replicas": 1}
//! ```
//! - reactive = `ceil(load / (capacity_per_replica * target_utilization))`.
//! - forecast = the largest of the seasonal forecast (profile bin x today's level)
//!   and the short-term trend, sampled across `[now, now + lead_time]`; the
//!   policy asks for enough replicas for that peak.
//! - desired = `max(reactive, predicted, min_replicas)`.

use serde::{Deserialize, Serialize};
use wasmscale_sdk::{
    Decision, Num, Policy, SeasonalForecaster, Snapshot, load_json, parse_params, save_json,
};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default = "default_metric")]
    metric: String,
    capacity_per_replica: f64,
    #[serde(default = "default_target")]
    target_utilization: f64,
    #[serde(default = "default_lead")]
    lead_time_seconds: u64,
    #[serde(default = "default_period")]
    period_seconds: u64,
    #[serde(default = "default_bins")]
    bins: usize,
    #[serde(default)]
    min_replicas: u32,
}

fn default_metric() -> String {
    "request_rate".into()
}
fn default_target() -> f64 {
    0.8
}
fn default_lead() -> u64 {
    120
}
fn default_period() -> u64 {
    86_400
}
fn default_bins() -> usize {
    144
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    forecaster: Option<SeasonalForecaster>,
}

/// Seasonal forecast + pre-warm.
#[derive(Debug, Default)]
pub struct Predictive {
    params: Option<Params>,
    state: State,
}

impl Predictive {
    fn forecaster(&mut self, p: &Params) -> &mut SeasonalForecaster {
        self.state
            .forecaster
            .get_or_insert_with(|| SeasonalForecaster::new(p.period_seconds * 1000, p.bins))
    }
}

impl Policy for Predictive {
    fn configure(&mut self, params: &str) -> Result<(), String> {
        let p: Params = parse_params(params)?;
        if !(p.capacity_per_replica.is_finite() && p.capacity_per_replica > 0.0) {
            return Err("params.capacity_per_replica must be > 0 (load one replica serves)".into());
        }
        if !(p.target_utilization > 0.0 && p.target_utilization <= 1.0) {
            return Err("params.target_utilization must be in (0, 1], e.g. 0.8".into());
        }
        if p.period_seconds == 0 || p.bins == 0 || p.bins > 100_000 {
            return Err("params.period_seconds must be > 0 and params.bins in 1..=100000".into());
        }
        self.params = Some(p);
        Ok(())
    }

    fn evaluate(&mut self, s: &Snapshot) -> Result<Decision, String> {
        let p = self
            .params
            .clone()
            .ok_or("predictive: configure was not called")?;
        let load = s
            .signal(&p.metric)
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("{} is missing", p.metric))?
            .max(0.0);
        let per_replica = p.capacity_per_replica * p.target_utilization;
        let reactive = (load / per_replica).ceil();
        let f = self.forecaster(&p);
        f.observe(s.time_ms, load);
        let lead_ms = p.lead_time_seconds * 1000;
        let peak = (1..=4)
            .filter_map(|k| f.forecast(s.time_ms + lead_ms * k / 4))
            .fold(0.0, f64::max);
        let predicted = (peak / per_replica).ceil();
        let desired = reactive.max(predicted).max(f64::from(p.min_replicas));
        let why = if predicted > reactive {
            format!(
                "{} {} now, forecast peak {} within {}s -> pre-warm {desired}",
                p.metric,
                Num(load),
                Num(peak),
                p.lead_time_seconds
            )
        } else {
            format!(
                "{} {} -> {desired} (forecast peak {})",
                p.metric,
                Num(load),
                Num(peak)
            )
        };
        Ok(Decision::new(desired, why))
    }

    fn save_state(&self) -> Vec<u8> {
        save_json(&self.state)
    }

    fn load_state(&mut self, state: &[u8]) -> Result<(), String> {
        self.state = load_json(state)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARAMS: &str = r#"{"capacity_per_replica": 10, "target_utilization": 1.0,
        "lead_time_seconds": 600, "period_seconds": 86400, "bins": 144}"#;

    /// A day with a step at noon: 100 req/s before, 300 after.
    fn load(t_ms: u64) -> f64 {
        if (t_ms % 86_400_000) / 3_600_000 >= 12 {
            300.0
        } else {
            100.0
        }
    }

    #[test]
    fn pre_warms_before_a_learned_daily_peak() {
        let mut p = Predictive::default();
        p.configure(PARAMS).unwrap_or_else(|e| panic!("{e}"));
        let step = 300_000; // 5-minute ticks
        let mut t = 0;
        while t < 2 * 86_400_000 {
            let _ = p.evaluate(&Snapshot::new(t, 10).with("request_rate", load(t)));
            t += step;
        }
        // Day 3, 11:55: load is still 100 (reactive 10) but the peak is 5 min away.
        let now = 2 * 86_400_000 + 11 * 3_600_000 + 55 * 60_000;
        let d = p.evaluate(&Snapshot::new(now, 10).with("request_rate", load(now)));
        let d = d.unwrap_or_else(|e| panic!("{e}"));
        assert!(
            d.desired >= 29.0,
            "expected pre-warm, got {} ({})",
            d.desired,
            d.reason
        );

        // And the learned state survives a save/load into a fresh instance.
        let saved = p.save_state();
        let mut q = Predictive::default();
        q.configure(PARAMS).unwrap_or_else(|e| panic!("{e}"));
        q.load_state(&saved).unwrap_or_else(|e| panic!("{e}"));
        let d2 = q.evaluate(&Snapshot::new(now, 10).with("request_rate", load(now)));
        assert_eq!(d2.map(|d| d.desired), Ok(d.desired));
    }

    #[test]
    fn never_below_reactive() {
        let mut p = Predictive::default();
        p.configure(PARAMS).unwrap_or_else(|e| panic!("{e}"));
        let d = p.evaluate(&Snapshot::new(0, 1).with("request_rate", 455.0));
        assert_eq!(d.map(|d| d.desired), Ok(46.0));
    }
}
