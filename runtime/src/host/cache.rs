//! On-disk cache of compiled components, keyed by the component's content digest
//! and the engine's configuration, so a policy is compiled once per machine and
//! later loads are a file map instead of a Cranelift run.

use super::PolicyError;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// A directory of precompiled components. The directory must be writable only by
/// the operator: loading a precompiled artifact trusts its contents.
#[derive(Debug, Clone)]
pub struct DiskCache {
    dir: PathBuf,
}

/// Hex SHA-256 of a component's bytes: its identity in the cache and the audit log.
pub fn digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

impl DiskCache {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DiskCache { dir: dir.into() }
    }

    /// The default location: `$WASMSCALE_CACHE_DIR`, else `$XDG_CACHE_HOME/wasmscale`,
    /// else `~/.cache/wasmscale`, else a directory under the system temp dir.
    pub fn default_dir() -> PathBuf {
        if let Some(d) = std::env::var_os("WASMSCALE_CACHE_DIR") {
            return PathBuf::from(d);
        }
        if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
            return PathBuf::from(d).join("wasmscale");
        }
        if let Some(h) = std::env::var_os("HOME") {
            return PathBuf::from(h).join(".cache").join("wasmscale");
        }
        std::env::temp_dir().join("wasmscale-cache")
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_for(&self, engine: &Engine, digest: &str) -> PathBuf {
        let mut h = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        self.dir.join(format!("{digest}-{:016x}.cwasm", h.finish()))
    }

    /// Load a cached compilation, if there is a valid one.
    pub fn load(&self, engine: &Engine, digest: &str) -> Option<Component> {
        let path = self.path_for(engine, digest);
        if !path.exists() {
            return None;
        }
        // Read into memory rather than map the file: a mapped file that someone
        // truncates or rewrites in place would crash the process (SIGBUS).
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read cache entry");
                return None;
            }
        };
        // SAFETY: the artifact was written by `store` below from a component that
        // this engine configuration compiled; the cache directory is trusted
        // (documented). A truncated or incompatible artifact is detected by
        // wasmtime's header checks and falls back to compiling.
        #[allow(
            unsafe_code,
            reason = "the component exports that wit-bindgen generates"
        )]
        let loaded = unsafe { Component::deserialize(engine, &bytes) };
        match loaded {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring unusable cache entry");
                None
            }
        }
    }

    /// Store a compilation atomically (write, then rename).
    pub fn store(
        &self,
        engine: &Engine,
        digest: &str,
        component: &Component,
    ) -> Result<(), PolicyError> {
        let err =
            |e: &dyn std::fmt::Display| PolicyError::Cache(format!("{}: {e}", self.dir.display()));
        std::fs::create_dir_all(&self.dir).map_err(|e| err(&e))?;
        let bytes = component.serialize().map_err(|e| err(&e))?;
        let path = self.path_for(engine, digest);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes).map_err(|e| err(&e))?;
        std::fs::rename(&tmp, &path).map_err(|e| err(&e))?;
        Ok(())
    }
}
