//! The 0.2 contract (`wit/v0.2`, a draft): a policy declares what it reads in
//! `configure`, gets the values as dense lists each tick, and returns its
//! state with its decision, only when it changed.
//!
//! The SDK keeps the declared names, so a policy reads by name and never
//! indexes the lists itself:
//!
//! ```ignore
//! use wasmscale_sdk::v2::{Outcome, Policy, Reads, View};
//! #[derive(Default)]
//! struct Queue;
//! impl Policy for Queue {
//!     fn configure(&mut self, _params: &str) -> Result<Reads, String> {
//!         Ok(Reads::new().signal("queue_depth").replicas(["kv_cache_utilization"]))
//!     }
//!     fn evaluate(&mut self, t: &View<'_>) -> Result<Outcome, String> {
//!         let Some(q) = t.queue_depth() else { return Ok(Outcome::hold("queue unknown")) };
//!         let idle = t.replicas().filter(|r| r.value("kv_cache_utilization") == Some(0.0));
//!         Ok(Outcome::scale((q / 10.0).ceil(), "queue").remove_first(idle.map(|r| r.id())))
//!     }
//! }
//! wasmscale_sdk::export_policy_v2!(Queue);
//! ```

/// Generated bindings for the 0.2 world. Public only so that
/// [`crate::export_policy_v2!`] can reach them.
#[doc(hidden)]
#[allow(
    unsafe_code,
    unused_qualifications,
    clippy::all,
    missing_docs,
    reason = "generated bindings"
)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit/v0.2",
        world: "wasmscale:policy/scaler-policy@0.2.0",
        pub_export_macro: true,
        export_macro_name: "export_policy_v2_world",
        default_bindings_module: "wasmscale_sdk::v2::bindings",
    });
}

pub use bindings::wasmscale::policy::types::{
    Capacity, Decision, LogLevel, Manifest, Outcome, Pool, PoolTarget, Proposal, Replica,
    ReplicaSamples, ReplicaState, Tick,
};

/// The replica counts a policy may read, as signals (the tick carries only
/// the current count): declare them with [`Reads::counts`] or one by one.
pub const COUNT_SIGNALS: [&str; 6] = [
    "replicas.observed",
    "replicas.ready",
    "replicas.starting",
    "replicas.pending",
    "replicas.min",
    "replicas.max",
];

/// What a policy reads, returned from `configure`: the signals (well-known
/// names or `custom:NAME`) and, if it looks at replicas, their per-replica
/// signals. The SDK keeps it, so [`View`] finds each value by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reads {
    signals: Vec<String>,
    replica_signals: Option<Vec<String>>,
    pools: bool,
}

impl Reads {
    pub fn new() -> Self {
        Reads::default()
    }

    /// Read a well-known signal (`gpu_utilization`, `cost.spot_per_hour`, ...).
    pub fn signal(mut self, name: impl Into<String>) -> Self {
        self.signals.push(name.into());
        self
    }

