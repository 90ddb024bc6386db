//! `predictive`: forecasts its load signal one cold-start lead time ahead and
//! pre-warms replicas so they are ready when the load arrives. Never below the
//! reactive answer.
//!
//! Params (JSON):
//! ```json
//! {"metric": "request_rate", "capacity_per_replica": 10, "target_utilization": 0.76,
//!  "lead_time_seconds": 135, "period_seconds": 86400, "bins": 144, "min_replicas": 1,
//!  "headroom_quantile": 0.99, "error_window_seconds": 3600, "max_headroom": 2.5}
//! ```
//! Three forecasts, all learned from the policy's own history (kept in state):
//! - **trend**: Holt's linear smoothing of the signal, extrapolated over the
//!   lead time (catches ramps and the start of bursts);
//! - **seasonal**: a daily profile (`bins` per `period_seconds`, each bin the
//!   mean of a day's observations, folded across days), scaled by how today's
//!   level compares with the profile now (catches the daily cycle before it
//!   turns);
//! - **headroom**: the `headroom_quantile` of the ratio *actual / forecast*
//!   measured over the last `error_window_seconds` (a decaying histogram), so
//!   noisy load gets a margin and smooth load gets none.
//!
//! `forecast` = the largest of now, the trend and the seasonal forecast over
//! `[now, now + lead_time]`; `desired = max(ceil(load / per_replica),
//! ceil(forecast x headroom / per_replica), min_replicas)` with `per_replica =
//! capacity_per_replica x target_utilization`.
//!
//! **SLO guards** (`"slo": [{"signal": "ttft_p95_ms", "target": 1000}]`): a
//! load forecast cannot see a burst inside a tick, but the latency it causes
//! shows. Each guard whose signal is above its target asks for at least
//! `ceil(current x value / target)` (an HPA object metric), and the largest
//! answer wins, as the HPA's max over metrics.

use serde::Deserialize;
use wasmscale_sdk::{Decision, Num, Policy, Snapshot, parse_params};

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
    #[serde(default = "default_quantile")]
    headroom_quantile: f64,
    #[serde(default = "default_error_window")]
    error_window_seconds: u64,
    #[serde(default = "default_max_headroom")]
    max_headroom: f64,
    #[serde(default)]
    slo: Vec<SloGuard>,
}

/// A latency signal the policy also answers to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SloGuard {
    signal: String,
    target: f64,
}

fn default_metric() -> String {
    "request_rate".into()
}
fn default_target() -> f64 {
    0.76
}
fn default_lead() -> u64 {
    135
}
fn default_period() -> u64 {
    86_400
}
fn default_bins() -> usize {
    144
}
fn default_quantile() -> f64 {
    0.99
}
fn default_error_window() -> u64 {
    3_600
}
fn default_max_headroom() -> f64 {
    2.5
}

/// Ratio buckets of the error histogram: log-spaced over [RATIO_MIN, RATIO_MAX].
const RATIO_BUCKETS: usize = 64;
const RATIO_MIN: f64 = 0.5;
const RATIO_MAX: f64 = 4.0;
/// Forecasts kept for scoring once their time comes.
const PENDING: usize = 32;
/// Bumped when the state layout changes; older state is refused (start fresh).
const STATE_VERSION: u8 = 2;

/// Everything the policy learns, saved as compact little-endian numbers
/// (saved after every evaluation, so it must be cheap).
#[derive(Debug, Clone, Default, PartialEq)]
struct State {
    /// Holt's level and trend (per ms), and the time of the last sample.
    level: f64,
    trend: f64,
    last_ms: u64,
    started: bool,
    /// Daily profile: the folded mean of each bin (NaN = never seen).
    profile: Vec<f64>,
    /// Today's running sum and count for the bin now being observed.
    bin_now: usize,
    bin_sum: f64,
    bin_count: f64,
    /// Decaying histogram of actual / forecast ratios.
    ratios: Vec<f64>,
    /// Forecasts waiting for their time: (due ms, forecast).
    pending: Vec<(u64, f64)>,
}

impl State {
    fn encode(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(64 + 8 * (self.profile.len() + RATIO_BUCKETS + 2 * PENDING));
        out.push(STATE_VERSION);
        out.push(u8::from(self.started));
        for v in [self.level, self.trend, self.bin_sum, self.bin_count] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.last_ms.to_le_bytes());
        for n in [
            self.bin_now,
            self.profile.len(),
            self.ratios.len(),
            self.pending.len(),
        ] {
            out.extend_from_slice(&(n as u32).to_le_bytes());
        }
        for v in self.profile.iter().chain(&self.ratios) {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for (t, f) in &self.pending {
            out.extend_from_slice(&t.to_le_bytes());
            out.extend_from_slice(&f.to_le_bytes());
        }
        out
    }

