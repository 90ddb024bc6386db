//! What the controller shares with whatever serves it (the admin server): the
//! metrics every tick feeds, and the operator requests each scaler takes
//! before its next tick. Defined here, below the admin server, so that the
//! controller never imports it.

use crate::audit::AuditRecord;
use crate::guard::BreakerSetting;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::exemplar::Exemplar;
use prometheus_client::metrics::gauge::ConstGauge;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The handle a service gets: the process's metrics and breaker controls.
#[derive(Debug, Clone, Default)]
pub struct Handle {
    pub metrics: Metrics,
    pub controls: Controls,
    /// The audit log the scalers write (for recent decisions and snapshots).
    pub audit: Option<std::path::PathBuf>,
    /// Where relative paths in a scaler's entry are resolved from (the
    /// config file's directory).
    pub base: std::path::PathBuf,
    /// Add, replace and remove scalers while running (None: this run takes
    /// no changes).
    pub changes: Option<super::ScalerChanges>,
}

/// Upper bounds of the evaluation-latency histogram, seconds.
const LATENCY_BUCKETS: [f64; 10] = [1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 5e-2, 0.1, 1.0];

#[derive(Debug, Default, Clone)]
struct ScalerMetrics {
    tenant: String,
    desired: u32,
    current: u32,
    ticks: u64,
    missed_ticks: u64,
    fuel: u64,
    latency_buckets: [u64; LATENCY_BUCKETS.len()],
    latency_sum: f64,
    latency_count: u64,
    errors: BTreeMap<String, u64>,
    interventions: BTreeMap<String, u64>,
    /// A shadow version's ticks, those where it proposed another count,
    /// and the sum of |shadow - active|.
    shadow_ticks: u64,
    shadow_differing: u64,
    shadow_abs_difference: u64,
    /// Its task ended abnormally: the scaler no longer runs.
    lost: bool,
}

/// One scaler's counters since the process started.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ScalerStatus {
    pub desired: u32,
    pub current: u32,
    pub ticks: u64,
    pub missed_ticks: u64,
    /// Failures recorded (a tick may have several).
    pub failed_ticks: u64,
    pub guardrail_interventions: u64,
    pub fuel: u64,
    /// False once its task ended abnormally.
    pub running: bool,
}

/// Process-wide metrics, fed by the controller after every tick.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    inner: Arc<Mutex<BTreeMap<String, ScalerHandle>>>,
    expected_scalers: Arc<Mutex<usize>>,
}

/// One scaler's metrics. Its task holds this handle and records every tick
/// through it: no lookup by name and no shared lock on the tick path (a
/// 10,000-entry map looked up 10,000 times a second was 7 % of the run).
#[derive(Debug, Clone, Default)]
pub struct ScalerHandle(Arc<Mutex<ScalerMetrics>>);

