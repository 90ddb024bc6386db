//! The service model: a GPU inference service as a fluid queue on a fixed step.
//!
//! Each step, requests arrive; the ready replicas serve up to their capacity;
//! the rest wait in a backlog. Latency follows an M/M/1-shaped curve in
//! utilization, plus the time the backlog needs to drain:
//!
//! ```text
//! utilization u = served / capacity                     (capacity = ready x per-replica x step)
//! p95 latency   = light_load_p95_ms / (1 - min(u, 0.99)) + 1000 x backlog / (ready x per-replica)
//! ```
//!
//! A step meets the SLO when its p95 latency is at most `slo_p95_ms` (a step
//! with no arrivals has no slow request, so it meets it). With no backlog that
//! is `u <= 1 - light_load_p95_ms / slo_p95_ms`, 0.8 with the defaults.
//!
//! Replicas take `cold_start_seconds` from launch to ready and are billed from
//! launch. Spot replicas are cheaper and are interrupted at a rate per
//! replica-hour, drawn from the seed: an interrupted replica is replaced at
//! once (the count stays, as a Deployment would) and cold-starts again.

use super::batching::{Engine, EngineModel, MinuteCounts, Request, SloLimits};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// The service being simulated. Every value has a default for a GPU
/// inference service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceModel {
    /// Work one replica does per second at full utilization, in `capacity_unit`.
    pub capacity_per_replica: f64,
    /// What capacity counts: requests, or tokens (input + output; the trace
    /// must have token counts).
    pub capacity_unit: CapacityUnit,
    /// Launch to ready, seconds (a GPU replica pulling a model: about 2 minutes).
    pub cold_start_seconds: f64,
    /// p95 latency of a lightly loaded replica, ms.
    pub light_load_p95_ms: f64,
    /// The SLO: p95 latency of every step, ms.
    pub slo_p95_ms: f64,
    /// Price per replica-hour, on demand.
    pub on_demand_per_hour: f64,
    /// Price per replica-hour, spot.
    pub spot_per_hour: f64,
    /// Spot interruptions per spot replica-hour.
    pub spot_interruptions_per_hour: f64,
    pub min_replicas: u32,
    pub max_replicas: u32,
    /// The simulated tick, seconds.
    pub step_seconds: f64,
    /// Which service model: `requests` (request by request, continuous
    /// batching), `fluid` (the queue above), or `auto`: `requests` where the
    /// trace has requests with token counts or per-interval token sizes.
    pub kind: ModelKind,
    /// Request model SLOs, ms: each minute's p95 time to first token,
    /// inter-token latency and end-to-end latency must be within each one
    /// set (`slo_p95_ms` is the fluid model's).
    pub slo_ttft_p95_ms: Option<f64>,
    pub slo_itl_p95_ms: Option<f64>,
    pub slo_e2e_p95_ms: Option<f64>,
    /// The request model's replica.
    pub engine: EngineModel,
}

/// The service model's kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    #[default]
    Auto,
    Fluid,
    Requests,
}

/// Load per replica the request model counts as "needed" when a trace is
/// scaled and plotted: this share of a replica's full-budget throughput.
pub const REQUEST_MODEL_UTILIZATION: f64 = 0.8;

/// The unit of a replica's capacity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapacityUnit {
    #[default]
    Requests,
    Tokens,
}

impl Default for ServiceModel {
    fn default() -> Self {
        ServiceModel {
            capacity_per_replica: 10.0,
            capacity_unit: CapacityUnit::Requests,
            cold_start_seconds: 120.0,
            light_load_p95_ms: 600.0,
            slo_p95_ms: 3000.0,
            on_demand_per_hour: 2.5,
            spot_per_hour: 0.9,
            spot_interruptions_per_hour: 0.05,
            min_replicas: 1,
            max_replicas: 100,
            step_seconds: 1.0,
            kind: ModelKind::Auto,
            slo_ttft_p95_ms: Some(2000.0),
            slo_itl_p95_ms: Some(100.0),
            slo_e2e_p95_ms: None,
            engine: EngineModel::default(),
        }
    }
}

impl ServiceModel {
    /// The defaults with the fluid model.
    pub fn fluid() -> Self {
        ServiceModel {
            kind: ModelKind::Fluid,
            ..ServiceModel::default()
        }
    }

