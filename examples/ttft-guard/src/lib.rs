//! `ttft-guard`: scale an LLM inference server on what its users feel.
//!
//! Time to first token (TTFT) climbs when prefill queues up; KV-cache pressure
//! climbs before requests start being preempted. CPU tells you neither. This
//! policy:
//! - scales out in proportion to how far the smoothed TTFT p95 is above the SLO,
//!   or when the KV cache is nearly full;
//! - scales in one replica at a time, only after TTFT has stayed well under the
//!   SLO for `calm_seconds` (a hysteresis band, not a single threshold).
//!
//! Params: `{"ttft_slo_ms": 800, "kv_high": 0.9, "calm_fraction": 0.5, "calm_seconds": 300}`

use serde::{Deserialize, Serialize};
use wasmscale_sdk::{Decision, Ewma, Hysteresis, Policy, Snapshot, load_json, parse_params, save_json};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default = "slo")]
    ttft_slo_ms: f64,
    #[serde(default = "kv_high")]
    kv_high: f64,
    #[serde(default = "calm_fraction")]
    calm_fraction: f64,
    #[serde(default = "calm_seconds")]
    calm_seconds: u64,
}

fn slo() -> f64 {
    800.0
}
fn kv_high() -> f64 {
    0.9
}
fn calm_fraction() -> f64 {
    0.5
}
fn calm_seconds() -> u64 {
    300
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    ttft: Ewma,
    kv: Hysteresis,
    calm_since_ms: Option<u64>,
}

#[derive(Debug, Default)]
pub struct TtftGuard {
    params: Option<Params>,
    state: Option<State>,
}

impl Policy for TtftGuard {
    fn configure(&mut self, params: &str) -> Result<(), String> {
        let p: Params = parse_params(params)?;
        if !(p.ttft_slo_ms > 0.0) {
            return Err("ttft_slo_ms must be > 0".into());
        }
        if !(p.kv_high > 0.0 && p.kv_high <= 1.0) || !(p.calm_fraction > 0.0 && p.calm_fraction < 1.0) {
            return Err("kv_high must be in (0, 1] and calm_fraction in (0, 1)".into());
        }
        self.state = Some(State {
            ttft: Ewma::new(0.5),
            kv: Hysteresis::new(p.kv_high - 0.1, p.kv_high),
            calm_since_ms: None,
        });
        self.params = Some(p);
        Ok(())
    }

    fn evaluate(&mut self, s: &Snapshot) -> Result<Decision, String> {
        let (Some(p), Some(st)) = (self.params.as_ref(), self.state.as_mut()) else {
            return Err("not configured".into());
        };
        let ttft_now = s.ttft_p95_ms.ok_or("ttft_p95_ms is missing")?;
        let ttft = st.ttft.update(ttft_now);
        let kv_full = s.kv_cache_utilization.is_some_and(|kv| st.kv.update(kv));
        let current = f64::from(s.replicas.current.max(1));

        if ttft > p.ttft_slo_ms || kv_full {
            st.calm_since_ms = None;
            let by_ttft = (current * ttft / p.ttft_slo_ms).ceil();
            let desired = by_ttft.max(current + 1.0);
            return Ok(Decision::new(desired, format!("ttft {ttft:.0}ms vs slo {}ms, kv full: {kv_full}", p.ttft_slo_ms)));
        }
        if ttft < p.ttft_slo_ms * p.calm_fraction {
            let since = *st.calm_since_ms.get_or_insert(s.time_ms);
            if s.time_ms.saturating_sub(since) >= p.calm_seconds * 1000 && current > 1.0 {
                st.calm_since_ms = Some(s.time_ms);
                return Ok(Decision::new(current - 1.0, format!("ttft {ttft:.0}ms calm for {}s: -1", p.calm_seconds)));
            }
        } else {
            st.calm_since_ms = None;
        }
        Ok(Decision::hold(s, format!("ttft {ttft:.0}ms within band")))
    }

    fn save_state(&self) -> Vec<u8> {
        self.state.as_ref().map(save_json).unwrap_or_default()
    }

    fn load_state(&mut self, state: &[u8]) -> Result<(), String> {
        if !state.is_empty() {
            self.state = load_json::<Option<State>>(state)?;
        }
        Ok(())
    }
}

wasmscale_sdk::export_policy!(TtftGuard);

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(t_s: u64, current: u32, ttft: f64, kv: f64) -> Snapshot {
        Snapshot::new(t_s * 1000, current).with("ttft_p95_ms", ttft).with("kv_cache_utilization", kv)
    }

    #[test]
    fn scales_out_on_slow_first_tokens_and_in_only_after_calm() {
        let mut p = TtftGuard::default();
        p.configure("{}").unwrap();
        assert_eq!(p.evaluate(&snap(0, 2, 1600.0, 0.5)).unwrap().desired, 4.0);
        // Smoothed TTFT is 900 ms: still above the SLO, so out again.
        assert_eq!(p.evaluate(&snap(15, 4, 200.0, 0.5)).unwrap().desired, 5.0);
        // 550 ms at t=30 (inside the band), then under 400 ms from t=45: calm
        // must last 300 s before the first scale-in.
        for t in (30..345).step_by(15) {
            assert_eq!(p.evaluate(&snap(t, 5, 200.0, 0.5)).unwrap().desired, 5.0, "t={t}");
        }
        assert_eq!(p.evaluate(&snap(345, 5, 200.0, 0.5)).unwrap().desired, 4.0);
    }

    #[test]
    fn kv_pressure_scales_out_with_hysteresis() {
        let mut p = TtftGuard::default();
        p.configure("{}").unwrap();
        assert_eq!(p.evaluate(&snap(0, 2, 500.0, 0.95)).unwrap().desired, 3.0);
        assert_eq!(p.evaluate(&snap(15, 3, 500.0, 0.85)).unwrap().desired, 4.0); // still above low mark
        assert_eq!(p.evaluate(&snap(30, 4, 500.0, 0.7)).unwrap().desired, 4.0);
    }
}