impl ScalerHandle {
    /// Account one tick's record.
    pub fn observe(&self, r: &AuditRecord) {
        let Ok(mut m) = self.0.lock() else { return };
        if *m.tenant != *r.tenant {
            m.tenant = r.tenant.to_string();
        }
        // An unreadable target leaves the gauges at the last count read.
        if !r
            .failures
            .iter()
            .any(|f| f.stage == crate::audit::Stage::ActuatorRead)
        {
            m.desired = r.final_replicas;
            m.current = r.previous_replicas;
        }
        m.ticks += 1;
        m.fuel += r.fuel.unwrap_or(0);
        let seconds = r.latency_us as f64 / 1e6;
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                m.latency_buckets[i] += 1;
            }
        }
        m.latency_sum += seconds;
        m.latency_count += 1;
        for f in &r.failures {
            *m.errors
                .entry(format!("{}/{}", f.stage, f.kind))
                .or_default() += 1;
        }
        for g in &r.guardrails {
            *m.interventions.entry(g.guard.clone()).or_default() += 1;
        }
        if let Some(shadow) = &r.shadow {
            m.shadow_ticks += 1;
            if let (Some(s), Some(a)) = (shadow.desired, r.decision.as_ref().map(|d| d.desired)) {
                let diff = s.abs_diff(a);
                m.shadow_differing += u64::from(diff > 0);
                m.shadow_abs_difference += u64::from(diff);
            }
        }
    }

    /// The scaler's task ended abnormally (see `wasmscale_scaler_up`).
    pub fn lost(&self) {
        if let Ok(mut m) = self.0.lock() {
            m.lost = true;
        }
    }

    /// Count ticks the scaler could not run on time.
    pub fn missed(&self, n: u64) {
        if let Ok(mut m) = self.0.lock() {
            m.missed_ticks += n;
        }
    }

    fn read(&self) -> ScalerMetrics {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

impl Metrics {
    pub fn new(expected_scalers: usize) -> Self {
        Metrics {
            inner: Arc::default(),
            expected_scalers: Arc::new(Mutex::new(expected_scalers)),
        }
    }

    /// The handle of the scaler called `name` (the same one after a reload,
    /// so its counters go on).
    pub fn scaler(&self, name: &str) -> ScalerHandle {
        let Ok(mut all) = self.inner.lock() else {
            return ScalerHandle::default();
        };
        all.entry(name.to_owned()).or_default().clone()
    }

    /// How many scalers must have ticked for `/readyz` (after a reload).
    pub fn set_expected(&self, n: usize) {
        if let Ok(mut e) = self.expected_scalers.lock() {
            *e = n;
        }
    }

    /// Every scaler has completed at least one tick.
    pub fn ready(&self) -> bool {
        let expected = self.expected_scalers.lock().map_or(usize::MAX, |e| *e);
        self.inner.lock().is_ok_and(|all| {
            all.values()
                .filter(|h| h.0.lock().is_ok_and(|m| m.ticks > 0))
                .count()
                >= expected
        })
    }

    /// One scaler's counters, as the admin API shows them.
    pub fn status(&self, name: &str) -> Option<ScalerStatus> {
        let m = self.inner.lock().ok()?.get(name)?.read();
        Some(ScalerStatus {
            desired: m.desired,
            current: m.current,
            ticks: m.ticks,
            missed_ticks: m.missed_ticks,
            failed_ticks: m.errors.values().sum(),
            guardrail_interventions: m.interventions.values().sum(),
            fuel: m.fuel,
            running: !m.lost,
        })
    }

    /// The exposition `/metrics` serves (OpenMetrics text, written by
    /// the Prometheus project's client library).
    pub fn render(&self) -> String {
        let Ok(handles) = self.inner.lock() else {
            return String::new();
        };
        let scalers: Vec<(String, ScalerMetrics)> = handles
            .iter()
            .map(|(name, h)| (name.clone(), h.read()))
            .collect();
        drop(handles);
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(Process));
        registry.register_collector(Box::new(Scrape { scalers }));
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
            tracing::error!(error = %e, "cannot write /metrics");
        }
        out
    }
}

/// The content type of [`Metrics::render`]'s text.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every scaler's counters at one scrape, written as metric families.
#[derive(Debug)]
struct Scrape {
    scalers: Vec<(String, ScalerMetrics)>,
}

