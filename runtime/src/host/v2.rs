//! The 0.2 contract's adaptation: a manifest resolved once, each snapshot
//! turned into a tick of dense values, and each decision checked against the
//! tick it answers (pools that exist and sum, replicas that exist).

use super::bindings_v2::wasmscale::policy::types as wit;
use super::{
    COUNT_SIGNALS, Decision, MAX_SIGNALS, PolicyError, PoolTarget, Snapshot, ValidDecision,
    count_at, signal_at, signal_index, signal_table,
};

/// Where a declared signal's value comes from in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SignalRef {
    /// A well-known signal, by its place in the snapshot's signal table.
    Field(usize),
    /// A replica count (`replicas.ready`, ...), by its place in [`COUNT_SIGNALS`].
    Count(usize),
    /// `custom:NAME`: a custom metric by name.
    Custom(String),
}

/// What a 0.2 policy declared it reads, resolved for the host's use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Manifest {
    signals: Vec<SignalRef>,
    /// Per-replica metric names; `None`: the policy reads no replicas.
    replica_signals: Option<Vec<String>>,
    /// The policy reads capacity pools.
    pools: bool,
}

/// A name from a manifest, cut to a length fit for an error message.
fn short(name: &str) -> String {
    match name.char_indices().nth(64) {
        Some((cut, _)) => format!("{}…", &name[..cut]),
        None => name.to_owned(),
    }
}

impl Manifest {
    /// The manifest as the host reads it each tick. Unknown names, duplicates
    /// and more than [`MAX_SIGNALS`] (signals and replica signals together)
    /// are refused.
    pub(super) fn resolve(m: &wit::Manifest) -> Result<Self, PolicyError> {
        let per_replica = m.replica_signals.as_deref().unwrap_or_default();
        let count = m.signals.len() + per_replica.len();
        if count > MAX_SIGNALS {
            return Err(PolicyError::Manifest(format!(
                "{count} signals declared; at most {MAX_SIGNALS}"
            )));
        }
        let twice = |list: &[String]| {
            list.iter()
                .enumerate()
                .find(|(i, name)| list[..*i].contains(name))
                .map(|(_, name)| {
                    PolicyError::Manifest(format!("signal `{}` is declared twice", short(name)))
                })
        };
        if let Some(e) = twice(&m.signals).or_else(|| twice(per_replica)) {
            return Err(e);
        }
        let mut signals = Vec::with_capacity(m.signals.len());
        for name in &m.signals {
            signals.push(match name.strip_prefix("custom:") {
                Some(custom) if !custom.is_empty() => SignalRef::Custom(custom.to_owned()),
                _ => match (
                    signal_index(name),
                    COUNT_SIGNALS.iter().position(|c| c == name),
                ) {
                    (Some(i), _) => SignalRef::Field(i),
                    (None, Some(i)) => SignalRef::Count(i),
                    (None, None) => {
                        return Err(PolicyError::Manifest(format!(
                            "unknown signal `{}`; known: {}, {}, or custom:NAME",
                            short(name),
                            signal_table().join(", "),
                            COUNT_SIGNALS.join(", ")
                        )));
                    }
                },
            });
        }
        if let Some(empty) = per_replica.iter().find(|n| n.trim().is_empty()) {
            return Err(PolicyError::Manifest(format!(
                "replica signal `{}` has no name",
                short(empty)
            )));
        }
        Ok(Manifest {
            signals,
            replica_signals: m.replica_signals.clone(),
            pools: m.pools,
        })
    }

    /// The declared signal names, in order (`custom:NAME` as declared).
    pub(super) fn names(&self) -> Vec<String> {
        let table = signal_table();
        self.signals
            .iter()
            .map(|s| match s {
                SignalRef::Field(i) => table.get(*i).map_or("?", |n| n).to_owned(),
                SignalRef::Count(i) => COUNT_SIGNALS.get(*i).map_or("?", |n| n).to_owned(),
                SignalRef::Custom(n) => format!("custom:{n}"),
            })
            .collect()
    }

    /// The declared per-replica signals (`None`: reads no replicas).
    pub(super) fn replica_signals(&self) -> Option<&[String]> {
        self.replica_signals.as_deref()
    }

