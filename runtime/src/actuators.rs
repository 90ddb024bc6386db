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
    /// `initial` is the log target's starting count (usually `min_replicas`);
    /// `base` resolves a relative kubeconfig path.
    pub fn from_config(
        s: &ScalerConfig,
        base: &std::path::Path,
        initial: u32,
    ) -> Result<Self, ActuatorError> {
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
                kubeconfig,
                timeout_ms,
            } => Ok(Actuator::Kubernetes(Box::new(Kubernetes {
                kubeconfig: kubeconfig.as_ref().map(|p| base.join(p)),
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
                warned: Vec::new(),
            }))),
        }
    }

    pub async fn observe(&mut self) -> Result<Observed, ActuatorError> {
        match self {
            Actuator::Log { replicas, .. } => Ok(Observed {
                current: *replicas,
                observed: Some(*replicas),
                ready: Some(*replicas),
                starting: Some(0),
            }),
            Actuator::Memory { replicas } => Ok(Observed {
                current: *replicas,
                observed: Some(*replicas),
                ready: Some(*replicas),
                starting: Some(0),
            }),
            Actuator::Simulated(cluster) => {
                let c = crate::sim::lock(cluster);
                Ok(Observed {
                    current: c.total(),
                    observed: Some(c.total()),
                    ready: Some(c.ready()),
                    starting: Some(c.starting()),
                })
            }
            Actuator::Kubernetes(k) => {
                let result = k.observe().await;
                k.after(result.as_ref().err());
                result
            }
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
            Actuator::Kubernetes(k) => {
                let result = k.apply(desired).await;
                k.after(result.as_ref().err());
                result
            }
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
    kubeconfig: Option<std::path::PathBuf>,
    timeout: Duration,
    api: Option<Api<DynamicObject>>,
    /// (spec.replicas, resourceVersion) last read.
    last: Option<(u32, Option<String>)>,
    /// Failure kinds already logged since the last success.
    warned: Vec<&'static str>,
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

/// A client error as a typed failure; `timeout` is the request's own bound,
/// named when the client's timer (not ours) fired.
fn classify(e: kube::Error, timeout: Duration) -> ActuatorError {
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
        other => {
            if is_timeout(&other) {
                ActuatorError::Timeout(timeout)
            } else {
                ActuatorError::Transport(error_chain(&other))
            }
        }
    }
}

/// An error and its causes, one after another (kube's own message is often
/// only "client error (SendRequest)").
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// A client-side timeout anywhere in the chain.
fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return true;
        }
        next = err.source();
    }
    false
}

impl Kubernetes {
    /// The API handle, built on first use (it needs the async runtime).
    async fn api(&mut self) -> Result<Api<DynamicObject>, ActuatorError> {
        if let Some(api) = &self.api {
            return Ok(api.clone());
        }
        let mut config = match (&self.kubeconfig, &self.api_server) {
            (Some(path), _) => {
                let file = kube::config::Kubeconfig::read_from(path).map_err(|e| {
                    ActuatorError::Config(format!("kubeconfig {}: {e}", path.display()))
                })?;
                kube::Config::from_custom_kubeconfig(file, &Default::default())
                    .await
                    .map_err(|e| {
                        ActuatorError::Config(format!("kubeconfig {}: {e}", path.display()))
                    })?
            }
            (None, Some(url)) => kube::Config::new(
                url.parse()
                    .map_err(|e| ActuatorError::Config(format!("api_server {url:?}: {e}")))?,
            ),
            (None, None) => kube::Config::infer()
                .await
                .map_err(|e| ActuatorError::Config(e.to_string()))?,
        };
        if let (Some(_), Some(url)) = (&self.kubeconfig, &self.api_server) {
            config.cluster_url = url
                .parse()
                .map_err(|e| ActuatorError::Config(format!("api_server {url:?}: {e}")))?;
        }
        // Each request is bounded by `timed` (so a hung server is a
        // `timeout`). A client read timeout would also close pooled
        // connections idle that long (every tick a new TLS handshake, and
        // spurious failures when the two race): keep-alive across ticks.
        config.read_timeout = None;
        config.write_timeout = None;
        config.connect_timeout = Some(self.timeout.saturating_mul(2));
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
            Ok(r) => r.map_err(|e| classify(e, self.timeout)),
            Err(_) => Err(ActuatorError::Timeout(self.timeout)),
        }
    }

    /// Log the first failure of each kind at warn, with what to fix; the
    /// rest go to the audit log and `/metrics` only (a tick a second must not
    /// flood the log). A success re-arms every kind.
    fn report(&mut self, error: Option<&ActuatorError>) {
        match error {
            None => self.warned.clear(),
            Some(e) => {
                if !self.warned.contains(&e.kind()) {
                    self.warned.push(e.kind());
                    tracing::warn!(
                        target_name = %self.name, namespace = %self.namespace,
                        kind = e.kind(), error = %e, fix = e.hint(),
                        "the kubernetes target failed; the count is held and the failure counts toward the fallback (further failures of this kind are in the audit log)"
                    );
                }
            }
        }
    }

    /// After a call: report it, and after a transport failure build a fresh
    /// client on the next call (its connection pool or background task may be
    /// gone).
    fn after(&mut self, error: Option<&ActuatorError>) {
        self.report(error);
        if let Some(ActuatorError::Transport(_) | ActuatorError::Timeout(_)) = error {
            self.api = None;
        }
    }

    async fn observe(&mut self) -> Result<Observed, ActuatorError> {
        let api = self.api().await?;
        let scale = self.timed(api.get_scale(&self.name)).await?;
        let current = scale.spec.and_then(|s| s.replicas).unwrap_or(0).max(0) as u32;
        let observed = scale.status.map(|s| s.replicas.max(0) as u32);
        self.last = Some((current, scale.metadata.resource_version));
        // `status.replicas` counts every pod, ready or not: it is `observed`,
        // never `ready`.
        Ok(Observed {
            current,
            observed,
            ready: None,
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
                // After a 409 the re-read may show the count already set (by
                // someone else): nothing was written by us.
                return Ok(false);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_target_applies_at_once_and_writes_only_a_change() {
        let mut a = Actuator::Memory { replicas: 2 };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let o = a.observe().await.unwrap();
            assert_eq!((o.current, o.observed, o.ready), (2, Some(2), Some(2)));
            assert!(!a.apply(2, "same").await.unwrap());
            assert!(a.apply(5, "more").await.unwrap());
            assert_eq!(a.observe().await.unwrap().current, 5);
        });
    }

    #[test]
    fn api_errors_get_their_kind_and_a_hint() {
        let status = |code: u16| {
            kube::Error::Api(Box::new(kube::core::Status {
                code,
                message: format!("code {code}"),
                ..Default::default()
            }))
        };
        for (code, kind) in [
            (403, "forbidden"),
            (404, "not-found"),
            (409, "conflict"),
            (500, "server-error"),
        ] {
            let e = classify(status(code), Duration::from_secs(1));
            assert_eq!(e.kind(), kind, "{code}");
            assert!(!e.hint().is_empty());
        }
        let timeout = std::io::Error::new(std::io::ErrorKind::TimedOut, "slow");
        assert!(is_timeout(&timeout));
        assert!(!is_timeout(&std::io::Error::other("refused")));
    }
}