/// A scaler's labels, escaped: the library writes label values as given.
fn labels(name: &str, m: &ScalerMetrics) -> [(&'static str, String); 2] {
    [("scaler", escape(name)), ("tenant", escape(&m.tenant))]
}

impl Scrape {
    /// One family with a series per scaler.
    fn per_scaler<M: EncodeMetric>(
        &self,
        e: &mut DescriptorEncoder<'_>,
        name: &str,
        help: &str,
        value: impl Fn(&ScalerMetrics) -> M,
    ) -> std::fmt::Result {
        let kind = value(&ScalerMetrics::default()).metric_type();
        let mut family = e.encode_descriptor(name, help, None, kind)?;
        for (scaler, m) in &self.scalers {
            value(m).encode(family.encode_family(&labels(scaler, m))?)?;
        }
        Ok(())
    }
}

impl Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> std::fmt::Result {
        let gauge = |v: u32| ConstGauge::new(i64::from(v));
        let counter = ConstCounter::new;
        self.per_scaler(
            &mut e,
            "wasmscale_desired_replicas",
            "Replica count decided on the last tick.",
            |m| gauge(m.desired),
        )?;
        self.per_scaler(
            &mut e,
            "wasmscale_current_replicas",
            "Replica count the target reported on the last tick.",
            |m| gauge(m.current),
        )?;
        self.per_scaler(
            &mut e,
            "wasmscale_scaler_up",
            "1 while the scaler's task runs, 0 once it ended abnormally (see the error log).",
            |m| gauge(u32::from(!m.lost)),
        )?;
        let lost = self.scalers.iter().filter(|(_, m)| m.lost).count() as u64;
        let c = counter(lost);
        c.encode(e.encode_descriptor(
            "wasmscale_scaler_tasks_lost",
            "Scaler tasks that ended abnormally.",
            None,
            c.metric_type(),
        )?)?;
        // Counters are named without `_total`: the library appends it.
        self.per_scaler(&mut e, "wasmscale_ticks", "Ticks run.", |m| {
            counter(m.ticks)
        })?;
        self.per_scaler(
            &mut e,
            "wasmscale_missed_ticks",
            "Ticks that could not run on time.",
            |m| counter(m.missed_ticks),
        )?;
        self.per_scaler(
            &mut e,
            "wasmscale_shadow_ticks",
            "Ticks a shadow version was evaluated beside the active one (it never acts).",
            |m| counter(m.shadow_ticks),
        )?;
        self.per_scaler(
            &mut e,
            "wasmscale_shadow_differing",
            "Ticks where the shadow version proposed another count than the active one.",
            |m| counter(m.shadow_differing),
        )?;
        self.per_scaler(
            &mut e,
            "wasmscale_shadow_abs_difference",
            "Sum over ticks of |shadow proposal - active proposal|, in replicas.",
            |m| counter(m.shadow_abs_difference),
        )?;
        self.per_scaler(
            &mut e,
            "wasmscale_policy_fuel",
            "Fuel the policy used.",
            |m| counter(m.fuel),
        )?;
        let mut family = e.encode_descriptor(
            "wasmscale_tick_duration_seconds",
            "Time to run one tick (source, policy, guardrails, actuator).",
            None,
            MetricType::Histogram,
        )?;
        for (scaler, m) in &self.scalers {
            // The library takes each bucket's own count (it sums them), and
            // an upper bound of f64::MAX for +Inf.
            let mut buckets = Vec::with_capacity(LATENCY_BUCKETS.len() + 1);
            let mut below = 0;
            for (bound, cumulative) in LATENCY_BUCKETS.iter().zip(m.latency_buckets) {
                buckets.push((*bound, cumulative - below));
                below = cumulative;
            }
            buckets.push((f64::MAX, m.latency_count.saturating_sub(below)));
            family.encode_family(&labels(scaler, m))?.encode_histogram(
                m.latency_sum,
                m.latency_count,
                &buckets,
                None::<&std::collections::HashMap<usize, Exemplar<NoLabelSet, f64>>>,
            )?;
        }
        let mut family = e.encode_descriptor(
            "wasmscale_errors",
            "Failures recorded in ticks, by the stage that failed and the kind of failure.",
            None,
            MetricType::Counter,
        )?;
        for (scaler, m) in &self.scalers {
            for (key, n) in &m.errors {
                let (stage, kind) = key.split_once('/').unwrap_or(("", key));
                let [s, t] = labels(scaler, m);
                let set = [s, t, ("stage", escape(stage)), ("kind", escape(kind))];
                counter(*n).encode(family.encode_family(&set)?)?;
            }
        }
        let mut family = e.encode_descriptor(
            "wasmscale_guardrail_interventions",
            "Decisions a guardrail changed, by guardrail.",
            None,
            MetricType::Counter,
        )?;
        for (scaler, m) in &self.scalers {
            for (guard, n) in &m.interventions {
                let [s, t] = labels(scaler, m);
                let set = [s, t, ("guard", escape(guard))];
                counter(*n).encode(family.encode_family(&set)?)?;
            }
        }
        Ok(())
    }
}

/// Operator requests for the circuit breaker, taken by each scaler before its
/// next tick. `Some(setting)` sets it, `None` clears it.
#[derive(Debug, Clone, Default)]
pub struct Controls {
    scalers: Arc<Mutex<Vec<String>>>,
    pending: Arc<Mutex<BTreeMap<String, Option<BreakerSetting>>>>,
    desks: Arc<Mutex<BTreeMap<String, Desk>>>,
    notices: Arc<Mutex<Vec<Notice>>>,
}

/// What a running scaler offers whoever serves it, beyond its breaker: what
/// it runs (for a swap's pipeline) and a line to its task.
#[derive(Debug, Clone)]
pub struct Desk {
    pub scaler: String,
    pub tenant: String,
    /// The policy as configured: `builtin:NAME`, a path, `registry:NAME` or `sha256:HEX`.
    pub policy: String,
    pub params: String,
    pub limits: Option<crate::host::Limits>,
    /// Configured metrics its source does not query (no policy read them
    /// when it was built): a version that reads one needs a reload.
    pub unqueried: Vec<String>,
    /// The keys one of which must have signed what it runs (empty: any).
    pub require_signed_by: Vec<String>,
    /// What it takes from its tenant's quotas.
    pub footprint: crate::tenants::Footprint,
    pub(crate) commands: tokio::sync::mpsc::Sender<super::swap::Command>,
}

/// Something a scaler did on its own that its server should know of.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// A swapped-in version failed its probation and the previous one is back.
    RolledBack {
        scaler: String,
        policy: String,
        from_digest: String,
        to_digest: String,
        why: String,
    },
}

impl Controls {
    pub fn new(scalers: Vec<String>) -> Self {
        Controls {
            scalers: Arc::new(Mutex::new(scalers)),
            pending: Arc::default(),
            desks: Arc::default(),
            notices: Arc::default(),
        }
    }

    /// The desk of the running scaler `name`.
    pub fn desk(&self, name: &str) -> Option<Desk> {
        self.desks.lock().ok()?.get(name).cloned()
    }

    /// Every running scaler's desk, by name.
    pub fn desks(&self) -> Vec<Desk> {
        self.desks
            .lock()
            .map(|d| d.values().cloned().collect())
            .unwrap_or_default()
    }