    fn decode(bytes: &[u8]) -> Result<State, String> {
        let bad = || "invalid saved state for predictive".to_string();
        let mut r = Reader { bytes, at: 0 };
        if r.u8().ok_or_else(bad)? != STATE_VERSION {
            return Err("saved state is from another version of predictive".into());
        }
        let started = r.u8().ok_or_else(bad)? != 0;
        let level = r.f64().ok_or_else(bad)?;
        let trend = r.f64().ok_or_else(bad)?;
        let bin_sum = r.f64().ok_or_else(bad)?;
        let bin_count = r.f64().ok_or_else(bad)?;
        let last_ms = r.u64().ok_or_else(bad)?;
        let bin_now = r.u32().ok_or_else(bad)? as usize;
        let profile_len = r.u32().ok_or_else(bad)? as usize;
        let ratios_len = r.u32().ok_or_else(bad)? as usize;
        let pending_len = r.u32().ok_or_else(bad)? as usize;
        if profile_len > 100_000 || ratios_len != RATIO_BUCKETS || pending_len > PENDING {
            return Err(bad());
        }
        let profile = (0..profile_len)
            .map(|_| r.f64())
            .collect::<Option<Vec<_>>>()
            .ok_or_else(bad)?;
        let ratios = (0..ratios_len)
            .map(|_| r.f64())
            .collect::<Option<Vec<_>>>()
            .ok_or_else(bad)?;
        let pending = (0..pending_len)
            .map(|_| Some((r.u64()?, r.f64()?)))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(bad)?;
        Ok(State {
            level,
            trend,
            last_ms,
            started,
            profile,
            bin_now,
            bin_sum,
            bin_count,
            ratios,
            pending,
        })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let chunk = self.bytes.get(self.at..self.at + N)?;
        self.at += N;
        chunk.try_into().ok()
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take::<4>().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take::<8>().map(u64::from_le_bytes)
    }
    fn f64(&mut self) -> Option<f64> {
        self.take::<8>().map(f64::from_le_bytes)
    }
}

/// Forecast + pre-warm.
#[derive(Debug, Default)]
pub struct Predictive {
    params: Option<Params>,
    state: State,
}

fn ratio_bucket(r: f64) -> usize {
    let x = (r.clamp(RATIO_MIN, RATIO_MAX) / RATIO_MIN).ln() / (RATIO_MAX / RATIO_MIN).ln();
    ((x * RATIO_BUCKETS as f64) as usize).min(RATIO_BUCKETS - 1)
}

fn bucket_upper(i: usize) -> f64 {
    RATIO_MIN * ((RATIO_MAX / RATIO_MIN).ln() * (i + 1) as f64 / RATIO_BUCKETS as f64).exp()
}

impl Predictive {
    fn bin_of(p: &Params, time_ms: u64) -> usize {
        let period = p.period_seconds * 1000;
        let width = (period / p.bins as u64).max(1);
        (((time_ms % period) / width) as usize).min(p.bins - 1)
    }

    /// The profile at `time_ms`, interpolated between bin centres.
    fn profile_at(&self, p: &Params, time_ms: u64) -> Option<f64> {
        let profile = &self.state.profile;
        let period = (p.period_seconds * 1000) as f64;
        let width = period / p.bins as f64;
        let pos = (time_ms as f64 % period) / width - 0.5;
        let lo = pos.floor();
        let frac = pos - lo;
        let n = p.bins as i64;
        let a = profile[(lo as i64).rem_euclid(n) as usize];
        let b = profile[((lo as i64) + 1).rem_euclid(n) as usize];
        match (a.is_nan(), b.is_nan()) {
            (false, false) => Some(a + (b - a) * frac),
            (false, true) => Some(a),
            (true, false) => Some(b),
            (true, true) => None,
        }
    }

