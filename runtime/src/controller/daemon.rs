//! The daemon behind `wasmscale run`: one task per scaler on its own
//! interval, the audit writer, the services beside them (the admin server),
//! signals and reload.

use super::changes::{Applied, ChangeError, ScalerChange};
use super::handle::Handle;
use super::scaler::{Scaler, SetupCause, SetupError};
use super::wall_clock_ms;
use crate::audit::{AuditLog, AuditRecord};
use crate::config::Config;
use crate::config::ScalerConfig;
use crate::host::Host;
use futures_core::future::BoxFuture;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Options of `wasmscale run`.
#[derive(Debug, Default)]
pub struct RunOptions {
    /// Stop each scaler after this many ticks (None = until SIGTERM / Ctrl-C).
    pub ticks: Option<u64>,
    /// Metrics to feed; a fresh set if None.
    pub metrics: Option<super::Metrics>,
    /// Re-read this config file on SIGHUP.
    pub reload_from: Option<PathBuf>,
    /// Re-read it also when its contents change.
    pub watch: bool,
    /// What runs beside the scalers, given their [`Handle`] (the admin server).
    pub services: Vec<Box<dyn Service>>,
    /// Scalers a service manages (the admin API's, stored in the registry),
    /// started beside the file's. Reloads of the file leave them alone, and
    /// the service changes them through [`Handle::changes`].
    pub managed: Vec<ScalerConfig>,
    /// The tenants with their plans: their scalers' limits are capped to
    /// their quotas, and their evaluations scheduled fairly.
    pub tenants: Option<Arc<crate::tenants::Tenants>>,
}

/// Something that runs beside the scalers for as long as `run` does (the
/// admin server): the controller hands it the metrics and breaker controls,
/// and knows nothing else of it.
pub trait Service: Send + std::fmt::Debug {
    /// The service's work, spawned on the run's runtime once the scalers are built.
    fn start(self: Box<Self>, handle: Handle) -> BoxFuture<'static, ()>;
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
    /// The same, per tenant.
    pub tenant_lag_ms_buckets: std::collections::BTreeMap<String, Vec<u64>>,
    /// Ticks whose evaluation was throttled (fair scheduling), per tenant.
    pub throttled_by_tenant: std::collections::BTreeMap<String, u64>,
    /// Scalers whose task ended abnormally, and why. Non-empty means the run
    /// failed: `wasmscale run` exits non-zero.
    pub lost_scalers: Vec<(String, String)>,
}

fn percentile_ms(buckets: &[u64], p: f64) -> Option<u64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (ms, n) in buckets.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return Some(ms as u64 + 1);
        }
    }
    None
}

/// Lag buckets: 0..=254 ms by the millisecond, then ">= 255 ms".
const LAG_BUCKETS: usize = 256;

impl RunSummary {
    /// The p-th percentile of tick lag, in milliseconds (a bucket's upper edge).
    pub fn lag_percentile_ms(&self, p: f64) -> Option<u64> {
        percentile_ms(&self.lag_ms_buckets, p)
    }

    /// The p-th percentile of one tenant's tick lag, in milliseconds.
    pub fn tenant_lag_percentile_ms(&self, tenant: &str, p: f64) -> Option<u64> {
        percentile_ms(self.tenant_lag_ms_buckets.get(tenant)?, p)
    }
}

/// Scalers' first ticks are spread over their interval on this grid.
const TICK_SLOT_MS: u64 = 10;