    /// Read several signals.
    pub fn signals<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.signals.extend(names.into_iter().map(Into::into));
        self
    }

    /// Read a custom metric the scaler's config names.
    pub fn custom(self, name: &str) -> Self {
        self.signal(format!("custom:{name}"))
    }

    /// Look at replicas, with these per-replica signals (none: only their ids,
    /// pools, states and ages).
    pub fn replicas<S: Into<String>>(mut self, per_replica: impl IntoIterator<Item = S>) -> Self {
        self.replica_signals
            .get_or_insert_with(Vec::new)
            .extend(per_replica.into_iter().map(Into::into));
        self
    }

    /// Read every replica count ([`COUNT_SIGNALS`]: observed, ready,
    /// starting, pending, and the configured min and max).
    pub fn counts(self) -> Self {
        self.signals(COUNT_SIGNALS)
    }

    /// Read the capacity pools (their counts, prices and bounds).
    pub fn pools(mut self) -> Self {
        self.pools = true;
        self
    }

    /// The manifest the host receives.
    pub fn manifest(&self) -> Manifest {
        Manifest {
            signals: self.signals.clone(),
            replica_signals: self.replica_signals.clone(),
            pools: self.pools,
        }
    }

    /// A tick for this manifest at `time_ms` with `current` replicas and
    /// every value unknown: for native unit tests, with [`Self::set`].
    pub fn tick(&self, time_ms: u64, current: u32) -> Tick {
        Tick {
            time_ms,
            interval_ms: 15_000,
            current,
            values: vec![None; self.signals.len()],
            pools: self.pools.then(Vec::new),
            replicas: self.replica_signals.as_ref().map(|_| ReplicaSamples {
                replicas: Vec::new(),
                values: Vec::new(),
            }),
        }
    }

    /// Add a replica to a tick built by [`Self::tick`], with one value per
    /// declared replica signal (in order) and no requests. For tests.
    pub fn add_replica(&self, tick: &mut Tick, id: &str, values: &[Option<f64>]) {
        let k = self.replica_signals.as_ref().map_or(0, Vec::len);
        let samples = tick.replicas.get_or_insert_with(|| ReplicaSamples {
            replicas: Vec::new(),
            values: Vec::new(),
        });
        samples.replicas.push(Replica {
            id: Some(id.to_owned()),
            pool: None,
            state: ReplicaState::Ready,
            age_ms: None,
        });
        samples
            .values
            .extend((0..k).map(|j| values.get(j).copied().flatten()));
        samples.values.extend((0..k).map(|_| None));
    }

    /// Set declared signal `name` on a tick built by [`Self::tick`]. For tests:
    /// a name this manifest does not declare is a panic.
    #[allow(
        clippy::panic,
        reason = "a test helper: a wrong name is the test's bug"
    )]
    pub fn set(&self, tick: &mut Tick, name: &str, value: f64) {
        match self.index(name) {
            Some(i) => tick.values[i] = Some(value),
            None => panic!("{name} is not declared"),
        }
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.signals.iter().position(|n| n == name)
    }

    fn replica_index(&self, name: &str) -> Option<usize> {
        self.replica_signals
            .as_ref()?
            .iter()
            .position(|n| n == name)
    }
}

/// A 0.2 scaling policy. Export it with [`crate::export_policy_v2!`].
pub trait Policy: Default + 'static {
    /// Accept parameters (JSON) and say what to read.
    fn configure(&mut self, params: &str) -> Result<Reads, String>;

    /// Decide from one tick; set [`Outcome::with_state`] only when the state changed.
    fn evaluate(&mut self, tick: &View<'_>) -> Result<Outcome, String>;

    /// Restore state an earlier `evaluate` returned. Stateless policies keep the default.
    fn load_state(&mut self, _state: &[u8]) -> Result<(), String> {
        Ok(())
    }
}

/// One tick, read by the names the policy declared.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    tick: &'a Tick,
    reads: &'a Reads,
}

/// Typed accessors for the well-known signals: `None` when unknown this
/// tick, or not declared.
macro_rules! accessors {
    ($($name:ident),* $(,)?) => {
        impl View<'_> {
            $(
                #[doc = concat!("`", stringify!($name), "`, if declared and known.")]
                pub fn $name(&self) -> Option<f64> {
                    self.signal(stringify!($name))
                }
            )*
        }
    };
}

accessors!(
    gpu_utilization,
    gpu_memory_utilization,
    cpu_utilization,
    queue_depth,
    request_rate,
    tokens_per_second,
    latency_p50_ms,
    latency_p95_ms,
    latency_p99_ms,
    batch_seconds,
    ttft_p95_ms,
    itl_p95_ms,
    kv_cache_utilization,
    oldest_queued_seconds,
);

impl<'a> View<'a> {
    /// A view of `tick` as read by `reads` (what the export macro builds; for tests).
    pub fn new(tick: &'a Tick, reads: &'a Reads) -> Self {
        View { tick, reads }
    }