    fn observe(&mut self, p: &Params, time_ms: u64, load: f64, interval_ms: f64) {
        let s = &mut self.state;
        if s.profile.len() != p.bins {
            s.profile = vec![f64::NAN; p.bins];
        }
        if s.ratios.len() != RATIO_BUCKETS {
            s.ratios = vec![0.0; RATIO_BUCKETS];
        }
        // Holt's linear smoothing (weights for ~1 minute of level, ~2 of trend).
        if !s.started || time_ms <= s.last_ms {
            if !s.started {
                s.level = load;
                s.trend = 0.0;
            }
            s.started = true;
        } else {
            let dt = (time_ms - s.last_ms) as f64;
            let alpha = (dt / 60_000.0).min(1.0);
            let beta = (dt / 120_000.0).min(1.0);
            let predicted = s.level + s.trend * dt;
            let level = predicted + alpha * (load - predicted);
            s.trend += beta * ((level - s.level) / dt - s.trend);
            s.level = level;
        }
        s.last_ms = time_ms;
        // The daily profile: a bin's mean for today folds in when the bin ends.
        let bin = Self::bin_of(p, time_ms);
        if bin != s.bin_now && s.bin_count > 0.0 {
            let mean = s.bin_sum / s.bin_count;
            let old = s.profile[s.bin_now];
            s.profile[s.bin_now] = if old.is_nan() {
                mean
            } else {
                0.5 * old + 0.5 * mean
            };
            s.bin_sum = 0.0;
            s.bin_count = 0.0;
        }
        s.bin_now = bin;
        s.bin_sum += load;
        s.bin_count += 1.0;
        // Score forecasts whose time has come against what arrived.
        let decay = (-interval_ms / (p.error_window_seconds.max(1) as f64 * 1000.0)).exp();
        let mut due = Vec::new();
        s.pending.retain(|&(t, f)| {
            if t <= time_ms {
                due.push(f);
                false
            } else {
                true
            }
        });
        if !due.is_empty() {
            for r in s.ratios.iter_mut() {
                *r *= decay;
            }
            for f in due {
                if f > 0.0 {
                    s.ratios[ratio_bucket(load / f)] += 1.0;
                }
            }
        }
    }

    /// The `q` quantile of recent actual / forecast ratios (1 with no history).
    fn headroom(&self, p: &Params) -> f64 {
        let total: f64 = self.state.ratios.iter().sum();
        if total < 10.0 {
            return 1.0;
        }
        let mut seen = 0.0;
        for (i, w) in self.state.ratios.iter().enumerate() {
            seen += w;
            if seen >= p.headroom_quantile * total {
                return bucket_upper(i).clamp(0.9, p.max_headroom);
            }
        }
        p.max_headroom
    }

    fn forecast(&self, p: &Params, now_ms: u64, load: f64) -> f64 {
        let s = &self.state;
        let lead_ms = p.lead_time_seconds * 1000;
        let here = self.profile_at(p, now_ms).filter(|v| *v > 0.0);
        // How today compares with the profile now, kept within reason.
        let today = here.map(|h| (s.level.max(load) / h).clamp(0.5, 2.0));
        let mut peak = load.max(s.level);
        for k in 1..=4u64 {
            let h = lead_ms * k / 4;
            peak = peak.max(s.level + s.trend * h as f64);
            if let (Some(ratio), Some(ahead)) = (today, self.profile_at(p, now_ms + h)) {
                peak = peak.max(ahead * ratio);
            }
        }
        peak.max(0.0)
    }
}

