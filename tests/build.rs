//! Build each hostile fixture in `guests/` into its own component, and list
//! them for the tests (in the style of wasmtime's `test-programs-artifacts`).

#[path = "../runtime/build_guest.rs"]
#[allow(
    dead_code,
    reason = "this file is also compiled into a crate that uses only part of it"
)]
mod build_guest;

use anyhow::{Context as _, Result};
use std::fmt::Write as _;
use std::path::PathBuf;

fn main() -> Result<()> {
    let tests_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let root = tests_dir
        .parent()
        .context("tests/ has a parent")?
        .to_path_buf();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    for dir in [
        "guests/src",
        "guests/Cargo.toml",
        "../wit",
        "../wit/v0.2",
        "../sdk/src",
        "../runtime/build_guest.rs",
    ] {
        println!("cargo:rerun-if-changed={}", tests_dir.join(dir).display());
    }
    let target_dir = root.join("target").join("guests");
    let mut table = String::new();
    // The one list of fixtures: the guests crate's features.
    let manifest = std::fs::read_to_string(tests_dir.join("guests").join("Cargo.toml"))?;
    for name in &build_guest::feature_names(&manifest) {
        let core = build_guest::GuestBuild {
            manifest: &root.join("Cargo.toml"),
            package: Some("wasmscale-hostile-fixtures"),
            features: &[name.as_str()],
            profile: "guest",
            target_dir: &target_dir,
        }
        .build_core("wasmscale_hostile_fixtures")?;
        let component = build_guest::componentize(&std::fs::read(&core)?)
            .with_context(|| format!("fixture {name}"))?;
        let path = out_dir.join(format!("{name}.wasm"));
        std::fs::write(&path, component)?;
        let ident = name.replace('-', "_").to_uppercase();
        writeln!(
            table,
            "pub const {ident}: &str = {:?};",
            path.display().to_string()
        )?;
    }
    std::fs::write(out_dir.join("fixtures.rs"), table)?;
    Ok(())
}