/// The audit writer's linger for the scalers' shortest tick interval.
fn audit_linger<'a>(scalers: impl Iterator<Item = &'a ScalerConfig>) -> u64 {
    crate::audit::writer::linger_for(
        scalers
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
    throttled: u64,
    lags: Vec<u64>,
    /// Why the task stopped early, when it was not told to stop.
    stopped_early: Option<&'static str>,
}

/// Which scaler each running task is, so a task that ends abnormally is
/// reported by name.
type TaskNames = HashMap<tokio::task::Id, String>;

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
    metrics: &super::Metrics,
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
            let tenant = summary
                .tenant_lag_ms_buckets
                .entry(r.scaler.tenant().to_owned())
                .or_insert_with(|| vec![0; LAG_BUCKETS]);
            for (total, n) in tenant.iter_mut().zip(&r.lags) {
                *total += n;
            }
            for (total, n) in summary.lag_ms_buckets.iter_mut().zip(r.lags) {
                *total += n;
            }
            if r.throttled > 0 {
                *summary
                    .throttled_by_tenant
                    .entry(r.scaler.tenant().to_owned())
                    .or_default() += r.throttled;
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

/// What a scaler's task is spawned with.
struct Spawn<'a> {
    records: &'a tokio::sync::mpsc::Sender<AuditRecord>,
    metrics: &'a super::Metrics,
    controls: &'a super::Controls,
    ticks: Option<u64>,
    /// One origin for every scaler's phase, so the slots line up.
    origin: tokio::time::Instant,
    scheduler: &'a Arc<super::Scheduler>,
}

/// Spawn one scaler's task on its own interval; the `i`-th spawned gets the
/// `i`-th phase. Returns what stops it.
fn spawn_scaler(
    tasks: &mut ScalerTasks,
    mut scaler: Scaler,
    i: usize,
    at: &Spawn<'_>,
) -> tokio::sync::watch::Sender<bool> {
    let (stop_tx, mut stop) = tokio::sync::watch::channel(false);
    let tx = at.records.clone();
    let metrics = at.metrics.scaler(scaler.name());
    let controls = at.controls.clone();
    let (ticks, origin) = (at.ticks, at.origin);
    let name = scaler.name().to_owned();
    scaler.set_gate(at.scheduler.gate(scaler.tenant()));
    let (commands_tx, mut commands) = tokio::sync::mpsc::channel(4);
    controls.open_desk(scaler.desk(commands_tx));
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
        let (mut done, mut missed, mut failed, mut throttled) = (0u64, 0u64, 0u64, 0u64);
        let mut stopped_early = None;
        let mut lags = vec![0u64; LAG_BUCKETS];
        // One wait for the stop signal for the task's whole life, not one
        // per tick: 10,000 tasks re-registering each second contend on it.
        let stopped = stop.changed();
        tokio::pin!(stopped);
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                // Between two ticks: a tick never sees half a swap.
                Some(command) = commands.recv() => match command {
                    super::swap::Command::Swap { policy, label, reply } => {
                        // Whoever asked gave up (timed out): no late swap.
                        if !reply.is_closed() {
                            let _ = reply.send(scaler.swap_policy(*policy, &label));
                        }
                    }
                    super::swap::Command::Inspect { reply } => {
                        let _ = reply.send(scaler.inspect());
                    }
                    super::swap::Command::Shadow { policy, reply } => {
                        if !reply.is_closed() {
                            scaler.set_shadow(policy.map(|p| *p));
                            let _ = reply.send(());
                        }
                    }
                },
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
                    if let Some(notice) = scaler.take_notice() {
                        controls.notify(notice);
                    }
                    metrics.observe(&record);
                    failed += u64::from(!record.failures.is_empty());
                    throttled += u64::from(record.failures.iter().any(|f| f.kind == "throttled"));
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
            throttled,
            lags,
            stopped_early,
        }
    });
    tasks.names.insert(handle.id(), name);
    stop_tx
}

/// What a reload changes: the scalers to start (new, or changed: these
/// replace the running one and take its state), the ones to stop (gone from
/// the file), and the ones refused (they keep running as they were).
struct ReloadPlan {
    config: Config,
    start: Vec<ScalerConfig>,
    stop: Vec<String>,
}

/// Read and check the config again, as a diff against what runs: unchanged
/// scalers are left alone, and a bad `[[scaler]]` entry refuses only that
/// scaler. `None` when the file as a whole is refused (it does not parse,
/// or its process settings are wrong): then nothing changes. Scalers a
/// service manages are not the file's: the file cannot stop them, and an
/// entry of the same name is refused.
fn plan_reload(path: &Path, trigger: &str, host: &Host, live: &Live) -> Option<ReloadPlan> {
    let mut checked = crate::config::read(path);
    super::probe::probe(&mut checked, host);
    let partial = match checked.into_partial() {
        Ok(p) => p,
        Err(errors) => {
            tracing::error!(%errors, "the new config is invalid; the running scalers go on");
            return None;
        }
    };
    if let Some(errors) = &partial.errors {
        tracing::error!(%errors, rejected = ?partial.rejected, "these scalers' new config is invalid; they go on as they were, the rest reload");
    }
    let mut config = partial.config;
    config.scalers.retain(|s| {
        let clash = live.managed.contains(&s.name);
        if clash {
            tracing::error!(scaler = %s.name, "this [[scaler]] entry has the name of a scaler created through the admin API; it is refused (rename it, or delete the API's first)");
        }
        !clash
    });
    let start: Vec<ScalerConfig> = config
        .scalers
        .iter()
        .filter(|s| live.running.get(&s.name).is_none_or(|(_, old)| old != *s))
        .cloned()
        .collect();
    let stop: Vec<String> = live
        .running
        .keys()
        .filter(|n| {
            !live.managed.contains(*n)
                && !config.scalers.iter().any(|s| &s.name == *n)
                && !partial.rejected.contains(n)
        })
        .cloned()
        .collect();
    tracing::warn!(
        path = %path.display(),
        trigger,
        changed = start.len(),
        removed = stop.len(),
        rejected = partial.rejected.len(),
        unchanged = config.scalers.len() - start.len(),
        "reloading the config as a diff"
    );
    Some(ReloadPlan {
        config,
        start,
        stop,
    })
}