    /// The defaults with the request model, settled (capacity in tokens).
    pub fn requests() -> Self {
        let mut m = ServiceModel {
            kind: ModelKind::Requests,
            ..ServiceModel::default()
        };
        m.capacity_unit = CapacityUnit::Tokens;
        m.capacity_per_replica = m.engine.tokens_per_second().round();
        m
    }
}

/// A service model that cannot be simulated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("service model: {0}")]
pub struct ModelError(pub String);

impl ServiceModel {
    /// Reject values that make the model meaningless.
    pub fn validate(&self) -> Result<(), ModelError> {
        let positive = [
            ("capacity_per_replica", self.capacity_per_replica),
            ("light_load_p95_ms", self.light_load_p95_ms),
            ("slo_p95_ms", self.slo_p95_ms),
            ("step_seconds", self.step_seconds),
        ];
        for (name, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err(ModelError(format!("{name} must be > 0, got {v}")));
            }
        }
        let non_negative = [
            ("cold_start_seconds", self.cold_start_seconds),
            ("on_demand_per_hour", self.on_demand_per_hour),
            ("spot_per_hour", self.spot_per_hour),
            (
                "spot_interruptions_per_hour",
                self.spot_interruptions_per_hour,
            ),
        ];
        for (name, v) in non_negative {
            if !(v.is_finite() && v >= 0.0) {
                return Err(ModelError(format!("{name} must be >= 0, got {v}")));
            }
        }
        if self.slo_p95_ms <= self.light_load_p95_ms {
            return Err(ModelError(format!(
                "slo_p95_ms ({}) must be above light_load_p95_ms ({}): no load could meet it",
                self.slo_p95_ms, self.light_load_p95_ms
            )));
        }
        if self.min_replicas > self.max_replicas || self.max_replicas == 0 {
            return Err(ModelError(format!(
                "need 0 <= min_replicas <= max_replicas and max_replicas > 0, got {}..{}",
                self.min_replicas, self.max_replicas
            )));
        }
        for (name, v) in [
            ("slo_ttft_p95_ms", self.slo_ttft_p95_ms),
            ("slo_itl_p95_ms", self.slo_itl_p95_ms),
            ("slo_e2e_p95_ms", self.slo_e2e_p95_ms),
        ] {
            if let Some(v) = v
                && !(v.is_finite() && v > 0.0)
            {
                return Err(ModelError(format!("{name} must be > 0, got {v}")));
            }
        }
        if self.kind == ModelKind::Requests {
            self.engine.validate().map_err(ModelError)?;
            if self.slo_limits() == SloLimits::default() {
                return Err(ModelError(
                    "the request model needs an SLO: set slo_ttft_p95_ms, slo_itl_p95_ms or slo_e2e_p95_ms"
                        .into(),
                ));
            }
        }
        if self.step_seconds > 60.0 || (60.0 / self.step_seconds).fract() != 0.0 {
            return Err(ModelError(format!(
                "step_seconds must divide a minute (1, 2, 5, 10, 15, 30, 60), got {}",
                self.step_seconds
            )));
        }
        Ok(())
    }

    /// The highest utilization that meets the SLO with no backlog (the
    /// request model's: [`REQUEST_MODEL_UTILIZATION`]).
    pub fn slo_utilization(&self) -> f64 {
        if self.kind == ModelKind::Requests {
            return REQUEST_MODEL_UTILIZATION;
        }
        1.0 - self.light_load_p95_ms / self.slo_p95_ms
    }

    /// The request model's SLO limits.
    pub fn slo_limits(&self) -> SloLimits {
        SloLimits {
            ttft_ms: self.slo_ttft_p95_ms,
            itl_ms: self.slo_itl_p95_ms,
            e2e_ms: self.slo_e2e_p95_ms,
        }
    }

    /// Settle `auto` for a trace: the request model where the trace has
    /// requests. The request model counts capacity in tokens, a replica's
    /// being its engine's full-budget throughput.
    pub fn resolve(&mut self, has_requests: bool) -> Result<(), ModelError> {
        match (self.kind, has_requests) {
            (ModelKind::Auto, true) => self.kind = ModelKind::Requests,
            (ModelKind::Auto, false) => self.kind = ModelKind::Fluid,
            (ModelKind::Requests, false) => {
                return Err(ModelError(
                    "the request model needs requests with token counts: a per-request trace with \
                     input_tokens/output_tokens, or a per-interval one with mean_input_tokens/\
                     mean_output_tokens; or use --model fluid"
                        .into(),
                ));
            }
            _ => {}
        }
        if self.kind == ModelKind::Requests {
            self.capacity_unit = CapacityUnit::Tokens;
            self.capacity_per_replica = self.engine.tokens_per_second().round();
        }
        self.validate()
    }

    /// Work one replica serves in a step at the SLO's utilization: the unit in
    /// which load is "replicas needed".
    pub fn slo_capacity_per_step(&self) -> f64 {
        self.capacity_per_replica * self.step_seconds * self.slo_utilization()
    }

    pub fn step_ms(&self) -> u64 {
        (self.step_seconds * 1000.0).round() as u64
    }

    pub fn cold_start_steps(&self) -> u64 {
        (self.cold_start_seconds / self.step_seconds).ceil() as u64
    }

    /// One step of the queue: what happens to `arrivals` requests (this step)
    /// on `ready` replicas with `backlog` requests already waiting.
    pub fn step(&self, arrivals: f64, ready: u32, backlog: f64) -> StepOutcome {
        let capacity = f64::from(ready) * self.capacity_per_replica * self.step_seconds;
        let offered = backlog + arrivals;
        let served = offered.min(capacity);
        let backlog = offered - served;
        let utilization = if capacity > 0.0 {
            served / capacity
        } else if offered > 0.0 {
            1.0
        } else {
            0.0
        };
        let wait_ms = if backlog <= 0.0 {
            0.0
        } else if ready == 0 {
            NO_CAPACITY_MS
        } else {
            1000.0 * backlog / (f64::from(ready) * self.capacity_per_replica)
        };
        let latency_ms = self.light_load_p95_ms / (1.0 - utilization.min(0.99)) + wait_ms;
        StepOutcome {
            served,
            backlog,
            utilization,
            latency_ms,
            // A relative epsilon: exactly at the SLO meets it, whatever the rounding.
            meets_slo: arrivals <= 0.0 || latency_ms <= self.slo_p95_ms * (1.0 + 1e-9),
        }
    }

    /// The fewest ready replicas that meet the SLO for `arrivals` with no backlog
    /// (capped at `max_replicas`; at least `min_replicas`). Uses [`Self::step`]
    /// itself, so the oracle and the simulation can never disagree.
    pub fn required_replicas(&self, arrivals: f64) -> u32 {
        if arrivals <= 0.0 {
            return self.min_replicas;
        }
        let guess = (arrivals / self.slo_capacity_per_step())
            .ceil()
            .clamp(0.0, f64::from(self.max_replicas)) as u32;
        let mut n = guess.saturating_sub(1).max(self.min_replicas);
        while n < self.max_replicas && !self.step(arrivals, n, 0.0).meets_slo {
            n += 1;
        }
        n.max(self.min_replicas)
    }
}

