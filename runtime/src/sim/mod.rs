//! Trace-driven simulation: the real controller, policies and guardrails on a
//! virtual clock.
//!
//! Each policy gets its own [`Cluster`] and a [`Scaler`] built from a
//! [`ScalerConfig`] exactly as `run` builds one, except that its source and
//! target are the cluster ([`SimulatedCluster`], which implements both).
//! The simulator advances the cluster one step at a time and calls
//! [`Scaler::tick`] every policy interval, with the virtual time: the same
//! snapshot building, sandbox, missing-metric and fallback rules, guardrails
//! and audit records as production. There is no second implementation.

pub mod batching;
mod cluster_io;
mod model;
mod oracle;
pub mod report;
pub mod requests;
pub mod setup;
pub mod trace;

pub use cluster_io::SimulatedCluster;
pub use model::{
    CapacityUnit, Cluster, ModelError, ModelKind, REQUEST_MODEL_UTILIZATION, ServiceModel,
    StepOutcome,
};
pub use trace::{Load, TraceSpec};

use crate::audit::AuditRecord;
use crate::config::ScalerConfig;
use crate::controller::Scaler;
use crate::host::Host;
use serde::Serialize;
use std::path::Path;
use std::sync::Arc;

/// A simulation that cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("{0}")]
    Setup(String),
}

/// One policy to simulate: a label and the scaler config it runs under (its
/// policy, params, bounds, interval, guardrails and fallback). Policies given
/// as specs get the service model's bounds; a config's scalers keep their own
/// (the oracle always uses the model's).
#[derive(Debug, Clone)]
pub struct SimPolicy {
    pub label: String,
    pub scaler: ScalerConfig,
}

/// How a policy did: SLO attainment, what it cost, and how it moved.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Score {
    /// Scored minutes in which every step met the SLO, percent.
    pub slo_attainment_pct: f64,
    pub violation_minutes: u64,
    pub scored_minutes: u64,
    /// Replica-hours billed (starting and ready).
    pub replica_hours: f64,
    pub cost: f64,
    /// Cost divided by the oracle's.
    pub cost_vs_oracle: f64,
    pub scale_events: u64,
    pub direction_changes: u64,
    /// Direction changes within [`FLAP_WINDOW_MS`] of the previous change.
    pub flaps: u64,
    /// Request-weighted p95 latency over the whole run, ms (1 % buckets):
    /// end to end in the request model.
    pub p95_latency_ms: f64,
    /// The request model's p95 time to first token and inter-token latency
    /// over the whole run, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttft_p95_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub itl_p95_ms: Option<f64>,
    /// Mean fuel per policy tick (0 for the oracle).
    pub fuel_per_tick: f64,
    pub ticks: u64,
    pub failed_ticks: u64,
    /// Share of billed replica-hours that were spot.
    pub spot_share: f64,
    pub spot_interruptions: u64,
}

impl Score {
    /// The request model's run-wide p95s, from its requests.
    fn set_request_totals(&mut self, totals: &batching::EngineTotals) {
        self.p95_latency_ms = totals.e2e.p95().unwrap_or(0.0);
        self.ttft_p95_ms = totals.ttft.p95();
        self.itl_p95_ms = totals.itl.p95();
    }
}

/// A direction change this soon after the previous one is a flap.
pub const FLAP_WINDOW_MS: u64 = 300_000;

/// One point of a plotted series (a bucket of steps).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct SeriesPoint {
    pub hours: f64,
    /// Load, as the replicas it needs at the SLO's utilization.
    pub load: f64,
    pub ready: f64,
    pub billed: f64,
    /// Some scored minute in the bucket missed the SLO.
    pub violation: bool,
    /// The share of the bucket's scored minutes that missed it.
    pub bad_share: f64,
    /// The bucket holds steps in a gap of the record (not scored).
    pub gap: bool,
    /// The worst minute's SLO metric in the bucket (the fluid model: its
    /// slowest step's p95; the request model: [`batching::SloLimits::plotted`]
    /// at p95, to 25 %), ms.
    pub latency_ms: Option<f64>,
}