    pub(crate) fn open_desk(&self, desk: Desk) {
        if let Ok(mut d) = self.desks.lock() {
            d.insert(desk.scaler.clone(), desk);
        }
    }

    /// Drop the desks of scalers that no longer run (after a reload).
    fn close_desks_except(&self, running: &[String]) {
        if let Ok(mut d) = self.desks.lock() {
            d.retain(|name, _| running.contains(name));
        }
    }

    pub(crate) fn notify(&self, notice: Notice) {
        if let Ok(mut n) = self.notices.lock() {
            n.push(notice);
        }
    }

    /// The notices since the last call.
    pub fn take_notices(&self) -> Vec<Notice> {
        self.notices
            .lock()
            .map(|mut n| std::mem::take(&mut *n))
            .unwrap_or_default()
    }

    /// The scalers that exist now (after a reload).
    pub fn set_scalers(&self, scalers: Vec<String>) {
        self.close_desks_except(&scalers);
        if let Ok(mut s) = self.scalers.lock() {
            *s = scalers;
        }
    }

    /// The request waiting for `scaler`, if any (taken: applied once).
    pub fn take(&self, scaler: &str) -> Option<Option<BreakerSetting>> {
        self.pending.lock().ok()?.remove(scaler)
    }

    /// Queue a request for `scaler`; false if no such scaler runs.
    pub fn request(&self, scaler: &str, setting: Option<BreakerSetting>) -> bool {
        if !self
            .scalers
            .lock()
            .is_ok_and(|s| s.iter().any(|s| s == scaler))
        {
            return false;
        }
        self.pending
            .lock()
            .map(|mut p| p.insert(scaler.to_owned(), setting))
            .is_ok()
    }
}

/// `wasmscale_build_info` and the standard process metrics (Linux: read
/// from /proc/self; elsewhere only the build info).
#[derive(Debug)]
struct Process;

impl Collector for Process {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> std::fmt::Result {
        let info = ConstGauge::new(1i64);
        info.encode(
            e.encode_descriptor(
                "wasmscale_build_info",
                "The running binary's version (the value is always 1).",
                None,
                info.metric_type(),
            )?
            .encode_family(&[("version", env!("CARGO_PKG_VERSION"))])?,
        )?;
        let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
            return Ok(());
        };
        // Fields after the command name, which may hold spaces: state is field 3.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .collect();
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
        // Clock ticks per second: 100 on every Linux this runs on.
        const TICKS: f64 = 100.0;
        let mut one = |name: &str, help: &str, metric: &dyn EncodeMetric| -> std::fmt::Result {
            metric.encode(e.encode_descriptor(name, help, None, metric.metric_type())?)
        };
        if let (Some(utime), Some(stime)) = (field(14), field(15)) {
            one(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                &ConstCounter::new((utime + stime) / TICKS),
            )?;
        }
        if let Some(pages) = field(24) {
            one(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                &ConstGauge::new(pages * 4096.0),
            )?;
        }
        if let Some(bytes) = field(23) {
            one(
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                &ConstGauge::new(bytes),
            )?;
        }
        if let Some(threads) = field(20) {
            one(
                "process_threads",
                "Number of OS threads in the process.",
                &ConstGauge::new(threads),
            )?;
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            one(
                "process_open_fds",
                "Number of open file descriptors.",
                &ConstGauge::new(fds.count() as i64),
            )?;
        }
        Ok(())
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_info_and_process_metrics_are_exported() {
        let text = Metrics::new(0).render();
        assert!(
            text.contains(&format!(
                "wasmscale_build_info{{version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
        if cfg!(target_os = "linux") {
            let value = |name: &str| -> f64 {
                text.lines()
                    .find_map(|l| l.strip_prefix(&format!("{name} ")))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("{name} missing: {text}"))
            };
            assert!(value("process_resident_memory_bytes") > 1e6, "{text}");
            assert!(value("process_threads") >= 1.0);
            assert!(value("process_open_fds") >= 3.0);
            assert!(value("process_cpu_seconds_total") >= 0.0);
        }
    }

    #[test]
    fn labels_are_escaped_and_a_lost_scaler_shows() {
        let metrics = Metrics::new(2);
        metrics.scaler("a\"b\\c\nd");
        metrics.scaler("gone").lost();
        let text = metrics.render();
        assert!(
            text.contains(r#"wasmscale_scaler_up{scaler="a\"b\\c\nd",tenant=""} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"wasmscale_scaler_up{scaler="gone",tenant=""} 0"#),
            "{text}"
        );
        assert!(
            text.contains("wasmscale_scaler_tasks_lost_total 1"),
            "{text}"
        );
        assert!(!metrics.ready(), "no scaler has ticked");
    }
}
