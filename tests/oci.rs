//! `oci://` policies against a real distribution server on 127.0.0.1
//! (Debian's docker-registry, installed by .ci/setup): pushed with the OCI
//! client, pulled, checked against their digests, cached, and run; a
//! registry that goes away leaves the cached copy running; a tampered blob,
//! a wrong pinned digest, a missing tag and a non-wasm artifact are refused.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail by panicking"
)]

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmscale::registry::digest_of;
use wasmscale_tests::{free_port, host, write_file};

/// A distribution server on a free port, storing under its own directory;
/// killed on drop.
struct Distribution {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_distribution() -> Distribution {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_file(
        dir.path(),
        "config.yml",
        &format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("storage").display()
        ),
    );
    let child = Command::new("docker-registry")
        .args(["serve", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start docker-registry ({e}); run .ci/setup to install Debian's docker-registry")
        });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = write!(
                s,
                "GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            );
            let mut text = String::new();
            let _ = s.read_to_string(&mut text);
            if text.starts_with("HTTP/1.1 200") {
                break;
            }
        }
        assert!(Instant::now() < deadline, "docker-registry never answered");
        std::thread::sleep(Duration::from_millis(50));
    }
    Distribution { child, port, dir }
}

/// Push `bytes` as a one-layer artifact (as `oras push` makes one) and
/// return the manifest's digest.
fn push(port: u16, repo_tag: &str, bytes: &[u8], media_type: &str) -> String {
    let reference: oci_client::Reference = format!("127.0.0.1:{port}/{repo_tag}").parse().unwrap();
    wasmscale::tls::install_provider();
    let client = oci_client::Client::new(oci_client::client::ClientConfig {
        protocol: oci_client::client::ClientProtocol::Http,
        ..Default::default()
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let layer = oci_client::client::ImageLayer::new(bytes.to_vec(), media_type.into(), None);
        let config = oci_client::client::Config::new(
            b"{}".to_vec(),
            "application/vnd.wasm.config.v1+json".into(),
            None,
        );
        let auth = oci_client::secrets::RegistryAuth::Anonymous;
        client
            .push(&reference, &[layer], config, &auth, None)
            .await
            .unwrap();
        client
            .pull_image_manifest(&reference, &auth)
            .await
            .unwrap()
            .1
    })
}

fn queue_depth() -> Vec<u8> {
    wasmscale::host::builtin_bytes("queue-depth")
        .unwrap()
        .to_vec()
}

/// A config with one scaler running `policy`.
fn config(dir: &Path, policy: &str) -> std::path::PathBuf {
    write_file(
        dir,
        "wasmscale.toml",
        &format!(
            r#"state_dir = "state"
[audit]
path = "audit.jsonl"
[admin]
listen = ""
[[scaler]]
name = "chat"
policy = "{policy}"
params = {{ target_per_replica = 10, cooldown_seconds = 0 }}
min_replicas = 1
max_replicas = 10
interval_seconds = 0.05
metrics = {{ queue_depth = 35 }}
[scaler.guard]
rate = "none"
"#
        ),
    )
}

/// Check a config as `wasmscale validate` does: the errors, if any.
fn validate(path: &Path) -> Result<(), String> {
    let host = host();
    wasmscale::cli::open_registry(&host, path).unwrap();
    wasmscale::controller::load(path, &host)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn run(path: &Path, ticks: u64) -> Vec<wasmscale::audit::AuditRecord> {
    let summary = wasmscale::cli::serve(Arc::new(host()), path, Some(ticks), false).unwrap();
    assert_eq!(summary.ticks, ticks, "{summary:?}");
    wasmscale::audit::read(&path.parent().unwrap().join("audit.jsonl"))
        .unwrap()
        .0
}

#[test]
fn an_oci_policy_is_pulled_checked_cached_and_runs_when_the_registry_is_gone() {
    let registry = start_distribution();
    let port = registry.port;
    let bytes = queue_depth();
    let manifest = push(
        port,
        "policies/qd:v1",
        &bytes,
        "application/vnd.wasm.content.layer.v1+wasm",
    );
    let dir = tempfile::tempdir().unwrap();
    let path = config(
        dir.path(),
        &format!("oci://127.0.0.1:{port}/policies/qd:v1"),
    );
    let records = run(&path, 3);
    let hex = digest_of(&bytes)["sha256:".len()..].to_owned();
    assert!(
        records.iter().all(|r| *r.policy_digest == *hex),
        "{:?}",
        records[0].policy_digest
    );
    assert_eq!(
        records.last().unwrap().final_replicas,
        4,
        "35 queued at 10 per replica"
    );
    assert_eq!(
        *records[0].policy,
        *format!("oci://127.0.0.1:{port}/policies/qd:v1"),
        "the audit names the reference; policy_digest, what it resolved to"
    );

    // Pinned to the manifest's digest: the same component.
    let pinned = config(
        dir.path(),
        &format!("oci://127.0.0.1:{port}/policies/qd@{manifest}"),
    );
    assert_eq!(validate(&pinned), Ok(()));
    // Pinned to another digest: refused.
    let other = digest_of(b"something else");
    let wrong = config(
        dir.path(),
        &format!("oci://127.0.0.1:{port}/policies/qd@{other}"),
    );
    let e = validate(&wrong).unwrap_err();
    assert!(e.contains("policies/qd@sha256:"), "{e}");
    // A tag that does not exist: refused, naming it.
    let missing = config(
        dir.path(),
        &format!("oci://127.0.0.1:{port}/policies/qd:nope"),
    );
    let e = validate(&missing).unwrap_err();
    assert!(e.contains("qd:nope"), "{e}");

    // The registry goes away: the copy pulled last runs.
    let path = config(
        dir.path(),
        &format!("oci://127.0.0.1:{port}/policies/qd:v1"),
    );
    drop(registry);
    let before = wasmscale::audit::read(&dir.path().join("audit.jsonl"))
        .unwrap()
        .0
        .len();
    let records = run(&path, 2);
    assert_eq!(records.len(), before + 2);
    assert!(records.iter().all(|r| *r.policy_digest == *hex));
    // A reference never pulled has no copy: refused.
    let never = config(
        dir.path(),
        &format!("oci://127.0.0.1:{port}/policies/other:v1"),
    );
    assert!(validate(&never).unwrap_err().contains("other:v1"));
}

#[test]
fn a_tampered_blob_a_non_wasm_artifact_and_a_bad_reference_are_refused() {
    let registry = start_distribution();
    let port = registry.port;
    // A text layer is not a policy.
    push(port, "policies/text:v1", b"hello", "text/plain");
    let dir = tempfile::tempdir().unwrap();
    let e = validate(&config(
        dir.path(),
        &format!("oci://127.0.0.1:{port}/policies/text:v1"),
    ))
    .unwrap_err();
    assert!(e.contains("0 layers of a wasm media type"), "{e}");

    // The registry's copy of the layer changes on disk after the push.
    let bytes = queue_depth();
    push(port, "policies/qd:v1", &bytes, "application/wasm");
    let hex = &digest_of(&bytes)["sha256:".len()..];
    let blob = registry
        .dir
        .path()
        .join("storage/docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data");
    let mut tampered = bytes.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0xff;
    std::fs::write(&blob, &tampered).unwrap();
    let e = validate(&config(
        dir.path(),
        &format!("oci://127.0.0.1:{port}/policies/qd:v1"),
    ))
    .unwrap_err();
    assert!(e.to_lowercase().contains("digest"), "{e}");

    let e = validate(&config(dir.path(), "oci://Not A Reference")).unwrap_err();
    assert!(e.contains("not an OCI reference"), "{e}");
}