/// One step of the request model: `serving` replicas run step `step`'s
/// `requests` until the step ends. Its SLO is scored per minute, from the
/// requests, so the step itself always "meets" it.
pub(super) fn serve_step(
    e: &mut Engine,
    serving: u32,
    requests: &[Request],
    step: u64,
    step_ns: u64,
) -> StepOutcome {
    e.set_serving(serving);
    let busy_before = e.window.busy_ns;
    e.run(requests, (step + 1) * step_ns);
    let busy = (e.window.busy_ns - busy_before) as f64;
    StepOutcome {
        served: 0.0,
        backlog: e.waiting() as f64,
        utilization: if serving > 0 {
            (busy / (f64::from(serving) * step_ns as f64)).min(1.0)
        } else if e.waiting() > 0 {
            1.0
        } else {
            0.0
        },
        latency_ms: 0.0,
        meets_slo: true,
    }
}

/// Latency reported while nothing can serve the backlog (no ready replica).
const NO_CAPACITY_MS: f64 = 600_000.0;

/// What one step of the queue did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepOutcome {
    pub served: f64,
    pub backlog: f64,
    pub utilization: f64,
    pub latency_ms: f64,
    pub meets_slo: bool,
}

/// SplitMix64: small, fast, and the same on every platform, so a seed gives
/// the same interruptions everywhere.
#[derive(Debug, Clone)]
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub(super) fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A Poisson draw with mean `lambda` (small lambda: inversion).
    pub(super) fn poisson(&mut self, lambda: f64) -> u32 {
        if lambda <= 0.0 {
            return 0;
        }
        let u = self.uniform();
        let mut p = (-lambda).exp();
        let mut cumulative = p;
        let mut k = 0u32;
        while u > cumulative && k < 1000 {
            k += 1;
            p *= lambda / f64::from(k);
            cumulative += p;
        }
        k
    }
}

