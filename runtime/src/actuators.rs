//! Actuators: read the target's replica count and apply decisions.
//!
//! - `log`: prints decisions; the default for examples.
//! - `kubernetes`: the `scale` subresource of a Deployment, StatefulSet or any
//!   custom resource that has one, through `kube`. Writes are JSON merge
//!   patches carrying the `resourceVersion` last read, so a concurrent change
//!   is a 409: the actuator re-reads and retries (up to 3 times). Nothing is
//!   written when the desired count equals the current one.
//!
//! Minimal RBAC for the Kubernetes actuator (per namespace):
//! ```yaml
//! apiVersion: rbac.authorization.k8s.io/v1
//! kind: Role
//! metadata: { name: wasmscale, namespace: default }
//! rules:
//!   - apiGroups: ["apps"]
//!     resources: ["deployments/scale", "statefulsets/scale"]
//!     verbs: ["get", "patch", "update"]
//! ```

use crate::config::{ScalerConfig, TargetConfig};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use std::time::Duration;

/// What the target reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    pub current: u32,
    pub ready: Option<u32>,
    /// Replicas launched but not yet ready, where the target knows.
    pub starting: Option<u32>,
}

/// Why an actuator could not read or write. Outcome in every case: the tick
/// holds (nothing else is written), and the failure counts toward the fallback.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
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

/// A configured actuator.
#[derive(Debug)]
pub enum Actuator {
    /// Prints decisions and remembers the count it was told to set, as if a
    /// perfect target had applied it at once.
    Log {
        scaler: String,
        replicas: u32,
    },
    /// As `Log`, silently: the target of `wasmscale replay`.
    Memory {
        replicas: u32,
    },
    Kubernetes(Box<Kubernetes>),
    /// The simulator's cluster (`wasmscale simulate`).
    Simulated(crate::sim::ClusterHandle),
}

impl Actuator {
    /// `initial` is the log target's starting count (usually `min_replicas`).
    pub fn from_config(s: &ScalerConfig, initial: u32) -> Result<Self, ActuatorError> {
        match &s.target {
            TargetConfig::Log => Ok(Actuator::Log {
                scaler: s.name.clone(),
                replicas: initial,
            }),
            TargetConfig::Kubernetes {
                group,
                version,
                resource,
                namespace,
                name,
                api_server,
                timeout_ms,
            } => Ok(Actuator::Kubernetes(Box::new(Kubernetes {
                resource: ApiResource {
                    group: group.clone(),
                    version: version.clone(),
                    api_version: if group.is_empty() {
                        version.clone()
                    } else {
                        format!("{group}/{version}")
                    },
                    kind: String::new(),
                    plural: resource.clone(),
                },
                namespace: namespace.clone(),
                name: name.clone(),
                api_server: api_server.clone(),
                timeout: Duration::from_millis((*timeout_ms).max(1)),
                api: None,
                last: None,
            }))),
        }
    }

    pub async fn observe(&mut self) -> Result<Observed, ActuatorError> {
        match self {
            Actuator::Log { replicas, .. } => Ok(Observed {
                current: *replicas,
                ready: Some(*replicas),
                starting: Some(0),
            }),
            Actuator::Memory { replicas } => Ok(Observed {
                current: *replicas,
                ready: Some(*replicas),
                starting: Some(0),
            }),
            Actuator::Simulated(cluster) => {
                let c = crate::sim::lock(cluster);
                Ok(Observed {
                    current: c.total(),
                    ready: Some(c.ready()),
                    starting: Some(c.starting()),
                })
            }
            Actuator::Kubernetes(k) => k.observe().await.inspect_err(|e| k.forget_client_after(e)),
        }
    }

    /// Set the replica count; returns whether anything was written (no write
    /// when the count is unchanged).
    pub async fn apply(&mut self, desired: u32, reason: &str) -> Result<bool, ActuatorError> {
        match self {
            Actuator::Log { scaler, replicas } => {
                if *replicas == desired {
                    return Ok(false);
                }
                println!("{scaler}: {} -> {desired} ({reason})", *replicas);
                *replicas = desired;
                Ok(true)
            }
            Actuator::Kubernetes(k) => k
                .apply(desired)
                .await
                .inspect_err(|e| k.forget_client_after(e)),
            Actuator::Memory { replicas } => {
                let changed = *replicas != desired;
                *replicas = desired;
                Ok(changed)
            }
            Actuator::Simulated(cluster) => {
                let mut c = crate::sim::lock(cluster);
                if c.total() == desired {
                    return Ok(false);
                }
                c.set_replicas(desired, None);
                Ok(true)
            }
        }
    }

