//! Building blocks that real policies need. Every helper is plain data with
//! serde support, so a policy can keep it in its state and hand it to the host
//! through `save_state` / `load_state`.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Exponentially weighted moving average: `value += alpha * (x - value)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ewma {
    alpha: f64,
    value: Option<f64>,
}

impl Ewma {
    /// `alpha` in (0, 1]: the weight of each new sample (clamped into range).
    pub fn new(alpha: f64) -> Self {
        let alpha = if alpha.is_finite() {
            alpha.clamp(1e-6, 1.0)
        } else {
            1.0
        };
        Ewma { alpha, value: None }
    }

    /// Feed a sample; the first sample initializes the average. Non-finite
    /// samples are ignored, so one bad reading cannot poison the average.
    pub fn update(&mut self, x: f64) -> f64 {
        if x.is_finite() {
            self.value = Some(match self.value {
                None => x,
                Some(v) => v + self.alpha * (x - v),
            });
        }
        self.value.unwrap_or(0.0)
    }

    /// The current average, if any sample was seen.
    pub fn value(&self) -> Option<f64> {
        self.value
    }
}

/// Samples of the last `window_ms` milliseconds, with min/max/mean/percentile.
/// Time comes from the snapshot, never from a clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlidingWindow {
    window_ms: u64,
    samples: VecDeque<(u64, f64)>,
}

impl SlidingWindow {
    pub fn new(window_ms: u64) -> Self {
        SlidingWindow {
            window_ms,
            samples: VecDeque::new(),
        }
    }

    /// Add a sample at `time_ms` and drop those older than the window. A sample
    /// is inside the window while `now - t < window_ms`.
    pub fn push(&mut self, time_ms: u64, value: f64) {
        if value.is_finite() {
            self.samples.push_back((time_ms, value));
        }
        while let Some(&(t, _)) = self.samples.front() {
            if time_ms.saturating_sub(t) >= self.window_ms && self.samples.len() > 1 {
                self.samples.pop_front();
            } else {
                break;
            }
        }
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    pub fn min(&self) -> Option<f64> {
        self.values().reduce(f64::min)
    }

    pub fn max(&self) -> Option<f64> {
        self.values().reduce(f64::max)
    }

    pub fn mean(&self) -> Option<f64> {
        if self.samples.is_empty() {
            return None;
        }
        Some(self.values().sum::<f64>() / self.samples.len() as f64)
    }

    /// Nearest-rank percentile, `p` in [0, 100].
    pub fn percentile(&self, p: f64) -> Option<f64> {
        if self.samples.is_empty() {
            return None;
        }
        let mut sorted: Vec<f64> = self.values().collect();
        sorted.sort_by(f64::total_cmp);
        let rank = ((p.clamp(0.0, 100.0) / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted.get(rank.saturating_sub(1)).copied()
    }

    fn values(&self) -> impl Iterator<Item = f64> + '_ {
        self.samples.iter().map(|&(_, v)| v)
    }
}

/// A hysteresis band: becomes active above `high`, inactive below `low`, and
/// keeps its previous answer in between, so a signal hovering near one
/// threshold does not make the policy flap.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Hysteresis {
    low: f64,
    high: f64,
    active: bool,
}

impl Hysteresis {
    /// `low <= high`; they are swapped if given the other way round.
    pub fn new(low: f64, high: f64) -> Self {
        let (low, high) = if low <= high {
            (low, high)
        } else {
            (high, low)
        };
        Hysteresis {
            low,
            high,
            active: false,
        }
    }

    pub fn update(&mut self, x: f64) -> bool {
        if x > self.high {
            self.active = true;
        } else if x < self.low {
            self.active = false;
        }
        self.active
    }

    pub fn is_active(&self) -> bool {
        self.active
    }
}

/// A seasonal forecaster for load with a daily (or any periodic) cycle: a
/// multiplicative Holt-Winters variant that works on irregular ticks.
///
/// It keeps a profile of the season in `bins` buckets (each `period_ms / bins`
/// wide), a level ratio that tracks how today compares with the profile (so a
/// busier day scales the whole forecast), and a short-term trend. Until the bin
/// being forecast has been seen once it falls back to level plus trend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeasonalForecaster {
    period_ms: u64,
    profile: Vec<Option<f64>>,
    /// Weight of a new observation in its season bin.
    gamma: f64,
    /// Weight of a new observation in the level ratio.
    alpha: f64,
    /// Weight of a new observation in the trend.
    beta: f64,
    level_ratio: f64,
    last: Option<(u64, f64)>,
    /// Trend in units per millisecond.
    trend: f64,
}

impl SeasonalForecaster {
    /// A season of `period_ms` split into `bins` buckets.
    pub fn new(period_ms: u64, bins: usize) -> Self {
        SeasonalForecaster {
            period_ms: period_ms.max(1),
            profile: vec![None; bins.max(1)],
            gamma: 0.3,
            alpha: 0.2,
            beta: 0.2,
            level_ratio: 1.0,
            last: None,
            trend: 0.0,
        }
    }

