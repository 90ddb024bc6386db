//! A real kube-apiserver for the tests: `../shared/tools/kube-apiserver.sh`
//! (kube-apiserver 1.20 built from Debian's source, etcd, token auth, RBAC).
//! Started here if it is built and not running; tests that need it skip with a
//! message where `../shared/` or the build is absent (CI always has both:
//! `.ci/run` builds it and stops it after the tests).
//!
//! It has no controller-manager: Deployments get no pods and their status is
//! never reported, unless a test writes it through the status subresource.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use std::path::{Path, PathBuf};

/// A running API server.
#[derive(Debug)]
pub struct ApiServer {
    /// A kubeconfig with the admin token (`system:masters`).
    pub admin_kubeconfig: PathBuf,
    pub url: String,
}

fn script() -> PathBuf {
    crate::workspace_root().join("../shared/tools/kube-apiserver.sh")
}

fn kas_dir() -> PathBuf {
    std::env::var_os("KAS_DIR").map_or_else(|| std::env::temp_dir().join("kas"), PathBuf::from)
}

fn ready(kubeconfig: &Path) -> bool {
    kubeconfig.exists()
        && std::process::Command::new("curl")
            .args(["-sfk", "-m", "2", "-H", "Authorization: Bearer admin-token"])
            .arg("https://127.0.0.1:6443/readyz")
            .output()
            .is_ok_and(|o| o.status.success())
}

/// The API server, started on first use; `None` (with a message saying why)
/// where it cannot be had. In CI it must be had.
pub fn api_server() -> Option<&'static ApiServer> {
    static SERVER: std::sync::OnceLock<Option<ApiServer>> = std::sync::OnceLock::new();
    SERVER
        .get_or_init(|| {
            let ci = std::env::var_os("CI").is_some();
            let skip = |why: String| {
                assert!(!ci, "CI needs the real kube-apiserver: {why}");
                eprintln!("skipped: {why}");
                None
            };
            crate::shared("tools/kube-apiserver.sh")?;
            let dir = kas_dir();
            if !dir.join("kube-apiserver").exists() {
                return skip(format!(
                    "kube-apiserver is not built; run `{} build` (about 10 minutes, once per machine)",
                    script().display()
                ));
            }
            let kubeconfig = dir.join("kubeconfig");
            if !ready(&kubeconfig) {
                let status = std::process::Command::new("bash")
                    .arg(script())
                    .arg("start")
                    .env("KAS_DIR", &dir)
                    .status();
                if !status.is_ok_and(|s| s.success()) || !ready(&kubeconfig) {
                    return skip(format!(
                        "kube-apiserver did not start; see {}/apiserver.log",
                        dir.display()
                    ));
                }
            }
            Some(ApiServer {
                admin_kubeconfig: kubeconfig,
                url: "https://127.0.0.1:6443".into(),
            })
        })
        .as_ref()
}

impl ApiServer {
    /// A client with the admin token.
    pub async fn admin(&self) -> kube::Client {
        let file = kube::config::Kubeconfig::read_from(&self.admin_kubeconfig).expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(file, &Default::default())
            .await
            .expect("config");
        kube::Client::try_from(config).expect("client")
    }