    /// The raw tick.
    pub fn tick(&self) -> &'a Tick {
        self.tick
    }

    pub fn time_ms(&self) -> u64 {
        self.tick.time_ms
    }

    pub fn interval_ms(&self) -> u32 {
        self.tick.interval_ms
    }

    /// The current (desired) replica count.
    pub fn current(&self) -> u32 {
        self.tick.current
    }

    /// A replica count declared as a signal (`"ready"` for
    /// `replicas.ready`, ...); `None` when unknown or not declared.
    pub fn count(&self, name: &str) -> Option<u32> {
        let i = self
            .reads
            .signals
            .iter()
            .position(|n| n.strip_prefix("replicas.") == Some(name))?;
        let v = self.tick.values.get(i).copied().flatten()?;
        (v.is_finite() && v >= 0.0).then_some(v as u32)
    }

    /// Replicas ready to serve: `replicas.ready` when declared and reported,
    /// else the current count.
    pub fn ready(&self) -> u32 {
        self.count("ready").unwrap_or(self.tick.current)
    }

    /// A declared signal by the name it was declared with (`custom:` included).
    pub fn signal(&self, name: &str) -> Option<f64> {
        let i = self.reads.index(name)?;
        self.tick
            .values
            .get(i)
            .copied()
            .flatten()
            .filter(|v| v.is_finite())
    }

    /// A declared custom metric.
    pub fn custom(&self, name: &str) -> Option<f64> {
        self.reads
            .signals
            .iter()
            .position(|n| n.strip_prefix("custom:") == Some(name))
            .and_then(|i| self.tick.values.get(i).copied().flatten())
    }

    /// A signal the policy cannot decide without: its value, or the error
    /// that holds the count.
    pub fn require(&self, name: &str) -> Result<f64, String> {
        self.signal(name)
            .ok_or_else(|| format!("{name} is missing"))
    }

    /// The capacity pools (empty: one homogeneous pool, or not asked for
    /// with [`Reads::pools`]).
    pub fn pools(&self) -> &'a [Pool] {
        self.tick.pools.as_deref().unwrap_or_default()
    }

    pub fn pool(&self, name: &str) -> Option<&'a Pool> {
        self.pools().iter().find(|p| p.name == name)
    }

    /// Replicas on pools of this kind, asked for now.
    pub fn current_on(&self, capacity: Capacity) -> u32 {
        self.pools()
            .iter()
            .filter(|p| p.capacity == capacity)
            .map(|p| p.current)
            .sum()
    }

    /// The replicas (empty unless `configure` asked for them).
    pub fn replicas(&self) -> impl Iterator<Item = ReplicaView<'a>> + 'a {
        let (tick, reads) = (self.tick, self.reads);
        let k = reads.replica_signals.as_ref().map_or(0, Vec::len);
        let samples = tick.replicas.as_ref();
        let replicas = samples.map_or(&[][..], |s| s.replicas.as_slice());
        let values = samples.map_or(&[][..], |s| s.values.as_slice());
        replicas
            .iter()
            .enumerate()
            .map(move |(i, replica)| ReplicaView {
                replica,
                samples: values.get(i * 2 * k..(i + 1) * 2 * k).unwrap_or_default(),
                tick,
                reads,
            })
    }
}

/// One replica, read by the per-replica signals the policy declared.
#[derive(Debug, Clone, Copy)]
pub struct ReplicaView<'a> {
    replica: &'a Replica,
    /// Its values, then its requests, one per declared replica signal.
    samples: &'a [Option<f64>],
    tick: &'a Tick,
    reads: &'a Reads,
}

