//! Build a policy crate into a WebAssembly component.
//!
//! Shared by three callers, so the recipe lives in one place: this crate's
//! `build.rs` (the built-in policies), the tests' `build.rs` (hostile fixtures)
//! and `wasmscale build` (policy authors).
//!
//! The recipe: `cargo build --target wasm32-unknown-unknown` (no WASI, so a
//! policy that uses `std` imports nothing but the host interface), then wrap
//! the core module into a component with `wit-component`, using the WIT that
//! `wit-bindgen` embedded in it.

use anyhow::{Context as _, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The guest target: plain wasm, no WASI imports.
pub const GUEST_TARGET: &str = "wasm32-unknown-unknown";

/// Linear-memory stack for guests. Policies are shallow; a small stack keeps an
/// idle instance's resident memory small.
pub const GUEST_STACK_BYTES: u32 = 64 * 1024;

/// One cargo invocation that builds a cdylib for the guest target.
#[derive(Debug, Clone)]
pub struct GuestBuild<'a> {
    pub manifest: &'a Path,
    pub package: Option<&'a str>,
    pub features: &'a [&'a str],
    pub profile: &'a str,
    pub target_dir: &'a Path,
}

impl GuestBuild<'_> {
    /// Run cargo and return the path of the core module it produced.
    pub fn build_core(&self, lib_name: &str) -> Result<PathBuf> {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.arg("build")
            .arg("--manifest-path")
            .arg(self.manifest)
            .args(["--target", GUEST_TARGET, "--profile", self.profile])
            .arg("--target-dir")
            .arg(self.target_dir);
        if let Some(p) = self.package {
            cmd.args(["-p", p]);
        }
        if !self.features.is_empty() {
            cmd.arg("--features").arg(self.features.join(","));
        }
        // Don't inherit the outer build's flags or wrappers (clippy, coverage):
        // they would not apply to wasm and would defeat caching of guest builds.
        for var in [
            "CARGO_ENCODED_RUSTFLAGS",
            "RUSTFLAGS",
            "CARGO_BUILD_RUSTFLAGS",
            "RUSTC_WORKSPACE_WRAPPER",
            "CARGO_TARGET_DIR",
            "CARGO_BUILD_TARGET",
            "CARGO_PRIMARY_PACKAGE",
        ] {
            cmd.env_remove(var);
        }
        cmd.env(
            "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS",
            format!("-Clink-arg=-zstack-size={GUEST_STACK_BYTES}"),
        );
        let status = cmd
            .status()
            .with_context(|| format!("running cargo for {}", self.manifest.display()))?;
        if !status.success() {
            bail!(
                "cargo build of {} for {GUEST_TARGET} failed ({status}); is the target installed? \
                 `rustup target add {GUEST_TARGET}`",
                self.manifest.display()
            );
        }
        let dir = if self.profile == "dev" {
            "debug"
        } else {
            self.profile
        };
        let path = self
            .target_dir
            .join(GUEST_TARGET)
            .join(dir)
            .join(format!("{}.wasm", lib_name.replace('-', "_")));
        if !path.exists() {
            bail!(
                "cargo succeeded but {} is missing (is the crate a cdylib?)",
                path.display()
            );
        }
        Ok(path)
    }
}

/// Wrap a core module that carries `wit-bindgen` metadata into a component.
pub fn componentize(core: &[u8]) -> Result<Vec<u8>> {
    wit_component::ComponentEncoder::default()
        .module(core)
        .context("reading the core module's component metadata")?
        .validate(true)
        .encode()
        .context("encoding the component")
}

/// The `[package] name` of a Cargo manifest.
pub fn package_name(manifest: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package
            && let Some(rest) = line.strip_prefix("name")
            && let Some(value) = rest.trim_start().strip_prefix('=')
        {
            return Some(value.trim().trim_matches('"').to_owned());
        }
    }
    None
}

/// The features a manifest declares, in order: for a crate of guests (the
/// built-in policies, the hostile fixtures) one feature is one component, so
/// this is the one list of them.
pub fn feature_names(manifest: &str) -> Vec<String> {
    let mut in_features = false;
    let mut names = Vec::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_features = line == "[features]";
        } else if in_features
            && !line.starts_with('#')
            && let Some((name, _)) = line.split_once('=')
            && name.trim() != "default"
        {
            names.push(name.trim().to_owned());
        }
    }
    names
}