/// The result for one policy (or the oracle).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyRun {
    pub label: String,
    /// The policy and the params it ran with (so any row can be rerun).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<serde_json::Value>,
    pub score: Score,
    #[serde(skip)]
    pub series: Vec<SeriesPoint>,
    /// Audit records of every tick (kept only when asked for).
    #[serde(skip)]
    pub audit: Vec<AuditRecord>,
}

/// Everything a simulation produced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimReport {
    pub trace: String,
    pub trace_description: String,
    pub model: ServiceModel,
    pub seed: u64,
    pub steps: u64,
    pub simulated_hours: f64,
    /// Factor the trace's load was multiplied by.
    pub load_scale: f64,
    pub initial_replicas: u32,
    pub oracle: PolicyRun,
    pub policies: Vec<PolicyRun>,
    /// The cheapest policy at each SLO attainment target (see `--sweep`).
    pub frontier: Vec<report::FrontierPoint>,
}

/// Called with (policy index, steps done, steps total) now and then.
pub type Progress = Arc<dyn Fn(usize, u64, u64) + Send + Sync>;

/// How to run.
#[derive(Clone, Default)]
pub struct SimOptions {
    pub seed: u64,
    /// Keep every audit record (for `--audit` and tests).
    pub keep_audit: bool,
    /// Points per plotted series.
    pub plot_points: usize,
    /// Called with (policy index, steps done, steps total) now and then.
    pub progress: Option<Progress>,
}

impl std::fmt::Debug for SimOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimOptions")
            .field("seed", &self.seed)
            .field("keep_audit", &self.keep_audit)
            .field("plot_points", &self.plot_points)
            .finish()
    }
}

/// What a simulation runs on: the service model and the (scaled) load.
#[derive(Debug, Clone, Copy)]
pub struct Setting<'a> {
    pub host: &'a Host,
    /// Where relative policy paths are taken from.
    pub base: &'a Path,
    pub model: &'a ServiceModel,
    pub load: &'a Load,
}

/// Request-weighted latency histogram with 1 % wide buckets.
#[derive(Debug, Clone)]
struct LatencyHistogram(Vec<f64>);

impl LatencyHistogram {
    const BUCKETS: usize = 2000;

    fn new() -> Self {
        LatencyHistogram(vec![0.0; Self::BUCKETS])
    }

    fn add(&mut self, latency_ms: f64, weight: f64) {
        let i = (latency_ms.max(1.0).ln() * 100.0) as usize;
        self.0[i.min(Self::BUCKETS - 1)] += weight;
    }

    /// The upper edge of the bucket holding the 95th percentile.
    fn p95(&self) -> f64 {
        let total: f64 = self.0.iter().sum();
        if total <= 0.0 {
            return 0.0;
        }
        let mut seen = 0.0;
        for (i, w) in self.0.iter().enumerate() {
            seen += w;
            if seen >= 0.95 * total {
                return round3(((i + 1) as f64 / 100.0).exp());
            }
        }
        0.0
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Scores steps: minutes, latency, cost, and the plotted series.
struct Scorer<'a> {
    model: &'a ServiceModel,
    load: &'a Load,
    /// Work per step in the model's unit (requests or tokens).
    work: &'a [f64],
    steps_per_minute: usize,
    minute_bad: bool,
    minute_scored: bool,
    latency: LatencyHistogram,
    on_demand_steps: u64,
    spot_steps: u64,
    bucket_steps: usize,
    bucket: (f64, f64, f64, usize, bool),
    series: Vec<SeriesPoint>,
    /// Whether each minute had a scored step, and whether it met the SLO.
    minutes_scored: Vec<bool>,
    minutes_good: Vec<bool>,
    /// Each minute's SLO metric, as plotted (NaN: none).
    minutes_latency: Vec<f32>,
    minute_latency: f64,
}

impl<'a> Scorer<'a> {
    fn new(model: &'a ServiceModel, load: &'a Load, work: &'a [f64], plot_points: usize) -> Self {
        let steps = load.arrivals.len().max(1);
        Scorer {
            model,
            load,
            work,
            steps_per_minute: (60.0 / model.step_seconds).round().max(1.0) as usize,
            minute_bad: false,
            minute_scored: false,
            latency: LatencyHistogram::new(),
            on_demand_steps: 0,
            spot_steps: 0,
            bucket_steps: steps.div_ceil(plot_points.max(1)),
            bucket: (0.0, 0.0, 0.0, 0, false),
            series: Vec::new(),
            minutes_scored: Vec::new(),
            minutes_good: Vec::new(),
            minutes_latency: Vec::new(),
            minute_latency: f64::NAN,
        }
    }

