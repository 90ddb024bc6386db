//! The controller: the one place where sources, the policy host, guardrails,
//! actuators and the audit log meet. [`Scaler::tick`] is the tick function that
//! `run` calls on a wall clock, and that `replay` and the simulator call with
//! their own clocks: one code path for all three.

use crate::actuators::{Actuator, Observed};
use crate::audit::{AuditLog, AuditRecord, Failure, GuardrailRecord, RecordedDecision, Stage};
use crate::config::{Config, ScalerConfig};
use crate::guard::{self, BreakerSetting, GuardConfig, GuardState, Tick};
use crate::host::{Host, PolicyInstance, ReplicaCounts};
use crate::sources::{Reading, Source};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What a scaler keeps across restarts (in `state_dir/<scaler>.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PersistedState {
    pub guard: GuardState,
    pub policy_state: Vec<u8>,
    pub failed_ticks: u32,
    /// The policy's digest when the state was saved.
    pub policy_digest: String,
    /// The count last set, so the log target resumes where it was.
    #[serde(default)]
    pub last_replicas: Option<u32>,
}

/// A scaler could not be built.
#[derive(Debug, thiserror::Error)]
#[error("scaler {scaler}: {message}")]
pub struct SetupError {
    pub scaler: String,
    pub message: String,
}

/// One configured scaler, ready to tick.
pub struct Scaler {
    config: ScalerConfig,
    guard: GuardConfig,
    state: PersistedState,
    policy: PolicyInstance,
    /// The safety-net policy, when configured (its state is not persisted).
    safety: Option<PolicyInstance>,
    source: Source,
    actuator: Actuator,
    state_file: Option<PathBuf>,
    /// Who writes each audit record, shared with the records.
    identity: Identity,
    /// Failures between ticks, reported in the next tick's record.
    pending_failures: Vec<Failure>,
}

/// The fields every audit record of a scaler repeats.
#[derive(Debug, Clone)]
struct Identity {
    scaler: Arc<str>,
    tenant: Arc<str>,
    policy: Arc<str>,
    policy_digest: Arc<str>,
}

impl std::fmt::Debug for Scaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scaler")
            .field("name", &self.config.name)
            .finish()
    }
}

impl Scaler {
    /// Build a scaler: load its policy, source and actuator, and restore any
    /// state it persisted (so a restart inside a stabilization window keeps it).
    pub fn new(
        config: &ScalerConfig,
        base: &Path,
        host: &Host,
        state_dir: Option<&Path>,
    ) -> Result<Self, SetupError> {
        Self::build(config, base, host, state_dir, None, None)
    }

    /// Build a scaler whose source and target are given rather than configured:
    /// the simulator's cluster, or an audit log's snapshots. Everything else
    /// (policy, safety net, guardrails, fallback) comes from `config`, exactly
    /// as for `run`, except that its decisions must not depend on how busy
    /// this machine is: the wall-clock deadline is lifted
    /// ([`crate::host::Limits::deterministic`]); fuel, memory and log limits stay.
    pub fn with_io(
        config: &ScalerConfig,
        base: &Path,
        host: &Host,
        source: Source,
        actuator: Actuator,
    ) -> Result<Self, SetupError> {
        let mut config = config.clone();
        config.limits = Some(
            config
                .limits
                .as_ref()
                .unwrap_or(host.limits())
                .deterministic(),
        );
        Self::build(&config, base, host, None, Some(source), Some(actuator))
    }

    fn build(
        config: &ScalerConfig,
        base: &Path,
        host: &Host,
        state_dir: Option<&Path>,
        source: Option<Source>,
        actuator: Option<Actuator>,
    ) -> Result<Self, SetupError> {
        let fail = |message: String| SetupError {
            scaler: config.name.clone(),
            message,
        };
        // A scaler's own `[scaler.limits]` replace the host's for its policies.
        let with_limits = |c: crate::host::CompiledPolicy| match &config.limits {
            Some(l) => c.with_limits(l.clone()),
            None => c,
        };
        let compiled = with_limits(
            host.load(&config.policy_source(base))
                .map_err(|e| fail(e.to_string()))?,
        );
        let mut policy = compiled
            .instantiate(&config.params_json())
            .map_err(|e| fail(e.to_string()))?;
        let source = match source {
            Some(s) => s,
            None => Source::from_config(config, base).map_err(|e| fail(e.to_string()))?,
        };
        let safety = match &config.safety_net {
            Some(net) => {
                let source = crate::host::PolicySource::resolve(&net.policy, base);
                let compiled = with_limits(
                    host.load(&source)
                        .map_err(|e| fail(format!("safety net: {e}")))?,
                );
                Some(
                    compiled
                        .instantiate(&net.params_json())
                        .map_err(|e| fail(format!("safety net: {e}")))?,
                )
            }
            None => None,
        };
        let state_file = state_dir.map(|d| d.join(format!("{}.json", sanitize(&config.name))));
        let mut state = PersistedState::default();
        let mut pending_failures = Vec::new();
        if let Some(path) = &state_file
            && let Ok(text) = std::fs::read_to_string(path)
        {
            match serde_json::from_str::<PersistedState>(&text) {
                Ok(saved) => {
                    if !saved.policy_state.is_empty()
                        && let Err(e) = policy.load_state(&saved.policy_state)
                    {
                        tracing::warn!(scaler = %config.name, error = %e, "policy rejected its saved state; starting it fresh");
                        pending_failures.push(state_rejected(&e));
                    }
                    state = saved;
                }
                Err(e) => {
                    tracing::warn!(scaler = %config.name, path = %path.display(), error = %e, "ignoring unreadable state")
                }
            }
        }
        state.policy_digest = policy.compiled().digest().to_owned();
        let initial = state.last_replicas.unwrap_or(config.min_replicas);
        let actuator = match actuator {
            Some(a) => a,
            None => {
                Actuator::from_config(config, base, initial).map_err(|e| fail(e.to_string()))?
            }
        };
        let identity = Identity {
            scaler: config.name.as_str().into(),
            tenant: config.tenant.as_str().into(),
            policy: config.policy.as_str().into(),
            policy_digest: state.policy_digest.as_str().into(),
        };
        Ok(Scaler {
            identity,
            config: config.clone(),
            guard: config.guard_config(),
            state,
            policy,
            safety,
            source,
            actuator,
            state_file,
            pending_failures,
        })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The tick interval. Validation bounds it; an unvalidated config gets
    /// the nearest bound rather than a panic.
    pub fn interval(&self) -> Duration {
        let seconds = self.config.interval_seconds;
        let seconds = if seconds.is_nan() {
            crate::config::MAX_INTERVAL_SECONDS
        } else {
            seconds.clamp(
                crate::config::MIN_INTERVAL_SECONDS,
                crate::config::MAX_INTERVAL_SECONDS,
            )
        };
        Duration::from_secs_f64(seconds)
    }

    pub fn state(&self) -> &PersistedState {
        &self.state
    }

    /// Take over the state of the scaler this one replaces (config reload):
    /// guard history, failed ticks, the target's count, and the policy's memory
    /// (which the new policy may reject: then it starts fresh).
    pub fn adopt(&mut self, old: PersistedState) {
        if !old.policy_state.is_empty()
            && let Err(e) = self.policy.load_state(&old.policy_state)
        {
            tracing::warn!(scaler = %self.config.name, error = %e, "the new policy rejected the old one's state; it starts fresh");
            self.pending_failures.push(state_rejected(&e));
        }
        let digest = std::mem::take(&mut self.state.policy_digest);
        self.state = PersistedState {
            policy_digest: digest,
            ..old
        };
        if let Some(n) = self.state.last_replicas
            && let Actuator::Log { replicas, .. } = &mut self.actuator
        {
            *replicas = n;
        }
    }

    /// Set (or clear) the circuit breaker by operator request; persisted.
    pub fn set_breaker(&mut self, setting: Option<BreakerSetting>) {
        tracing::warn!(scaler = %self.config.name, ?setting, "circuit breaker changed by an operator");
        self.state.guard.breaker = setting;
        self.persist();
    }

    /// One tick: observe, read, evaluate, guard, act, record. Never panics;
    /// every failure ends up in the returned record.
    pub async fn tick(&mut self, now_ms: u64) -> AuditRecord {
        let started = Instant::now();
        // Failures noticed between ticks (a policy that rejected its saved
        // state) are reported with the next record.
        let mut failures = std::mem::take(&mut self.pending_failures);
        let mut guardrails: Vec<GuardrailRecord> = Vec::new();
        let fail = Failure::new;

        // An unreadable target leaves the count unknown: nothing is decided,
        // the tick fails (toward the fallback), and the record and metrics
        // carry the last count known, never a made-up 0.
        let observed = match self.actuator.observe().await {
            Ok(o) => Some(o),
            Err(e) => {
                failures.push(fail(Stage::ActuatorRead, e.kind(), e.to_string()));
                None
            }
        };
        let current = match observed {
            Some(o) => o.current,
            None => self.state.last_replicas.unwrap_or(0),
        };
        let (snapshot, missing) = match observed {
            Some(o) => self.read_snapshot(o, now_ms, &mut failures).await,
            None => (None, Vec::new()),
        };

        let evaluation = snapshot.as_ref().map(|s| self.policy.evaluate(s));
        let (mut decision, mut fuel) = match evaluation {
            Some(Ok(eval)) => (Some(eval.decision), Some(eval.cost.fuel)),
            Some(Err(e)) => {
                failures.push(fail(Stage::Policy, e.kind(), e.to_string()));
                (None, Some(self.policy.failed_fuel()))
            }
            None => (None, None),
        };
        // The safety net's proposal is a floor under the main policy's.
        if let (Some(net), Some(s)) = (self.safety.as_mut(), snapshot.as_ref()) {
            match net.evaluate(s) {
                Ok(eval) => {
                    fuel = Some(fuel.unwrap_or(0) + eval.cost.fuel);
                    let wins = decision
                        .as_ref()
                        .is_none_or(|d| eval.decision.desired > d.desired);
                    if wins {
                        let mut d = eval.decision;
                        d.reason = format!("safety net: {}", d.reason);
                        if let Some(main) = &decision {
                            d.spot_fraction = main.spot_fraction;
                        }
                        decision = Some(d);
                    }
                }
                Err(e) => {
                    fuel = Some(fuel.unwrap_or(0) + net.failed_fuel());
                    failures.push(fail(Stage::SafetyNet, e.kind(), e.to_string()));
                }
            }
        }
        // A tick fails when the target cannot be read, when nothing produced
        // a valid proposal (source down, every policy failed), or when the
        // write fails (counted below); each counts toward the fallback.
        if decision.is_none() {
            self.state.failed_ticks = self.state.failed_ticks.saturating_add(1);
        }
        let tick = Tick {
            now_ms,
            current,
            proposal: decision.as_ref().map(|d| d.desired),
            price_per_replica_hour: snapshot.as_ref().and_then(|s| s.cost.on_demand_per_hour),
            missing: &missing,
            no_pods: observed.is_some_and(|o| o.current > 0 && o.observed.is_none_or(|n| n == 0)),
            failed_ticks: self.state.failed_ticks,
        };

        // With the target unreadable only the fallback is acted on, and only
        // from a count known before; otherwise the record says what the
        // shaping rules (the fallback) would have done.
        if observed.is_none() {
            let (shaped, changes) = guard::shape(&self.guard, &tick);
            if shaped.is_none() || self.state.last_replicas.is_none() {
                guardrails.extend(changes.iter().map(GuardrailRecord::from));
                self.persist();
                return self.finish(
                    now_ms, started, None, missing, None, failures, guardrails, current, current,
                    false,
                );
            }
        }

        let verdict = guard::apply(&self.guard, &mut self.state.guard, tick);
        guardrails.extend(verdict.interventions.iter().map(GuardrailRecord::from));
        let target = verdict.replicas;

        let mut wrote = false;
        let mut write_failed = false;
        if verdict.act
            && let Some(f) = decision.as_ref().and_then(|d| d.spot_fraction)
        {
            self.actuator.set_spot_fraction(f);
        }
        if verdict.act && target != current {
            let reason = decision
                .as_ref()
                .map_or("guardrails", |d| d.reason.as_str());
            match self.actuator.apply(target, reason).await {
                Ok(w) => wrote = w,
                Err(e) => {
                    write_failed = true;
                    failures.push(fail(Stage::ActuatorWrite, e.kind(), e.to_string()));
                }
            }
        }
        if write_failed || observed.is_none() {
            if decision.is_some() {
                self.state.failed_ticks = self.state.failed_ticks.saturating_add(1);
            }
        } else if decision.is_some() {
            self.state.failed_ticks = 0;
        }
        let saved = self.policy.last_good_state();
        if self.state.policy_state != saved {
            self.state.policy_state.clear();
            self.state.policy_state.extend_from_slice(saved);
        }
        // What the target holds now: the new count only if it was written
        // (or needed no write).
        let final_replicas = if write_failed || !verdict.act {
            current
        } else {
            target
        };
        if !write_failed {
            self.state.last_replicas = Some(final_replicas);
        }
        self.persist();
        let recorded = decision.as_ref().map(RecordedDecision::from);
        self.finish(
            now_ms,
            started,
            snapshot,
            missing,
            recorded,
            failures,
            guardrails,
            current,
            final_replicas,
            wrote,
        )
        .with_fuel(fuel)
    }

    /// The source's reading as the snapshot the policy sees, with the replica
    /// counts the target reported.
    async fn read_snapshot(
        &mut self,
        observed: Observed,
        now_ms: u64,
        failures: &mut Vec<Failure>,
    ) -> (Option<crate::host::Snapshot>, Vec<String>) {
        let current = observed.current;
        match self.source.read().await {
            Ok(Reading {
                snapshot: Some(mut recorded),
                missing,
                ..
            }) => {
                // A recorded snapshot is fed as it was, with the count the
                // target has now (replay runs closed-loop).
                recorded.replicas.current = current;
                recorded.replicas.observed = Some(current);
                (Some(recorded), missing)
            }
            Ok(r) => {
                let replicas = ReplicaCounts {
                    current,
                    observed: observed.observed,
                    ready: observed.ready,
                    starting: observed.starting,
                    pending: None,
                    min: Some(self.config.min_replicas),
                    max: Some(self.config.max_replicas),
                };
                let interval_ms = (self.config.interval_seconds * 1000.0) as u32;
                let time = r.time_ms.unwrap_or(now_ms);
                match crate::snapshot::from_values(
                    r.values.iter().map(|(k, v)| (k.as_str(), *v)),
                    time,
                    interval_ms,
                    replicas,
                ) {
                    Ok(s) => (Some(s), r.missing),
                    Err(e) => {
                        failures.push(Failure::new(Stage::Source, "snapshot", e));
                        (None, r.missing)
                    }
                }
            }
            Err(e) => {
                failures.push(Failure::new(Stage::Source, e.kind(), e.to_string()));
                (None, Vec::new())
            }
        }
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "every field of a record, named at the one call site"
    )]
    fn finish(
        &self,
        now_ms: u64,
        started: Instant,
        snapshot: Option<crate::host::Snapshot>,
        missing: Vec<String>,
        decision: Option<RecordedDecision>,
        failures: Vec<Failure>,
        guardrails: Vec<GuardrailRecord>,
        previous: u32,
        final_replicas: u32,
        wrote: bool,
    ) -> AuditRecord {
        let count_unknown = self.state.last_replicas.is_none()
            && failures.iter().any(|f| f.stage == Stage::ActuatorRead);
        AuditRecord {
            time_ms: now_ms,
            scaler: self.identity.scaler.clone(),
            tenant: self.identity.tenant.clone(),
            policy: self.identity.policy.clone(),
            policy_digest: self.identity.policy_digest.clone(),
            snapshot,
            missing,
            decision,
            failures,
            guardrails,
            previous_replicas: previous,
            final_replicas,
            count_unknown,
            wrote,
            fuel: None,
            latency_us: started.elapsed().as_micros() as u64,
        }
    }

    /// Write state atomically (write a temp file, then rename).
    fn persist(&self) {
        let Some(path) = &self.state_file else { return };
        let write = || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = path.with_extension("json.tmp");
            std::fs::write(
                &tmp,
                serde_json::to_vec(&self.state).map_err(std::io::Error::other)?,
            )?;
            std::fs::rename(&tmp, path)
        };
        if let Err(e) = write() {
            tracing::error!(scaler = %self.config.name, path = %path.display(), error = %e, "cannot persist scaler state");
        }
    }
}

impl AuditRecord {
    fn with_fuel(mut self, fuel: Option<u64>) -> Self {
        self.fuel = fuel;
        self
    }
}

/// The record of a policy that rejected the state it was handed.
fn state_rejected(e: &crate::host::PolicyError) -> Failure {
    Failure::new(
        Stage::Policy,
        e.kind(),
        format!("{e}; the policy started without it"),
    )
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Milliseconds since the Unix epoch, from the wall clock.
pub fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Options of `wasmscale run`.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Stop each scaler after this many ticks (None = until SIGTERM / Ctrl-C).
    pub ticks: Option<u64>,
    /// Metrics to feed (and serve on the admin address); a fresh set if None.
    pub metrics: Option<crate::admin::Metrics>,
    /// Re-read this config file on SIGHUP.
    pub reload_from: Option<PathBuf>,
}

/// Counters `run` reports when it stops.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunSummary {
    pub ticks: u64,
    pub failed_ticks: u64,
    pub audit_errors: u64,
    pub missed_ticks: u64,
    /// Tick lag (how late each tick started), in 1 ms buckets; the last bucket
    /// holds everything at or above it.
    pub lag_ms_buckets: Vec<u64>,
    /// Scalers whose task ended abnormally, and why. Non-empty means the run
    /// failed: `wasmscale run` exits non-zero.
    pub lost_scalers: Vec<(String, String)>,
}

/// Lag buckets: 0..=254 ms by the millisecond, then ">= 255 ms".
const LAG_BUCKETS: usize = 256;

impl RunSummary {
    /// The p-th percentile of tick lag, in milliseconds (a bucket's upper edge).
    pub fn lag_percentile_ms(&self, p: f64) -> Option<u64> {
        let total: u64 = self.lag_ms_buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (ms, n) in self.lag_ms_buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(ms as u64 + 1);
            }
        }
        None
    }
}

/// Scalers' first ticks are spread over their interval on this grid.
const TICK_SLOT_MS: u64 = 10;

/// The audit writer's linger for a config's shortest tick interval.
fn audit_linger(config: &Config) -> u64 {
    crate::audit::writer::linger_for(
        config
            .scalers
            .iter()
            .map(|s| s.interval_seconds)
            .fold(f64::INFINITY, f64::min),
    )
}

/// What one scaler task hands back when it stops.
struct TaskResult {
    scaler: Scaler,
    done: u64,
    failed: u64,
    missed: u64,
    lags: Vec<u64>,
    /// Why the task stopped early, when it was not told to stop.
    stopped_early: Option<&'static str>,
}

/// Which scaler each running task is, so a task that ends abnormally is
/// reported by name.
type TaskNames = std::collections::HashMap<tokio::task::Id, String>;

/// The running scaler tasks and their names.
#[derive(Default)]
struct ScalerTasks {
    set: tokio::task::JoinSet<TaskResult>,
    names: TaskNames,
}

/// Account one ended scaler task. A task that ended other than by returning
/// (a panic, a cancellation) lost its scaler: that is logged at error, shown
/// in `/metrics` and returned, so `run` ends non-zero.
fn account_task(
    joined: Result<(tokio::task::Id, TaskResult), tokio::task::JoinError>,
    names: &mut TaskNames,
    metrics: &crate::admin::Metrics,
    summary: &mut RunSummary,
    finished: &mut Vec<Scaler>,
) {
    match joined {
        Ok((id, r)) => {
            names.remove(&id);
            if let Some(why) = r.stopped_early {
                let name = r.scaler.name().to_owned();
                tracing::error!(scaler = %name, why, "a scaler task ended abnormally: this scaler no longer scales");
                metrics.scaler(&name).lost();
                summary.lost_scalers.push((name, why.to_owned()));
            }
            summary.ticks += r.done;
            summary.failed_ticks += r.failed;
            summary.missed_ticks += r.missed;
            for (total, n) in summary.lag_ms_buckets.iter_mut().zip(r.lags) {
                *total += n;
            }
            finished.push(r.scaler);
        }
        Err(e) => {
            let name = names.remove(&e.id()).unwrap_or_else(|| "<unknown>".into());
            let why = if e.is_panic() {
                let payload = e.into_panic();
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".into());
                format!("panicked: {message}")
            } else {
                "was cancelled".to_owned()
            };
            tracing::error!(scaler = %name, why = %why, "a scaler task ended abnormally: this scaler no longer scales");
            metrics.scaler(&name).lost();
            summary.lost_scalers.push((name, why));
        }
    }
}

/// Spawn one task per scaler, each on its own interval.
fn spawn_scalers(
    tasks: &mut ScalerTasks,
    scalers: Vec<Scaler>,
    records: &tokio::sync::mpsc::Sender<AuditRecord>,
    stop: &tokio::sync::watch::Receiver<bool>,
    metrics: &crate::admin::Metrics,
    controls: &crate::admin::Controls,
    ticks: Option<u64>,
) {
    // One origin for every scaler's phase, so the slots line up.
    let origin = tokio::time::Instant::now();
    for (i, mut scaler) in scalers.into_iter().enumerate() {
        let tx = records.clone();
        let mut stop = stop.clone();
        let metrics = metrics.scaler(scaler.name());
        let controls = controls.clone();
        let name = scaler.name().to_owned();
        let handle = tasks.set.spawn(async move {
            let interval = scaler.interval();
            // Spread scalers over the whole interval (golden-ratio steps) so
            // thousands of them do not all tick at once, on a grid of slots
            // so that each wake-up of the runtime serves many of them (one
            // wake-up per millisecond, each for a handful of ticks, cost more
            // in context switches than the ticks themselves).
            let jitter = interval.mul_f64(((i as f64) * 0.618_034).fract());
            let jitter =
                Duration::from_millis((jitter.as_millis() as u64 / TICK_SLOT_MS) * TICK_SLOT_MS);
            let mut timer = tokio::time::interval_at(origin + jitter, interval);
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let (mut done, mut missed, mut failed) = (0u64, 0u64, 0u64);
            let mut stopped_early = None;
            let mut lags = vec![0u64; LAG_BUCKETS];
            // One wait for the stop signal for the task's whole life, not one
            // per tick: 10,000 tasks re-registering each second contend on it.
            let stopped = stop.changed();
            tokio::pin!(stopped);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    at = timer.tick() => {
                        let late = at.elapsed();
                        lags[(late.as_millis() as usize).min(LAG_BUCKETS - 1)] += 1;
                        if late > interval {
                            let n = (late.as_secs_f64() / interval.as_secs_f64()) as u64;
                            missed += n;
                            metrics.missed(n);
                        }
                        if let Some(request) = controls.take(scaler.name()) {
                            scaler.set_breaker(request);
                        }
                        let record = scaler.tick(wall_clock_ms()).await;
                        metrics.observe(&record);
                        failed += u64::from(!record.failures.is_empty());
                        if tx.send(record).await.is_err() {
                            stopped_early = Some("stopped: the audit log writer is gone");
                            break;
                        }
                        done += 1;
                        if ticks.is_some_and(|n| done >= n) {
                            break;
                        }
                    }
                }
            }
            TaskResult {
                scaler,
                done,
                failed,
                missed,
                lags,
                stopped_early,
            }
        });
        tasks.names.insert(handle.id(), name);
    }
}

/// Build the scalers of a config, handing each the state of the scaler of the
/// same name that ran before a reload (guard windows, policy memory, count).
fn build_scalers(
    config: &Config,
    base: &Path,
    host: &Host,
    previous: &mut Vec<Scaler>,
) -> Result<Vec<Scaler>, SetupError> {
    let state_dir = config.state_dir.as_ref().map(|d| base.join(d));
    let mut scalers = Vec::new();
    for s in &config.scalers {
        let mut scaler = Scaler::new(s, base, host, state_dir.as_deref())?;
        if let Some(i) = previous.iter().position(|p| p.name() == s.name) {
            let old = previous.swap_remove(i);
            scaler.adopt(old.state);
        }
        scalers.push(scaler);
    }
    Ok(scalers)
}

/// Run every scaler on its own interval until told to stop. Each scaler is its
/// own task, so a slow scaler never delays another; the audit log has one
/// writer, fed through a channel, flushed per batch of ready records and synced
/// at shutdown. With `options.reload_from`, SIGHUP re-reads and re-validates
/// that file: a valid config replaces the scalers (each keeping its state), an
/// invalid one is reported and the running scalers go on.
pub fn run(
    config: Config,
    base: &Path,
    host: &Host,
    options: RunOptions,
) -> Result<RunSummary, SetupError> {
    let scalers = build_scalers(&config, base, host, &mut Vec::new())?;
    let audit_path = base.join(&config.audit.path);
    let audit_log = AuditLog::open(&audit_path, config.audit.max_bytes, config.audit.keep)
        .map_err(|e| SetupError {
            scaler: "*".into(),
            message: format!("cannot open the audit log {}: {e}", audit_path.display()),
        })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| SetupError {
            scaler: "*".into(),
            message: format!("cannot start the runtime: {e}"),
        })?;
    let metrics = options
        .metrics
        .clone()
        .unwrap_or_else(|| crate::admin::Metrics::new(scalers.len()));
    let admin_listen = config.admin.listen.clone();
    let controls =
        crate::admin::Controls::new(scalers.iter().map(|s| s.name().to_owned()).collect());
    runtime.block_on(async move {
        if !admin_listen.is_empty() {
            match tokio::net::TcpListener::bind(&admin_listen).await {
                Ok(listener) => {
                    tracing::info!(address = %admin_listen, "serving /metrics, /healthz and /readyz");
                    tokio::spawn(crate::admin::serve(listener, metrics.clone(), controls.clone()));
                }
                Err(e) => tracing::error!(address = %admin_listen, error = %e, "cannot serve the admin endpoint; scaling continues"),
            }
        }
        let (records_tx, records_rx) = tokio::sync::mpsc::channel::<AuditRecord>(crate::audit::writer::CHANNEL);
        let linger = Arc::new(AtomicU64::new(audit_linger(&config)));
        let writer = crate::audit::writer::spawn(audit_log, records_rx, linger.clone());
        let shutdown = async {
            #[cfg(unix)]
            {
                let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
                }
            }
            #[cfg(not(unix))]
            let _ = tokio::signal::ctrl_c().await;
        };
        tokio::pin!(shutdown);
        #[cfg(unix)]
        let mut hangup = options
            .reload_from
            .as_ref()
            .and_then(|_| tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok());
        let mut summary = RunSummary { lag_ms_buckets: vec![0; LAG_BUCKETS], ..RunSummary::default() };
        let mut stopping = false;
        let mut generation = Some(scalers);
        while let Some(scalers) = generation.take() {
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let mut tasks = ScalerTasks::default();
            spawn_scalers(&mut tasks, scalers, &records_tx, &stop_rx, &metrics, &controls, options.ticks);
            let mut next: Option<Config> = None;
            let mut finished = Vec::new();
            loop {
                let reload = async {
                    #[cfg(unix)]
                    if let Some(h) = hangup.as_mut() {
                        h.recv().await;
                        return;
                    }
                    std::future::pending::<()>().await
                };
                tokio::select! {
                    _ = &mut shutdown, if !stopping => {
                        stopping = true;
                        next = None;
                        tracing::info!("shutting down: finishing in-flight ticks and flushing the audit log");
                        let _ = stop_tx.send(true);
                    }
                    _ = reload, if !stopping && next.is_none() => {
                        let Some(path) = options.reload_from.as_ref() else { continue };
                        match crate::config::load(path, host) {
                            Ok(config) => {
                                tracing::warn!(path = %path.display(), scalers = config.scalers.len(), "reloading the config");
                                next = Some(config);
                                let _ = stop_tx.send(true);
                            }
                            Err(errors) => tracing::error!(%errors, "the new config is invalid; the running scalers go on"),
                        }
                    }
                    joined = tasks.set.join_next_with_id() => match joined {
                        Some(joined) => account_task(joined, &mut tasks.names, &metrics, &mut summary, &mut finished),
                        None => break,
                    },
                }
            }
            if let Some(config) = next {
                match build_scalers(&config, base, host, &mut finished) {
                    Ok(scalers) => {
                        controls.set_scalers(scalers.iter().map(|s| s.name().to_owned()).collect());
                        metrics.set_expected(scalers.len());
                        linger.store(audit_linger(&config), Ordering::Relaxed);
                        generation = Some(scalers);
                    }
                    Err(e) => {
                        // The config validated but a scaler cannot start (e.g. a
                        // trace vanished): keep the previous scalers running.
                        tracing::error!(error = %e, "cannot apply the new config; keeping the previous scalers");
                        generation = Some(finished);
                    }
                }
            }
        }
        drop(records_tx);
        summary.audit_errors = match writer.await {
            Ok(errors) => errors,
            Err(e) => {
                tracing::error!(error = %e, "the audit log writer failed; records since are lost");
                summary.lost_scalers.push(("<audit log writer>".into(), e.to_string()));
                0
            }
        };
        Ok(summary)
    })
}

/// One decision of `replay`, beside the one recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayedDecision {
    pub time_ms: u64,
    pub scaler: String,
    pub recorded: u32,
    pub replayed: u32,
    /// The replayed policy's reason, or why the tick held.
    pub reason: String,
    /// The snapshot's interval, for replica-hours.
    pub interval_ms: u32,
}

/// Run recorded snapshots through another policy with the same tick as `run`
/// and `simulate` ([`Scaler::tick`]): the same missing-metric and fallback
/// rules and guardrails. Each scaler replays closed-loop: its current count is
/// what the replayed policy last set, starting from the first record's count.
/// Guardrails come from `config`'s scaler of the same name; without one, from
/// the defaults a config would give, with the snapshots' min and max.
pub fn replay(
    records: &[AuditRecord],
    host: &Host,
    policy: &str,
    params: &serde_json::Value,
    config: Option<&Config>,
    base: &Path,
) -> Result<Vec<ReplayedDecision>, SetupError> {
    let mut names: Vec<&str> = Vec::new();
    for r in records {
        if r.snapshot.is_some() && !names.contains(&&*r.scaler) {
            names.push(&r.scaler);
        }
    }
    let mut out = Vec::new();
    for name in names {
        let mine: Vec<&AuditRecord> = records
            .iter()
            .filter(|r| &*r.scaler == name && r.snapshot.is_some())
            .collect();
        let Some(first) = mine.first() else { continue };
        let Some(first_snapshot) = first.snapshot.as_ref() else {
            continue;
        };
        let fail = |message: String| SetupError {
            scaler: name.to_owned(),
            message,
        };
        let scaler_config = match config.and_then(|c| c.scalers.iter().find(|s| s.name == name)) {
            Some(s) => {
                let mut s = s.clone();
                s.policy = policy.to_owned();
                s.params = serde_json::from_value(params.clone())
                    .map_err(|e| fail(format!("params must be a JSON object: {e}")))?;
                s
            }
            None => ScalerConfig::minimal(
                name,
                policy,
                params,
                first_snapshot.replicas.min.unwrap_or(0),
                first_snapshot.replicas.max.unwrap_or(u32::MAX),
                f64::from(first_snapshot.interval_ms.max(1)) / 1000.0,
            )
            .map_err(fail)?,
        };
        let recorded = mine
            .iter()
            .filter_map(|r| r.snapshot.clone().map(|s| (s, r.missing.clone())))
            .collect();
        let mut scaler = Scaler::with_io(
            &scaler_config,
            base,
            host,
            Source::Recorded(recorded),
            Actuator::Memory {
                replicas: first.previous_replicas,
            },
        )?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| fail(format!("cannot start the runtime: {e}")))?;
        for r in mine {
            // The recorded source and the memory target never wait.
            let tick = runtime.block_on(scaler.tick(r.time_ms));
            let reason = match (&tick.decision, tick.failures.first()) {
                (Some(d), _) => d.reason.clone(),
                (None, Some(f)) => format!("held: {}", f.message),
                (None, None) => "held".into(),
            };
            out.push(ReplayedDecision {
                time_ms: r.time_ms,
                scaler: name.to_owned(),
                recorded: r.final_replicas,
                replayed: tick.final_replicas,
                reason,
                interval_ms: r.snapshot.as_ref().map_or(0, |s| s.interval_ms),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    #[allow(clippy::panic, reason = "the test panics a task on purpose")]
    fn a_scaler_task_that_panics_is_reported_by_name_and_in_metrics() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let metrics = crate::admin::Metrics::new(1);
        let mut summary = super::RunSummary::default();
        let mut names = super::TaskNames::new();
        let mut finished = Vec::new();
        runtime.block_on(async {
            let mut tasks = tokio::task::JoinSet::<super::TaskResult>::new();
            let handle = tasks.spawn(async { panic!("cannot convert float seconds to Duration") });
            names.insert(handle.id(), "llm-chat".into());
            let joined = tasks.join_next_with_id().await.unwrap();
            super::account_task(joined, &mut names, &metrics, &mut summary, &mut finished);
        });
        assert_eq!(summary.lost_scalers.len(), 1);
        assert_eq!(summary.lost_scalers[0].0, "llm-chat");
        assert!(
            summary.lost_scalers[0]
                .1
                .contains("cannot convert float seconds")
        );
        assert!(names.is_empty() && finished.is_empty());
        let text = metrics.render();
        assert!(
            text.contains("wasmscale_scaler_up{scaler=\"llm-chat\",tenant=\"\"} 0")
                && text.contains("wasmscale_scaler_tasks_lost_total 1"),
            "{text}"
        );
    }
}
