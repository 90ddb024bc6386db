//! The 0.1 contract's adaptation: the host's snapshot as 0.1's record, with
//! what 0.2 added (pools, replica ids, ages, named requests) left out.

use super::bindings::wasmscale::policy::types as wit;
use crate::model::{ReplicaState, Snapshot};

/// `s` as the 0.1 record. A replica's single `request` is its 0.1 one, else
/// its first named request.
pub(super) fn snapshot(s: &Snapshot) -> wit::Snapshot {
    let r = &s.replicas;
    wit::Snapshot {
        time_ms: s.time_ms,
        interval_ms: s.interval_ms,
        replicas: wit::ReplicaCounts {
            current: r.current,
            observed: r.observed,
            ready: r.ready,
            starting: r.starting,
            pending: r.pending,
            min: r.min,
            max: r.max,
        },
        gpu_utilization: s.gpu_utilization,
        gpu_memory_utilization: s.gpu_memory_utilization,
        cpu_utilization: s.cpu_utilization,
        queue_depth: s.queue_depth,
        request_rate: s.request_rate,
        tokens_per_second: s.tokens_per_second,
        latency_p50_ms: s.latency_p50_ms,
        latency_p95_ms: s.latency_p95_ms,
        latency_p99_ms: s.latency_p99_ms,
        batch_seconds: s.batch_seconds,
        ttft_p95_ms: s.ttft_p95_ms,
        itl_p95_ms: s.itl_p95_ms,
        kv_cache_utilization: s.kv_cache_utilization,
        oldest_queued_seconds: s.oldest_queued_seconds,
        cost: wit::Cost {
            on_demand_per_hour: s.cost.on_demand_per_hour,
            spot_per_hour: s.cost.spot_per_hour,
            spot_interruption_rate: s.cost.spot_interruption_rate,
        },
        pods: s
            .pods
            .iter()
            .map(|p| wit::ReplicaSample {
                state: state(p.state),
                metrics: p.metrics.iter().map(named).collect(),
                request: p.request.or_else(|| p.requests.first().map(|r| r.value)),
            })
            .collect(),
        custom: s.custom.iter().map(named).collect(),
    }
}

fn named(v: &crate::model::NamedValue) -> wit::NamedValue {
    wit::NamedValue {
        name: v.name.clone(),
        value: v.value,
    }
}

fn state(s: ReplicaState) -> wit::ReplicaState {
    match s {
        ReplicaState::Ready => wit::ReplicaState::Ready,
        ReplicaState::Unready => wit::ReplicaState::Unready,
        ReplicaState::Starting => wit::ReplicaState::Starting,
        ReplicaState::Pending => wit::ReplicaState::Pending,
        ReplicaState::Failed => wit::ReplicaState::Failed,
        ReplicaState::Deleting => wit::ReplicaState::Deleting,
    }
}
