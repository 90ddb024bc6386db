//! `spot-mix`: replicas and the spot fraction for training and batch queues.
//!
//! Params (JSON):
//! ```json
//! {"metric": "queue_depth", "items_per_replica_per_second": 0.5,
//!  "deadline_seconds": 3600, "max_spot_fraction": 0.8, "min_on_demand_fraction": 0.2,
//!  "interruption_sensitivity": 2.0, "risk_threshold": 0.8, "risk_on_demand_boost": 0.3,
//!  "min_replicas": 0, "max_replicas": 64}
//! ```
//! - Throughput per replica is `items_per_replica_per_second`, or, when omitted,
//!   one item per `snapshot.batch_seconds`.
//! - Replicas: enough to drain the queue within `deadline_seconds`, counting
//!   spot replicas at their expected throughput after interruptions.
//! - On-demand buffer: `min_on_demand_fraction + interruption_sensitivity x
//!   spot_interruption_rate` (interruptions per replica-hour), plus
//!   `risk_on_demand_boost` when the queue is at risk of missing the deadline at
//!   the current ready capacity (drain time > `risk_threshold x deadline`).
//! - No spot at all when spot is not cheaper than on-demand.

use serde::Deserialize;
use wasmscale_sdk::{Decision, Num, Policy, Snapshot, parse_params};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default = "default_metric")]
    metric: String,
    #[serde(default)]
    items_per_replica_per_second: Option<f64>,
    deadline_seconds: f64,
    #[serde(default = "d08")]
    max_spot_fraction: f64,
    #[serde(default = "d02")]
    min_on_demand_fraction: f64,
    #[serde(default = "d2")]
    interruption_sensitivity: f64,
    #[serde(default = "d08")]
    risk_threshold: f64,
    #[serde(default = "d03")]
    risk_on_demand_boost: f64,
    #[serde(default)]
    min_replicas: u32,
    #[serde(default)]
    max_replicas: Option<u32>,
}

fn default_metric() -> String {
    "queue_depth".into()
}
fn d08() -> f64 {
    0.8
}
fn d02() -> f64 {
    0.2
}
fn d2() -> f64 {
    2.0
}
fn d03() -> f64 {
    0.3
}

/// Training/batch queue scaler deciding the spot mix.
#[derive(Debug, Default)]
pub struct SpotMix {
    params: Option<Params>,
}

fn fraction(x: f64) -> bool {
    x.is_finite() && (0.0..=1.0).contains(&x)
}

impl Policy for SpotMix {
    fn configure(&mut self, params: &str) -> Result<(), String> {
        let p: Params = parse_params(params)?;
        if !(p.deadline_seconds.is_finite() && p.deadline_seconds > 0.0) {
            return Err("params.deadline_seconds must be > 0".into());
        }
        if let Some(r) = p.items_per_replica_per_second
            && !(r.is_finite() && r > 0.0)
        {
            return Err("params.items_per_replica_per_second must be > 0".into());
        }
        for (name, v) in [
            ("max_spot_fraction", p.max_spot_fraction),
            ("min_on_demand_fraction", p.min_on_demand_fraction),
            ("risk_threshold", p.risk_threshold),
            ("risk_on_demand_boost", p.risk_on_demand_boost),
        ] {
            if !fraction(v) {
                return Err(format!("params.{name} must be between 0 and 1"));
            }
        }
        if !(p.interruption_sensitivity.is_finite() && p.interruption_sensitivity >= 0.0) {
            return Err("params.interruption_sensitivity must be >= 0".into());
        }
        self.params = Some(p);
        Ok(())
    }