    /// A snapshot as a tick: the declared signals' values in order, the
    /// pools, and the replicas if the policy reads them.
    pub(super) fn tick(&self, s: &Snapshot) -> wit::Tick {
        // Each list handed over is an allocation call into the sandbox:
        // pools and replicas only when the manifest asked for them.
        let pools = self.pools.then(|| {
            s.pools
                .iter()
                .map(|p| wit::Pool {
                    name: p.name.clone(),
                    capacity: match p.capacity {
                        crate::model::Capacity::OnDemand => wit::Capacity::OnDemand,
                        crate::model::Capacity::Spot => wit::Capacity::Spot,
                        crate::model::Capacity::Reserved => wit::Capacity::Reserved,
                    },
                    current: p.current,
                    ready: p.ready,
                    starting: p.starting,
                    pending: p.pending,
                    price_per_hour: p.price_per_hour,
                    interruptions_per_hour: p.interruptions_per_hour,
                    min: p.min,
                    max: p.max,
                })
                .collect()
        });
        let replicas = self.replica_signals.as_ref().map(|names| {
            let mut values = Vec::with_capacity(s.pods.len() * names.len() * 2);
            let replicas = s
                .pods
                .iter()
                .map(|p| {
                    values.extend(names.iter().map(|n| p.metric(n)));
                    values.extend(names.iter().map(|n| p.request_for(n)));
                    wit::Replica {
                        id: p.id.clone(),
                        pool: p
                            .pool
                            .as_deref()
                            .and_then(|name| s.pools.iter().position(|q| q.name == name))
                            .map(|i| i as u32),
                        state: replica_state(p.state),
                        age_ms: p
                            .age_s
                            .filter(|a| a.is_finite() && *a >= 0.0)
                            .map(|a| (a * 1000.0) as u64),
                    }
                })
                .collect();
            wit::ReplicaSamples { replicas, values }
        });
        wit::Tick {
            time_ms: s.time_ms,
            interval_ms: s.interval_ms,
            current: s.replicas.current,
            values: self
                .signals
                .iter()
                .map(|signal| match signal {
                    SignalRef::Field(i) => signal_at(s, *i),
                    SignalRef::Count(i) => count_at(s, *i),
                    SignalRef::Custom(name) => {
                        s.custom.iter().find(|v| v.name == *name).map(|v| v.value)
                    }
                })
                .collect(),
            pools,
            replicas,
        }
    }
}

fn replica_state(s: crate::model::ReplicaState) -> wit::ReplicaState {
    use crate::model::ReplicaState as S;
    match s {
        S::Ready => wit::ReplicaState::Ready,
        S::Unready => wit::ReplicaState::Unready,
        S::Starting => wit::ReplicaState::Starting,
        S::Pending => wit::ReplicaState::Pending,
        S::Failed => wit::ReplicaState::Failed,
        S::Deleting => wit::ReplicaState::Deleting,
    }
}

/// A 0.2 decision, checked as a 0.1 one is and against the tick it answers:
/// pool targets name the tick's pools once each and sum to the count; every
/// replica in `remove-first` is one of the tick's, named once.
pub(super) fn decision(
    d: wit::Decision,
    s: &Snapshot,
    hard_cap: u32,
) -> Result<ValidDecision, PolicyError> {
    let invalid = |why: String| Err(PolicyError::InvalidDecision(why));
    let hold = matches!(d.proposal, wit::Proposal::Hold);
    let (desired, cap) = match d.proposal {
        wit::Proposal::Scale(n) => (n, hard_cap),
        wit::Proposal::Hold => (f64::from(s.replicas.current), u32::MAX),
    };
    let mut valid = ValidDecision::check(
        Decision {
            desired,
            spot_fraction: d.spot_fraction,
            reason: d.reason,
        },
        cap,
    )?;
    valid.hold = hold;
    if !d.pools.is_empty() {
        // Unknown names first, then twice-named ones: with every name known,
        // a repeat shows within the tick's pool count, so this stays cheap
        // for a hostile list of any length.
        let mut sum: u64 = 0;
        for (i, t) in d.pools.iter().enumerate() {
            if s.pool(&t.pool).is_none() {
                let known: Vec<&str> = s.pools.iter().map(|p| p.name.as_str()).collect();
                return invalid(format!(
                    "pool target for `{}`, which is not one of the tick's pools ({})",
                    short(&t.pool),
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ));
            }
            if d.pools[..i].iter().any(|o| o.pool == t.pool) {
                return invalid(format!("pool `{}` has two targets", short(&t.pool)));
            }
            sum += u64::from(t.replicas);
        }
        if sum != u64::from(valid.desired) {
            return invalid(format!(
                "pool targets sum to {sum}, not to the decision's {} replicas",
                valid.desired
            ));
        }
        valid.pools = d
            .pools
            .into_iter()
            .map(|t| PoolTarget {
                pool: t.pool,
                replicas: t.replicas,
            })
            .collect();
    }
    if !d.remove_first.is_empty() {
        if d.remove_first.len() > s.pods.len() {
            return invalid(format!(
                "{} replicas to remove first, of the tick's {}",
                d.remove_first.len(),
                s.pods.len()
            ));
        }
        for (i, id) in d.remove_first.iter().enumerate() {
            if s.replica(id).is_none() {
                return invalid(format!(
                    "replica `{}` to remove first is not one of the tick's replicas",
                    short(id)
                ));
            }
            if d.remove_first[..i].contains(id) {
                return invalid(format!("replica `{}` is named twice", short(id)));
            }
        }
        valid.remove_first = d.remove_first;
    }
    Ok(valid)
}