/// A replica still starting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Starting {
    ready_at_step: u64,
    spot: bool,
    /// A surge replica of a mix change: once ready, it retires one ready
    /// replica of the other kind. It is not part of the asked-for count.
    replaces: bool,
}

/// Signals accumulated since the policy last read them (what a scrape-based
/// source such as Prometheus reports over its window).
#[derive(Debug, Clone, Default)]
struct Window {
    steps: u32,
    arrivals: f64,
    utilization_sum: f64,
    utilization_steps: u32,
    tokens: f64,
    /// (latency, arrivals) of each step, for a request-weighted p95.
    latencies: Vec<(f64, f64)>,
}

/// The simulated cluster: replicas, the queue, and what it cost.
#[derive(Debug, Clone)]
pub struct Cluster {
    model: ServiceModel,
    step: u64,
    ready_on_demand: u32,
    ready_spot: u32,
    starting: VecDeque<Starting>,
    /// Spot replicas wanted, from the last decision's spot fraction or pools.
    spot_target: u32,
    /// A decision set the pools: running replicas are replaced, a few at a
    /// time, until the mix matches (a spot fraction alone only steers
    /// launches and retirements).
    replace_mix: bool,
    pub replacements: u64,
    backlog: f64,
    last: StepOutcome,
    last_arrivals: f64,
    last_work: f64,
    rng: Rng,
    window: Window,
    /// Replica-steps billed, on demand and spot.
    pub billed_on_demand_steps: u64,
    pub billed_spot_steps: u64,
    pub interruptions: u64,
    /// The request model's replicas and queue (None: the fluid queue).
    engine: Option<Box<Engine>>,
}

impl Cluster {
    /// A cluster with `initial` replicas already ready (the service was
    /// running before the trace began).
    pub fn new(model: ServiceModel, initial: u32, seed: u64) -> Self {
        let engine = (model.kind == ModelKind::Requests).then(|| {
            let mut e = Engine::new(model.engine.clone(), model.slo_limits());
            e.set_serving(initial);
            Box::new(e)
        });
        Cluster {
            model,
            step: 0,
            ready_on_demand: initial,
            ready_spot: 0,
            starting: VecDeque::new(),
            spot_target: 0,
            replace_mix: false,
            replacements: 0,
            backlog: 0.0,
            last: StepOutcome {
                served: 0.0,
                backlog: 0.0,
                utilization: 0.0,
                latency_ms: 0.0,
                meets_slo: true,
            },
            last_arrivals: 0.0,
            last_work: 0.0,
            rng: Rng::new(seed),
            window: Window::default(),
            billed_on_demand_steps: 0,
            billed_spot_steps: 0,
            interruptions: 0,
            engine,
        }
    }

    /// The request model's engine, when it runs.
    pub fn engine(&self) -> Option<&Engine> {
        self.engine.as_deref()
    }

    /// End the run: the request model's per-minute counts, with requests
    /// still unfinished counted where they are already late.
    pub fn close(&mut self) -> Option<Vec<MinuteCounts>> {
        Some(self.engine.as_mut()?.close_minutes())
    }

    pub fn model(&self) -> &ServiceModel {
        &self.model
    }

    pub fn ready(&self) -> u32 {
        self.ready_on_demand + self.ready_spot
    }

    pub fn starting(&self) -> u32 {
        self.starting.len() as u32
    }

    /// Every replica that exists (and is billed): ready and starting.
    pub fn total(&self) -> u32 {
        self.ready() + self.starting()
    }

    /// The count asked for: every replica but a mix change's surge.
    pub fn count(&self) -> u32 {
        self.total() - self.surging()
    }

    fn surging(&self) -> u32 {
        self.starting.iter().filter(|s| s.replaces).count() as u32
    }

    /// The two pools' counts, excluding surge: (on demand, spot), and each
    /// kind's (ready, starting).
    pub fn pools(&self) -> [(u32, u32, u32); 2] {
        let starting = |spot: bool| self.starting.iter().filter(|s| s.spot == spot).count() as u32;
        let surge = |spot: bool| {
            self.starting
                .iter()
                .filter(|s| s.spot == spot && s.replaces)
                .count() as u32
        };
        [
            (
                self.ready_on_demand + starting(false) - surge(false),
                self.ready_on_demand,
                starting(false),
            ),
            (
                self.ready_spot + starting(true) - surge(true),
                self.ready_spot,
                starting(true),
            ),
        ]
    }