impl<'a> ReplicaView<'a> {
    /// Its id (`""` where the target does not know it).
    pub fn id(&self) -> &'a str {
        self.replica.id.as_deref().unwrap_or_default()
    }

    pub fn state(&self) -> ReplicaState {
        self.replica.state
    }

    pub fn age_ms(&self) -> Option<u64> {
        self.replica.age_ms
    }

    /// Its pool, where the target runs pools.
    pub fn pool(&self) -> Option<&'a Pool> {
        self.tick.pools.as_ref()?.get(self.replica.pool? as usize)
    }

    /// Its value of a declared per-replica signal.
    pub fn value(&self, name: &str) -> Option<f64> {
        let j = self.reads.replica_index(name)?;
        self.samples.get(j).copied().flatten()
    }

    /// Its request of the resource behind a declared per-replica signal.
    pub fn request(&self, name: &str) -> Option<f64> {
        let j = self.reads.replica_index(name)?;
        let k = self.samples.len() / 2;
        self.samples.get(k + j).copied().flatten()
    }

    /// The raw record.
    pub fn raw(&self) -> &'a Replica {
        self.replica
    }
}

impl Outcome {
    /// The proposed count (`None` for a hold).
    pub fn desired(&self) -> Option<f64> {
        match self.decision.proposal {
            Proposal::Scale(n) => Some(n),
            Proposal::Hold => None,
        }
    }

    fn of(proposal: Proposal, reason: String) -> Self {
        Outcome {
            decision: Decision {
                proposal,
                spot_fraction: None,
                reason,
                pools: Vec::new(),
                remove_first: Vec::new(),
            },
            state: None,
        }
    }

    /// Scale to `desired` replicas, with no state change.
    pub fn scale(desired: f64, reason: impl Into<String>) -> Self {
        Outcome::of(Proposal::Scale(desired), reason.into())
    }

    /// No opinion this tick: the count holds, and nothing enters the
    /// guardrails' recommendation history.
    pub fn hold(reason: impl Into<String>) -> Self {
        Outcome::of(Proposal::Hold, reason.into())
    }

    /// Ask for `replicas` on pool `pool`. The pools' counts must sum to the
    /// decision's (the host refuses it otherwise).
    pub fn pool(mut self, pool: impl Into<String>, replicas: u32) -> Self {
        self.decision.pools.push(PoolTarget {
            pool: pool.into(),
            replicas,
        });
        self
    }

    /// On scale-in, remove these replicas first (by id, most preferred first).
    pub fn remove_first<S: Into<String>>(mut self, ids: impl IntoIterator<Item = S>) -> Self {
        self.decision
            .remove_first
            .extend(ids.into_iter().map(Into::into));
        self
    }

    /// The fraction of replicas to run on spot capacity, for targets that
    /// take only a fraction.
    pub fn spot_fraction(mut self, fraction: f64) -> Self {
        self.decision.spot_fraction = Some(fraction);
        self
    }

    /// This outcome with the policy's new state.
    pub fn with_state(mut self, state: Vec<u8>) -> Self {
        self.state = Some(state);
        self
    }
}

/// Export a [`Policy`] as the component's implementation of the 0.2 world.
#[macro_export]
macro_rules! export_policy_v2 {
    ($policy:ty) => {
        #[allow(
            unsafe_code,
            reason = "the component exports that wit-bindgen generates"
        )]
        const _: () = {
            ::std::thread_local! {
                static POLICY: ::core::cell::RefCell<($policy, $crate::v2::Reads)> =
                    ::core::cell::RefCell::new((
                        <$policy as ::core::default::Default>::default(),
                        $crate::v2::Reads::new(),
                    ));
            }
            struct WasmscaleExport;
            impl $crate::v2::bindings::Guest for WasmscaleExport {
                fn configure(
                    params: ::std::string::String,
                ) -> ::core::result::Result<$crate::v2::Manifest, ::std::string::String> {
                    $crate::__install_panic_hook();
                    POLICY.with(|p| {
                        let (policy, reads) = &mut *p.borrow_mut();
                        *reads = $crate::v2::Policy::configure(policy, &params)?;
                        Ok(reads.manifest())
                    })
                }
                fn evaluate(
                    tick: $crate::v2::Tick,
                ) -> ::core::result::Result<$crate::v2::Outcome, ::std::string::String> {
                    POLICY.with(|p| {
                        let (policy, reads) = &mut *p.borrow_mut();
                        $crate::v2::Policy::evaluate(policy, &$crate::v2::View::new(&tick, reads))
                    })
                }
                fn load_state(
                    state: ::std::vec::Vec<u8>,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    POLICY.with(|p| $crate::v2::Policy::load_state(&mut p.borrow_mut().0, &state))
                }
            }
            $crate::v2::bindings::export_policy_v2_world!(WasmscaleExport with_types_in $crate::v2::bindings);
        };
    };
}

