//! A trace's requests, step by step, for the request model.
//!
//! A per-request trace keeps its own requests. A per-interval trace that gives
//! token sizes gets requests drawn inside each step: a Poisson count at the
//! step's rate, arrival times uniform in the step, and prompt and output
//! lengths exponential around the row's means. Bursts inside an interval are
//! then modelled, not averaged away.
//!
//! Every draw comes from the seed and the step alone, so every policy and the
//! oracle see exactly the same requests, and nothing is held for the whole
//! trace that it does not already hold (a 14-day trace would not fit).

use super::batching::Request;
use super::model::Rng;

/// Where the requests come from.
#[derive(Debug, Clone, PartialEq)]
pub enum RequestSource {
    /// A per-request trace: its requests in arrival order (`at_ns` after step
    /// 0 begins) and where each step's requests start.
    Recorded {
        requests: Vec<Request>,
        /// `first[s]` is the index of step `s`'s first request; one more
        /// entry than steps.
        first: Vec<u32>,
        /// The load's scale: each request arrives `floor(scale)` times, and
        /// once more with probability `fract(scale)`.
        scale: f64,
    },
    /// A per-interval trace: each step's mean prompt and output tokens (the
    /// count comes from the load's arrivals, already scaled).
    Drawn {
        mean_prompt: Vec<f32>,
        mean_output: Vec<f32>,
    },
}

impl RequestSource {
    /// Index the recorded requests by step (`step_ns` long each).
    pub fn recorded(mut requests: Vec<Request>, steps: usize, step_ns: u64) -> Self {
        requests.sort_by_key(|r| r.at_ns);
        let mut first = Vec::with_capacity(steps + 1);
        let mut i = 0usize;
        for s in 0..steps {
            let start = s as u64 * step_ns;
            while i < requests.len() && requests[i].at_ns < start {
                i += 1;
            }
            first.push(i as u32);
        }
        first.push(requests.len() as u32);
        RequestSource::Recorded {
            requests,
            first,
            scale: 1.0,
        }
    }

    pub fn scale(&mut self, factor: f64) {
        if let RequestSource::Recorded { scale, .. } = self {
            *scale *= factor;
        }
    }

    /// Step `step`'s requests into `out` (cleared first), in time order.
    /// `arrivals` is the step's (scaled) expected count.
    pub fn fill(
        &self,
        step: usize,
        step_ns: u64,
        arrivals: f64,
        seed: u64,
        out: &mut Vec<Request>,
    ) {
        out.clear();
        match self {
            RequestSource::Recorded {
                requests,
                first,
                scale,
            } => {
                let (Some(&a), Some(&b)) = (first.get(step), first.get(step + 1)) else {
                    return;
                };
                let whole = scale.floor() as u64;
                let part = scale - scale.floor();
                for (i, r) in requests[a as usize..b as usize].iter().enumerate() {
                    let mut copies = whole;
                    if part > 0.0 {
                        let mut rng = Rng::new(mix(seed, (a as u64 + i as u64) ^ 0xA5A5));
                        copies += u64::from(rng.uniform() < part);
                    }
                    for _ in 0..copies {
                        out.push(*r);
                    }
                }
            }
            RequestSource::Drawn {
                mean_prompt,
                mean_output,
            } => {
                let mut rng = Rng::new(mix(seed, step as u64));
                let n = poisson(&mut rng, arrivals);
                let start = step as u64 * step_ns;
                let prompt = f64::from(mean_prompt.get(step).copied().unwrap_or(1.0));
                let output = f64::from(mean_output.get(step).copied().unwrap_or(1.0));
                for _ in 0..n {
                    let at = start + (rng.uniform() * step_ns as f64) as u64;
                    out.push(Request {
                        at_ns: at.min(start + step_ns - 1),
                        prompt: exponential(&mut rng, prompt),
                        output: exponential(&mut rng, output),
                    });
                }
                out.sort_unstable_by_key(|r| r.at_ns);
            }
        }
    }
}

