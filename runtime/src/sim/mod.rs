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

mod cluster_io;
mod model;
mod oracle;
pub mod report;
pub mod setup;
pub mod trace;

pub use cluster_io::SimulatedCluster;
pub use model::{CapacityUnit, Cluster, ModelError, ServiceModel, StepOutcome};
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
    /// Request-weighted p95 latency over the whole run, ms (1 % buckets).
    pub p95_latency_ms: f64,
    /// Mean fuel per policy tick (0 for the oracle).
    pub fuel_per_tick: f64,
    pub ticks: u64,
    pub failed_ticks: u64,
    /// Share of billed replica-hours that were spot.
    pub spot_share: f64,
    pub spot_interruptions: u64,
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
    /// Some step in the bucket missed the SLO.
    pub violation: bool,
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
    good_minutes: u64,
    scored_minutes: u64,
    latency: LatencyHistogram,
    on_demand_steps: u64,
    spot_steps: u64,
    bucket_steps: usize,
    bucket: (f64, f64, f64, usize, bool),
    series: Vec<SeriesPoint>,
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
            good_minutes: 0,
            scored_minutes: 0,
            latency: LatencyHistogram::new(),
            on_demand_steps: 0,
            spot_steps: 0,
            bucket_steps: steps.div_ceil(plot_points.max(1)),
            bucket: (0.0, 0.0, 0.0, 0, false),
            series: Vec::new(),
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
            }
            self.on_demand_steps += u64::from(on_demand);
            self.spot_steps += u64::from(spot);
        }
        if (step + 1).is_multiple_of(self.steps_per_minute) || step + 1 == self.load.arrivals.len()
        {
            if self.minute_scored {
                self.scored_minutes += 1;
                self.good_minutes += u64::from(!self.minute_bad);
            }
            self.minute_bad = false;
            self.minute_scored = false;
        }
        let b = &mut self.bucket;
        b.0 += self.work[step] / self.model.slo_capacity_per_step();
        b.1 += f64::from(ready);
        b.2 += f64::from(on_demand + spot);
        b.3 += 1;
        b.4 |= self.load.scored[step] && !outcome.meets_slo;
        if b.3 == self.bucket_steps || step + 1 == self.load.arrivals.len() {
            let n = b.3 as f64;
            let start = step + 1 - b.3;
            self.series.push(SeriesPoint {
                hours: start as f64 * self.model.step_seconds / 3600.0,
                load: b.0 / n,
                ready: b.1 / n,
                billed: b.2 / n,
                violation: b.4,
            });
            *b = (0.0, 0.0, 0.0, 0, false);
        }
    }

    fn finish(self) -> (Score, Vec<SeriesPoint>) {
        let hours = self.model.step_seconds / 3600.0;
        let on_demand_hours = self.on_demand_steps as f64 * hours;
        let spot_hours = self.spot_steps as f64 * hours;
        let replica_hours = on_demand_hours + spot_hours;
        let score = Score {
            slo_attainment_pct: if self.scored_minutes == 0 {
                100.0
            } else {
                100.0 * self.good_minutes as f64 / self.scored_minutes as f64
            },
            violation_minutes: self.scored_minutes - self.good_minutes,
            scored_minutes: self.scored_minutes,
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

/// The oracle, scored like a policy.
pub fn run_oracle(
    model: &ServiceModel,
    load: &Load,
    work: &[f64],
    initial: u32,
    plot_points: usize,
) -> PolicyRun {
    let schedule = oracle::schedule(model, work, &load.scored, initial);
    let mut scorer = Scorer::new(model, load, work, plot_points);
    let mut moves = Moves::default();
    for (t, (&required, &billed)) in schedule.required.iter().zip(&schedule.billed).enumerate() {
        // The oracle has the replicas it needs ready, every step, with no
        // backlog (it never falls behind).
        let outcome = model.step(work[t], required, 0.0);
        scorer.record(t, &outcome, required, billed, 0);
        if t > 0 {
            moves.observe(
                load.start_ms + t as u64 * load.step_ms,
                schedule.billed[t - 1],
                billed,
            );
        }
    }
    let (mut score, series) = scorer.finish();
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
    for step in 0..total {
        let tokens = load.tokens.as_ref().map_or(0.0, |t| t[step]);
        let mut c = cluster.lock();
        let outcome = c.advance(load.arrivals[step], tokens);
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
    let (mut score, series) = scorer.finish();
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
    model.validate()?;
    if load.arrivals.is_empty() {
        return Err(SimError::Setup("the trace has no steps".into()));
    }
    let work = work_of(model, load)?;
    let initial = initial_replicas(model, work);
    let plot_points = if options.plot_points == 0 {
        1500
    } else {
        options.plot_points
    };
    let options = SimOptions {
        plot_points,
        ..options.clone()
    };
    let oracle = run_oracle(model, load, work, initial, plot_points);
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