    /// The mix a decision's pools ask for: `spot` of the count on spot, the
    /// rest on demand. Running replicas are replaced over time to reach it.
    pub fn set_mix(&mut self, spot: u32) {
        self.spot_target = spot;
        self.replace_mix = true;
    }

    /// Replicas billed now: (on demand, spot).
    pub fn billed_now(&self) -> (u32, u32) {
        let spot = self.spot_total();
        (self.total() - spot, spot)
    }

    fn spot_total(&self) -> u32 {
        self.ready_spot + self.starting.iter().filter(|s| s.spot).count() as u32
    }

    /// Set the replica count (and the spot share of it). New replicas start
    /// cold; removals take starting replicas first (newest first), then ready
    /// ones of whichever kind is over its share.
    pub fn set_replicas(&mut self, desired: u32, spot_fraction: Option<f64>) {
        // A new count restarts any mix change from where it stands.
        self.starting.retain(|s| !s.replaces);
        if let Some(f) = spot_fraction {
            self.spot_target = (f.clamp(0.0, 1.0) * f64::from(desired)).round() as u32;
        }
        self.spot_target = self.spot_target.min(desired);
        let ready_at_step = self.step + self.model.cold_start_steps();
        while self.total() < desired {
            let spot = self.spot_total() < self.spot_target;
            if self.model.cold_start_steps() == 0 {
                if spot {
                    self.ready_spot += 1;
                } else {
                    self.ready_on_demand += 1;
                }
            } else {
                self.starting.push_back(Starting {
                    ready_at_step,
                    spot,
                    replaces: false,
                });
            }
        }
        while self.total() > desired {
            if self.starting.pop_back().is_some() {
                continue;
            }
            let spot_over = self.ready_spot > self.spot_target;
            if (spot_over || self.ready_on_demand == 0) && self.ready_spot > 0 {
                self.ready_spot -= 1;
            } else {
                self.ready_on_demand -= 1;
            }
        }
    }

    /// Start surge replicas toward the asked-for mix, at most a quarter of
    /// the count (at least one) at a time, the way a rolling update surges:
    /// capacity never drops while the mix changes.
    fn surge(&mut self) {
        let count = self.count();
        let max_surge = (count / 4).max(1);
        let spot_now = self.pools()[1].0;
        let want = self.spot_target.min(count);
        let in_flight = |c: &Self, spot: bool| {
            c.starting
                .iter()
                .filter(|s| s.replaces && s.spot == spot)
                .count() as u32
        };
        let (spot, missing) = if spot_now < want {
            (true, want - spot_now)
        } else {
            (false, spot_now - want)
        };
        // Only replicas that are ready can be replaced.
        let replaceable = if spot {
            self.ready_on_demand
        } else {
            self.ready_spot
        };
        let ready_at_step = self.step + self.model.cold_start_steps().max(1);
        while self.surging() < max_surge && in_flight(self, spot) < missing.min(replaceable) {
            self.starting.push_back(Starting {
                ready_at_step,
                spot,
                replaces: true,
            });
        }
    }

    /// Advance one step with `arrivals` requests carrying `tokens` tokens.
    /// The queue works in the model's capacity unit.
    pub fn advance(&mut self, arrivals: f64, tokens: f64) -> StepOutcome {
        self.advance_with(arrivals, tokens, &[])
    }

