//! `ttft-guard`: scale an LLM inference server on what its users feel.
//!
//! Time to first token (TTFT) climbs when prefill queues up; KV-cache pressure
//! climbs before requests start being preempted. CPU tells you neither. This
//! policy:
//! - scales out in proportion to how far the smoothed TTFT p95 is above the SLO,
//!   or when the KV cache is nearly full;
//! - scales in one replica at a time, only after TTFT has stayed well under the
//!   SLO for `calm_seconds` (a hysteresis band, not a single threshold), and
//!   asks for the replica with the coldest KV cache to go first (it loses the
//!   least cached prefill work);
//! - in between, has no opinion: it holds, which is not a recommendation.
//!
//! Written for contract 0.2: it names what it reads, and returns its state
//! only when it changed.
//!
//! Params: `{"ttft_slo_ms": 800, "kv_high": 0.9, "calm_fraction": 0.5, "calm_seconds": 300}`

use serde::{Deserialize, Serialize};
use wasmscale_sdk::v2::{Outcome, Policy, Reads, View};
use wasmscale_sdk::{Ewma, Hysteresis, load_json, parse_params, save_json};

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
    /// The state last returned to the host.
    sent: Vec<u8>,
}

const KV: &str = "kv_cache_utilization";

impl Policy for TtftGuard {
    fn configure(&mut self, params: &str) -> Result<Reads, String> {
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
        Ok(Reads::new().signal("ttft_p95_ms").signal(KV).replicas([KV]))
    }

    fn evaluate(&mut self, t: &View<'_>) -> Result<Outcome, String> {
        let outcome = self.decide(t)?;
        let state = self.state.as_ref().map(save_json).unwrap_or_default();
        if state == self.sent {
            return Ok(outcome);
        }
        self.sent.clone_from(&state);
        Ok(outcome.with_state(state))
    }

    fn load_state(&mut self, state: &[u8]) -> Result<(), String> {
        if !state.is_empty() {
            self.state = load_json::<Option<State>>(state)?;
            self.sent = state.to_vec();
        }
        Ok(())
    }
}

impl TtftGuard {
    fn decide(&mut self, t: &View<'_>) -> Result<Outcome, String> {
        let (Some(p), Some(st)) = (self.params.as_ref(), self.state.as_mut()) else {
            return Err("not configured".into());
        };
        let ttft_now = t.require("ttft_p95_ms")?;
        let ttft = st.ttft.update(ttft_now);
        let kv_full = t.kv_cache_utilization().is_some_and(|kv| st.kv.update(kv));
        let current = f64::from(t.current().max(1));

        if ttft > p.ttft_slo_ms || kv_full {
            st.calm_since_ms = None;
            let by_ttft = (current * ttft / p.ttft_slo_ms).ceil();
            let desired = by_ttft.max(current + 1.0);
            return Ok(Outcome::scale(desired, format!("ttft {ttft:.0}ms vs slo {}ms, kv full: {kv_full}", p.ttft_slo_ms)));
        }
        if ttft < p.ttft_slo_ms * p.calm_fraction {
            let since = *st.calm_since_ms.get_or_insert(t.time_ms());
            if t.time_ms().saturating_sub(since) >= p.calm_seconds * 1000 && current > 1.0 {
                st.calm_since_ms = Some(t.time_ms());
                // The coldest KV cache goes first: it holds the least prefill work.
                let coldest = t
                    .replicas()
                    .filter_map(|r| r.value(KV).map(|kv| (kv, r.id())))
                    .min_by(|a, b| a.0.total_cmp(&b.0))
                    .map(|(_, id)| id);
                return Ok(Outcome::scale(current - 1.0, format!("ttft {ttft:.0}ms calm for {}s: -1", p.calm_seconds))
                    .remove_first(coldest));
            }
        } else {
            st.calm_since_ms = None;
        }
        Ok(Outcome::hold(format!("ttft {ttft:.0}ms within band")))
    }
}

wasmscale_sdk::export_policy_v2!(TtftGuard);

#[cfg(test)]
mod tests {
    use super::*;
    use wasmscale_sdk::v2::Tick;

    fn tick(reads: &Reads, t_s: u64, current: u32, ttft: f64, kv: f64) -> Tick {
        let mut t = reads.tick(t_s * 1000, current);
        reads.set(&mut t, "ttft_p95_ms", ttft);
        reads.set(&mut t, KV, kv);
        t
    }

    /// The count it asks for; a hold keeps `current`.
    fn desired(p: &mut TtftGuard, reads: &Reads, t: &Tick) -> f64 {
        let out = p.evaluate(&View::new(t, reads)).unwrap();
        out.desired().unwrap_or(f64::from(t.current))
    }

    #[test]
    fn scales_out_on_slow_first_tokens_and_in_only_after_calm() {
        let mut p = TtftGuard::default();
        let r = p.configure("{}").unwrap();
        assert_eq!(desired(&mut p, &r, &tick(&r, 0, 2, 1600.0, 0.5)), 4.0);
        // Smoothed TTFT is 900 ms: still above the SLO, so out again.
        assert_eq!(desired(&mut p, &r, &tick(&r, 15, 4, 200.0, 0.5)), 5.0);
        // 550 ms at t=30 (inside the band), then under 400 ms from t=45: calm
        // must last 300 s before the first scale-in.
        for t in (30..345).step_by(15) {
            assert_eq!(desired(&mut p, &r, &tick(&r, t, 5, 200.0, 0.5)), 5.0, "t={t}");
        }
        // The scale-in names the replica with the coldest KV cache.
        let mut last = tick(&r, 345, 5, 200.0, 0.5);
        for (id, kv) in [("warm", 0.8), ("cold", 0.1), ("mid", 0.4)] {
            r.add_replica(&mut last, id, &[Some(kv)]);
        }
        let out = p.evaluate(&View::new(&last, &r)).unwrap();
        assert_eq!(out.desired(), Some(4.0));
        assert_eq!(out.decision.remove_first, ["cold"]);
    }

    #[test]
    fn kv_pressure_scales_out_with_hysteresis() {
        let mut p = TtftGuard::default();
        let r = p.configure("{}").unwrap();
        assert_eq!(desired(&mut p, &r, &tick(&r, 0, 2, 500.0, 0.95)), 3.0);
        assert_eq!(desired(&mut p, &r, &tick(&r, 15, 3, 500.0, 0.85)), 4.0); // still above low mark
        assert_eq!(desired(&mut p, &r, &tick(&r, 30, 4, 500.0, 0.7)), 4.0);
    }

    #[test]
    fn state_is_returned_only_when_it_changed() {
        let mut p = TtftGuard::default();
        let r = p.configure("{}").unwrap();
        let t = tick(&r, 0, 2, 1600.0, 0.5);
        assert!(p.evaluate(&View::new(&t, &r)).unwrap().state.is_some());
        // The same reading again: the smoothed TTFT and the rest stay put, so
        // nothing is sent.
        assert_eq!(p.evaluate(&View::new(&t, &r)).unwrap().state, None);
        // Without a TTFT reading it cannot decide: an error, the count holds.
        assert!(p.evaluate(&View::new(&r.tick(15_000, 4), &r)).is_err());
    }
}
