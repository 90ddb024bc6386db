//! Shared helpers for the end-to-end tests: paths, the hostile fixtures built by
//! `build.rs`, and a host with default limits.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail by panicking"
)]

use std::path::{Path, PathBuf};
use wasmscale::config::Config;
use wasmscale::controller;
use wasmscale::host::{Host, HostConfig, Limits};

pub mod admin_http;
pub mod fake_kube;
pub mod kube_apiserver;

/// Component paths of the hostile fixtures (see `guests/`).
pub mod fixtures {
    include!(concat!(env!("OUT_DIR"), "/fixtures.rs"));

    /// A `.wat` fixture in `tests/fixtures/`.
    pub fn wat(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(format!("{name}.wat"))
    }
}

/// The repository root (where `Cargo.toml`, `examples/` and `../shared` are found).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Resolve a path given relative to the repository root.
pub fn from_root(path: impl AsRef<Path>) -> PathBuf {
    let path = path.as_ref();
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        workspace_root().join(path)
    }
}

/// A file under `../shared/` (beside the repository), or `None` with a
/// message saying the test is skipped. A clone outside that layout still
/// passes; CI (`CI` set) always has it, so there its absence is a failure.
pub fn shared(path: &str) -> Option<PathBuf> {
    let full = workspace_root().join("../shared").join(path);
    if full.exists() {
        return Some(full);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI needs ../shared/{path} ({} is absent)",
        full.display()
    );
    eprintln!("skipped: needs ../shared/{path}, which is absent here");
    None
}

/// A host with default limits and no disk cache.
pub fn host() -> Host {
    host_with(Limits::default())
}

pub fn host_with(limits: Limits) -> Host {
    Host::new(HostConfig {
        limits,
        ..HostConfig::default()
    })
    .expect("host")
}

/// Run a future to completion on a fresh current-thread runtime.
pub fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// A snapshot from JSON, at time 0 with a 1 s interval, and `current`
/// replicas where the JSON gives none.
pub fn snapshot(json: &str, current: u32) -> wasmscale::model::Snapshot {
    wasmscale::snapshot::from_json(
        json,
        wasmscale::snapshot::Defaults {
            time_ms: 0,
            interval_ms: 1000,
            current,
        },
    )
    .unwrap()
    .0
}

/// A free port on 127.0.0.1, for a server a test starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("local address")
        .port()
}

/// Write `text` to `dir/name`; the path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A one-scaler config around `scaler` (extra keys) and `top` (top-level keys).
pub fn one_scaler(top: &str, scaler: &str) -> String {
    format!(
        r#"{top}
[[scaler]]
name = "s"
policy = "builtin:queue-depth"
params = {{ target_per_replica = 10 }}
min_replicas = 1
max_replicas = 10
metrics = {{ queue_depth = 35 }}
{scaler}
"#
    )
}

pub fn replay_config(dir: &Path, trace: &str, extra: &str) -> Config {
    write_file(dir, "trace.csv", trace);
    let text = format!(
        r#"state_dir = "state"
[audit]
path = "audit.jsonl"

[[scaler]]
name = "svc"
policy = "builtin:target-tracking"
params = {{ metrics = [
  {{ type = "external", name = "queue_depth", target = {{ average_value = 10 }} }},
  {{ type = "object", name = "gpu_utilization", target = {{ value = 0.5 }} }},
] }}
min_replicas = 1
max_replicas = 20
interval_seconds = 15
source = {{ type = "replay", path = "trace.csv" }}
{extra}
"#
    );
    let path = write_file(dir, "config.toml", &text);
    controller::load(&path, &host()).unwrap_or_else(|e| panic!("{e}"))
}
