//! `wasmscale new` and `wasmscale build`: a policy crate, and its component.

use anyhow::{Context as _, Result, bail};
use std::path::{Path, PathBuf};

/// The SDK's sources and the contract, built into this binary: `new` vendors
/// them into the crate it creates, so it works from an installed binary,
/// anywhere, offline but for crates.io.
const SDK_FILES: &[(&str, &str)] = &[
    ("src/lib.rs", include_str!("../../../sdk/src/lib.rs")),
    ("src/alloc.rs", include_str!("../../../sdk/src/alloc.rs")),
    (
        "src/helpers.rs",
        include_str!("../../../sdk/src/helpers.rs"),
    ),
    (
        "src/snapshot.rs",
        include_str!("../../../sdk/src/snapshot.rs"),
    ),
    ("src/v2.rs", include_str!("../../../sdk/src/v2.rs")),
];
const WIT_FILES: &[(&str, &str)] = &[
    ("policy.wit", include_str!("../../../wit/policy.wit")),
    (
        "v0.2/policy.wit",
        include_str!("../../../wit/v0.2/policy.wit"),
    ),
];
/// The workspace manifest, for the SDK's dependency versions (one place).
const WORKSPACE_MANIFEST: &str = include_str!("../../../Cargo.toml");

/// A crate name cargo accepts (and not one it reserves).
fn check_crate_name(name: &str) -> Result<()> {
    const RESERVED: &[&str] = &[
        "std",
        "core",
        "alloc",
        "proc_macro",
        "proc-macro",
        "test",
        "self",
        "super",
        "crate",
        "Self",
        "build",
        "deps",
        "examples",
        "incremental",
    ];
    let Some(first) = name.chars().next() else {
        bail!("a policy needs a name");
    };
    if !first.is_ascii_alphabetic() {
        bail!(
            "policy name {name:?} must start with a letter (cargo refuses names that start with {first:?})"
        );
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        bail!("policy name {name:?} has {bad:?}; use letters, digits, '-' or '_'");
    }
    if name.len() > 64 {
        bail!("policy name {name:?} is longer than 64 characters");
    }
    if RESERVED.contains(&name) || RESERVED.contains(&name.replace('-', "_").as_str()) {
        bail!("policy name {name:?} is reserved by Rust or cargo; pick another");
    }
    Ok(())
}

/// The vendored SDK's manifest: the SDK's own, with the workspace's versions
/// written in.
fn vendored_sdk_manifest() -> Result<String> {
    let dep = |name: &str| -> Result<String> {
        WORKSPACE_MANIFEST
            .lines()
            .find(|l| l.starts_with(&format!("{name} = ")))
            .map(str::to_owned)
            .with_context(|| format!("the workspace manifest has no {name} dependency"))
    };
    Ok(format!(
        "[package]\nname = \"wasmscale-sdk\"\nversion = \"{}\"\nedition = \"2024\"\nlicense = \"Apache-2.0\"\n\n[features]\nv2 = []\n\n[dependencies]\n{}\n{}\n{}\n",
        env!("CARGO_PKG_VERSION"),
        dep("wit-bindgen")?,
        dep("serde")?,
        dep("serde_json")?,
    ))
}

pub fn new_policy(name: &str, sdk: Option<PathBuf>) -> Result<()> {
    check_crate_name(name)?;
    let dir = PathBuf::from(name);
    if dir.exists() {
        bail!("{} already exists", dir.display());
    }
    // An SDK given by path is used in place; otherwise the one in this
    // binary is vendored into the crate.
    let sdk = match sdk {
        Some(p) => p
            .canonicalize()
            .with_context(|| format!("cannot find the wasmscale SDK at {}", p.display()))?,
        None => {
            let vendor = dir.join("vendor");
            let mut files: Vec<(PathBuf, String)> = SDK_FILES
                .iter()
                .map(|(p, t)| (vendor.join("wasmscale-sdk").join(p), (*t).to_owned()))
                .collect();
            files.extend(
                WIT_FILES
                    .iter()
                    .map(|(p, t)| (vendor.join("wit").join(p), (*t).to_owned())),
            );
            files.push((
                vendor.join("wasmscale-sdk").join("Cargo.toml"),
                vendored_sdk_manifest()?,
            ));
            for (path, text) in &files {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(path, text)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            PathBuf::from("vendor/wasmscale-sdk")
        }
    };
    let files = crate::guest::scaffold(name, &sdk);
    for (path, text) in &files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("created {}/ (a policy crate)", dir.display());
    println!("next:");
    println!("  cd {name}");
    println!("  cargo test                     # the policy's unit test, natively");
    println!(
        "  wasmscale build                # -> {}.wasm",
        name.replace('-', "_")
    );
    println!("  wasmscale check {}.wasm", name.replace('-', "_"));
    Ok(())
}

pub fn build(dir: &Path, out: Option<PathBuf>) -> Result<()> {
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("cannot read {}", manifest.display()))?;
    let name = crate::guest::package_name(&text)
        .with_context(|| format!("{}: no [package] name", manifest.display()))?;
    let target_dir =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| dir.join("target"), PathBuf::from);
    eprintln!("building {name} for {} ...", crate::guest::GUEST_TARGET);
    let core = crate::guest::GuestBuild {
        manifest: &manifest,
        package: None,
        features: &[],
        profile: "release",
        target_dir: &target_dir,
    }
    .build_core(&name)?;
    let bytes = std::fs::read(&core)?;
    let component = crate::guest::componentize(&bytes)?;
    let out = out.unwrap_or_else(|| dir.join(format!("{}.wasm", name.replace('-', "_"))));
    std::fs::write(&out, &component).with_context(|| format!("writing {}", out.display()))?;
    println!("{} ({} bytes)", out.display(), component.len());
    Ok(())
}