    /// Pass on a decision's spot fraction. Only the simulated cluster models
    /// the capacity mix; the log and Kubernetes targets record it in the audit
    /// log and set the count alone.
    pub fn set_spot_fraction(&mut self, fraction: f64) {
        if let Actuator::Simulated(cluster) = self {
            let mut c = crate::sim::lock(cluster);
            let total = c.total();
            c.set_replicas(total, Some(fraction));
        }
    }
}

/// The `scale` subresource of one Kubernetes object.
pub struct Kubernetes {
    resource: ApiResource,
    namespace: String,
    name: String,
    api_server: Option<String>,
    timeout: Duration,
    api: Option<Api<DynamicObject>>,
    /// (spec.replicas, resourceVersion) last read.
    last: Option<(u32, Option<String>)>,
}

impl std::fmt::Debug for Kubernetes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kubernetes")
            .field("resource", &self.resource.plural)
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .finish()
    }
}

const CONFLICT_RETRIES: u32 = 3;

fn classify(e: kube::Error) -> ActuatorError {
    match e {
        kube::Error::Api(status) => match status.code {
            403 => ActuatorError::Forbidden(status.message),
            404 => ActuatorError::NotFound(status.message),
            409 => ActuatorError::Conflict(0),
            code => ActuatorError::Server {
                code,
                message: status.message,
            },
        },
        other => ActuatorError::Transport(other.to_string()),
    }
}

impl Kubernetes {
    /// The API handle, built on first use (it needs the async runtime).
    async fn api(&mut self) -> Result<Api<DynamicObject>, ActuatorError> {
        if let Some(api) = &self.api {
            return Ok(api.clone());
        }
        let mut config = match &self.api_server {
            Some(url) => kube::Config::new(
                url.parse()
                    .map_err(|e| ActuatorError::Config(format!("api_server {url:?}: {e}")))?,
            ),
            None => kube::Config::infer()
                .await
                .map_err(|e| ActuatorError::Config(e.to_string()))?,
        };
        config.read_timeout = Some(self.timeout);
        config.connect_timeout = Some(self.timeout);
        let client =
            kube::Client::try_from(config).map_err(|e| ActuatorError::Config(e.to_string()))?;
        let api = Api::<DynamicObject>::namespaced_with(client, &self.namespace, &self.resource);
        self.api = Some(api.clone());
        Ok(api)
    }

    async fn timed<T>(
        &self,
        f: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, ActuatorError> {
        match tokio::time::timeout(self.timeout, f).await {
            Ok(r) => r.map_err(classify),
            Err(_) => Err(ActuatorError::Timeout(self.timeout)),
        }
    }

    /// After a transport failure, build a fresh client on the next call (its
    /// connection pool or background task may be gone).
    fn forget_client_after(&mut self, e: &ActuatorError) {
        if matches!(e, ActuatorError::Transport(_) | ActuatorError::Timeout(_)) {
            self.api = None;
        }
    }

    async fn observe(&mut self) -> Result<Observed, ActuatorError> {
        let api = self.api().await?;
        let scale = self.timed(api.get_scale(&self.name)).await?;
        let current = scale.spec.and_then(|s| s.replicas).unwrap_or(0).max(0) as u32;
        let observed = scale.status.map(|s| s.replicas.max(0) as u32);
        self.last = Some((current, scale.metadata.resource_version));
        Ok(Observed {
            current,
            ready: observed,
            starting: None,
        })
    }

    async fn apply(&mut self, desired: u32) -> Result<bool, ActuatorError> {
        let api = self.api().await?;
        for attempt in 0..=CONFLICT_RETRIES {
            let (current, version) = match self.last.clone() {
                Some(last) => last,
                None => {
                    self.observe().await?;
                    self.last.clone().unwrap_or((0, None))
                }
            };
            if current == desired {
                return Ok(attempt > 0);
            }
            let mut body = serde_json::json!({ "spec": { "replicas": desired } });
            if let Some(v) = &version {
                body["metadata"] = serde_json::json!({ "resourceVersion": v });
            }
            match self
                .timed(api.patch_scale(&self.name, &PatchParams::default(), &Patch::Merge(&body)))
                .await
            {
                Ok(scale) => {
                    let now = scale
                        .spec
                        .and_then(|s| s.replicas)
                        .unwrap_or(desired as i32)
                        .max(0) as u32;
                    self.last = Some((now, scale.metadata.resource_version));
                    return Ok(true);
                }
                Err(ActuatorError::Conflict(_)) => {
                    tracing::info!(name = %self.name, attempt, "scale changed underneath us (409); re-reading");
                    self.last = None;
                }
                Err(e) => return Err(e),
            }
        }
        Err(ActuatorError::Conflict(CONFLICT_RETRIES))
    }
}
