//! The data every part shares: what a tick observed (the snapshot, its
//! capacity pools and replicas) and a decision's per-pool counts. One shape,
//! owned here and not by any contract's generated bindings: the host adapts
//! each contract version from it, so the contract can grow without sources,
//! guard, actuators or simulator changing under every version. It is 0.1's
//! snapshot record (so 0.1 snapshot files, audit logs and traces read
//! unchanged) plus what 0.2 added: pools, and replica ids, pools, ages and
//! named requests. It imports nothing.

use serde::{Deserialize, Serialize};

/// Replica counts as the actuator reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaCounts {
    /// The currently desired count (Kubernetes `scale.spec.replicas`).
    pub current: u32,
    /// Replicas that exist (Kubernetes `scale.status.replicas`).
    pub observed: Option<u32>,
    pub ready: Option<u32>,
    /// Started but not yet ready (e.g. loading model weights).
    pub starting: Option<u32>,
    /// Waiting for capacity (e.g. a GPU node).
    pub pending: Option<u32>,
    /// The scaler's configured bounds.
    pub min: Option<u32>,
    pub max: Option<u32>,
}

/// Prices, where the source knows them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    pub on_demand_per_hour: Option<f64>,
    pub spot_per_hour: Option<f64>,
    /// Interruptions per spot replica-hour.
    pub spot_interruption_rate: Option<f64>,
}

/// A named metric value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedValue {
    pub name: String,
    pub value: f64,
}

/// Lifecycle state of one replica. Serialized by variant name (`Ready`), as
/// audit logs have always held it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplicaState {
    /// Running and ready to serve.
    Ready,
    /// Running, but its readiness check fails.
    Unready,
    /// Ready, but too new for its metrics to be representative.
    Starting,
    /// Waiting for capacity (e.g. a GPU node still provisioning).
    Pending,
    /// Failed; ignored by replica calculations.
    Failed,
    /// Being deleted; ignored by replica calculations.
    Deleting,
}

/// Everything a policy may know on one tick.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub time_ms: u64,
    pub interval_ms: u32,
    pub replicas: ReplicaCounts,
    pub gpu_utilization: Option<f64>,
    pub gpu_memory_utilization: Option<f64>,
    pub cpu_utilization: Option<f64>,
    pub queue_depth: Option<f64>,
    pub request_rate: Option<f64>,
    pub tokens_per_second: Option<f64>,
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub batch_seconds: Option<f64>,
    pub ttft_p95_ms: Option<f64>,
    pub itl_p95_ms: Option<f64>,
    pub kv_cache_utilization: Option<f64>,
    pub oldest_queued_seconds: Option<f64>,
    pub cost: Cost,
    pub pods: Vec<ReplicaSample>,
    pub custom: Vec<NamedValue>,
    /// Capacity pools, where the target runs several (on-demand, spot,
    /// reserved); empty for one homogeneous pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<Pool>,
}

/// One replica as the target and the source saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaSample {
    /// The replica's name (a pod's name): what a decision's `remove_first`
    /// names. `None` where the source does not know it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The name of its capacity pool, one of the snapshot's `pools`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    pub state: ReplicaState,
    /// Seconds since it was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_s: Option<f64>,
    /// One value per metric, by name; a metric it has no sample for is absent.
    pub metrics: Vec<NamedValue>,
    /// 0.1's single request (the HPA's CPU shape): the request of the resource
    /// its metrics measure.
    #[serde(default)]
    pub request: Option<f64>,
    /// Requests by resource name (`cpu`, `nvidia.com/gpu`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<NamedValue>,
}

impl ReplicaSample {
    /// A sample with a state and nothing else known.
    pub fn new(state: ReplicaState) -> Self {
        ReplicaSample {
            id: None,
            pool: None,
            state,
            age_s: None,
            metrics: Vec::new(),
            request: None,
            requests: Vec::new(),
        }
    }

    /// Its value of metric `name`.
    pub fn metric(&self, name: &str) -> Option<f64> {
        find(&self.metrics, name)
    }

    /// Its request for `name`: a named request, else 0.1's single one.
    pub fn request_for(&self, name: &str) -> Option<f64> {
        find(&self.requests, name).or(self.request)
    }
}

fn find(values: &[NamedValue], name: &str) -> Option<f64> {
    values.iter().find(|v| v.name == name).map(|v| v.value)
}

/// What kind of capacity a pool buys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capacity {
    OnDemand,
    Spot,
    Reserved,
}

/// One capacity pool: its counts and what it costs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pool {
    pub name: String,
    pub capacity: Capacity,
    /// Replicas asked of this pool.
    pub current: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starting: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_per_hour: Option<f64>,
    /// Interruptions per replica-hour (spot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interruptions_per_hour: Option<f64>,
    /// The scaler's configured bounds for this pool (as `replicas.min` and
    /// `max` are the total's). The host enforces them regardless.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
}

/// A decision's count for one pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolTarget {
    pub pool: String,
    pub replicas: u32,
}

impl Snapshot {
    /// Its replica with id `id`.
    pub fn replica(&self, id: &str) -> Option<&ReplicaSample> {
        self.pods.iter().find(|p| p.id.as_deref() == Some(id))
    }

    /// Its pool named `name`.
    pub fn pool(&self, name: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| p.name == name)
    }
}