    /// Override the smoothing weights (each clamped into (0, 1]).
    pub fn with_smoothing(mut self, level: f64, trend: f64, season: f64) -> Self {
        self.alpha = level.clamp(1e-6, 1.0);
        self.beta = trend.clamp(1e-6, 1.0);
        self.gamma = season.clamp(1e-6, 1.0);
        self
    }

    fn bin(&self, time_ms: u64) -> usize {
        let bins = self.profile.len() as u64;
        let width = (self.period_ms / bins).max(1);
        ((time_ms % self.period_ms) / width).min(bins - 1) as usize
    }

    /// Feed the observed load at `time_ms`. Non-finite values are ignored.
    pub fn observe(&mut self, time_ms: u64, x: f64) {
        if !x.is_finite() {
            return;
        }
        let x = x.max(0.0);
        let b = self.bin(time_ms);
        match self.profile[b] {
            None => self.profile[b] = Some(x / self.level_ratio.max(1e-9)),
            Some(season) => {
                if season > 1e-9 {
                    let ratio = x / season;
                    self.level_ratio += self.alpha * (ratio - self.level_ratio);
                }
                let deseasoned = x / self.level_ratio.max(1e-9);
                self.profile[b] = Some(season + self.gamma * (deseasoned - season));
            }
        }
        if let Some((t0, x0)) = self.last
            && time_ms > t0
        {
            let slope = (x - x0) / (time_ms - t0) as f64;
            self.trend += self.beta * (slope - self.trend);
        }
        self.last = Some((time_ms, x));
    }

    /// Forecast the load at `time_ms` (usually now plus a cold-start lead time).
    /// `None` until something has been observed.
    pub fn forecast(&self, time_ms: u64) -> Option<f64> {
        let (t_last, x_last) = self.last?;
        let seasonal = self.profile[self.bin(time_ms)].map(|s| s * self.level_ratio);
        let linear = x_last + self.trend * time_ms.saturating_sub(t_last) as f64;
        Some(seasonal.unwrap_or(linear).max(0.0))
    }

    /// How many season bins have been seen at least once.
    pub fn bins_seen(&self) -> usize {
        self.profile.iter().filter(|b| b.is_some()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ewma_tracks_and_ignores_nan() {
        let mut e = Ewma::new(0.5);
        assert_eq!(e.update(10.0), 10.0);
        assert_eq!(e.update(20.0), 15.0);
        assert_eq!(e.update(f64::NAN), 15.0);
        assert_eq!(e.value(), Some(15.0));
    }

    #[test]
    fn sliding_window_expires_by_age() {
        let mut w = SlidingWindow::new(1_000);
        w.push(0, 5.0);
        w.push(500, 1.0);
        w.push(900, 9.0);
        assert_eq!((w.min(), w.max()), (Some(1.0), Some(9.0)));
        w.push(1_000, 3.0); // the sample at t=0 is now exactly 1000 ms old: out
        assert_eq!(w.len(), 3);
        assert_eq!(w.mean(), Some((1.0 + 9.0 + 3.0) / 3.0));
        assert_eq!(w.percentile(50.0), Some(3.0));
        assert_eq!(w.percentile(100.0), Some(9.0));
    }

    #[test]
    fn hysteresis_holds_inside_the_band() {
        let mut h = Hysteresis::new(0.4, 0.8);
        assert!(!h.update(0.6));
        assert!(h.update(0.9));
        assert!(h.update(0.6));
        assert!(!h.update(0.3));
    }

    #[test]
    fn seasonal_forecaster_learns_a_cycle() {
        let day = 86_400_000;
        let mut f = SeasonalForecaster::new(day, 24);
        let load = |t: u64| {
            if (t % day) / 3_600_000 >= 12 {
                200.0
            } else {
                100.0
            }
        };
        for step in 0..(3 * 24) {
            let t = step * 3_600_000;
            f.observe(t, load(t));
        }
        // At 11:00 on day 3, forecast 12:00: the afternoon peak.
        let now = 3 * day + 11 * 3_600_000;
        f.observe(now, load(now));
        let ahead = f.forecast(now + 3_600_000).unwrap_or(0.0);
        assert!((ahead - 200.0).abs() < 5.0, "forecast {ahead}");
        let state = serde_json::to_string(&f).unwrap_or_default();
        let back: SeasonalForecaster = serde_json::from_str(&state).unwrap_or_else(|_| f.clone());
        assert_eq!(back.bins_seen(), 24);
        let again = back.forecast(now + 3_600_000).unwrap_or(0.0);
        assert!((again - ahead).abs() < 1e-6, "{again} vs {ahead}");
    }
}