/// The scaler tasks of a run, and what each runs.
#[derive(Default)]
struct Live {
    tasks: ScalerTasks,
    /// The running scalers: what stops each, and the config it runs. A
    /// stopped scaler stays here until its task ends.
    running: HashMap<String, (tokio::sync::watch::Sender<bool>, ScalerConfig)>,
    /// Scalers built to replace a running one, waiting for its task to end.
    replacing: HashMap<String, Scaler>,
    /// The running scalers a service manages (the rest are the file's).
    managed: std::collections::HashSet<String>,
    /// Scalers the service removed whose task has not ended yet: its to
    /// put again.
    released: std::collections::HashSet<String>,
    /// Tasks spawned so far: the next one's phase.
    spawned: usize,
}

impl Live {
    fn start(&mut self, scaler: Scaler, config: ScalerConfig, at: &Spawn<'_>) {
        let stop = spawn_scaler(&mut self.tasks, scaler, self.spawned, at);
        self.spawned += 1;
        self.running.insert(config.name.clone(), (stop, config));
    }

    /// Start a new scaler, or stop the running one of that name and swap
    /// this one in (with its state) once its task has ended.
    fn start_or_replace(&mut self, scaler: Scaler, config: ScalerConfig, at: &Spawn<'_>) {
        match self.running.get_mut(&config.name) {
            Some((stop, old)) => {
                stop.send_replace(true);
                self.replacing.insert(config.name.clone(), scaler);
                *old = config;
            }
            None => self.start(scaler, config, at),
        }
    }

    fn stop(&mut self, name: &str) {
        self.replacing.remove(name);
        if let Some((stop, _)) = self.running.get(name) {
            stop.send_replace(true);
        }
    }

    /// Apply a service's change and answer it.
    fn apply(
        &mut self,
        change: ScalerChange,
        stopping: bool,
        base: &Path,
        host: &Host,
        state_dir: Option<&Path>,
        at: &Spawn<'_>,
    ) {
        match change {
            ScalerChange::Put { config, reply } => {
                let name = config.name.clone();
                let ours = self.managed.contains(&name) || self.released.contains(&name);
                let outcome = if stopping {
                    Err(ChangeError::Stopping)
                } else if self.running.contains_key(&name) && !ours {
                    Err(ChangeError::FromFile(name.clone()))
                } else {
                    match new_scaler(&config, base, host, state_dir, at.scheduler) {
                        Ok(scaler) => {
                            let replaced = self.running.contains_key(&name);
                            self.released.remove(&name);
                            self.managed.insert(name.clone());
                            self.start_or_replace(scaler, *config, at);
                            tracing::info!(scaler = %name, replaced, "a scaler was put through the admin API");
                            Ok(if replaced {
                                Applied::Replaced
                            } else {
                                Applied::Created
                            })
                        }
                        Err(e) => Err(ChangeError::Setup(Box::new(e))),
                    }
                };
                let _ = reply.send(outcome);
            }
            ScalerChange::Remove { name, reply } => {
                let outcome = if self.managed.remove(&name) {
                    self.stop(&name);
                    self.released.insert(name.clone());
                    tracing::info!(scaler = %name, "a scaler was removed through the admin API");
                    Ok(())
                } else if self.running.contains_key(&name) {
                    Err(ChangeError::FromFile(name))
                } else {
                    Err(ChangeError::NotManaged(name))
                };
                let _ = reply.send(outcome);
            }
        }
    }

    /// Tell the breaker controls, metrics and audit writer what runs now.
    /// A scaler being stopped is no longer counted.
    fn publish(&self, controls: &super::Controls, metrics: &super::Metrics, linger: &AtomicU64) {
        let stopping: Vec<&String> = self
            .running
            .iter()
            .filter(|(name, (stop, _))| *stop.borrow() && !self.replacing.contains_key(*name))
            .map(|(name, _)| name)
            .collect();
        let names: Vec<String> = self
            .running
            .keys()
            .filter(|n| !stopping.contains(n))
            .cloned()
            .collect();
        metrics.set_expected(names.len());
        controls.set_scalers(names);
        linger.store(
            audit_linger(self.running.values().map(|(_, c)| c)),
            Ordering::Relaxed,
        );
    }
}

