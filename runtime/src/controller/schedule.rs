//! Fair scheduling of evaluations between tenants. Each tenant has a lane:
//! at most `concurrency` of its evaluations at once, and a fuel bucket
//! that refills at `fuel_per_second`. A tick whose tenant is over budget is
//! not evaluated: the scaler holds (or falls back), and the audit record
//! says why (`policy/throttled`). A policy that burns its whole deadline on
//! several ticks in a row is backed off, whatever its tenant's quotas: its
//! evaluations then cost its tenant, and only its tenant, the time.
//!
//! Used by `run` only: `simulate` and `replay` run on virtual clocks, where
//! a result must not depend on how busy the machine is.

use crate::config::ScalerConfig;
use crate::host::Limits;
use crate::tenants::{Footprint, Plan, Tenants};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Ticks in a row that hit the deadline before a policy is backed off.
pub(super) const DEADLINE_STREAK: u32 = 3;
/// The longest back-off, in ticks.
pub(super) const MAX_BACKOFF_TICKS: u32 = 64;

/// What a scaler takes from its tenant's quotas.
pub fn footprint(config: &ScalerConfig, host_limits: &Limits) -> Footprint {
    let limits = config.limits.as_ref().unwrap_or(host_limits);
    let net = u64::from(config.safety_net.is_some());
    Footprint {
        scalers: 1,
        max_replicas: u64::from(config.max_replicas),
        cost_per_hour: config
            .guard
            .cost_ceiling
            .as_ref()
            .map(|c| c.budget_per_hour),
        fuel_per_tick: limits.fuel.saturating_mul(1 + net),
        memory_bytes: limits.max_memory_bytes as u64,
        state_bytes: limits.max_state_bytes as u64,
        log_lines: limits.max_log_lines,
        log_bytes: limits.max_log_bytes as u64,
        builtin: config.policy.strip_prefix("builtin:").map(str::to_owned),
    }
}

/// `config` with its per-instance limits brought within `plan`'s quotas
/// (memory, state, log); the same config when they are within already.
pub fn capped(config: &ScalerConfig, plan: &Plan, host_limits: &Limits) -> ScalerConfig {
    let q = &plan.quotas;
    let mut limits = config.limits.clone().unwrap_or_else(|| host_limits.clone());
    let before = limits.clone();
    let cap = |v: usize, c: Option<u64>| c.map_or(v, |c| v.min(usize::try_from(c).unwrap_or(v)));
    limits.max_memory_bytes = cap(limits.max_memory_bytes, q.memory_bytes);
    limits.max_state_bytes = cap(limits.max_state_bytes, q.state_bytes);
    limits.max_log_bytes = cap(limits.max_log_bytes, q.log_bytes);
    limits.max_log_lines = q
        .log_lines
        .map_or(limits.max_log_lines, |c| limits.max_log_lines.min(c));
    if limits == before {
        return config.clone();
    }
    if config.limits.is_some() {
        tracing::warn!(scaler = %config.name, tenant = %config.tenant, "this scaler's [limits] ask for more than its tenant's quotas; they are lowered to them");
    }
    ScalerConfig {
        limits: Some(limits),
        ..config.clone()
    }
}

/// The lanes of every tenant with quotas, rebuilt when a plan changes.
#[derive(Debug, Default)]
pub struct Scheduler {
    tenants: Option<Arc<Tenants>>,
    lanes: Mutex<HashMap<String, Arc<Lane>>>,
}

/// One tenant's share: its concurrency and its fuel bucket.
#[derive(Debug)]
pub(super) struct Lane {
    generation: u64,
    slots: Option<Arc<tokio::sync::Semaphore>>,
    concurrency: u32,
    fuel_per_second: Option<u64>,
    bucket: Mutex<Bucket>,
    /// When one of its evaluations was last slow, in ms after `created`
    /// plus one (0: never): then all of its evaluations leave the shared
    /// workers for a while, not only the slow scaler's.
    slow_at_ms: std::sync::atomic::AtomicU64,
    created: Instant,
}

/// How long a slow evaluation makes its whole lane evaluate off the shared
/// workers' queues.
const LANE_SLOW_FOR: Duration = Duration::from_secs(60);

impl Lane {
    fn mark_slow(&self) {
        let at = self.created.elapsed().as_millis() as u64 + 1;
        self.slow_at_ms
            .store(at, std::sync::atomic::Ordering::Relaxed);
    }

    fn recently_slow(&self) -> bool {
        let at = self.slow_at_ms.load(std::sync::atomic::Ordering::Relaxed);
        at != 0
            && self.created.elapsed().as_millis() as u64 <= at + LANE_SLOW_FOR.as_millis() as u64
    }
}

#[derive(Debug)]
struct Bucket {
    /// Fuel available; negative is debt (an evaluation costs what it costs).
    level: f64,
    at: Instant,
}