    /// [`Self::advance`], and for the request model the step's requests
    /// themselves (in time order).
    pub fn advance_with(
        &mut self,
        arrivals: f64,
        tokens: f64,
        requests: &[Request],
    ) -> StepOutcome {
        let work = match self.model.capacity_unit {
            CapacityUnit::Requests => arrivals,
            CapacityUnit::Tokens => tokens,
        };
        while let Some(s) = self.starting.front().copied() {
            if s.ready_at_step > self.step {
                break;
            }
            self.starting.pop_front();
            if s.spot {
                self.ready_spot += 1;
            } else {
                self.ready_on_demand += 1;
            }
            if s.replaces {
                // The replacement is ready: its predecessor goes.
                self.replacements += 1;
                if s.spot && self.ready_on_demand > 0 {
                    self.ready_on_demand -= 1;
                } else if !s.spot && self.ready_spot > 0 {
                    self.ready_spot -= 1;
                }
            }
        }
        if self.replace_mix {
            self.surge();
        }
        if self.ready_spot > 0 && self.model.spot_interruptions_per_hour > 0.0 {
            let lambda = f64::from(self.ready_spot)
                * self.model.spot_interruptions_per_hour
                * self.model.step_seconds
                / 3600.0;
            let k = self.rng.poisson(lambda).min(self.ready_spot);
            for _ in 0..k {
                self.ready_spot -= 1;
                self.interruptions += 1;
                self.starting.push_back(Starting {
                    ready_at_step: self.step + self.model.cold_start_steps().max(1),
                    spot: true,
                    replaces: false,
                });
            }
        }
        let outcome = match self.engine.as_deref_mut() {
            Some(e) => {
                let ready = self.ready_on_demand + self.ready_spot;
                serve_step(
                    e,
                    ready,
                    requests,
                    self.step,
                    self.model.step_ms() * 1_000_000,
                )
            }
            None => self.model.step(work, self.ready(), self.backlog),
        };
        self.backlog = outcome.backlog;
        self.last = outcome;
        self.last_arrivals = arrivals;
        self.last_work = work;
        let spot = self.spot_total();
        self.billed_spot_steps += u64::from(spot);
        self.billed_on_demand_steps += u64::from(self.total() - spot);
        let w = &mut self.window;
        w.steps += 1;
        w.arrivals += arrivals;
        w.tokens += tokens;
        if self.ready_on_demand + self.ready_spot > 0 {
            w.utilization_sum += outcome.utilization;
            w.utilization_steps += 1;
        }
        if arrivals > 0.0 {
            w.latencies.push((outcome.latency_ms, arrivals));
        }
        self.step += 1;
        outcome
    }

    /// The signals a production source would report now, over the window since
    /// the last read, and start a new window. Names are snapshot fields
    /// (`cost.*` fill the snapshot's cost record).
    pub fn read_signals(&mut self) -> Vec<(&'static str, f64)> {
        let w = std::mem::take(&mut self.window);
        let mut out = Vec::with_capacity(10);
        let seconds = f64::from(w.steps) * self.model.step_seconds;
        if w.steps > 0 {
            out.push(("request_rate", w.arrivals / seconds));
            if w.tokens > 0.0 {
                out.push(("tokens_per_second", w.tokens / seconds));
            }
        }
        if w.utilization_steps > 0 {
            out.push((
                "gpu_utilization",
                w.utilization_sum / f64::from(w.utilization_steps),
            ));
        }
        if let Some(e) = self.engine.as_deref_mut() {
            let ew = std::mem::take(&mut e.window);
            for (name, h) in [
                ("ttft_p95_ms", &ew.ttft),
                ("itl_p95_ms", &ew.itl),
                ("latency_p95_ms", &ew.e2e),
            ] {
                if let Some(p95) = h.p95() {
                    out.push((name, p95));
                }
            }
            out.push(("queue_depth", e.in_system() as f64));
            out.push(("oldest_queued_seconds", e.oldest_waiting_seconds()));
            out.push(("kv_cache_utilization", e.kv_utilization()));
            self.push_costs(&mut out);
            return out;
        }
        if let Some(p95) = weighted_p95(w.latencies) {
            out.push(("latency_p95_ms", p95));
        }
        // Requests in the system now (Little's law on the last step; a backlog
        // of work counted in requests) and how long the backlog needs to drain.
        let rate = self.last_arrivals / self.model.step_seconds;
        let backlog_requests = match self.model.capacity_unit {
            CapacityUnit::Requests => self.backlog,
            CapacityUnit::Tokens if self.last_work > 0.0 => {
                self.backlog * self.last_arrivals / self.last_work
            }
            CapacityUnit::Tokens => 0.0,
        };
        out.push((
            "queue_depth",
            backlog_requests + rate * self.last.latency_ms / 1000.0,
        ));
        let ready = self.ready();
        let oldest = if self.backlog <= 0.0 {
            0.0
        } else if ready == 0 {
            NO_CAPACITY_MS / 1000.0
        } else {
            self.backlog / (f64::from(ready) * self.model.capacity_per_replica)
        };
        out.push(("oldest_queued_seconds", oldest));
        self.push_costs(&mut out);
        out
    }