    fn evaluate(&mut self, s: &Snapshot) -> Result<Decision, String> {
        let p = wasmscale_sdk::configured!(self.params, "spot-mix")?;
        let queue = s.require(&p.metric)?.max(0.0);
        let rate = match p.items_per_replica_per_second {
            Some(r) => r,
            None => s
                .batch_seconds
                .filter(|b| b.is_finite() && *b > 0.0)
                .map(|b| 1.0 / b)
                .ok_or("set items_per_replica_per_second or report batch_seconds")?,
        };
        let interruptions = s
            .cost
            .spot_interruption_rate
            .filter(|r| r.is_finite())
            .unwrap_or(0.0)
            .max(0.0);
        let ready = f64::from(s.ready_replicas());
        let drain_s = if queue == 0.0 {
            0.0
        } else if ready > 0.0 {
            queue / (ready * rate)
        } else {
            f64::INFINITY
        };
        let at_risk = drain_s > p.risk_threshold * p.deadline_seconds;

        let mut on_demand =
            (p.min_on_demand_fraction + p.interruption_sensitivity * interruptions).min(1.0);
        if at_risk {
            on_demand = (on_demand + p.risk_on_demand_boost).min(1.0);
        }
        let spot_cheaper = matches!(
            (s.cost.spot_per_hour, s.cost.on_demand_per_hour),
            (Some(spot), Some(od)) if spot < od
        );
        let spot = if spot_cheaper {
            (1.0 - on_demand).min(p.max_spot_fraction).max(0.0)
        } else {
            0.0
        };

        // Spot replicas lose work to interruptions: count them at reduced throughput.
        let spot_efficiency = (1.0 - interruptions).clamp(0.1, 1.0);
        let effective = rate * ((1.0 - spot) + spot * spot_efficiency);
        let mut desired = (queue / (effective * p.deadline_seconds))
            .ceil()
            .max(f64::from(p.min_replicas));
        if let Some(max) = p.max_replicas {
            desired = desired.min(f64::from(max));
        }
        let mut reason = format!(
            "{} {} to drain in {}s at {}/s per replica -> {desired}, spot {}%",
            p.metric,
            Num(queue),
            Num(p.deadline_seconds),
            Num(rate),
            Num(spot * 100.0)
        );
        if at_risk {
            reason.push_str(&format!(
                " (deadline at risk: {}s to drain at current capacity)",
                Num(drain_s)
            ));
        }
        if !spot_cheaper {
            reason.push_str(" (spot not cheaper)");
        }
        Ok(Decision {
            desired,
            spot_fraction: Some(spot),
            reason,
        })
    }
}

use wasmscale_sdk::v2::{Declares, signal_for};

/// Under 0.2 (`wasmscale_sdk::export_policy_as_v2!`): what it reads.
impl Declares for SpotMix {
    fn declares(&self) -> Vec<String> {
        let Some(p) = &self.params else {
            return Vec::new();
        };
        let mut reads = vec![signal_for(&p.metric)];
        for s in [
            "batch_seconds",
            "cost.spot_interruption_rate",
            "cost.spot_per_hour",
            "cost.on_demand_per_hour",
        ] {
            if !reads.iter().any(|r| r == s) {
                reads.push(s.to_owned());
            }
        }
        reads
    }

    /// The ready count: how fast the queue drains.
    fn declares_counts(&self) -> &'static [&'static str] {
        &["replicas.ready"]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(queue: f64, ready: u32, interruptions: f64) -> Snapshot {
        let mut s = Snapshot::new(0, ready).with("queue_depth", queue);
        s.replicas.ready = Some(ready);
        s.cost.on_demand_per_hour = Some(3.0);
        s.cost.spot_per_hour = Some(1.0);
        s.cost.spot_interruption_rate = Some(interruptions);
        s
    }

    fn decide(s: &Snapshot) -> (f64, f64) {
        let mut p = SpotMix::default();
        p.configure(r#"{"items_per_replica_per_second": 0.5, "deadline_seconds": 3600}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        let d = p.evaluate(s).unwrap_or_else(|e| panic!("{e}"));
        (d.desired, d.spot_fraction.unwrap_or(-1.0))
    }

    #[test]
    fn rising_interruptions_raise_the_on_demand_buffer() {
        let (_, calm) = decide(&snapshot(3600.0, 4, 0.0));
        let (_, stormy) = decide(&snapshot(3600.0, 4, 0.2));
        assert!((calm - 0.8).abs() < 1e-9, "calm spot fraction {calm}");
        assert!((stormy - 0.4).abs() < 1e-9, "stormy spot fraction {stormy}");
    }

    #[test]
    fn deadline_risk_adds_on_demand_and_replicas_cover_the_queue() {
        // 3600 items, 0.5/s per replica: 2 replicas need 3600 s > 0.8 * 3600 -> at risk.
        let (n, spot) = decide(&snapshot(3600.0, 2, 0.0));
        assert!((spot - 0.5).abs() < 1e-9, "spot {spot}");
        assert!(n >= 2.0);
        let (n0, _) = decide(&snapshot(0.0, 2, 0.0));
        assert_eq!(n0, 0.0);
    }
}
