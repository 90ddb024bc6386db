//! Actuators: read the target's replica count and apply decisions.
//!
//! - `log`: prints decisions; the default for examples.
//! - `kubernetes`: the `scale` subresource of a workload (see its module).
//! - `memory`: as `log`, silently; the target of `wasmscale replay`.
//!
//! Each kind is a module with its config beside its code. Adding one is a
//! module, a variant of [`TargetConfig`] and its arm in [`TargetConfig::build`].
//! The simulator's cluster implements [`Actuator`] too, from above: nothing
//! here knows it.

mod kubernetes;
mod log;
mod memory;

pub use kubernetes::{DELETION_COST, Kubernetes, KubernetesConfig};
pub use log::Log;
pub use memory::Memory;

use crate::model::{Pool, PoolTarget, ReplicaSample};
use futures_core::future::BoxFuture;
use serde::Deserialize;
use std::time::Duration;

/// What the target reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// The count asked for (Kubernetes `scale.spec.replicas`).
    pub current: u32,
    /// Replicas that exist, where the target reports it (`scale.status.replicas`;
    /// absent before the workload's controller first reports).
    pub observed: Option<u32>,
    /// Replicas known to be ready; `None` when the target cannot tell (the
    /// scale subresource counts every pod, ready or not).
    pub ready: Option<u32>,
    /// Replicas launched but not yet ready, where the target knows.
    pub starting: Option<u32>,
    /// Its capacity pools, where it runs several (empty: one pool).
    pub pools: Vec<Pool>,
    /// Its replicas with their ids, where it can list them (Kubernetes pods).
    pub replicas: Vec<ReplicaSample>,
}

/// Why an actuator could not read or write. Outcome in every case: the tick
/// holds (nothing else is written), and the failure counts toward the fallback.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ActuatorError {
    #[error("forbidden (403): {0}; check the RBAC role (see the actuators docs)")]
    Forbidden(String),
    #[error("not found (404): {0}")]
    NotFound(String),
    #[error("conflict (409) persisted after {0} retries")]
    Conflict(u32),
    #[error("API server error ({code}): {message}")]
    Server { code: u16, message: String },
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("cannot reach the API server: {0}")]
    Transport(String),
    #[error("cannot configure the kubernetes client: {0}")]
    Config(String),
}

impl ActuatorError {
    /// What to fix, in words.
    pub fn hint(&self) -> &'static str {
        match self {
            ActuatorError::Forbidden(_) => {
                "grant get and patch on the workload's scale subresource (the minimal Role is in the README)"
            }
            ActuatorError::NotFound(_) => {
                "check the target's group, version, resource, namespace and name, and that the workload exists"
            }
            ActuatorError::Conflict(_) => {
                "another controller (an HPA?) keeps changing this workload's replicas; let one own it"
            }
            ActuatorError::Server { .. } => "the API server failed; see its logs",
            ActuatorError::Timeout(_) => {
                "the API server did not answer in time; check it, or raise target.timeout_ms"
            }
            ActuatorError::Transport(_) => {
                "the API server cannot be reached: check api_server (or the kubeconfig's server), the network and TLS"
            }
            ActuatorError::Config(_) => {
                "set KUBECONFIG (or run in a pod with a service account), or give target.api_server"
            }
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            ActuatorError::Forbidden(_) => "forbidden",
            ActuatorError::NotFound(_) => "not-found",
            ActuatorError::Conflict(_) => "conflict",
            ActuatorError::Server { .. } => "server-error",
            ActuatorError::Timeout(_) => "timeout",
            ActuatorError::Transport(_) => "transport",
            ActuatorError::Config(_) => "config",
        }
    }
}

/// Where a scaler's decisions go. Boxed futures keep the trait object safe, so
/// a scaler holds any kind; targets that answer at once return a ready one.
pub trait Actuator: Send + std::fmt::Debug {
    /// The target's counts now.
    fn observe(&mut self) -> BoxFuture<'_, Result<Observed, ActuatorError>>;

    /// Set the replica count; resolves to whether anything was written (no
    /// write when the count is unchanged).
    fn apply<'a>(
        &'a mut self,
        desired: u32,
        reason: &'a str,
    ) -> BoxFuture<'a, Result<bool, ActuatorError>>;

    /// A decision's spot fraction. Only a target that models the capacity
    /// mix uses it; the others record it in the audit log and set the count alone.
    fn set_spot_fraction(&mut self, _fraction: f64) {}

    /// A count per capacity pool, summing to the count `apply` sets next.
    /// Returns whether the target took it; one without pools keeps the
    /// default, and the audit record says the split was ignored.
    fn set_pools(&mut self, _pools: &[PoolTarget]) -> bool {
        false
    }

    /// Before a scale-down: mark these replicas (by id) to go first. Resolves
    /// to whether the target took the list (the default does not, and the
    /// audit record says so).
    fn remove_first<'a>(
        &'a mut self,
        _ids: &'a [String],
    ) -> BoxFuture<'a, Result<bool, ActuatorError>> {
        ready(Ok(false))
    }

    /// The count a replaced scaler left (a reload), for a target that only
    /// remembers what it was told; one that reads its count ignores it.
    fn resume_at(&mut self, _replicas: u32) {}
}

/// Where decisions go (`target = { type = ... }`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum TargetConfig {
    /// Print decisions (the default for examples).
    #[default]
    Log,
    /// A Kubernetes workload's `scale` subresource.
    Kubernetes(KubernetesConfig),
}

impl TargetConfig {
    /// The configured target for scaler `scaler`. `initial` is the log
    /// target's starting count (usually `min_replicas`); `base` resolves a
    /// relative kubeconfig path.
    pub fn build(
        &self,
        scaler: &str,
        base: &std::path::Path,
        initial: u32,
    ) -> Result<Box<dyn Actuator>, ActuatorError> {
        Ok(match self {
            TargetConfig::Log => Box::new(Log::new(scaler, initial)),
            TargetConfig::Kubernetes(c) => Box::new(Kubernetes::new(c, base)),
        })
    }
}

impl TargetConfig {
    /// Its request timeout, for the config's bounds on every duration.
    pub fn timeout_ms(&self) -> Option<u64> {
        match self {
            TargetConfig::Log => None,
            TargetConfig::Kubernetes(c) => Some(c.timeout_ms),
        }
    }

    /// What is wrong with this kind's own settings, each at its key (below
    /// `target`), with a hint. `base` resolves relative paths.
    pub fn problems(&self, base: &std::path::Path) -> Vec<Problem> {
        match self {
            TargetConfig::Log => Vec::new(),
            TargetConfig::Kubernetes(c) => c.problems(base),
        }
    }
}

/// A config problem: the key's path, what is wrong, and a hint.
pub type Problem = (&'static [&'static str], String, Option<String>);

/// A target that answers at once.
fn ready<'a, T: Send + 'a>(
    result: Result<T, ActuatorError>,
) -> BoxFuture<'a, Result<T, ActuatorError>> {
    Box::pin(std::future::ready(result))
}

/// What a target that holds its count itself reports: all of it ready.
fn settled(replicas: u32) -> Observed {
    Observed {
        current: replicas,
        observed: Some(replicas),
        ready: Some(replicas),
        starting: Some(0),
        ..Observed::default()
    }
}