    fn record(
        &mut self,
        step: usize,
        outcome: &StepOutcome,
        ready: u32,
        on_demand: u32,
        spot: u32,
    ) {
        let arrivals = self.load.arrivals[step];
        if self.load.scored[step] {
            self.minute_scored = true;
            self.minute_bad |= !outcome.meets_slo;
            if arrivals > 0.0 {
                self.latency.add(outcome.latency_ms, arrivals);
                self.minute_latency = self.minute_latency.max(outcome.latency_ms);
            }
            self.on_demand_steps += u64::from(on_demand);
            self.spot_steps += u64::from(spot);
        }
        if (step + 1).is_multiple_of(self.steps_per_minute) || step + 1 == self.load.arrivals.len()
        {
            self.minutes_scored.push(self.minute_scored);
            self.minutes_good.push(!self.minute_bad);
            self.minutes_latency.push(self.minute_latency as f32);
            self.minute_latency = f64::NAN;
            self.minute_bad = false;
            self.minute_scored = false;
        }
        let b = &mut self.bucket;
        b.0 += self.work[step] / self.model.slo_capacity_per_step();
        b.1 += f64::from(ready);
        b.2 += f64::from(on_demand + spot);
        b.3 += 1;
        b.4 |= !self.load.scored[step];
        if b.3 == self.bucket_steps || step + 1 == self.load.arrivals.len() {
            let n = b.3 as f64;
            let start = step + 1 - b.3;
            self.series.push(SeriesPoint {
                hours: start as f64 * self.model.step_seconds / 3600.0,
                load: b.0 / n,
                ready: b.1 / n,
                billed: b.2 / n,
                violation: false,
                bad_share: 0.0,
                gap: b.4,
                latency_ms: None,
            });
            *b = (0.0, 0.0, 0.0, 0, false);
        }
    }

    /// The request model's verdicts: a scored minute is good when its
    /// requests' p95s are within the SLO ([`batching::MinuteCounts::meets`]).
    fn judge_minutes(&mut self, minutes: &[batching::MinuteCounts]) {
        let slo = self.model.slo_limits();
        let plotted = slo.plotted();
        for (m, good) in self.minutes_good.iter_mut().enumerate() {
            *good = minutes.get(m).is_none_or(|c| c.meets(&slo));
        }
        for (m, latency) in self.minutes_latency.iter_mut().enumerate() {
            *latency = match (minutes.get(m), plotted) {
                (Some(c), Some((_, limit))) => c.plotted.p95(limit).map_or(f32::NAN, |v| v as f32),
                _ => f32::NAN,
            };
        }
    }

