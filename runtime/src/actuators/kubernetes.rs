//! `kubernetes`: the `scale` subresource of a Deployment, StatefulSet or any
//! custom resource that has one, through `kube`. Writes are JSON merge
//! patches carrying the `resourceVersion` last read, so a concurrent change
//! is a 409: the actuator re-reads and retries (up to 3 times). Nothing is
//! written when the desired count equals the current one.
//!
//! Minimal RBAC (per namespace):
//! ```yaml
//! apiVersion: rbac.authorization.k8s.io/v1
//! kind: Role
//! metadata: { name: wasmscale, namespace: default }
//! rules:
//!   - apiGroups: ["apps"]
//!     resources: ["deployments/scale", "statefulsets/scale"]
//!     verbs: ["get", "patch", "update"]
//!   # only with `scale_in_choice = true`:
//!   - apiGroups: [""]
//!     resources: ["pods"]
//!     verbs: ["list", "patch"]
//! ```
//!
//! With `scale_in_choice = true` it also lists the workload's pods each tick
//! (by the scale subresource's `status.selector`), so the policy sees each
//! replica's id, state and age, and before a scale-down it annotates the pods
//! a decision removes first with `controller.kubernetes.io/pod-deletion-cost`
//! (the first named gets the lowest cost), so the ReplicaSet controller
//! deletes those. Pods it marked before and no longer names lose the mark.