/// Files of a new policy crate (`wasmscale new`): relative path and contents.
pub fn scaffold(name: &str, sdk: &Path) -> Vec<(&'static str, String)> {
    let type_name: String = name
        .split(['-', '_'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    let type_name = if type_name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        type_name
    } else {
        format!("P{type_name}")
    };
    let cargo = format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"

# A policy is a cdylib (the component) and an rlib (so `cargo test` runs natively).
[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
wasmscale-sdk = {{ path = {sdk:?}, features = ["v2"] }}
serde = {{ version = "1", features = ["derive"] }}

# Small, fast components; a panic becomes a trap the host reports.
[profile.release]
opt-level = 3
lto = true
codegen-units = 1
panic = "abort"
strip = true

# A policy crate stands alone, even inside another workspace.
[workspace]
"#,
        sdk = sdk.display().to_string()
    );
    let lib = format!(
        r#"//! {name}: a wasmscale policy (contract 0.2).
//!
//! Scales on queue depth per ready replica, with a GPU-utilization floor.
//! Params: {{"target_queue_per_replica": 4, "max_gpu_utilization": 0.85}}

use serde::Deserialize;
use wasmscale_sdk::parse_params;
use wasmscale_sdk::v2::{{Outcome, Policy, Reads, View}};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {{
    #[serde(default = "default_target")]
    target_queue_per_replica: f64,
    #[serde(default = "default_gpu")]
    max_gpu_utilization: f64,
}}

fn default_target() -> f64 {{
    4.0
}}

fn default_gpu() -> f64 {{
    0.85
}}

#[derive(Debug, Default)]
pub struct {type_name} {{
    params: Option<Params>,
}}

impl Policy for {type_name} {{
    /// Check the params, and name what this policy reads: the host passes
    /// these signals each tick, and `validate` checks a scaler fills them.
    fn configure(&mut self, params: &str) -> Result<Reads, String> {{
        let p: Params = parse_params(params)?;
        if !(p.target_queue_per_replica > 0.0) {{
            return Err("target_queue_per_replica must be > 0".into());
        }}
        self.params = Some(p);
        Ok(Reads::new()
            .signal("queue_depth")
            .signal("gpu_utilization")
            .signal("replicas.ready"))
    }}

    fn evaluate(&mut self, t: &View<'_>) -> Result<Outcome, String> {{
        let p = self.params.as_ref().ok_or("not configured")?;
        // No queue reading: no opinion (the count holds; not a recommendation).
        let Some(queue) = t.queue_depth() else {{
            return Ok(Outcome::hold("queue_depth unknown"));
        }};
        let by_queue = (queue / p.target_queue_per_replica).ceil();
        // Hot GPUs: never scale in, even when the queue is short.
        let ready = f64::from(t.ready());
        let by_gpu = match t.gpu_utilization() {{
            Some(u) if u > p.max_gpu_utilization => (ready * u / p.max_gpu_utilization).ceil(),
            _ => 0.0,
        }};
        let desired = by_queue.max(by_gpu).max(1.0);
        Ok(Outcome::scale(desired, format!("queue {{queue}} -> {{by_queue}}, gpu floor {{by_gpu}}")))
    }}
}}

wasmscale_sdk::export_policy_v2!({type_name});

#[cfg(test)]
mod tests {{
    use super::*;

    #[test]
    fn scales_on_queue_and_respects_hot_gpus() {{
        let mut p = {type_name}::default();
        let reads = p.configure("{{}}").unwrap();
        let mut t = reads.tick(0, 2);
        reads.set(&mut t, "queue_depth", 17.0);
        assert_eq!(p.evaluate(&View::new(&t, &reads)).unwrap().desired(), Some(5.0));
        let mut hot = reads.tick(0, 4);
        reads.set(&mut hot, "queue_depth", 1.0);
        reads.set(&mut hot, "gpu_utilization", 0.95);
        reads.set(&mut hot, "replicas.ready", 4.0);
        assert_eq!(p.evaluate(&View::new(&hot, &reads)).unwrap().desired(), Some(5.0));
        let unknown = reads.tick(0, 1);
        assert_eq!(p.evaluate(&View::new(&unknown, &reads)).unwrap().desired(), None);
    }}
}}
"#
    );
    let readme = format!(
        "# {name}\n\nA wasmscale policy.\n\n```sh\ncargo test        # native unit tests\nwasmscale build   # -> {file}.wasm (a component)\nwasmscale check {file}.wasm --params '{{\"target_queue_per_replica\": 4}}'\n```\n",
        file = name.replace('-', "_")
    );
    vec![
        ("Cargo.toml", cargo),
        ("src/lib.rs", lib),
        ("README.md", readme),
        (".gitignore", "/target\n*.wasm\n".to_owned()),
    ]
}