    /// Count the scored and the good minutes, and mark each plotted bucket
    /// with the share of its scored minutes that missed.
    fn tally(&mut self) -> (u64, u64) {
        let (mut scored_minutes, mut good_minutes) = (0, 0);
        for (scored, good) in self.minutes_scored.iter().zip(&self.minutes_good) {
            if *scored {
                scored_minutes += 1;
                good_minutes += u64::from(*good);
            }
        }
        let spm = self.steps_per_minute;
        let step_hours = self.model.step_seconds / 3600.0;
        let bucket = self.bucket_steps.max(1);
        for p in &mut self.series {
            let start = (p.hours / step_hours).round() as usize;
            let (first, last) = (start / spm, (start + bucket - 1) / spm);
            let (mut scored, mut bad) = (0u32, 0u32);
            let mut worst = f64::NAN;
            for m in first..=last.min(self.minutes_scored.len().saturating_sub(1)) {
                if self.minutes_scored[m] {
                    scored += 1;
                    bad += u32::from(!self.minutes_good[m]);
                }
                worst = worst.max(f64::from(self.minutes_latency[m]));
            }
            p.latency_ms = worst.is_finite().then_some(worst);
            p.violation = bad > 0;
            p.bad_share = if scored > 0 {
                f64::from(bad) / f64::from(scored)
            } else {
                0.0
            };
        }
        (scored_minutes, good_minutes)
    }

