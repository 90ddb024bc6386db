//! The clairvoyant oracle: the cheapest replica schedule that meets the SLO at
//! every step, knowing the whole future load and the cold-start time.
//!
//! Step `t` needs `r(t)` ready replicas ([`ServiceModel::required_replicas`]).
//! Replicas are interchangeable and billed per step from launch, so the
//! cheapest schedule decomposes into levels: level `k` is needed at the steps
//! where `r(t) >= k`. Between two needed stretches of a level, keeping the
//! replica costs the gap; releasing and relaunching it costs the cold start;
//! the oracle pays the smaller. Before a level's first stretch it pays the cold
//! start (replicas already ready when the trace begins are kept from step 0
//! when that is cheaper than releasing and relaunching them). This is
//! optimal per level, hence overall. It uses on-demand replicas only.

use super::batching::{Engine, Request};
use super::model::ServiceModel;
use super::requests::RequestSource;
use super::trace::Load;

/// The oracle's schedule.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct OracleSchedule {
    /// Replicas billed at each step (launched or ready).
    pub billed: Vec<u32>,
    /// Ready replicas needed at each step.
    pub required: Vec<u32>,
    /// Replica-steps billed over the scored steps.
    pub billed_steps: u64,
}

/// Compute the oracle's schedule for per-step arrivals. `initial` replicas are
/// ready at step 0 for free (as they are for every policy).
pub(super) fn schedule(
    model: &ServiceModel,
    arrivals: &[f64],
    scored: &[bool],
    initial: u32,
) -> OracleSchedule {
    let required: Vec<u32> = arrivals
        .iter()
        .map(|&a| model.required_replicas(a))
        .collect();
    schedule_required(model, required, scored, initial)
}

/// The cheapest billing that has `required` replicas ready at every step.
pub(super) fn schedule_required(
    model: &ServiceModel,
    required: Vec<u32>,
    scored: &[bool],
    initial: u32,
) -> OracleSchedule {
    let n = required.len();
    let cold = model.cold_start_steps() as usize;
    // Paid stretches as a difference array: +1 at a stretch's start, -1 after its end.
    let mut delta = vec![0i64; n + 1];
    // Per level: the last step it was needed (None before its first stretch).
    let mut last_needed: Vec<Option<usize>> = Vec::new();
    let pay = |from: usize, to: usize, delta: &mut Vec<i64>| {
        // Pay steps [from, to].
        delta[from] += 1;
        delta[to + 1] -= 1;
    };
    for (t, &r) in required.iter().enumerate() {
        let r = r as usize;
        if last_needed.len() < r {
            last_needed.resize(r, None);
        }
        for (k, last) in last_needed.iter_mut().enumerate().take(r) {
            match *last {
                Some(e) if e + 1 == t => {}
                Some(e) => {
                    let gap = t - e - 1;
                    if gap <= cold {
                        pay(e + 1, t - 1, &mut delta); // keep it through the gap
                    } else if cold > 0 {
                        pay(t - cold, t - 1, &mut delta); // relaunch in time
                    }
                }
                // A replica ready at the start is as if needed just before
                // step 0: kept until `t` if that is cheaper than a relaunch.
                None if k < initial as usize && t > 0 => {
                    if t <= cold {
                        pay(0, t - 1, &mut delta);
                    } else {
                        pay(t - cold, t - 1, &mut delta);
                    }
                }
                None => {
                    if t > 0 && cold > 0 {
                        pay(t.saturating_sub(cold), t - 1, &mut delta);
                    }
                }
            }
            pay(t, t, &mut delta);
            *last = Some(t);
        }
    }
    let mut billed = Vec::with_capacity(n);
    let mut running = 0i64;
    for d in delta.iter().take(n) {
        running += d;
        billed.push(running.max(0) as u32);
    }
    let billed_steps = billed
        .iter()
        .zip(scored)
        .filter(|(_, s)| **s)
        .map(|(b, _)| u64::from(*b))
        .sum();
    OracleSchedule {
        billed,
        required,
        billed_steps,
    }
}

/// The fewest replicas a minute with requests can have.
fn floor_of(model: &ServiceModel) -> u32 {
    model.min_replicas.max(1)
}

/// How long the request oracle lets a minute's requests finish when it
/// judges that minute: this many steps of 10 s at most.
const DRAIN_ROUNDS: usize = 180;