impl Scheduler {
    pub fn new(tenants: Option<Arc<Tenants>>) -> Self {
        Scheduler {
            tenants,
            lanes: Mutex::default(),
        }
    }

    /// The tenant's plan; None: it has none (unlimited).
    pub fn plan(&self, tenant: &str) -> Option<Plan> {
        self.tenants.as_ref().and_then(|t| t.plan(tenant))
    }

    fn generation(&self) -> u64 {
        self.tenants.as_ref().map_or(0, |t| t.generation())
    }

    /// The tenant's lane as its plan is now.
    fn lane(&self, tenant: &str) -> Arc<Lane> {
        let generation = self.generation();
        let mut lanes = self
            .lanes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(lane) = lanes.get(tenant)
            && lane.generation == generation
        {
            return lane.clone();
        }
        let quotas = self.plan(tenant).map(|p| p.quotas).unwrap_or_default();
        let lane = Arc::new(Lane {
            generation,
            slots: quotas
                .concurrency
                .map(|n| Arc::new(tokio::sync::Semaphore::new(n.max(1) as usize))),
            concurrency: quotas.concurrency.unwrap_or(0),
            fuel_per_second: quotas.fuel_per_second,
            bucket: Mutex::new(Bucket {
                level: quotas.fuel_per_second.unwrap_or(0) as f64,
                at: Instant::now(),
            }),
            slow_at_ms: std::sync::atomic::AtomicU64::new(0),
            created: Instant::now(),
        });
        lanes.insert(tenant.to_owned(), lane.clone());
        lane
    }

    /// A gate for one scaler of `tenant`.
    pub(crate) fn gate(self: &Arc<Self>, tenant: &str) -> Gate {
        Gate {
            scheduler: self.clone(),
            tenant: tenant.to_owned(),
            lane: self.lane(tenant),
            deadline_streak: 0,
            backoff: 0,
            skip: 0,
        }
    }
}

/// One scaler's way through its tenant's lane, and its own back-off.
#[derive(Debug)]
pub(crate) struct Gate {
    scheduler: Arc<Scheduler>,
    tenant: String,
    lane: Arc<Lane>,
    deadline_streak: u32,
    /// The last back-off, in ticks (doubles while the policy keeps at it).
    backoff: u32,
    /// Ticks still to skip.
    skip: u32,
}

/// An evaluation this long makes its tenant's next ones run isolated (a
/// scaling policy needs microseconds).
const SLOW_EVALUATION: Duration = Duration::from_millis(1);

/// Run `f` on a thread of its own at the lowest OS priority while the
/// caller's thread waits: a tenant whose evaluations are slow then gets
/// only the CPU that other tenants' ticks leave, on any number of cores.
/// Where the thread cannot be started, `f` runs here.
pub(crate) fn at_low_priority<T: Send>(mut f: impl FnMut() -> T + Send) -> T {
    let ran = std::thread::scope(|scope| {
        let job = &mut f;
        std::thread::Builder::new()
            .name("wasmscale-isolated".into())
            .spawn_scoped(scope, move || {
                lower_priority();
                job()
            })
            .map(|handle| handle.join())
    });
    match ran {
        Ok(Ok(out)) => out,
        // The evaluation's own panic, as it would have been on the worker.
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(e) => {
            tracing::warn!(error = %e, "cannot start a thread for an isolated evaluation; it runs on the worker");
            f()
        }
    }
}

fn lower_priority() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19) {
        tracing::debug!(error = %e, "cannot lower an isolated evaluation's priority");
    }
}

/// Leave to evaluate: hold it while evaluating, then [`Gate::spent`].
#[derive(Debug)]
pub(crate) struct Admitted {
    _slot: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Gate {
    /// Wait for leave to evaluate, at most `wait`; Err says why not.
    pub(crate) async fn admit(&mut self, wait: Duration) -> Result<Admitted, String> {
        if self.lane.generation != self.scheduler.generation() {
            self.lane = self.scheduler.lane(&self.tenant);
        }
        if self.skip > 0 {
            self.skip -= 1;
            return Err(format!(
                "throttled: the policy used its whole deadline on {DEADLINE_STREAK} or more ticks in a row; it is evaluated again in {} tick(s)",
                self.skip + 1
            ));
        }
        if let Some(rate) = self.lane.fuel_per_second {
            let mut b = self
                .lane
                .bucket
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = Instant::now();
            let refill = now.duration_since(b.at).as_secs_f64() * rate as f64;
            b.level = (b.level + refill).min(rate as f64);
            b.at = now;
            if b.level <= 0.0 {
                return Err(format!(
                    "throttled: tenant {} is over its fuel_per_second quota ({rate}); its ticks wait for the budget to refill",
                    self.tenant
                ));
            }
        }
        let slot = match &self.lane.slots {
            None => None,
            // A free slot is taken without a timer (the usual case).
            Some(slots) => match slots.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => match tokio::time::timeout(wait, slots.clone().acquire_owned()).await {
                    Ok(Ok(p)) => Some(p),
                    _ => {
                        return Err(format!(
                            "throttled: tenant {}'s {} concurrent evaluation(s) stayed busy for {} ms",
                            self.tenant,
                            self.lane.concurrency,
                            wait.as_millis()
                        ));
                    }
                },
            },
        };
        Ok(Admitted { _slot: slot })
    }

