//! Conveniences on the generated [`Snapshot`] type: look signals up by name (so a
//! policy's params can say which signal to track) and build snapshots in tests.

use crate::{Cost, NamedValue, ReplicaCounts, Snapshot};

/// Lists the snapshot's optional `f64` signals once, and derives from that list
/// the name table, the by-name getter and the by-name setter.
macro_rules! named_signals {
    ($($field:ident),* $(,)?) => {
        /// The snapshot's named signals, as params and configs spell them.
        pub const SIGNAL_NAMES: &[&str] = &[$(stringify!($field)),*];

        impl Snapshot {
            /// A signal by name: one of [`SIGNAL_NAMES`], or else a `custom` metric.
            pub fn signal(&self, name: &str) -> Option<f64> {
                match name {
                    $(stringify!($field) => self.$field,)*
                    _ => self.custom(name),
                }
            }

            fn signal_slot(&mut self, name: &str) -> Option<&mut Option<f64>> {
                match name {
                    $(stringify!($field) => Some(&mut self.$field),)*
                    _ => None,
                }
            }

            /// The `i`-th of [`SIGNAL_NAMES`].
            #[cfg(feature = "v2")]
            fn signal_slot_at(&mut self, i: usize) -> Option<&mut Option<f64>> {
                [$(&mut self.$field),*].into_iter().nth(i)
            }
        }
    };
}

named_signals!(
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

/// Where a declared signal goes in a snapshot, found once by name so that
/// filling a snapshot each tick compares no strings.
#[cfg(feature = "v2")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    /// The `i`-th of [`SIGNAL_NAMES`].
    Signal(usize),
    /// The `i`-th of [`crate::v2::COUNT_SIGNALS`].
    Count(usize),
    /// Anything else: by name ([`Snapshot::set_signal`]).
    Named,
}

#[cfg(feature = "v2")]
impl Slot {
    pub(crate) fn of(name: &str) -> Slot {
        if let Some(i) = SIGNAL_NAMES.iter().position(|n| *n == name) {
            return Slot::Signal(i);
        }
        crate::v2::COUNT_SIGNALS
            .iter()
            .position(|n| *n == name)
            .map_or(Slot::Named, Slot::Count)
    }
}

/// An empty snapshot at time zero with no replicas ([`Snapshot::new`]).
impl Default for Snapshot {
    fn default() -> Self {
        Snapshot::new(0, 0)
    }
}

impl Snapshot {
    /// Set a signal through its [`Slot`]; `name` is what it was found by.
    #[cfg(feature = "v2")]
    pub(crate) fn set_at(&mut self, slot: Slot, name: &str, value: Option<f64>) {
        match slot {
            Slot::Signal(i) => {
                if let Some(field) = self.signal_slot_at(i) {
                    *field = value;
                }
            }
            Slot::Count(i) => {
                let r = &mut self.replicas;
                let field = [
                    &mut r.observed,
                    &mut r.ready,
                    &mut r.starting,
                    &mut r.pending,
                    &mut r.min,
                    &mut r.max,
                ]
                .into_iter()
                .nth(i);
                if let Some(field) = field {
                    *field = value
                        .filter(|v| v.is_finite() && *v >= 0.0)
                        .map(|v| v as u32);
                }
            }
            Slot::Named => self.set_signal(name, value),
        }
    }

    /// Set a signal by name (`cost.FIELD` for prices, else a custom metric);
    /// `None` leaves it unknown. The 0.2 adapter fills snapshots this way.
    #[cfg(feature = "v2")]
    pub(crate) fn set_signal(&mut self, name: &str, value: Option<f64>) {
        if let Some(slot) = self.signal_slot(name) {
            *slot = value;
            return;
        }
        let r = &mut self.replicas;
        let count = match name {
            "replicas.observed" => Some(&mut r.observed),
            "replicas.ready" => Some(&mut r.ready),
            "replicas.starting" => Some(&mut r.starting),
            "replicas.pending" => Some(&mut r.pending),
            "replicas.min" => Some(&mut r.min),
            "replicas.max" => Some(&mut r.max),
            _ => None,
        };
        if let Some(slot) = count {
            *slot = value
                .filter(|v| v.is_finite() && *v >= 0.0)
                .map(|v| v as u32);
            return;
        }
        let cost = match name {
            "cost.on_demand_per_hour" => Some(&mut self.cost.on_demand_per_hour),
            "cost.spot_per_hour" => Some(&mut self.cost.spot_per_hour),
            "cost.spot_interruption_rate" => Some(&mut self.cost.spot_interruption_rate),
            _ => None,
        };
        match (cost, value) {
            (Some(slot), v) => *slot = v,
            (None, Some(v)) => self.custom.push(NamedValue {
                name: name.strip_prefix("custom:").unwrap_or(name).to_owned(),
                value: v,
            }),
            (None, None) => {}
        }
    }

    /// A signal a policy cannot decide without: its finite value, or the
    /// error that holds the count (`"{name} is missing"`).
    #[inline]
    pub fn require(&self, name: &str) -> Result<f64, String> {
        self.signal(name)
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("{name} is missing"))
    }

    /// An empty snapshot at `time_ms` with `current` replicas: every signal unknown.
    pub fn new(time_ms: u64, current: u32) -> Self {
        Snapshot {
            time_ms,
            interval_ms: 15_000,
            replicas: ReplicaCounts {
                current,
                observed: None,
                ready: None,
                starting: None,
                pending: None,
                min: None,
                max: None,
            },
            gpu_utilization: None,
            gpu_memory_utilization: None,
            cpu_utilization: None,
            queue_depth: None,
            request_rate: None,
            tokens_per_second: None,
            latency_p50_ms: None,
            latency_p95_ms: None,
            latency_p99_ms: None,
            batch_seconds: None,
            ttft_p95_ms: None,
            itl_p95_ms: None,
            kv_cache_utilization: None,
            oldest_queued_seconds: None,
            cost: Cost {
                on_demand_per_hour: None,
                spot_per_hour: None,
                spot_interruption_rate: None,
            },
            pods: Vec::new(),
            custom: Vec::new(),
        }
    }

    /// A custom metric by name.
    pub fn custom(&self, name: &str) -> Option<f64> {
        self.custom.iter().find(|m| m.name == name).map(|m| m.value)
    }

    /// Set a signal by name (a known field, or else a custom metric). For tests.
    pub fn with(mut self, name: &str, value: f64) -> Self {
        match self.signal_slot(name) {
            Some(slot) => *slot = Some(value),
            None => self.custom.push(NamedValue {
                name: name.to_owned(),
                value,
            }),
        }
        self
    }

    /// Replicas ready to serve: `ready` when reported, else the current count.
    pub fn ready_replicas(&self) -> u32 {
        self.replicas.ready.unwrap_or(self.replicas.current)
    }
}