impl Policy for Predictive {
    fn configure(&mut self, params: &str) -> Result<(), String> {
        let p: Params = parse_params(params)?;
        if !(p.capacity_per_replica.is_finite() && p.capacity_per_replica > 0.0) {
            return Err("params.capacity_per_replica must be > 0 (load one replica serves)".into());
        }
        if !(p.target_utilization > 0.0 && p.target_utilization <= 1.0) {
            return Err("params.target_utilization must be in (0, 1], e.g. 0.76".into());
        }
        if p.period_seconds == 0 || p.bins == 0 || p.bins > 100_000 {
            return Err("params.period_seconds must be > 0 and params.bins in 1..=100000".into());
        }
        if !(p.headroom_quantile > 0.0 && p.headroom_quantile <= 1.0) {
            return Err("params.headroom_quantile must be in (0, 1], e.g. 0.99".into());
        }
        if !(p.max_headroom.is_finite() && p.max_headroom >= 1.0) {
            return Err("params.max_headroom must be >= 1".into());
        }
        if p.slo
            .iter()
            .any(|g| !(g.target.is_finite() && g.target > 0.0))
        {
            return Err("params.slo[].target must be > 0, e.g. 1000 for ttft_p95_ms".into());
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
        self.observe(&p, s.time_ms, load, f64::from(s.interval_ms.max(1)));
        let per_replica = p.capacity_per_replica * p.target_utilization;
        let reactive = (load / per_replica).ceil();
        let forecast = self.forecast(&p, s.time_ms, load);
        let headroom = self.headroom(&p);
        let predicted = (forecast * headroom / per_replica).ceil();
        // SLO guards: the worst signal over its target, as a ratio.
        let current = f64::from(s.replicas.current).max(1.0);
        let over = p
            .slo
            .iter()
            .filter_map(|g| {
                let v = s.signal(&g.signal).filter(|v| v.is_finite())?;
                (v > g.target).then_some(v / g.target)
            })
            .fold(0.0, f64::max);
        let guarded = if over > 1.0 {
            // The load the replicas would have needed to stay within it,
            // learned as a forecast miss: bursts shorter than a tick raise
            // the standing headroom, not only the next tick's count.
            if load > 0.0 {
                let needed = current * over.min(RATIO_MAX) * per_replica;
                self.state.ratios[ratio_bucket(needed / load)] += 1.0;
            }
            // At most double now: the latency lags the burst that caused it.
            (current * over.min(2.0)).ceil()
        } else {
            0.0
        };
        let desired = reactive
            .max(predicted)
            .max(guarded)
            .max(f64::from(p.min_replicas));
        // Remember the forecast for when its time comes (the middle of the lead).
        let due = s.time_ms + p.lead_time_seconds * 1000;
        let pending = &mut self.state.pending;
        if pending.len() >= PENDING {
            pending.remove(0);
        }
        pending.push((due, forecast));
        let mut why = String::with_capacity(96);
        why.push_str(&p.metric);
        why.push(' ');
        Num(load).append_to(&mut why);
        why.push_str(", forecast ");
        Num(forecast).append_to(&mut why);
        why.push_str(" within ");
        Num(p.lead_time_seconds as f64).append_to(&mut why);
        why.push_str("s, headroom x");
        Num((headroom * 100.0).round() / 100.0).append_to(&mut why);
        why.push_str(if guarded > reactive.max(predicted) {
            ", over its SLO -> "
        } else if predicted > reactive {
            " -> pre-warm "
        } else {
            " -> "
        });
        Num(desired).append_to(&mut why);
        Ok(Decision::new(desired, why))
    }

    fn save_state(&self) -> Vec<u8> {
        self.state.encode()
    }

    fn load_state(&mut self, state: &[u8]) -> Result<(), String> {
        self.state = if state.is_empty() {
            State::default()
        } else {
            State::decode(state)?
        };
        Ok(())
    }
}

use wasmscale_sdk::v2::{Declares, signal_for};

/// Under 0.2 (`wasmscale_sdk::export_policy_as_v2!`): what it reads.
impl Declares for Predictive {
    fn declares(&self) -> Vec<String> {
        self.params
            .as_ref()
            .map(|p| {
                std::iter::once(&p.metric)
                    .chain(p.slo.iter().map(|g| &g.signal))
                    .map(|name| signal_for(name))
                    .collect()
            })
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

    fn eval(p: &mut Predictive, t: u64, x: f64) -> Decision {
        let mut s = Snapshot::new(t, 10).with("request_rate", x);
        s.interval_ms = 300_000;
        p.evaluate(&s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn an_slo_guard_scales_out_on_latency_the_load_forecast_missed() {
        let mut p = Predictive::default();
        p.configure(
            r#"{"capacity_per_replica": 10, "target_utilization": 1.0,
                "slo": [{"signal": "ttft_p95_ms", "target": 1000}]}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        // 40 req/s on 10 replicas: 4 by load, but TTFT is 3x its target:
        // double now (the most a guard asks in one tick).
        let s = Snapshot::new(0, 10)
            .with("request_rate", 40.0)
            .with("ttft_p95_ms", 3000.0);
        let d = p.evaluate(&s).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.desired, 20.0, "{}", d.reason);
        assert!(d.reason.contains("over its SLO"), "{}", d.reason);
        // Under its target, the guard says nothing.
        let s = Snapshot::new(15_000, 10)
            .with("request_rate", 40.0)
            .with("ttft_p95_ms", 300.0);
        let d = p.evaluate(&s).unwrap_or_else(|e| panic!("{e}"));
        assert!(d.desired < 10.0, "{}", d.reason);
        // Each breach is learned as a forecast miss: enough of them raise
        // the standing headroom.
        for i in 0..20u64 {
            let s = Snapshot::new(30_000 + i * 15_000, 10)
                .with("request_rate", 40.0)
                .with("ttft_p95_ms", if i % 2 == 0 { 2500.0 } else { 300.0 });
            p.evaluate(&s).unwrap_or_else(|e| panic!("{e}"));
        }
        let s = Snapshot::new(400_000, 10)
            .with("request_rate", 40.0)
            .with("ttft_p95_ms", 300.0);
        let d = p.evaluate(&s).unwrap_or_else(|e| panic!("{e}"));
        assert!(d.desired > 4.0, "learned headroom: {}", d.reason);
        assert!(p.declares().contains(&signal_for("ttft_p95_ms")));
        assert!(
            p.configure(r#"{"capacity_per_replica": 10, "slo": [{"signal": "x", "target": 0}]}"#)
                .is_err()
        );
    }

    #[test]
    fn pre_warms_before_a_learned_daily_peak() {
        let mut p = Predictive::default();
        p.configure(PARAMS).unwrap_or_else(|e| panic!("{e}"));
        let step = 300_000; // 5-minute ticks
        let mut t = 0;
        while t < 2 * 86_400_000 {
            eval(&mut p, t, load(t));
            t += step;
        }
        // Day 3, 11:55: load is still 100 (reactive 10) but the peak is 5 min away.
        let now = 2 * 86_400_000 + 11 * 3_600_000 + 55 * 60_000;
        let d = eval(&mut p, now, load(now));
        assert!(
            d.desired >= 29.0,
            "expected pre-warm, got {} ({})",
            d.desired,
            d.reason
        );
        assert!(d.reason.contains("pre-warm"), "{}", d.reason);

        // And the learned state survives a save/load into a fresh instance.
        let saved = p.save_state();
        let mut q = Predictive::default();
        q.configure(PARAMS).unwrap_or_else(|e| panic!("{e}"));
        q.load_state(&saved).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(q.state, p.state);
        let mut s = Snapshot::new(now + step, 10).with("request_rate", load(now));
        s.interval_ms = 300_000;
        assert_eq!(
            q.evaluate(&s).map(|d| d.desired),
            p.evaluate(&s).map(|d| d.desired)
        );
    }

    #[test]
    fn never_below_reactive() {
        let mut p = Predictive::default();
        p.configure(PARAMS).unwrap_or_else(|e| panic!("{e}"));
        let d = p.evaluate(&Snapshot::new(0, 1).with("request_rate", 455.0));
        assert_eq!(d.map(|d| d.desired), Ok(46.0));
    }

    #[test]
    fn a_ramp_is_met_ahead_of_time_by_the_trend() {
        let mut p = Predictive::default();
        p.configure(
            r#"{"capacity_per_replica": 10, "target_utilization": 1.0, "lead_time_seconds": 120}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        // +1 req/s every 15 s: in 120 s the load is 8 req/s higher.
        let mut d = Decision::new(0.0, "");
        for i in 0..40u64 {
            let mut s = Snapshot::new(i * 15_000, 10).with("request_rate", 100.0 + i as f64);
            s.interval_ms = 15_000;
            d = p.evaluate(&s).unwrap_or_else(|e| panic!("{e}"));
        }
        // Now 139 req/s -> 14 reactively; ahead: about 147 -> 15.
        assert!(d.desired >= 15.0, "{} ({})", d.desired, d.reason);
    }

    #[test]
    fn noisy_load_earns_headroom_smooth_load_does_not() {
        let run = |noise: f64| {
            let mut p = Predictive::default();
            p.configure(
                r#"{"capacity_per_replica": 10, "target_utilization": 1.0, "lead_time_seconds": 120,
                    "period_seconds": 86400, "bins": 144}"#,
            )
            .unwrap_or_else(|e| panic!("{e}"));
            let mut seed = 1u64;
            for i in 0..400u64 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = (seed >> 11) as f64 / (1u64 << 53) as f64;
                let x = 200.0 * (1.0 + noise * (u - 0.5));
                let mut s = Snapshot::new(i * 15_000, 20).with("request_rate", x);
                s.interval_ms = 15_000;
                p.evaluate(&s).unwrap_or_else(|e| panic!("{e}"));
            }
            p.headroom(p.params.as_ref().unwrap_or_else(|| panic!("configured")))
        };
        let smooth = run(0.0);
        let noisy = run(0.6);
        assert!(
            (0.9..=1.05).contains(&smooth),
            "smooth load: headroom {smooth}"
        );
        assert!(noisy > 1.15, "noisy load: headroom {noisy}");
    }

    #[test]
    fn bad_state_and_params_are_refused() {
        let mut p = Predictive::default();
        assert!(p.load_state(&[9, 9, 9]).is_err());
        assert!(p.load_state(&[STATE_VERSION, 0, 1]).is_err());
        assert!(
            p.configure(r#"{"capacity_per_replica": 10, "headroom_quantile": 2}"#)
                .is_err()
        );
        assert!(
            p.configure(r#"{"capacity_per_replica": 0}"#)
                .unwrap_err()
                .contains("capacity_per_replica")
        );
    }
}