/// A 0.1-style [`crate::Policy`] exported under 0.2 by
/// [`crate::export_policy_as_v2!`]: it names what it reads, the SDK fills a
/// [`crate::Snapshot`] from those values each tick, and sends its state only
/// when it changed. The way an existing policy moves to 0.2 unchanged.
pub trait Declares: crate::Policy {
    /// The signals it reads (names from the host's table, or `custom:NAME`;
    /// [`signal_for`] maps a 0.1 metric name), known once it is configured.
    fn declares(&self) -> Vec<String>;

    /// The per-replica metrics it reads from `snapshot.pods` (`None`: it
    /// reads no pods, and gets none).
    fn declares_replicas(&self) -> Option<Vec<String>> {
        None
    }

    /// The replica counts beyond `current` it reads from `snapshot.replicas`
    /// (of [`COUNT_SIGNALS`]). All of them unless it names fewer, since a
    /// 0.1 policy may read any; each is a value the host sends every tick.
    fn declares_counts(&self) -> &'static [&'static str] {
        &COUNT_SIGNALS
    }
}

/// The manifest name of a metric a 0.1 policy reads by `Snapshot::signal`:
/// a well-known signal or `cost.FIELD` as it is, anything else `custom:NAME`.
pub fn signal_for(metric: &str) -> String {
    if crate::SIGNAL_NAMES.contains(&metric) || metric.starts_with("cost.") {
        metric.to_owned()
    } else {
        format!("custom:{metric}")
    }
}

#[doc(hidden)]
#[derive(Default)]
pub struct Adapter<P> {
    policy: P,
    reads: Vec<String>,
    /// Where each of `reads` goes in the snapshot.
    slots: Vec<crate::snapshot::Slot>,
    replica_reads: Option<Vec<String>>,
    /// The state last sent to the host.
    sent: Vec<u8>,
    /// The snapshot the policy reads, refilled in place each tick so that
    /// its replicas' allocations (and their metric names) are reused.
    snapshot: crate::Snapshot,
}

impl<P: Declares> Policy for Adapter<P> {
    fn configure(&mut self, params: &str) -> Result<Reads, String> {
        self.policy.configure(params)?;
        let mut reads = self.policy.declares();
        for c in self.policy.declares_counts() {
            if !reads.iter().any(|r| r == *c) {
                reads.push((*c).to_owned());
            }
        }
        self.slots = reads.iter().map(|r| crate::snapshot::Slot::of(r)).collect();
        self.reads = reads;
        self.replica_reads = self.policy.declares_replicas();
        let reads = Reads::new().signals(self.reads.iter().cloned());
        Ok(match &self.replica_reads {
            Some(per) => reads.replicas(per.iter().cloned()),
            None => reads,
        })
    }