    fn finish(mut self) -> (Score, Vec<SeriesPoint>) {
        let (scored_minutes, good_minutes) = self.tally();
        let hours = self.model.step_seconds / 3600.0;
        let on_demand_hours = self.on_demand_steps as f64 * hours;
        let spot_hours = self.spot_steps as f64 * hours;
        let replica_hours = on_demand_hours + spot_hours;
        let score = Score {
            slo_attainment_pct: if scored_minutes == 0 {
                100.0
            } else {
                100.0 * good_minutes as f64 / scored_minutes as f64
            },
            violation_minutes: scored_minutes - good_minutes,
            scored_minutes,
            replica_hours,
            cost: on_demand_hours * self.model.on_demand_per_hour
                + spot_hours * self.model.spot_per_hour,
            p95_latency_ms: self.latency.p95(),
            spot_share: if replica_hours > 0.0 {
                spot_hours / replica_hours
            } else {
                0.0
            },
            ..Score::default()
        };
        (score, self.series)
    }
}

/// Direction-change and flap counting over successive scale events.
#[derive(Debug, Default)]
struct Moves {
    events: u64,
    changes: u64,
    flaps: u64,
    last_direction: i8,
    last_change_ms: Option<u64>,
}

impl Moves {
    fn observe(&mut self, now_ms: u64, before: u32, after: u32) {
        if before == after {
            return;
        }
        self.events += 1;
        let direction = if after > before { 1 } else { -1 };
        if self.last_direction != 0 && direction != self.last_direction {
            self.changes += 1;
            if self
                .last_change_ms
                .is_some_and(|t| now_ms.saturating_sub(t) < FLAP_WINDOW_MS)
            {
                self.flaps += 1;
            }
            self.last_change_ms = Some(now_ms);
        } else if self.last_change_ms.is_none() {
            self.last_change_ms = Some(now_ms);
        }
        self.last_direction = direction;
    }
}

/// Replicas ready when the trace begins: enough for its first cold start, so
/// neither the oracle nor a policy starts in a hole it could not avoid.
pub fn initial_replicas(model: &ServiceModel, work: &[f64]) -> u32 {
    let horizon = (model.cold_start_steps() as usize + 1).min(work.len());
    work[..horizon]
        .iter()
        .map(|a| model.required_replicas(*a))
        .max()
        .unwrap_or(model.min_replicas)
        .clamp(model.min_replicas, model.max_replicas)
}

/// Passes in which the request oracle adds a replica to each minute that
/// missed once the minutes run together (a later minute's requests share
/// batches with an earlier one's tail).
const ORACLE_FIX_PASSES: usize = 8;

/// The oracle, scored like a policy.
pub fn run_oracle(
    model: &ServiceModel,
    load: &Load,
    work: &[f64],
    initial: u32,
    plot_points: usize,
    seed: u64,
    progress: Option<&(dyn Fn(u64, u64) + Send + Sync)>,
) -> PolicyRun {
    let steps = load.arrivals.len() as u64;
    let Some(source) = requests_of(model, load) else {
        if let Some(p) = progress {
            p(steps, steps);
        }
        let schedule = oracle::schedule(model, work, &load.scored, initial);
        let mut scorer = Scorer::new(model, load, work, plot_points);
        for (t, (&required, &billed)) in schedule.required.iter().zip(&schedule.billed).enumerate()
        {
            // The oracle has the replicas it needs ready, every step, with no
            // backlog (it never falls behind).
            let outcome = model.step(work[t], required, 0.0);
            scorer.record(t, &outcome, required, billed, 0);
        }
        return oracle_run(scorer.finish(), load, &schedule.billed);
    };
    let spm = (60.0 / model.step_seconds).round().max(1.0) as usize;
    let mut per_minute = oracle::request_minutes(model, load, source, seed, initial, progress);
    let per_step = |per_minute: &[u32]| -> Vec<u32> {
        (0..load.arrivals.len())
            .map(|t| per_minute[t / spm])
            .collect()
    };
    let mut pass = 0;
    loop {
        let required = per_step(&per_minute);
        let schedule = oracle::schedule_required(model, required.clone(), &load.scored, initial);
        let mut scorer = Scorer::new(model, load, work, plot_points);
        let mut engine = replay_schedule(model, load, source, seed, &required, |t, outcome| {
            scorer.record(t, outcome, required[t], schedule.billed[t], 0);
        });
        scorer.judge_minutes(&engine.close_minutes());
        let mut fixed = false;
        for (m, r) in per_minute.iter_mut().enumerate() {
            let missed = scorer.minutes_scored.get(m).copied().unwrap_or(false)
                && !scorer.minutes_good.get(m).copied().unwrap_or(true);
            if missed && *r < model.max_replicas {
                *r += 1;
                fixed = true;
            }
        }
        pass += 1;
        if !fixed || pass == ORACLE_FIX_PASSES {
            if let Some(p) = progress {
                p(steps, steps);
            }
            let (mut score, series) = scorer.finish();
            score.set_request_totals(&engine.totals);
            return oracle_run((score, series), load, &schedule.billed);
        }
    }
}

/// Run the request model with `required` replicas serving at each step (an
/// oracle's schedule: always ready), calling `each` after every step.
fn replay_schedule(
    model: &ServiceModel,
    load: &Load,
    source: &requests::RequestSource,
    seed: u64,
    required: &[u32],
    mut each: impl FnMut(usize, &StepOutcome),
) -> batching::Engine {
    let step_ns = load.step_ms * 1_000_000;
    let mut engine = batching::Engine::new(model.engine.clone(), model.slo_limits());
    let mut requests = Vec::new();
    for (t, &r) in required.iter().enumerate() {
        step_load(load, Some(source), t, step_ns, seed, &mut requests);
        let outcome = model::serve_step(&mut engine, r, &requests, t as u64, step_ns);
        // The window is only for policies; keep it from growing.
        if t % 64 == 0 {
            engine.window = batching::EngineWindow::default();
        }
        each(t, &outcome);
    }
    engine
}

/// The oracle's run from its score and billing.
fn oracle_run(scored: (Score, Vec<SeriesPoint>), load: &Load, billed: &[u32]) -> PolicyRun {
    let (mut score, series) = scored;
    let mut moves = Moves::default();
    for t in 1..billed.len() {
        moves.observe(
            load.start_ms + t as u64 * load.step_ms,
            billed[t - 1],
            billed[t],
        );
    }
    score.cost_vs_oracle = 1.0;
    score.scale_events = moves.events;
    score.direction_changes = moves.changes;
    score.flaps = moves.flaps;
    PolicyRun {
        label: "oracle".into(),
        policy: None,
        params: None,
        score,
        series,
        audit: Vec::new(),
    }
}

/// The requests the request model runs on (None for the fluid model).
fn requests_of<'a>(model: &ServiceModel, load: &'a Load) -> Option<&'a requests::RequestSource> {
    (model.kind == ModelKind::Requests)
        .then_some(load.requests.as_ref())
        .flatten()
}

