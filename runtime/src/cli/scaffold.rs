//! `wasmscale new` and `wasmscale build`: a policy crate, and its component.

use anyhow::{Context as _, Result, bail};
use std::path::{Path, PathBuf};

pub fn new_policy(name: &str, sdk: Option<PathBuf>) -> Result<()> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("policy name {name:?} must be letters, digits, '-' or '_'");
    }
    let dir = PathBuf::from(name);
    if dir.exists() {
        bail!("{} already exists", dir.display());
    }
    let sdk = match sdk {
        Some(p) => p,
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("sdk"),
    };
    let sdk = sdk.canonicalize().with_context(|| {
        format!(
            "cannot find the wasmscale SDK at {}; pass --sdk DIR",
            sdk.display()
        )
    })?;
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