/// The request model's oracle: for each minute in turn, the fewest ready
/// replicas with which that minute's requests meet the SLO, given
/// everything before it (a binary search: more replicas never make a
/// minute worse). It knows the minute's requests before they arrive.
pub(super) fn request_minutes(
    model: &ServiceModel,
    load: &Load,
    source: &RequestSource,
    seed: u64,
    initial: u32,
    progress: Option<&(dyn Fn(u64, u64) + Send + Sync)>,
) -> Vec<u32> {
    let n = load.arrivals.len();
    let spm = (60.0 / model.step_seconds).round().max(1.0) as usize;
    let step_ns = load.step_ms * 1_000_000;
    let slo = model.slo_limits();
    let mut engine = Engine::new(model.engine.clone(), slo);
    engine.set_serving(initial);
    let mut batch: Vec<Vec<Request>> = vec![Vec::new(); spm];
    let mut per_minute = Vec::with_capacity(n.div_ceil(spm));
    let mut last = initial.max(floor_of(model));
    for m in 0..n.div_ceil(spm) {
        let steps = m * spm..((m + 1) * spm).min(n);
        let mut any = false;
        for (k, s) in steps.clone().enumerate() {
            super::step_load(load, Some(source), s, step_ns, seed, &mut batch[k]);
            any |= !batch[k].is_empty();
        }
        let run_minute = |e: &mut Engine| {
            for (k, s) in steps.clone().enumerate() {
                e.run(&batch[k], (s as u64 + 1) * step_ns);
            }
        };
        let meets = |r: u32| {
            let mut t = engine.trial(m);
            t.set_serving(r);
            run_minute(&mut t);
            let mut until = steps.end as u64 * step_ns;
            for _ in 0..DRAIN_ROUNDS {
                if t.in_system() == 0 {
                    break;
                }
                until += 10_000_000_000;
                t.run(&[], until);
            }
            t.close();
            t.minute_counts(m).meets(&slo)
        };
        let r = if !any && engine.in_system() == 0 {
            model.min_replicas
        } else {
            let floor = floor_of(model);
            let max = model.max_replicas;
            // Most minutes need about what the one before did: gallop from
            // it to bracket the answer, then bisect (two or three trials a
            // minute instead of seven).
            let guess = last.clamp(floor, max);
            let (mut lo, mut hi) = if meets(guess) {
                let mut step = 1;
                let mut hi = guess;
                loop {
                    let below = hi.saturating_sub(step).max(floor);
                    if below == hi || !meets(below) {
                        break (below + u32::from(below < hi), hi);
                    }
                    hi = below;
                    step *= 2;
                }
            } else {
                let mut step = 1;
                let mut lo = guess + 1;
                loop {
                    let above = guess.saturating_add(step).min(max);
                    if meets(above) {
                        break (lo, above);
                    }
                    if above == max {
                        break (max, max);
                    }
                    lo = above + 1;
                    step *= 2;
                }
            };
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if meets(mid) {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            hi
        };
        last = r.max(floor_of(model));
        engine.set_serving(r);
        run_minute(&mut engine);
        per_minute.push(r);
        if let Some(p) = progress
            && m % 10 == 0
        {
            // The search is most of the oracle's time; the replays after it are quick.
            p(steps.end as u64 * 9 / 10, n as u64);
        }
    }
    per_minute
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(cold_start_seconds: f64) -> ServiceModel {
        ServiceModel {
            cold_start_seconds,
            min_replicas: 0,
            ..ServiceModel::default()
        }
    }

    #[test]
    fn short_gaps_are_bridged_long_gaps_are_released() {
        // 8 req/s needs 1 replica (u 0.8); 0 needs none.
        let m = model(3.0);
        let load = [8.0, 0.0, 0.0, 8.0, 0.0, 0.0, 0.0, 0.0, 0.0, 8.0];
        let s = schedule(&m, &load, &[true; 10], 1);
        assert_eq!(s.required, vec![1, 0, 0, 1, 0, 0, 0, 0, 0, 1]);
        // Steps 0..=3: warm at 0, gap of 2 <= 3 is kept; gap 4..=8 (5 steps) is
        // longer than the cold start: released, relaunched at 6 for step 9.
        assert_eq!(s.billed, vec![1, 1, 1, 1, 0, 0, 1, 1, 1, 1]);
        assert_eq!(s.billed_steps, 8);
    }

    /// Every schedule of desired counts over a short trace, applied to the
    /// cluster model step by step: the cheapest one that meets the SLO at every
    /// step costs exactly what the oracle pays.
    #[test]
    fn no_feasible_schedule_is_cheaper_than_the_oracle() {
        use crate::sim::model::{Cluster, Rng};
        let m = model(2.0);
        let mut rng = Rng::new(5);
        for _ in 0..12 {
            let steps = 7;
            let load: Vec<f64> = (0..steps).map(|_| (rng.uniform() * 24.0).floor()).collect();
            let initial = (0..=2)
                .map(|t| m.required_replicas(load[t]))
                .max()
                .unwrap_or(0);
            let oracle = schedule(&m, &load, &vec![true; steps], initial);
            let mut best: Option<u64> = None;
            let choices = 4u32; // 0..=3 replicas
            for code in 0..choices.pow(steps as u32) {
                let mut c = Cluster::new(m.clone(), initial, 0);
                let mut ok = true;
                let mut rest = code;
                for &a in &load {
                    c.set_replicas(rest % choices, None);
                    rest /= choices;
                    ok &= c.advance(a, 0.0).meets_slo;
                }
                if ok {
                    let cost = c.billed_on_demand_steps;
                    best = Some(best.map_or(cost, |b| b.min(cost)));
                }
            }
            assert_eq!(
                best,
                Some(oracle.billed_steps),
                "load {load:?}, oracle {oracle:?}"
            );
        }
    }

    #[test]
    fn a_cold_level_is_launched_one_cold_start_early() {
        let m = model(2.0);
        // Step 4 needs 2 replicas (9 req/s over 0.8 x 10 per replica).
        let load = [8.0, 8.0, 8.0, 8.0, 9.0, 8.0];
        let s = schedule(&m, &load, &[true; 6], 1);
        assert_eq!(s.required, vec![1, 1, 1, 1, 2, 1]);
        assert_eq!(s.billed, vec![1, 1, 2, 2, 2, 1]);
        // Only scored steps count.
        let s = schedule(&m, &load, &[true, true, true, false, false, true], 1);
        assert_eq!(s.billed_steps, 1 + 1 + 2 + 1);
    }

    /// Three minutes of requests: a steady minute, a burst, a lull.
    fn three_minutes(seed: u64, burst: u64) -> Load {
        let mut rng = crate::sim::model::Rng::new(seed);
        let mut requests = Vec::new();
        // The burst comes within 5 s.
        for (minute, n, within) in [
            (0u64, 40u64, 60_000.0),
            (1, burst, 5_000.0),
            (2, 10, 60_000.0),
        ] {
            for _ in 0..n {
                let at = minute * 60_000 + (rng.uniform() * within) as u64;
                requests.push(Request {
                    at_ns: at * 1_000_000,
                    prompt: 500 + (rng.uniform() * 3000.0) as u32,
                    output: 20 + (rng.uniform() * 200.0) as u32,
                });
            }
        }
        let steps = 180;
        Load {
            step_ms: 1000,
            start_ms: 0,
            arrivals: vec![0.0; steps],
            tokens: None,
            requests: Some(RequestSource::recorded(requests, steps, 1_000_000_000)),
            scored: vec![true; steps],
            description: String::new(),
        }
    }

    #[test]
    fn the_request_oracle_is_as_cheap_as_a_brute_force_search() {
        let model = ServiceModel {
            cold_start_seconds: 0.0,
            min_replicas: 1,
            max_replicas: 8,
            ..ServiceModel::requests()
        };
        let slo = model.slo_limits();
        for (seed, burst) in [(1, 60), (2, 120), (3, 200), (4, 300)] {
            let load = three_minutes(seed, burst);
            let source = load.requests.as_ref().unwrap();
            // Every schedule of 1..=8 replicas per minute: the cheapest that
            // meets the SLO in all three minutes.
            let mut best: Option<u32> = None;
            for a in 1..=8u32 {
                for b in 1..=8u32 {
                    for c in 1..=8u32 {
                        let per_step: Vec<u32> = (0..180).map(|t| [a, b, c][t / 60]).collect();
                        let mut e = super::super::replay_schedule(
                            &model,
                            &load,
                            source,
                            1,
                            &per_step,
                            |_, _| {},
                        );
                        let minutes = e.close_minutes();
                        if (0..3).all(|m| minutes.get(m).is_none_or(|c| c.meets(&slo))) {
                            best = Some(best.map_or(a + b + c, |x| x.min(a + b + c)));
                        }
                    }
                }
            }
            let best = best.expect("8 replicas meet the SLO");
            let work = vec![0.0; 180];
            let oracle = super::super::run_oracle(&model, &load, &work, 1, 10, 1, None);
            assert_eq!(oracle.score.slo_attainment_pct, 100.0, "seed {seed}");
            let replica_minutes = (oracle.score.replica_hours * 60.0).round() as u32;
            assert_eq!(replica_minutes, best, "seed {seed} burst {burst}");
        }
    }
}
