//! The well-known signals: which name fills which field of the snapshot
//! record. One table, beside the record's type: the JSON form
//! (`crate::snapshot`) and the 0.2 contract's declared signals both read it.

use super::Snapshot;

/// The signal fields of the record, once: which name (the WIT record's, or
/// `cost.FIELD`) fills which field. A test holds this list equal to
/// `crate::snapshot::signal_names` plus the cost fields.
macro_rules! signal_fields {
    ($($name:literal => $($field:ident).+),+ $(,)?) => {
        /// The field a signal name (or `cost.FIELD`) fills.
        pub(crate) fn signal_field_mut<'s>(s: &'s mut Snapshot, name: &str) -> Option<&'s mut Option<f64>> {
            Some(match name {
                $($name => &mut s.$($field).+,)+
                _ => return None,
            })
        }

        /// Every signal field with its name, in record order.
        pub fn signal_values(s: &Snapshot) -> impl Iterator<Item = (&'static str, Option<f64>)> {
            [$(($name, s.$($field).+)),+].into_iter()
        }

        /// The well-known signals a 0.2 policy may declare, in table order.
        pub fn signal_table() -> &'static [&'static str] {
            &[$($name),+]
        }

        /// The `i`-th signal of [`signal_table`] in `s` (`None`: unknown, or no such signal).
        pub fn signal_at(s: &Snapshot, i: usize) -> Option<f64> {
            let fields = [$(s.$($field).+),+];
            fields.get(i).copied().flatten()
        }
    };
}

/// A well-known signal's place in [`signal_table`].
pub fn signal_index(name: &str) -> Option<usize> {
    signal_table().iter().position(|n| *n == name)
}

signal_fields! {
    "gpu_utilization" => gpu_utilization,
    "gpu_memory_utilization" => gpu_memory_utilization,
    "cpu_utilization" => cpu_utilization,
    "queue_depth" => queue_depth,
    "request_rate" => request_rate,
    "tokens_per_second" => tokens_per_second,
    "latency_p50_ms" => latency_p50_ms,
    "latency_p95_ms" => latency_p95_ms,
    "latency_p99_ms" => latency_p99_ms,
    "batch_seconds" => batch_seconds,
    "ttft_p95_ms" => ttft_p95_ms,
    "itl_p95_ms" => itl_p95_ms,
    "kv_cache_utilization" => kv_cache_utilization,
    "oldest_queued_seconds" => oldest_queued_seconds,
    "cost.on_demand_per_hour" => cost.on_demand_per_hour,
    "cost.spot_per_hour" => cost.spot_per_hour,
    "cost.spot_interruption_rate" => cost.spot_interruption_rate,
}

/// The config metric that fills a declared signal: `custom:NAME` is metric
/// `NAME`, a well-known signal its own name.
pub fn metric_of(signal: &str) -> &str {
    signal.strip_prefix("custom:").unwrap_or(signal)
}

/// The replica counts a 0.2 policy may declare as signals: filled by the
/// target, not the source. In table order after [`signal_table`].
pub const COUNT_SIGNALS: [&str; 6] = [
    "replicas.observed",
    "replicas.ready",
    "replicas.starting",
    "replicas.pending",
    "replicas.min",
    "replicas.max",
];

/// The `i`-th of [`COUNT_SIGNALS`] in `s`.
pub fn count_at(s: &Snapshot, i: usize) -> Option<f64> {
    let r = &s.replicas;
    [r.observed, r.ready, r.starting, r.pending, r.min, r.max]
        .get(i)
        .copied()
        .flatten()
        .map(f64::from)
}

/// Is `name` a replica count (filled by the target, never by a source)?
pub fn is_count_signal(name: &str) -> bool {
    COUNT_SIGNALS.contains(&name)
}