    fn push_costs(&self, out: &mut Vec<(&'static str, f64)>) {
        out.push(("cost.on_demand_per_hour", self.model.on_demand_per_hour));
        out.push(("cost.spot_per_hour", self.model.spot_per_hour));
        out.push((
            "cost.spot_interruption_rate",
            self.model.spot_interruptions_per_hour,
        ));
    }
}

/// Request-weighted 95th percentile of (latency, weight) pairs.
fn weighted_p95(mut samples: Vec<(f64, f64)>) -> Option<f64> {
    let total: f64 = samples.iter().map(|(_, w)| w).sum();
    if total <= 0.0 {
        return None;
    }
    samples.sort_by(|a, b| a.0.total_cmp(&b.0));
    let rank = 0.95 * total;
    let mut seen = 0.0;
    for (latency, w) in &samples {
        seen += w;
        if seen >= rank {
            return Some(*latency);
        }
    }
    samples.last().map(|(l, _)| *l)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> ServiceModel {
        ServiceModel::default()
    }

    #[test]
    fn a_new_mix_replaces_running_replicas_over_time_without_losing_capacity() {
        let m = ServiceModel {
            spot_interruptions_per_hour: 0.0,
            ..model()
        };
        let cold = m.cold_start_steps();
        assert!(cold > 1, "the default model starts cold");
        let mut c = Cluster::new(m, 8, 7);
        assert_eq!(c.pools()[0].0, 8);
        // All 8 on spot: 2 (a quarter) surge at a time, each retiring an
        // on-demand replica when it is ready.
        c.set_mix(8);
        let mut steps = 0;
        while c.pools()[1].1 < 8 {
            c.advance(10.0, 0.0);
            steps += 1;
            assert!(c.ready() >= 8, "capacity dropped at step {steps}");
            assert_eq!(c.count(), 8, "the surge is not part of the count");
            assert!(c.total() <= 10, "at most 2 surge replicas");
            assert!(steps < 100 * cold, "the mix never converged");
        }
        assert_eq!((c.pools()[0], c.pools()[1]), ((0, 0, 0), (8, 8, 0)));
        assert_eq!(c.replacements, 8);
        // Four rounds of two, each a cold start long.
        assert!(steps >= 4 * cold, "{steps} steps");
        // A spot fraction alone, as before pools, only steers launches.
        let mut f = Cluster::new(ServiceModel::default(), 8, 7);
        f.set_replicas(8, Some(1.0));
        for _ in 0..10 * cold {
            f.advance(10.0, 0.0);
        }
        assert_eq!(f.replacements, 0);
    }

    #[test]
    fn defaults_meet_the_slo_up_to_80_percent_utilization() {
        let m = model();
        assert!((m.slo_utilization() - 0.8).abs() < 1e-12);
        // 4 replicas x 10 req/s: 32 req/s is u = 0.8 -> 600 / 0.2 = 3000 ms: meets.
        let at = m.step(32.0, 4, 0.0);
        assert!((at.latency_ms - 3000.0).abs() < 1e-9, "{at:?}");
        assert!(at.meets_slo);
        // 33 req/s is u = 0.825 -> 600 / 0.175 = 3428.6 ms: misses.
        let over = m.step(33.0, 4, 0.0);
        assert!((over.latency_ms - 600.0 / 0.175).abs() < 1e-9);
        assert!(!over.meets_slo);
        assert_eq!(m.required_replicas(32.0), 4);
        assert_eq!(m.required_replicas(33.0), 5);
        assert_eq!(m.required_replicas(0.0), 1);
    }

    #[test]
    fn overload_builds_a_backlog_that_drains() {
        let m = model();
        // 2 replicas serve 20 req/s; 50 arrive: 30 wait. u = 1 (capped 0.99):
        // 600 / 0.01 = 60000 ms, plus 30 / 20 s = 1500 ms of queue.
        let s = m.step(50.0, 2, 0.0);
        assert_eq!(s.served, 20.0);
        assert_eq!(s.backlog, 30.0);
        assert!((s.latency_ms - 61_500.0).abs() < 1e-6, "{s:?}");
        assert!(!s.meets_slo);
        // Next step, no arrivals: 20 of the 30 drain, 10 remain.
        let t = m.step(0.0, 2, 30.0);
        assert_eq!(t.backlog, 10.0);
        assert!(t.meets_slo, "no arrivals, no slow request");
        // With no replica at all, everything waits.
        let z = m.step(5.0, 0, 0.0);
        assert_eq!(z.backlog, 5.0);
        assert!(!z.meets_slo);
    }

    #[test]
    fn cold_start_delays_capacity_and_bills_from_launch() {
        let m = ServiceModel {
            cold_start_seconds: 3.0,
            ..model()
        };
        let mut c = Cluster::new(m, 1, 7);
        c.set_replicas(3, None);
        assert_eq!((c.ready(), c.starting(), c.total()), (1, 2, 3));
        for _ in 0..3 {
            c.advance(0.0, 0.0);
        }
        assert_eq!(
            c.ready(),
            1,
            "still starting after 3 steps' worth of billing"
        );
        assert_eq!(c.billed_on_demand_steps, 9, "3 replicas billed for 3 steps");
        c.advance(0.0, 0.0);
        assert_eq!((c.ready(), c.starting()), (3, 0), "ready on the 4th step");
        // Scaling down removes starting replicas first, then ready ones.
        c.set_replicas(5, None);
        c.set_replicas(2, None);
        assert_eq!((c.ready(), c.starting()), (2, 0));
    }

    #[test]
    fn spot_interruptions_restart_replicas_and_follow_the_seed() {
        let m = ServiceModel {
            cold_start_seconds: 10.0,
            spot_interruptions_per_hour: 36.0, // 1% per replica per second
            ..model()
        };
        let run = |seed| {
            let mut c = Cluster::new(m.clone(), 0, seed);
            c.set_replicas(10, Some(1.0));
            for _ in 0..2000 {
                c.advance(10.0, 0.0);
            }
            (
                c.interruptions,
                c.total(),
                c.billed_spot_steps,
                c.billed_on_demand_steps,
            )
        };
        let (n, total, spot, on_demand) = run(42);
        assert_eq!(run(42), (n, total, spot, on_demand), "same seed, same run");
        // Expected about 10 x 0.01 x (2000 - 10) ~ 199 (fewer: restarting
        // replicas are not interrupted); far from zero and from every step.
        assert!((100..260).contains(&n), "{n} interruptions");
        assert_eq!(
            total, 10,
            "an interrupted replica is replaced, the count stays"
        );
        assert_eq!((spot, on_demand), (20_000, 0));
        assert_ne!(run(43).0, n, "another seed, other draws");
    }

    #[test]
    fn window_reports_rate_utilization_and_weighted_p95() {
        let mut c = Cluster::new(model(), 4, 1);
        c.advance(20.0, 0.0); // u 0.5 -> 1200 ms
        c.advance(20.0, 0.0);
        c.advance(0.0, 0.0);
        let s: std::collections::BTreeMap<_, _> = c.read_signals().into_iter().collect();
        assert!((s["request_rate"] - 40.0 / 3.0).abs() < 1e-9);
        assert!((s["gpu_utilization"] - 1.0 / 3.0).abs() < 1e-9);
        assert!((s["latency_p95_ms"] - 1200.0).abs() < 1e-9);
        assert_eq!(s["cost.on_demand_per_hour"], 2.5);
        // A new window starts after each read.
        c.advance(10.0, 0.0);
        let s: std::collections::BTreeMap<_, _> = c.read_signals().into_iter().collect();
        assert!((s["request_rate"] - 10.0).abs() < 1e-9);
    }

    #[test]
    fn token_capacity_queues_tokens_and_reports_requests() {
        let m = ServiceModel {
            capacity_per_replica: 1000.0,
            capacity_unit: CapacityUnit::Tokens,
            ..model()
        };
        let mut c = Cluster::new(m, 2, 1);
        // 4 requests of 400 tokens: 1600 of 2000 tokens/s -> u 0.8, meets.
        assert!(c.advance(4.0, 1600.0).meets_slo);
        // The same 4 requests with 3000 tokens: 1000 tokens wait.
        let o = c.advance(4.0, 3000.0);
        assert_eq!(o.backlog, 1000.0);
        assert!(!o.meets_slo);
        let s: std::collections::BTreeMap<_, _> = c.read_signals().into_iter().collect();
        assert!(
            (s["request_rate"] - 4.0).abs() < 1e-9,
            "requests, not tokens"
        );
        assert!((s["tokens_per_second"] - 2300.0).abs() < 1e-9);
    }

    #[test]
    fn bad_models_are_rejected_with_the_field_named() {
        let bad = ServiceModel {
            slo_p95_ms: 500.0,
            ..model()
        };
        assert!(bad.validate().unwrap_err().0.contains("slo_p95_ms"));
        let bad = ServiceModel {
            capacity_per_replica: f64::NAN,
            ..model()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .0
                .contains("capacity_per_replica")
        );
        let bad = ServiceModel {
            step_seconds: 7.0,
            ..model()
        };
        assert!(bad.validate().is_err());
        assert!(model().validate().is_ok());
    }
}