    fn evaluate(&mut self, view: &View<'_>) -> Result<Outcome, String> {
        let tick = view.tick();
        let s = &mut self.snapshot;
        s.time_ms = tick.time_ms;
        s.interval_ms = tick.interval_ms;
        s.replicas.current = tick.current;
        // Every declared signal is set each tick, and the rest stay unset;
        // custom values are pushed again.
        s.custom.clear();
        for ((name, slot), value) in self.reads.iter().zip(&self.slots).zip(&tick.values) {
            s.set_at(*slot, name, *value);
        }
        if let Some(names) = &self.replica_reads {
            let mut n = 0;
            for (i, r) in view.replicas().enumerate() {
                if s.pods.len() == i {
                    s.pods.push(crate::ReplicaSample {
                        state: crate::ReplicaState::Ready,
                        metrics: Vec::with_capacity(names.len()),
                        request: None,
                    });
                }
                let Some(pod) = s.pods.get_mut(i) else { break };
                pod.state = v1_state(r.state());
                pod.request = names.iter().find_map(|name| r.request(name));
                let mut present = 0;
                for name in names {
                    let Some(value) = r.value(name) else { continue };
                    match pod.metrics.get_mut(present) {
                        Some(m) if m.name == *name => m.value = value,
                        _ => {
                            pod.metrics.truncate(present);
                            pod.metrics.push(crate::NamedValue {
                                name: name.clone(),
                                value,
                            });
                        }
                    }
                    present += 1;
                }
                pod.metrics.truncate(present);
                n = i + 1;
            }
            s.pods.truncate(n);
        }
        let d = self.policy.evaluate(&self.snapshot)?;
        let state = self.policy.save_state();
        let state = (state != self.sent).then(|| {
            self.sent.clone_from(&state);
            state
        });
        let mut out = Outcome::scale(d.desired, d.reason);
        out.decision.spot_fraction = d.spot_fraction;
        out.state = state;
        Ok(out)
    }

    fn load_state(&mut self, state: &[u8]) -> Result<(), String> {
        self.policy.load_state(state)?;
        self.sent = state.to_vec();
        Ok(())
    }
}

fn v1_state(s: ReplicaState) -> crate::ReplicaState {
    match s {
        ReplicaState::Ready => crate::ReplicaState::Ready,
        ReplicaState::Unready => crate::ReplicaState::Unready,
        ReplicaState::Starting => crate::ReplicaState::Starting,
        ReplicaState::Pending => crate::ReplicaState::Pending,
        ReplicaState::Failed => crate::ReplicaState::Failed,
        ReplicaState::Deleting => crate::ReplicaState::Deleting,
    }
}

