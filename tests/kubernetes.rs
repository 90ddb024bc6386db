//! The Kubernetes actuator: the real `kube` client over real HTTP against an
//! in-process fake API server that serves the `scale` subresource as the API
//! server does (GET; PATCH as merge patch and JSON patch; PUT; resourceVersion
//! and 409 on a stale one; 404, 403, 500 and slow replies). No registry here
//! ships a Kubernetes API server binary, so this fake stands in for one.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail by panicking"
)]

use serde_json::{Value, json};
use std::sync::Arc;
use wasmscale::controller;
use wasmscale::controller::Scaler;
use wasmscale_tests::fake_kube::{Shared, start_fake};
use wasmscale_tests::{block_on, host};

fn scaler_for(port: u16, name: &str, queue: u32, dir: &std::path::Path) -> Scaler {
    scaler_at(&format!("http://127.0.0.1:{port}"), name, queue, 1000, dir)
}

/// A queue-depth scaler on Deployment `name` at `api_server`.
fn scaler_at(
    api_server: &str,
    name: &str,
    queue: u32,
    timeout_ms: u64,
    dir: &std::path::Path,
) -> Scaler {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"[[scaler]]
name = "{name}"
policy = "builtin:queue-depth"
params = {{ target_per_replica = 10 }}
min_replicas = 1
max_replicas = 20
metrics = {{ queue_depth = {queue} }}
target = {{ type = "kubernetes", group = "apps", version = "v1", resource = "deployments", namespace = "default", name = "{name}", api_server = "{api_server}", timeout_ms = {timeout_ms} }}
[scaler.guard]
rate = "none"
"#
        ),
    )
    .unwrap();
    let config = controller::load(&path, &host()).unwrap_or_else(|e| panic!("{e}"));
    Scaler::new(&config.scalers[0], dir, &host(), None).unwrap()
}

#[test]
fn kube_client_scales_through_the_scale_subresource() {
    let cluster: Shared = Arc::default();
    cluster.lock().unwrap().objects.insert("web".into(), (2, 7));
    cluster
        .lock()
        .unwrap()
        .objects
        .insert("busy".into(), (2, 1));
    cluster.lock().unwrap().conflict_once.push("busy".into());
    let port = start_fake(cluster.clone());
    let dir = tempfile::tempdir().unwrap();

    block_on(async {
        let mut web = scaler_for(port, "web", 55, dir.path());
        let r = web.tick(1_700_000_000_000).await;
        assert!(r.failures.is_empty(), "{r:?}");
        assert_eq!(
            (r.previous_replicas, r.final_replicas, r.wrote),
            (2, 6, true)
        );
        {
            let c = cluster.lock().unwrap();
            assert_eq!(c.objects["web"], (6, 8));
            let (method, path, body) = c.log.last().unwrap().clone();
            let path = path.split('?').next().unwrap_or_default();
            assert_eq!(
                (method.as_str(), path),
                (
                    "PATCH",
                    "/apis/apps/v1/namespaces/default/deployments/web/scale"
                )
            );
            let body: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(body["spec"]["replicas"], 6);
            assert_eq!(body["metadata"]["resourceVersion"], "7");
        }
        // Same desired count: read, but no write.
        let writes = |c: &Shared| {
            c.lock()
                .unwrap()
                .log
                .iter()
                .filter(|(m, _, _)| m != "GET")
                .count()
        };
        let before = writes(&cluster);
        let again = web.tick(1_700_000_015_000).await;
        assert_eq!((again.final_replicas, again.wrote), (6, false));
        assert_eq!(
            writes(&cluster),
            before,
            "no write when desired equals current"
        );

        // A 409 (someone else scaled it) is re-read and retried.
        let mut busy = scaler_for(port, "busy", 90, dir.path());
        let r = busy.tick(1_700_000_000_000).await;
        assert!(r.failures.is_empty(), "{r:?}");
        assert_eq!(cluster.lock().unwrap().objects["busy"].0, 9);

        // 404, 403, 500 and a slow server are typed failures that hold.
        for (name, kind) in [
            ("missing", "not-found"),
            ("forbidden", "forbidden"),
            ("broken", "server-error"),
            ("slow", "timeout"),
        ] {
            let mut s = scaler_for(port, name, 55, dir.path());
            let r = s.tick(1_700_000_000_000).await;
            let f = r
                .failures
                .first()
                .unwrap_or_else(|| panic!("{name}: {r:?}"));
            assert_eq!(
                (f.stage.as_str(), f.kind.as_str()),
                ("actuator-read", kind),
                "{name}: {r:?}"
            );
            assert!(!r.wrote);
        }
    });
}

#[test]
fn fake_api_server_speaks_json_patch_put_and_resource_versions() {
    use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
    let cluster: Shared = Arc::default();
    cluster.lock().unwrap().objects.insert("db".into(), (3, 1));
    let port = start_fake(cluster.clone());
    block_on(async {
        let client = kube::Client::try_from(kube::Config::new(
            format!("http://127.0.0.1:{port}").parse().unwrap(),
        ))
        .unwrap();
        let resource = ApiResource {
            group: "apps".into(),
            version: "v1".into(),
            api_version: "apps/v1".into(),
            kind: "StatefulSet".into(),
            plural: "statefulsets".into(),
        };
        let api: Api<DynamicObject> = Api::namespaced_with(client, "default", &resource);
        let patch = json!([{"op": "replace", "path": "/spec/replicas", "value": 5}]);
        let patch: json_patch::Patch = serde_json::from_value(patch).unwrap();
        let s = api
            .patch_scale("db", &PatchParams::default(), &Patch::<()>::Json(patch))
            .await
            .unwrap();
        assert_eq!(s.spec.and_then(|s| s.replicas), Some(5));
        let mut current = api.get_scale("db").await.unwrap();
        current.spec = Some(k8s_openapi::api::autoscaling::v1::ScaleSpec { replicas: Some(7) });
        let stale = {
            let mut s = current.clone();
            s.metadata.resource_version = Some("1".into());
            s
        };
        let e = api
            .replace_scale("db", &PostParams::default(), &stale)
            .await
            .unwrap_err();
        assert!(
            matches!(e, kube::Error::Api(ref s) if s.code == 409),
            "{e:?}"
        );
        let s = api
            .replace_scale("db", &PostParams::default(), &current)
            .await
            .unwrap();
        assert_eq!(s.spec.and_then(|s| s.replicas), Some(7));
    });
}

#[test]
fn a_hung_api_server_is_a_timeout_not_a_transport_error() {
    // Accepts connections and never answers, not even the TLS handshake.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(16) {
            held.push(stream);
        }
        std::thread::sleep(std::time::Duration::from_secs(30));
    });
    let dir = tempfile::tempdir().unwrap();
    let mut scaler = scaler_at(
        &format!("https://127.0.0.1:{port}"),
        "web",
        30,
        300,
        dir.path(),
    );
    for i in 0..2 {
        let started = std::time::Instant::now();
        let r = block_on(scaler.tick(1_700_000_000_000 + i * 1000));
        assert_eq!(r.failures[0].kind, "timeout", "{r:?}");
        assert!(r.failures[0].message.contains("300ms"), "{r:?}");
        assert!(started.elapsed() < std::time::Duration::from_secs(3));
    }
}
