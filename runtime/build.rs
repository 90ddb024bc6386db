//! Compile every built-in policy to a component and embed it in the binary
//! (in the style of wasmtime's `test-programs`).

#[path = "build_guest.rs"]
#[allow(
    dead_code,
    reason = "this file is also compiled into a crate that uses only part of it"
)]
mod build_guest;

use anyhow::{Context as _, Result};
use std::fmt::Write as _;
use std::path::PathBuf;

fn main() -> Result<()> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let root = manifest_dir
        .parent()
        .context("runtime/ has a parent")?
        .to_path_buf();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    for dir in [
        "wit",
        "sdk/src",
        "sdk/Cargo.toml",
        "policies/src",
        "policies/params",
        "policies/Cargo.toml",
        "Cargo.lock",
        "Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    println!("cargo:rerun-if-changed=build_guest.rs");

    // Guests get their own target dir: the outer cargo holds a lock on its own,
    // and a shared guest dir lets dev, test and bench builds reuse one another's work.
    let target_dir = root.join("target").join("guests");
    let mut table = String::from(
        "/// Built-in policies: (name, component bytes, example params).\npub(crate) const BUILTINS: &[(&str, &[u8], &str)] = &[\n",
    );
    // The one list of built-ins: the policies crate's features.
    let manifest = std::fs::read_to_string(root.join("policies").join("Cargo.toml"))?;
    for name in &build_guest::feature_names(&manifest) {
        let core = build_guest::GuestBuild {
            manifest: &root.join("Cargo.toml"),
            package: Some("wasmscale-policies"),
            features: &[name.as_str()],
            profile: "guest",
            target_dir: &target_dir,
        }
        .build_core("wasmscale_policies")?;
        let bytes = std::fs::read(&core)?;
        let component =
            build_guest::componentize(&bytes).with_context(|| format!("policy {name}"))?;
        let path = out_dir.join(format!("{name}.wasm"));
        std::fs::write(&path, component)?;
        let params = root
            .join("policies")
            .join("params")
            .join(format!("{name}.json"));
        writeln!(
            table,
            "    ({name:?}, include_bytes!({:?}), include_str!({:?})),",
            path.display().to_string(),
            params.display().to_string()
        )?;
    }
    table.push_str("];\n");
    std::fs::write(out_dir.join("builtins.rs"), table)?;
    Ok(())
}