/// One step's load: its requests into `out` (request model), and the
/// arrivals and tokens a source would count.
fn step_load(
    load: &Load,
    source: Option<&requests::RequestSource>,
    step: usize,
    step_ns: u64,
    seed: u64,
    out: &mut Vec<batching::Request>,
) -> (f64, f64) {
    match source {
        Some(src) => {
            src.fill(step, step_ns, load.arrivals[step], seed, out);
            let tokens: u64 = out
                .iter()
                .map(|r| u64::from(r.prompt) + u64::from(r.output))
                .sum();
            (out.len() as f64, tokens as f64)
        }
        None => {
            out.clear();
            (
                load.arrivals[step],
                load.tokens.as_ref().map_or(0.0, |t| t[step]),
            )
        }
    }
}

/// Score a finished run; the request model's minutes are judged from its
/// requests, and its run-wide p95s reported.
fn finish_scorer(mut scorer: Scorer<'_>, cluster: &mut Cluster) -> (Score, Vec<SeriesPoint>) {
    let minutes = cluster.close();
    if let Some(minutes) = &minutes {
        scorer.judge_minutes(minutes);
    }
    let (mut score, series) = scorer.finish();
    if let Some(e) = cluster.engine() {
        score.set_request_totals(&e.totals);
    }
    (score, series)
}

/// The load's work per step in the model's unit.
fn work_of<'a>(model: &ServiceModel, load: &'a Load) -> Result<&'a [f64], SimError> {
    load.work(model.capacity_unit)
        .ok_or_else(|| SimError::Setup(trace::NO_TOKEN_COUNTS.into()))
}

/// Simulate one policy on the load.
pub fn run_policy(
    setting: Setting<'_>,
    policy: &SimPolicy,
    initial: u32,
    options: &SimOptions,
    index: usize,
) -> Result<PolicyRun, SimError> {
    let Setting {
        host,
        base,
        model,
        load,
    } = setting;
    let cluster = SimulatedCluster::new(Cluster::new(
        model.clone(),
        initial,
        options.seed.wrapping_add(index as u64),
    ));
    let config = &policy.scaler;
    let mut scaler = Scaler::with_io(
        config,
        base,
        host,
        Box::new(cluster.clone()),
        Box::new(cluster.clone()),
    )
    .map_err(|e| SimError::Setup(format!("{}: {}", policy.label, e.cause)))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| SimError::Setup(format!("cannot start the runtime: {e}")))?;
    let interval_ms = (config.interval_seconds * 1000.0).round().max(1.0) as u64;
    let every = (interval_ms / load.step_ms).max(1) as usize;
    let work = work_of(model, load)?;
    let mut scorer = Scorer::new(model, load, work, options.plot_points);
    let mut moves = Moves::default();
    let (mut ticks, mut failed, mut fuel) = (0u64, 0u64, 0u64);
    let mut audit = Vec::new();
    let total = load.arrivals.len();
    let report_every = (total / 200).max(10_000);
    let source = requests_of(model, load);
    let step_ns = load.step_ms * 1_000_000;
    let mut requests = Vec::new();
    for step in 0..total {
        let (arrivals, tokens) =
            step_load(load, source, step, step_ns, options.seed, &mut requests);
        let mut c = cluster.lock();
        let outcome = c.advance_with(arrivals, tokens, &requests);
        let ready = c.ready();
        let (on_demand, spot) = c.billed_now();
        drop(c);
        scorer.record(step, &outcome, ready, on_demand, spot);
        // At the end of each interval the controller ticks on what the
        // interval showed; its decision applies from the next step.
        if (step + 1).is_multiple_of(every) {
            let now_ms = load.start_ms + (step as u64 + 1) * load.step_ms;
            // The simulated source and target answer at once: the tick never waits.
            let record = runtime.block_on(scaler.tick(now_ms));
            ticks += 1;
            failed += u64::from(!record.failures.is_empty());
            fuel += record.fuel.unwrap_or(0);
            moves.observe(now_ms, record.previous_replicas, record.final_replicas);
            if options.keep_audit {
                audit.push(record);
            }
        }
        if let Some(progress) = &options.progress
            && (step.is_multiple_of(report_every) || step + 1 == total)
        {
            progress(index, step as u64 + 1, total as u64);
        }
    }
    let (mut score, series) = finish_scorer(scorer, &mut cluster.lock());
    score.scale_events = moves.events;
    score.direction_changes = moves.changes;
    score.flaps = moves.flaps;
    score.ticks = ticks;
    score.failed_ticks = failed;
    score.fuel_per_tick = if ticks > 0 {
        (fuel as f64 / ticks as f64).round()
    } else {
        0.0
    };
    score.spot_interruptions = cluster.lock().interruptions;
    Ok(PolicyRun {
        label: policy.label.clone(),
        policy: Some(policy.scaler.policy.clone()),
        params: serde_json::to_value(&policy.scaler.params).ok(),
        score,
        series,
        audit,
    })
}

