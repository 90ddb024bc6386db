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

impl Snapshot {
    /// Set a signal by name (`cost.FIELD` for prices, else a custom metric);
    /// `None` leaves it unknown. The 0.2 adapter fills snapshots this way.
    #[cfg(feature = "v2")]
    pub(crate) fn set_signal(&mut self, name: &str, value: Option<f64>) {
        if let Some(slot) = self.signal_slot(name) {
            *slot = value;
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