/// Export a 0.1-style [`crate::Policy`] that implements [`Declares`] as a 0.2
/// component: [`crate::export_policy_v2!`] of its [`Adapter`].
#[macro_export]
macro_rules! export_policy_as_v2 {
    ($policy:ty) => {
        $crate::export_policy_v2!($crate::v2::Adapter<$policy>);
    };
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail by panicking")]

    use super::*;

    /// Replicas for a queue (and a price read from `cost.`), with a state
    /// that changes only when the count does.
    #[derive(Default)]
    struct Queue {
        last: u32,
    }

    impl crate::Policy for Queue {
        fn configure(&mut self, _params: &str) -> Result<(), String> {
            Ok(())
        }

        fn evaluate(&mut self, s: &crate::Snapshot) -> Result<crate::Decision, String> {
            let q = s.require("queue_depth")? + s.custom("backlog").unwrap_or(0.0);
            let desired = (q / 10.0).ceil();
            self.last = desired as u32;
            Ok(crate::Decision {
                desired,
                spot_fraction: None,
                reason: format!("price {:?}", s.cost.spot_per_hour),
            })
        }

        fn save_state(&self) -> Vec<u8> {
            self.last.to_le_bytes().to_vec()
        }
    }

    impl Declares for Queue {
        fn declares(&self) -> Vec<String> {
            ["queue_depth", "custom:backlog", "cost.spot_per_hour"]
                .map(str::to_owned)
                .to_vec()
        }
    }

    fn tick(values: Vec<Option<f64>>) -> Tick {
        Tick {
            time_ms: 0,
            interval_ms: 1000,
            current: 1,
            values,
            pools: None,
            replicas: None,
        }
    }

    #[test]
    fn the_adapter_fills_the_snapshot_in_manifest_order_and_sends_state_only_on_change() {
        let mut a = Adapter::<Queue>::default();
        let reads = a.configure("{}").unwrap();
        let manifest = reads.manifest().signals;
        assert_eq!(
            manifest[..3],
            ["queue_depth", "custom:backlog", "cost.spot_per_hour"]
        );
        assert_eq!(manifest[3..], COUNT_SIGNALS, "the counts, for a 0.1 policy");
        assert_eq!(reads.manifest().replica_signals, None);
        let eval = |a: &mut Adapter<Queue>, mut values: Vec<Option<f64>>| {
            values.resize(9, None);
            let t = tick(values);
            a.evaluate(&View::new(&t, &reads))
        };
        let out = eval(&mut a, vec![Some(30.0), Some(20.0), Some(0.9)]).unwrap();
        assert!(matches!(out.decision.proposal, Proposal::Scale(d) if d == 5.0));
        assert_eq!(out.decision.reason, "price Some(0.9)");
        assert_eq!(out.state, Some(5u32.to_le_bytes().to_vec()));
        // The same count: the same state, not sent again.
        let again = eval(&mut a, vec![Some(45.0), Some(5.0), None]).unwrap();
        assert_eq!(again.state, None);
        // An unknown first signal is the policy's own error (it holds the count).
        assert!(eval(&mut a, vec![None, None, None]).is_err());
    }

    #[test]
    fn a_view_reads_signals_pools_and_replicas_by_their_declared_names() {
        let reads = Reads::new()
            .pools()
            .signal("gpu_utilization")
            .custom("backlog")
            .replicas(["kv", "cpu"]);
        let mut t = tick(vec![Some(0.7), Some(f64::NAN)]);
        t.pools = Some(vec![
            pool("od", Capacity::OnDemand, 2),
            pool("spot", Capacity::Spot, 3),
        ]);
        t.replicas = Some(ReplicaSamples {
            replicas: vec![Replica {
                id: Some("p-1".into()),
                pool: Some(1),
                state: ReplicaState::Ready,
                age_ms: Some(5000),
            }],
            // kv, cpu; then their requests.
            values: vec![Some(0.0), None, None, Some(2.0)],
        });
        let v = View::new(&t, &reads);
        assert_eq!(v.gpu_utilization(), Some(0.7));
        assert_eq!(v.queue_depth(), None, "not declared");
        assert_eq!(v.signal("custom:backlog"), None, "NaN is unknown");
        assert!(v.require("gpu_utilization").is_ok() && v.require("queue_depth").is_err());
        assert_eq!(v.current_on(Capacity::Spot), 3);
        assert_eq!(v.pool("od").map(|p| p.current), Some(2));
        let r = v.replicas().next().unwrap();
        assert_eq!(
            (r.id(), r.value("kv"), r.request("cpu")),
            ("p-1", Some(0.0), Some(2.0))
        );
        assert_eq!(r.pool().map(|p| p.name.as_str()), Some("spot"));
        let out = Outcome::scale(4.0, "mix")
            .pool("od", 1)
            .pool("spot", 3)
            .remove_first(["p-1"]);
        assert_eq!(out.decision.pools.len(), 2);
        assert_eq!(out.decision.remove_first, ["p-1"]);
        assert_eq!(
            reads.manifest().replica_signals.as_deref(),
            Some(&["kv".to_owned(), "cpu".to_owned()][..])
        );
    }

    #[test]
    fn a_test_builds_ticks_from_its_own_manifest() {
        let reads = Reads::new().signal("queue_depth").custom("backlog");
        let mut t = reads.tick(5, 3);
        reads.set(&mut t, "custom:backlog", 7.0);
        let v = View::new(&t, &reads);
        assert_eq!(
            (v.queue_depth(), v.custom("backlog"), v.ready()),
            (None, Some(7.0), 3)
        );
        assert_eq!(Outcome::scale(2.0, "x").desired(), Some(2.0));
        assert_eq!(Outcome::hold("x").desired(), None);
    }

    fn pool(name: &str, capacity: Capacity, current: u32) -> Pool {
        Pool {
            name: name.into(),
            capacity,
            current,
            ready: None,
            starting: None,
            pending: None,
            price_per_hour: None,
            interruptions_per_hour: None,
            min: None,
            max: None,
        }
    }
}