    /// A fresh namespace (tests never share objects).
    pub async fn namespace(&self, client: &kube::Client, prefix: &str) -> String {
        let name = format!("{prefix}-{}", std::process::id());
        let ns: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
        let api: Api<Namespace> = Api::all(client.clone());
        match api.create(&PostParams::default(), &ns).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => panic!("create namespace {name}: {e}"),
        }
        name
    }

    /// A Deployment with `replicas` and no status (no controller runs here).
    pub async fn deployment(&self, client: &kube::Client, ns: &str, name: &str, replicas: i32) {
        let d: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "none"}]}}}
        }))
        .unwrap();
        Api::<Deployment>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &d)
            .await
            .unwrap_or_else(|e| panic!("create deployment {name}: {e}"));
    }

    /// Report pods as the deployment controller would.
    pub async fn report_status(&self, client: &kube::Client, ns: &str, name: &str, replicas: i32) {
        let patch =
            serde_json::json!({"status": {"replicas": replicas, "readyReplicas": replicas}});
        Api::<Deployment>::namespaced(client.clone(), ns)
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap_or_else(|e| panic!("status of {name}: {e}"));
    }

    /// A pod of Deployment `app` (it stays Pending: no scheduler runs here).
    pub async fn pod(&self, client: &kube::Client, ns: &str, app: &str, name: &str) {
        // Pods need the namespace's `default` account (and, unless they
        // opt out, its token), which only the controller-manager (not run
        // here) would create.
        let sa: ServiceAccount =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "default"}})).unwrap();
        match Api::<ServiceAccount>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &sa)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => panic!("create the default service account: {e}"),
        }
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"app": app}},
            "spec": {"automountServiceAccountToken": false,
                     "containers": [{"name": "c", "image": "none"}]}
        }))
        .unwrap();
        Api::<Pod>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &pod)
            .await
            .unwrap_or_else(|e| panic!("create pod {name}: {e}"));
    }

    /// A pod's annotation `key`, if set.
    pub async fn annotation(
        &self,
        client: &kube::Client,
        ns: &str,
        pod: &str,
        key: &str,
    ) -> Option<String> {
        let p = Api::<Pod>::namespaced(client.clone(), ns)
            .get(pod)
            .await
            .unwrap();
        p.metadata.annotations.and_then(|a| a.get(key).cloned())
    }

    /// Delete a pod at once (as the ReplicaSet controller would).
    pub async fn delete_pod(&self, client: &kube::Client, ns: &str, pod: &str) {
        let now = DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        };
        Api::<Pod>::namespaced(client.clone(), ns)
            .delete(pod, &now)
            .await
            .unwrap_or_else(|e| panic!("delete pod {pod}: {e}"));
    }

    /// `spec.replicas` as the server has it.
    pub async fn replicas(&self, client: &kube::Client, ns: &str, name: &str) -> i32 {
        let d = Api::<Deployment>::namespaced(client.clone(), ns)
            .get(name)
            .await
            .unwrap();
        d.spec.replicas.unwrap_or(-1)
    }

    /// Set `spec.replicas` directly (someone else scaling the workload).
    pub async fn scale(&self, client: &kube::Client, ns: &str, name: &str, replicas: i32) {
        let patch = serde_json::json!({"spec": {"replicas": replicas}});
        Api::<Deployment>::namespaced(client.clone(), ns)
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }

    /// A kubeconfig for a service account that may do `verbs` on
    /// `deployments/scale` in `ns` (none: no role at all).
    pub async fn account(
        &self,
        client: &kube::Client,
        ns: &str,
        name: &str,
        verbs: &[&str],
        dir: &Path,
    ) -> PathBuf {
        let sa: ServiceAccount =
            serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
        Api::<ServiceAccount>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &sa)
            .await
            .unwrap();
        if !verbs.is_empty() {
            let role: Role = serde_json::from_value(serde_json::json!({
                "metadata": {"name": name},
                "rules": [{"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": verbs}]
            }))
            .unwrap();
            Api::<Role>::namespaced(client.clone(), ns)
                .create(&PostParams::default(), &role)
                .await
                .unwrap();
            let binding: RoleBinding = serde_json::from_value(serde_json::json!({
                "metadata": {"name": name},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}]
            }))
            .unwrap();
            Api::<RoleBinding>::namespaced(client.clone(), ns)
                .create(&PostParams::default(), &binding)
                .await
                .unwrap();
        }
        let request: TokenRequest = serde_json::from_value(
            serde_json::json!({"spec": {"audiences": [], "expirationSeconds": 3600}}),
        )
        .unwrap();
        let token = Api::<ServiceAccount>::namespaced(client.clone(), ns)
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .unwrap_or_else(|e| panic!("token for {name}: {e}"))
            .status
            .and_then(|s| s.token)
            .expect("a token");
        let path = dir.join(format!("{name}.kubeconfig"));
        std::fs::write(&path, kubeconfig(&self.url, &token)).unwrap();
        path
    }
}

/// A kubeconfig for `server` with a bearer token (the test server's
/// certificate is self-signed).
pub fn kubeconfig(server: &str, token: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: \"{server}\", insecure-skip-tls-verify: true}}}}]\n\
         users: [{{name: u, user: {{token: \"{token}\"}}}}]\ncontexts: [{{name: x, context: {{cluster: c, user: u}}}}]\ncurrent-context: x\n"
    )
}