/// Simulate every policy (one after another, each on its own cluster) and
/// the oracle, on a load already scaled to the model.
pub fn simulate(
    setting: Setting<'_>,
    policies: &[SimPolicy],
    trace: &str,
    load_scale: f64,
    options: &SimOptions,
) -> Result<SimReport, SimError> {
    let Setting { model, load, .. } = setting;
    if model.kind == ModelKind::Auto {
        return Err(SimError::Setup(
            "the service model's kind is auto: settle it for the trace first (ServiceModel::resolve)"
                .into(),
        ));
    }
    model.validate()?;
    if load.arrivals.is_empty() {
        return Err(SimError::Setup("the trace has no steps".into()));
    }
    let work = work_of(model, load)?;
    let initial = initial_replicas(model, work);
    // Every policy must load before the oracle runs (on the request model the
    // oracle can take minutes): a bad policy is an error now, not then.
    for policy in policies {
        let probe = SimulatedCluster::new(Cluster::new(model.clone(), initial, 0));
        Scaler::with_io(
            &policy.scaler,
            setting.base,
            setting.host,
            Box::new(probe.clone()),
            Box::new(probe),
        )
        .map_err(|e| SimError::Setup(format!("{}: {}", policy.label, e.cause)))?;
    }
    let plot_points = if options.plot_points == 0 {
        1500
    } else {
        options.plot_points
    };
    let options = SimOptions {
        plot_points,
        ..options.clone()
    };
    let oracle_progress = options.progress.clone().map(|p| {
        let index = policies.len();
        Arc::new(move |done: u64, total: u64| p(index, done, total))
            as Arc<dyn Fn(u64, u64) + Send + Sync>
    });
    let oracle = run_oracle(
        model,
        load,
        work,
        initial,
        plot_points,
        options.seed,
        oracle_progress.as_deref(),
    );
    // Policies are independent (each has its own cluster and seed), so they
    // run side by side, one per core; the results do not depend on it.
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let mut runs = Vec::with_capacity(policies.len());
    for (chunk_index, chunk) in policies.chunks(cores).enumerate() {
        let results: Vec<Result<PolicyRun, SimError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = chunk
                .iter()
                .enumerate()
                .map(|(j, p)| {
                    let options = &options;
                    let index = chunk_index * cores + j;
                    scope.spawn(move || run_policy(setting, p, initial, options, index))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(SimError::Setup("a simulation thread panicked".into()))
                    })
                })
                .collect()
        });
        for result in results {
            let mut run = result?;
            run.score.cost_vs_oracle = if oracle.score.cost > 0.0 {
                run.score.cost / oracle.score.cost
            } else {
                0.0
            };
            runs.push(run);
        }
    }
    let mut report = SimReport {
        trace: trace.to_owned(),
        trace_description: load.description.clone(),
        model: model.clone(),
        seed: options.seed,
        steps: load.arrivals.len() as u64,
        simulated_hours: load.arrivals.len() as f64 * model.step_seconds / 3600.0,
        load_scale,
        initial_replicas: initial,
        oracle,
        policies: runs,
        frontier: Vec::new(),
    };
    report.frontier = report::frontier(&report);
    Ok(report)
}