    /// Whether its next evaluation runs isolated ([`at_low_priority`], off
    /// the shared workers): its tenant has a concurrency quota and one of
    /// the tenant's evaluations was slow in the last minute (`run`'s
    /// multi-threaded runtime only). Lane-wide, so 200 slow scalers of a
    /// tenant cost other tenants one slow evaluation on a shared worker, not
    /// 200.
    pub(crate) fn isolates(&self) -> bool {
        self.lane.slots.is_some() && self.lane.recently_slow()
    }

    /// Account an evaluation: the fuel it burned, and whether it ran into
    /// its deadline.
    pub(crate) fn spent(&mut self, fuel: u64, hit_deadline: bool, took: Duration) {
        if hit_deadline || took >= SLOW_EVALUATION {
            self.lane.mark_slow();
        }
        if self.lane.fuel_per_second.is_some() {
            let mut b = self
                .lane
                .bucket
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            b.level -= fuel as f64;
        }
        if hit_deadline {
            self.deadline_streak += 1;
            if self.deadline_streak >= DEADLINE_STREAK {
                self.backoff = (self.backoff * 2).clamp(1, MAX_BACKOFF_TICKS);
                self.skip = self.backoff;
                tracing::warn!(tenant = %self.tenant, ticks = self.skip, "a policy keeps using its whole deadline; it is backed off");
            }
        } else {
            self.deadline_streak = 0;
            self.backoff = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_deadline_burner_is_backed_off_longer_each_time() {
        let s = Arc::new(Scheduler::new(None));
        let mut g = s.gate("a");
        let mut evaluated = Vec::new();
        for _ in 0..20 {
            let ok = g.admit(Duration::from_millis(1)).await.is_ok();
            if ok {
                g.spent(10, true, Duration::from_millis(10));
            }
            evaluated.push(ok);
        }
        // Three evaluations, skip 1, one, skip 2, one, skip 4, ...
        let pattern: String = evaluated
            .iter()
            .map(|&e| if e { 'E' } else { '.' })
            .collect();
        assert_eq!(&pattern[..13], "EEE.E..E....E");
        // A good tick ends the back-off.
        g.skip = 0;
        g.spent(10, false, Duration::ZERO);
        assert_eq!((g.deadline_streak, g.backoff), (0, 0));
    }

    #[allow(clippy::unwrap_used, reason = "tests fail by panicking")]
    #[tokio::test]
    async fn one_slow_evaluation_isolates_its_whole_lane_and_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let store = Tenants::open(dir.path()).unwrap();
        let tier = crate::tenants::Tier {
            quotas: crate::tenants::Quotas {
                concurrency: Some(1),
                ..Default::default()
            },
            ..Default::default()
        };
        store.set_tiers([("t".to_owned(), tier)].into());
        for name in ["a", "b"] {
            store.create(name, Some("t")).unwrap();
        }
        let s = Arc::new(Scheduler::new(Some(Arc::new(store))));
        let (mut a1, a2, b) = (s.gate("a"), s.gate("a"), s.gate("b"));
        assert!(!a1.isolates() && !a2.isolates() && !b.isolates());
        let admitted = a1.admit(Duration::from_millis(1)).await.unwrap();
        a1.spent(10, false, Duration::from_millis(5));
        drop(admitted);
        assert!(a1.isolates() && a2.isolates(), "tenant a's lane");
        assert!(!b.isolates(), "tenant b is not touched");
        // Unlimited tenants never isolate (no slot bounds the threads).
        let free = Arc::new(Scheduler::new(None));
        let mut f = free.gate("c");
        f.spent(10, true, Duration::from_millis(20));
        assert!(!f.isolates());
    }

    #[allow(clippy::unwrap_used, reason = "tests fail by panicking")]
    #[test]
    fn an_isolated_evaluation_runs_on_its_own_thread_at_the_lowest_priority() {
        let here = std::thread::current().id();
        let (there, nice) = at_low_priority(|| {
            #[cfg(target_os = "linux")]
            let nice =
                rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
            #[cfg(not(target_os = "linux"))]
            let nice = 19;
            (std::thread::current().id(), nice)
        });
        assert_ne!(there, here);
        assert_eq!(nice, 19);
        #[cfg(target_os = "linux")]
        assert_ne!(
            rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap(),
            19,
            "the caller's thread keeps its priority"
        );
    }
}