/// The scalers a service manages, built to start beside the file's. One that
/// has a file scaler's name, or cannot be built, is left out with an error:
/// the rest start.
fn build_managed(
    config: &Config,
    base: &Path,
    host: &Host,
    managed: Vec<ScalerConfig>,
    scheduler: &super::Scheduler,
) -> Vec<(Scaler, ScalerConfig)> {
    let state_dir = config.state_dir.as_ref().map(|d| base.join(d));
    let mut out = Vec::new();
    for s in managed {
        if config.scalers.iter().any(|f| f.name == s.name) {
            tracing::error!(scaler = %s.name, "a scaler created through the admin API has the name of one in the config file; the file's runs");
            continue;
        }
        match new_scaler(&s, base, host, state_dir.as_deref(), scheduler) {
            Ok(scaler) => out.push((scaler, s)),
            Err(e) => {
                tracing::error!(scaler = %s.name, error = %e, "cannot start this scaler created through the admin API; it is not running (PUT it again to fix it)")
            }
        }
    }
    out
}

/// Build the scalers of a config (each restores what it persisted in `state_dir`).
fn build_scalers(
    config: &Config,
    base: &Path,
    host: &Host,
    scheduler: &super::Scheduler,
) -> Result<Vec<Scaler>, SetupError> {
    let state_dir = config.state_dir.as_ref().map(|d| base.join(d));
    config
        .scalers
        .iter()
        .map(|s| new_scaler(s, base, host, state_dir.as_deref(), scheduler))
        .collect()
}

/// Build one scaler of `run`, its limits within its tenant's quotas.
fn new_scaler(
    config: &ScalerConfig,
    base: &Path,
    host: &Host,
    state_dir: Option<&Path>,
    scheduler: &super::Scheduler,
) -> Result<Scaler, SetupError> {
    match scheduler.plan(&config.tenant) {
        Some(plan) => Scaler::new(
            &super::capped(config, &plan, host.limits()),
            base,
            host,
            state_dir,
        ),
        None => Scaler::new(config, base, host, state_dir),
    }
}