use super::{Actuator, ActuatorError, Observed};
use crate::model::{ReplicaSample, ReplicaState};
use futures_core::future::BoxFuture;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `target = { type = "kubernetes", name = "...", ... }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesConfig {
    #[serde(default = "default_group")]
    pub group: String,
    #[serde(default = "default_version")]
    pub version: String,
    /// Plural resource, e.g. `deployments`, `statefulsets`.
    #[serde(default = "default_resource")]
    pub resource: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    pub name: String,
    /// API server URL; absent = kubeconfig or the in-cluster service account.
    #[serde(default)]
    pub api_server: Option<String>,
    /// A kubeconfig file for this target (relative to the config file);
    /// absent = `$KUBECONFIG`, `~/.kube/config` or the in-cluster service
    /// account. Lets one process scale workloads on several clusters.
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
    /// Timeout of each API request.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// List the pods each tick and honour a decision's `remove_first` with
    /// `pod-deletion-cost` annotations (needs list and patch on pods).
    #[serde(default)]
    pub scale_in_choice: bool,
}

impl KubernetesConfig {
    /// What is wrong with these settings, each at its key below `target`.
    pub(super) fn problems(&self, base: &Path) -> Vec<super::Problem> {
        let mut out: Vec<super::Problem> = Vec::new();
        if self.name.is_empty() || self.namespace.is_empty() {
            out.push((
                &[],
                "a kubernetes target needs a name and a namespace".into(),
                None,
            ));
        }
        if let Some(path) = &self.kubeconfig
            && !base.join(path).is_file()
        {
            out.push((
                &["kubeconfig"],
                format!("target.kubeconfig {} is not a file", path.display()),
                Some("paths are relative to the config file; leave it out to use $KUBECONFIG or the in-cluster account".into()),
            ));
        }
        out
    }
}

fn default_group() -> String {
    "apps".into()
}
fn default_version() -> String {
    "v1".into()
}
fn default_resource() -> String {
    "deployments".into()
}
fn default_namespace() -> String {
    "default".into()
}
fn default_timeout_ms() -> u64 {
    5_000
}

/// The `scale` subresource of one Kubernetes object.
pub struct Kubernetes {
    resource: ApiResource,
    namespace: String,
    name: String,
    api_server: Option<String>,
    kubeconfig: Option<PathBuf>,
    timeout: Duration,
    api: Option<Api<DynamicObject>>,
    /// (spec.replicas, resourceVersion) last read.
    last: Option<(u32, Option<String>)>,
    /// Pods are listed and annotated (`scale_in_choice`).
    scale_in_choice: bool,
    /// Pods this actuator gave a deletion cost, to clear when no longer named.
    marked: Vec<String>,
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

/// The annotation the ReplicaSet controller reads: lower costs go first.
pub const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// A pod as a replica: its name, state (deleting, failed, pending, ready or
/// not) and age.
fn replica_of(pod: &Pod, now_s: i64) -> ReplicaSample {
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref());
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let state = if pod.metadata.deletion_timestamp.is_some() {
        ReplicaState::Deleting
    } else {
        match phase {
            Some("Failed") => ReplicaState::Failed,
            Some("Running") if ready => ReplicaState::Ready,
            Some("Running") => ReplicaState::Unready,
            _ => ReplicaState::Pending,
        }
    };
    let mut r = ReplicaSample::new(state);
    r.id = pod.metadata.name.clone();
    r.age_s = pod
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| (now_s - t.0.as_second()).max(0) as f64);
    r
}

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
    /// `base` resolves a relative kubeconfig path. Nothing is contacted
    /// until the first call (the client needs the async runtime).
    pub fn new(c: &KubernetesConfig, base: &Path) -> Self {
        Kubernetes {
            kubeconfig: c.kubeconfig.as_ref().map(|p| base.join(p)),
            resource: ApiResource {
                group: c.group.clone(),
                version: c.version.clone(),
                api_version: if c.group.is_empty() {
                    c.version.clone()
                } else {
                    format!("{}/{}", c.group, c.version)
                },
                kind: String::new(),
                plural: c.resource.clone(),
            },
            namespace: c.namespace.clone(),
            name: c.name.clone(),
            api_server: c.api_server.clone(),
            timeout: Duration::from_millis(c.timeout_ms.max(1)),
            api: None,
            last: None,
            scale_in_choice: c.scale_in_choice,
            marked: Vec::new(),
            warned: Vec::new(),
        }
    }

    fn pods_api(&self, api: &Api<DynamicObject>) -> Api<Pod> {
        Api::namespaced(api.clone().into_client(), &self.namespace)
    }

    /// The workload's pods, by the scale subresource's label selector.
    async fn list_pods(
        &self,
        api: &Api<DynamicObject>,
        selector: &str,
    ) -> Result<Vec<ReplicaSample>, ActuatorError> {
        let list = self
            .timed(
                self.pods_api(api)
                    .list(&ListParams::default().labels(selector)),
            )
            .await?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()) as i64;
        Ok(list.items.iter().map(|pod| replica_of(pod, now)).collect())
    }

    /// Give `ids` deletion costs, lowest first, and clear the marks this
    /// actuator left on pods it no longer names. A pod already gone is
    /// skipped: the ReplicaSet has one fewer to choose from.
    async fn mark(&mut self, ids: &[String]) -> Result<(), ActuatorError> {
        let api = self.api().await?;
        let pods = self.pods_api(&api);
        let n = ids.len() as i64;
        let cleared: Vec<String> = self
            .marked
            .iter()
            .filter(|m| !ids.contains(m))
            .cloned()
            .collect();
        let writes = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id, serde_json::Value::String((i as i64 - n).to_string())))
            .chain(cleared.iter().map(|id| (id, serde_json::Value::Null)));
        for (id, cost) in writes {
            let body = serde_json::json!({"metadata": {"annotations": {DELETION_COST: cost}}});
            match self
                .timed(pods.patch(id, &PatchParams::default(), &Patch::Merge(&body)))
                .await
            {
                Ok(_) | Err(ActuatorError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.marked = ids.to_vec();
        Ok(())
    }

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

    async fn read_scale(&mut self) -> Result<Observed, ActuatorError> {
        let api = self.api().await?;
        let scale = self.timed(api.get_scale(&self.name)).await?;
        let current = scale.spec.and_then(|s| s.replicas).unwrap_or(0).max(0) as u32;
        let observed = scale.status.as_ref().map(|s| s.replicas.max(0) as u32);
        let selector = scale.status.and_then(|s| s.selector);
        self.last = Some((current, scale.metadata.resource_version));
        let replicas = match (self.scale_in_choice, selector) {
            (true, Some(selector)) => self.list_pods(&api, &selector).await?,
            _ => Vec::new(),
        };
        // `status.replicas` counts every pod, ready or not: it is `observed`,
        // never `ready`.
        Ok(Observed {
            current,
            observed,
            ready: None,
            starting: None,
            replicas,
            ..Observed::default()
        })
    }

    async fn write_scale(&mut self, desired: u32) -> Result<bool, ActuatorError> {
        let api = self.api().await?;
        for attempt in 0..=CONFLICT_RETRIES {
            let (current, version) = match self.last.clone() {
                Some(last) => last,
                None => {
                    self.read_scale().await?;
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

impl Actuator for Kubernetes {
    fn observe(&mut self) -> BoxFuture<'_, Result<Observed, ActuatorError>> {
        Box::pin(async move {
            let result = self.read_scale().await;
            self.after(result.as_ref().err());
            result
        })
    }

    fn apply<'a>(
        &'a mut self,
        desired: u32,
        _reason: &'a str,
    ) -> BoxFuture<'a, Result<bool, ActuatorError>> {
        Box::pin(async move {
            let result = self.write_scale(desired).await;
            self.after(result.as_ref().err());
            result
        })
    }

    fn remove_first<'a>(
        &'a mut self,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<bool, ActuatorError>> {
        Box::pin(async move {
            if !self.scale_in_choice {
                return Ok(false);
            }
            let result = self.mark(ids).await;
            self.after(result.as_ref().err());
            result.map(|()| true)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