/// A seed for (`seed`, `key`): SplitMix64's finalizer, so nearby keys give
/// unrelated streams.
fn mix(seed: u64, key: u64) -> u64 {
    let mut z = seed ^ key.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A Poisson count: inversion for small means, a rounded normal above 50
/// (where it is within a fraction of a percent).
fn poisson(rng: &mut Rng, lambda: f64) -> u64 {
    if !(lambda > 0.0 && lambda.is_finite()) {
        return 0;
    }
    if lambda <= 50.0 {
        return u64::from(rng.poisson(lambda));
    }
    // Box-Muller.
    let u1 = rng.uniform().max(f64::MIN_POSITIVE);
    let u2 = rng.uniform();
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    (lambda + lambda.sqrt() * z).round().max(0.0) as u64
}

/// A length around `mean` tokens: exponential, at least 1.
fn exponential(rng: &mut Rng, mean: f64) -> u32 {
    let u = rng.uniform();
    let v = -mean * (1.0 - u).ln();
    v.round().clamp(1.0, 1_000_000.0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn recorded_requests_are_indexed_by_step_and_scaled_by_copies() {
        let r = |ms: u64| Request {
            at_ns: ms * 1_000_000,
            prompt: 10,
            output: 5,
        };
        let mut src = RequestSource::recorded(vec![r(2500), r(100), r(900), r(1000)], 3, S);
        let mut out = Vec::new();
        src.fill(0, S, 0.0, 1, &mut out);
        assert_eq!(out, vec![r(100), r(900)]);
        src.fill(1, S, 0.0, 1, &mut out);
        assert_eq!(out, vec![r(1000)]);
        src.fill(2, S, 0.0, 1, &mut out);
        assert_eq!(out, vec![r(2500)]);
        src.fill(3, S, 0.0, 1, &mut out);
        assert!(out.is_empty(), "past the end: none");
        // x2.5: every request twice, half of them a third time, the same
        // ones for the same seed.
        src.scale(2.5);
        let count = |seed| {
            let mut out = Vec::new();
            (0..3)
                .map(|s| {
                    src.fill(s, S, 0.0, seed, &mut out);
                    out.len()
                })
                .sum::<usize>()
        };
        let n = count(7);
        assert!((8..=12).contains(&n), "{n}");
        assert_eq!(count(7), n);
    }

    #[test]
    fn drawn_requests_follow_the_rate_and_the_token_means() {
        let src = RequestSource::Drawn {
            mean_prompt: vec![1000.0; 200],
            mean_output: vec![100.0; 200],
        };
        let mut out = Vec::new();
        let (mut n, mut prompt, mut output) = (0u64, 0u64, 0u64);
        for step in 0..200 {
            src.fill(step, S, 20.0, 3, &mut out);
            assert!(out.windows(2).all(|w| w[0].at_ns <= w[1].at_ns));
            assert!(out.iter().all(|r| r.at_ns / S == step as u64));
            n += out.len() as u64;
            prompt += out.iter().map(|r| u64::from(r.prompt)).sum::<u64>();
            output += out.iter().map(|r| u64::from(r.output)).sum::<u64>();
        }
        // 4,000 expected; Poisson sd about 63.
        assert!((3800..4200).contains(&n), "{n}");
        let mean_prompt = prompt as f64 / n as f64;
        assert!((950.0..1050.0).contains(&mean_prompt), "{mean_prompt}");
        let mean_output = output as f64 / n as f64;
        assert!((95.0..105.0).contains(&mean_output), "{mean_output}");
        // A high rate takes the normal branch and keeps its mean.
        let mut rng = Rng::new(5);
        let big: u64 = (0..1000).map(|_| poisson(&mut rng, 5000.0)).sum();
        assert!((4_990_000..5_010_000).contains(&big), "{big}");
        // Same seed and step: same requests.
        let mut a = Vec::new();
        let mut b = Vec::new();
        src.fill(17, S, 20.0, 3, &mut a);
        src.fill(17, S, 20.0, 3, &mut b);
        assert_eq!(a, b);
    }
}