/// Run every scaler on its own interval until told to stop. Each scaler is its
/// own task, so a slow scaler never delays another; the audit log has one
/// writer, fed through a channel, flushed per batch of ready records and synced
/// at shutdown. With `options.reload_from`, SIGHUP or a change to that file
/// re-reads and re-checks it and applies it as a diff: changed scalers are
/// replaced (each keeping its state), one bad entry refuses only that
/// scaler, and a file that does not parse changes nothing.
pub fn run(
    config: Config,
    base: &Path,
    host: &Host,
    mut options: RunOptions,
) -> Result<RunSummary, SetupError> {
    if let Some(t) = &options.tenants {
        t.set_tiers(config.tiers.clone());
    }
    let scheduler = Arc::new(super::Scheduler::new(options.tenants.clone()));
    let scalers = build_scalers(&config, base, host, &scheduler)?;
    let managed_scalers = build_managed(
        &config,
        base,
        host,
        std::mem::take(&mut options.managed),
        &scheduler,
    );
    let audit_path = base.join(&config.audit.path);
    let audit_log = AuditLog::open(&audit_path, config.audit.max_bytes, config.audit.keep)
        .map_err(|error| {
            SetupError::new(
                "*",
                SetupCause::AuditLog {
                    path: audit_path.clone(),
                    error,
                },
            )
        })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| SetupError::new("*", SetupCause::Runtime(e)))?;
    let names: Vec<String> = scalers
        .iter()
        .chain(managed_scalers.iter().map(|(s, _)| s))
        .map(|s| s.name().to_owned())
        .collect();
    let metrics = options
        .metrics
        .clone()
        .unwrap_or_else(|| super::Metrics::new(names.len()));
    let controls = super::Controls::new(names);
    let (changes_tx, mut changes) = tokio::sync::mpsc::channel(16);
    let handle = Handle {
        metrics: metrics.clone(),
        controls: controls.clone(),
        audit: Some(audit_path.clone()),
        base: base.to_path_buf(),
        changes: Some(super::ScalerChanges(changes_tx)),
    };
    let services = std::mem::take(&mut options.services);
    runtime.block_on(async move {
        for service in services {
            tokio::spawn(service.start(handle.clone()));
        }
        let (records_tx, records_rx) = tokio::sync::mpsc::channel::<AuditRecord>(crate::audit::writer::CHANNEL);
        let linger = Arc::new(AtomicU64::new(audit_linger(
            config.scalers.iter().chain(managed_scalers.iter().map(|(_, c)| c)),
        )));
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
        let at = Spawn {
            records: &records_tx,
            metrics: &metrics,
            controls: &controls,
            ticks: options.ticks,
            origin: tokio::time::Instant::now(),
            scheduler: &scheduler,
        };
        let mut live = Live::default();
        for (scaler, config) in scalers.into_iter().zip(config.scalers.iter()) {
            live.start(scaler, config.clone(), &at);
        }
        for (scaler, config) in managed_scalers {
            live.managed.insert(config.name.clone());
            live.start(scaler, config, &at);
        }
        let mut state_dir = config.state_dir.as_ref().map(|d| base.join(d));
        let mut watch = options
            .reload_from
            .as_deref()
            .filter(|_| options.watch)
            .and_then(super::watch::ConfigWatch::start);
        let mut changes_open = true;
        let mut finished = Vec::new();
        loop {
            let reload = async {
                #[cfg(unix)]
                let hangup = async {
                    match hangup.as_mut() {
                        Some(h) => {
                            h.recv().await;
                        }
                        None => std::future::pending::<()>().await,
                    }
                };
                #[cfg(not(unix))]
                let hangup = std::future::pending::<()>();
                let edited = async {
                    match watch.as_mut() {
                        Some(w) => w.changed().await,
                        None => std::future::pending::<()>().await,
                    }
                };
                tokio::select! {
                    _ = hangup => "SIGHUP",
                    _ = edited => "file-changed",
                }
            };
            tokio::select! {
                _ = &mut shutdown, if !stopping => {
                    stopping = true;
                    live.replacing.clear();
                    tracing::info!("shutting down: finishing in-flight ticks and flushing the audit log");
                    for (stop, _) in live.running.values() {
                        let _ = stop.send(true);
                    }
                }
                trigger = reload, if !stopping => {
                    let Some(path) = options.reload_from.as_ref() else { continue };
                    let Some(plan) = plan_reload(path, trigger, host, &live) else { continue };
                    for name in &plan.stop {
                        live.stop(name);
                    }
                    state_dir = plan.config.state_dir.as_ref().map(|d| base.join(d));
                    if let Some(t) = &options.tenants {
                        t.set_tiers(plan.config.tiers.clone());
                    }
                    for s in plan.start {
                        match new_scaler(&s, base, host, state_dir.as_deref(), &scheduler) {
                            Ok(scaler) => live.start_or_replace(scaler, s, &at),
                            Err(e) => tracing::error!(scaler = %s.name, error = %e, "cannot apply this scaler's new config; it keeps running as it was"),
                        }
                    }
                    live.publish(&controls, &metrics, &linger);
                }
                change = changes.recv(), if changes_open => {
                    let Some(change) = change else {
                        changes_open = false;
                        continue;
                    };
                    live.apply(change, stopping, base, host, state_dir.as_deref(), &at);
                    live.publish(&controls, &metrics, &linger);
                }
                joined = live.tasks.set.join_next_with_id() => match joined {
                    Some(joined) => {
                        let id = match &joined { Ok((id, _)) => *id, Err(e) => e.id() };
                        let name = live.tasks.names.get(&id).cloned();
                        account_task(joined, &mut live.tasks.names, &metrics, &mut summary, &mut finished);
                        let Some(name) = name else { continue };
                        let old = finished.pop();
                        let Some(mut new) = live.replacing.remove(&name) else {
                            live.released.remove(&name);
                            // Stopped on purpose (a reload or the API removed
                            // it): it no longer exists. A lost one stays listed.
                            if live.running.remove(&name).is_some_and(|(stop, _)| *stop.borrow()) && !stopping {
                                live.publish(&controls, &metrics, &linger);
                            }
                            continue;
                        };
                        // A task that was lost hands over no state: the new scaler starts without it.
                        if let Some(old) = old {
                            new.adopt(old.into_state());
                        }
                        let stop = spawn_scaler(&mut live.tasks, new, live.spawned, &at);
                        live.spawned += 1;
                        if let Some(entry) = live.running.get_mut(&name) {
                            entry.0 = stop;
                        }
                    }
                    None => break,
                },
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

#[cfg(test)]
mod tests {
    #[test]
    #[allow(clippy::panic, reason = "the test panics a task on purpose")]
    fn a_scaler_task_that_panics_is_reported_by_name_and_in_metrics() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let metrics = crate::controller::Metrics::new(1);
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
