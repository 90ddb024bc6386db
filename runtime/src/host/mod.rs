//! The sandbox: one shared engine, policies compiled once (and cached on disk),
//! fast instantiation from `InstancePre`, and every call limited in fuel, time,
//! memory and log volume.
//!
//! Shape, as in Extism: [`Host`] (engine + linker + limits) → [`CompiledPolicy`]
//! (a component ready to instantiate) → [`PolicyInstance`] (a configured
//! instance with its store and last good state).

mod cache;
mod error;
mod limits;
mod signals;
mod v1;
mod v2;

pub use cache::{DiskCache, digest};
pub use error::PolicyError;
pub use limits::Limits;
pub(crate) use signals::signal_field_mut;
pub use signals::{
    COUNT_SIGNALS, count_at, is_count_signal, metric_of, signal_at, signal_index, signal_table,
    signal_values,
};

use limits::{LimitHit, StoreState};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{Component, HasSelf, Linker, types::ComponentItem};
use wasmtime::{Config, Engine, Store, Trap};

/// Bindings for the `wasmscale:policy` world, generated from `wit/`.
#[allow(
    missing_docs,
    clippy::all,
    unused_qualifications,
    reason = "generated bindings"
)]
mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "wasmscale:policy/policy",
        imports: { default: trappable },
    });
}

/// The 0.2 contract (`wit/v0.2`, a draft): declared signals as a dense list,
/// the state returned with the decision, and `hold`.
#[allow(
    missing_docs,
    clippy::all,
    unused_qualifications,
    reason = "generated bindings"
)]
mod bindings_v2 {
    wasmtime::component::bindgen!({
        path: "../wit/v0.2",
        world: "wasmscale:policy/scaler-policy@0.2.0",
        imports: { default: trappable },
    });
}

use crate::model::{PoolTarget, Snapshot};
pub use bindings::wasmscale::policy::types::{Decision, LogLevel};

/// The only interface package a policy may import.
const CONTRACT_PACKAGE: &str = "wasmscale:policy/";
const CONTRACT_VERSION_PREFIX: &str = "@0.1.";
const CONTRACT_V2_PREFIX: &str = "@0.2.";
const REQUIRED_EXPORTS: &[&str] = &["configure", "evaluate", "save-state", "load-state"];
const REQUIRED_EXPORTS_V2: &[&str] = &["configure", "evaluate", "load-state"];
/// The most signals a 0.2 policy may declare.
pub const MAX_SIGNALS: usize = 256;

/// Which version of the contract a component implements, told from its
/// imports (or, for one that imports nothing, its exports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contract {
    V1,
    V2,
}

impl Contract {
    pub fn as_str(self) -> &'static str {
        match self {
            Contract::V1 => "wasmscale:policy@0.1.0",
            Contract::V2 => "wasmscale:policy@0.2.0",
        }
    }
}

mod builtin_table {
    include!(concat!(env!("OUT_DIR"), "/builtins.rs"));
}

/// Built-in policy names.
pub fn builtin_names() -> impl Iterator<Item = &'static str> {
    builtin_table::BUILTINS.iter().map(|(n, _, _)| *n)
}

/// The embedded component bytes of a built-in policy.
pub fn builtin_bytes(name: &str) -> Option<&'static [u8]> {
    builtin_table::BUILTINS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, b, _)| *b)
}

/// Example params of a built-in policy (`policies/params/NAME.json`).
pub fn builtin_example_params(name: &str) -> Option<&'static str> {
    builtin_table::BUILTINS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, _, p)| *p)
}

/// Where a policy comes from: `builtin:NAME`, a path to a `.wasm`
/// component, the registry: `registry:NAME` (its active version) or
/// `sha256:HEX` (exactly that blob), or an OCI registry: `oci://HOST/REPO:TAG`
/// (pulled and cached by the registry; held without the scheme).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicySource {
    Builtin(String),
    File(std::path::PathBuf),
    Registry(String),
    Digest(String),
    Oci(String),
}

/// Where `registry:` and `sha256:` sources are read from: the registry,
/// attached with [`Host::attach_store`]. The host knows only this seam.
pub trait PolicyStore: Send + Sync {
    /// The active version of policy `name`: a label for it
    /// (`registry:NAME@3`) and its bytes.
    fn active(&self, name: &str) -> Result<(String, Vec<u8>), String>;
    /// The bytes of the blob `digest` (`sha256:HEX`), checked against it.
    fn blob(&self, digest: &str) -> Result<Vec<u8>, String>;
    /// The version of policy `name` that shadows the active one, if any.
    fn shadow(&self, name: &str) -> Result<Option<(String, Vec<u8>)>, String>;
    /// The public keys whose signature over `digest` the store checked.
    fn signers(&self, digest: &str) -> Result<Vec<String>, String>;
    /// The component an OCI reference (without `oci://`) names, pulled and
    /// checked, at most `max_bytes`: a label for it and its bytes.
    fn pull(&self, reference: &str, max_bytes: usize) -> Result<(String, Vec<u8>), String>;
}

impl PolicySource {
    /// Parse `builtin:NAME`, `registry:NAME`, `sha256:HEX` or a path.
    pub fn parse(s: &str) -> Self {
        if let Some(name) = s.strip_prefix("builtin:") {
            PolicySource::Builtin(name.to_owned())
        } else if let Some(name) = s.strip_prefix("registry:") {
            PolicySource::Registry(name.to_owned())
        } else if s.starts_with("sha256:") {
            PolicySource::Digest(s.to_owned())
        } else if let Some(reference) = s.strip_prefix("oci://") {
            PolicySource::Oci(reference.to_owned())
        } else {
            PolicySource::File(s.into())
        }
    }

    /// Parse as [`Self::parse`], taking a relative path from `base` (the
    /// directory of the config file that names the policy).
    pub fn resolve(spec: &str, base: &std::path::Path) -> Self {
        match PolicySource::parse(spec) {
            PolicySource::File(p) if p.is_relative() => PolicySource::File(base.join(p)),
            other => other,
        }
    }

    /// Read the component's bytes, at most `max_bytes` of them. A file is
    /// checked before it is read: it must be a regular file (a FIFO would
    /// block, `/dev/zero` never ends) no longer than the limit, and at most
    /// the limit plus one byte is read (it may grow after the check).
    pub fn read(
        &self,
        max_bytes: usize,
    ) -> Result<(String, std::borrow::Cow<'static, [u8]>), PolicyError> {
        match self {
            PolicySource::Builtin(name) => builtin_bytes(name)
                .map(|b| (format!("builtin:{name}"), b.into()))
                .ok_or_else(|| PolicyError::UnknownBuiltin {
                    name: name.clone(),
                    available: builtin_names().collect::<Vec<_>>().join(", "),
                }),
            PolicySource::File(path) => {
                read_bounded(path, max_bytes).map(|b| (path.display().to_string(), b.into()))
            }
            PolicySource::Registry(_) | PolicySource::Digest(_) | PolicySource::Oci(_) => {
                Err(PolicyError::Registry(
                    "registry and oci:// policies need the registry (it caches what is pulled): set `state_dir` in the config".into(),
                ))
            }
        }
    }
}

/// Read a policy file of at most `max_bytes`, refusing anything but a
/// regular file before reading a byte.
fn read_bounded(path: &std::path::Path, max_bytes: usize) -> Result<Vec<u8>, PolicyError> {
    use std::io::Read as _;
    let read_err = |message: String| PolicyError::Read {
        path: path.display().to_string(),
        message,
    };
    let meta =
        regular_file(path).map_err(|e| read_err(format!("{e}; a policy is a .wasm file")))?;
    if meta.len() > max_bytes as u64 {
        return Err(PolicyError::ModuleTooLarge {
            size: usize::try_from(meta.len()).unwrap_or(usize::MAX),
            max: max_bytes,
        });
    }
    let file = std::fs::File::open(path).map_err(|e| read_err(e.to_string()))?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(max_bytes as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| read_err(e.to_string()))?;
    if bytes.len() > max_bytes {
        return Err(PolicyError::ModuleTooLarge {
            size: bytes.len(),
            max: max_bytes,
        });
    }
    Ok(bytes)
}

/// The metadata of `path` if it is a regular file. Checked on the path
/// before anything opens it: a FIFO would block until a writer appears, and
/// `/dev/zero` never ends. Policies, traces and replayed metrics all go
/// through here.
pub(crate) fn regular_file(path: &std::path::Path) -> Result<std::fs::Metadata, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err(format!("not a regular file ({})", file_kind(&meta)));
    }
    Ok(meta)
}

/// What a path is, in words, for an error.
pub(crate) fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if meta.is_dir() {
        "a directory"
    } else if meta.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

impl std::fmt::Display for PolicySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PolicySource::Builtin(n) => write!(f, "builtin:{n}"),
            PolicySource::File(p) => write!(f, "{}", p.display()),
            PolicySource::Registry(n) => write!(f, "registry:{n}"),
            PolicySource::Digest(d) => f.write_str(d),
            PolicySource::Oci(r) => write!(f, "oci://{r}"),
        }
    }
}

/// How to build a [`Host`].
#[derive(Debug, Clone, Default)]
pub struct HostConfig {
    pub limits: Limits,
    /// Compiled-component cache; `None` compiles every time.
    pub cache: Option<DiskCache>,
    /// Use the pooling allocator, sized for this many concurrent instances.
    /// Pays off with many instances that are created often (hot swap, tenants).
    pub pooling_instances: Option<u32>,
    /// Write `/tmp/perf-PID.map` so `perf` names policies' compiled functions
    /// (for profiling the sandbox; off in production).
    pub perf_map: bool,
}

/// Epoch granularity: the deadline is measured in these ticks. Each tick
/// wakes a thread, and on a VM a wake-up costs about 15 µs: at 1 ms that was
/// 1.7 % of a core spent only on keeping time.
const EPOCH_TICK: Duration = Duration::from_millis(2);

/// One engine and linker shared by every policy of a process.
pub struct Host {
    engine: Engine,
    linker: Linker<StoreState>,
    limits: Arc<Limits>,
    cache: Option<DiskCache>,
    /// Policies this host already compiled, by digest: a thousand scalers on one
    /// policy compile it once.
    loaded: std::sync::Mutex<std::collections::HashMap<String, CompiledPolicy>>,
    /// Built-ins by name: their bytes are part of this binary and never change,
    /// so ten thousand scalers on one built-in hash it once, not each.
    builtins: std::sync::Mutex<std::collections::HashMap<String, CompiledPolicy>>,
    /// Where `registry:` and `sha256:` sources come from, once attached.
    store: std::sync::RwLock<Option<Arc<dyn PolicyStore>>>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("limits", &self.limits)
            .field("cache", &self.cache)
            .finish()
    }
}

fn host_err(e: impl std::fmt::Display) -> PolicyError {
    PolicyError::Host(e.to_string())
}

impl Host {
    pub fn new(config: HostConfig) -> Result<Self, PolicyError> {
        let limits = config.limits;
        let mut wasm = Config::new();
        wasm.consume_fuel(true)
            .epoch_interruption(true)
            .wasm_component_model(true)
            // Keep wasmtime's 4 GiB reservation plus guard pages for 32-bit
            // memories: loads and stores then need no explicit bounds checks.
            // It is address space, not memory; the limiter caps actual growth.
            .max_wasm_stack(512 << 10)
            // Deep recursion is told apart by a backtrace full to this cap.
            .wasm_backtrace_max_frames(std::num::NonZeroUsize::new(BACKTRACE_FRAMES));
        if config.perf_map {
            wasm.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        if let Some(n) = config.pooling_instances {
            let mut pool = wasmtime::PoolingAllocationConfig::default();
            pool.total_component_instances(n)
                // A component that imports `host.log` (every SDK policy:
                // its panic hook forwards the message) lowers it through a
                // shim: more core instances and a second table per instance.
                .total_core_instances(n.saturating_mul(4))
                .total_memories(n)
                .total_tables(n.saturating_mul(2))
                .max_memory_size(limits.max_memory_bytes);
            wasm.allocation_strategy(pool);
        }
        let engine = Engine::new(&wasm).map_err(host_err)?;
        spawn_epoch_ticker(&engine);
        let mut linker = Linker::new(&engine);
        bindings::Policy::add_to_linker::<StoreState, HasSelf<StoreState>>(&mut linker, |s| s)
            .map_err(host_err)?;
        bindings_v2::ScalerPolicy::add_to_linker::<StoreState, HasSelf<StoreState>>(
            &mut linker,
            |s| s,
        )
        .map_err(host_err)?;
        Ok(Host {
            engine,
            linker,
            limits: Arc::new(limits),
            cache: config.cache,
            loaded: Default::default(),
            builtins: Default::default(),
            store: Default::default(),
        })
    }

    /// Read `registry:` and `sha256:` sources from `store` from now on.
    pub fn attach_store(&self, store: Arc<dyn PolicyStore>) {
        if let Ok(mut s) = self.store.write() {
            *s = Some(store);
        }
    }

    /// Who signed the blob `digest` (`sha256:HEX`), as the store knows;
    /// an error without a store (only registry policies carry signatures).
    pub fn signers(&self, digest: &str) -> Result<Vec<String>, PolicyError> {
        let store = self
            .store
            .read()
            .ok()
            .and_then(|s| s.clone())
            .ok_or_else(|| {
                PolicyError::Registry("signatures are kept by the registry: set `state_dir`".into())
            })?;
        store.signers(digest).map_err(PolicyError::Registry)
    }

    /// The shadow version of a `registry:` source, if its store has one,
    /// with its label (`registry:NAME@4`).
    pub fn load_shadow(
        &self,
        source: &PolicySource,
    ) -> Option<Result<(String, CompiledPolicy), PolicyError>> {
        let PolicySource::Registry(name) = source else {
            return None;
        };
        let store = self.store.read().ok()?.clone()?;
        match store.shadow(name) {
            Ok(Some((label, bytes))) => Some(self.load_bytes(&label, &bytes).map(|c| (label, c))),
            Ok(None) => None,
            Err(e) => Some(Err(PolicyError::Registry(e))),
        }
    }

    fn read_stored(&self, source: &PolicySource) -> Option<Result<(String, Vec<u8>), PolicyError>> {
        let store = self.store.read().ok()?.clone();
        let result = match (source, store) {
            (PolicySource::Registry(name), Some(store)) => store.active(name),
            (PolicySource::Digest(digest), Some(store)) => {
                store.blob(digest).map(|b| (digest.clone(), b))
            }
            (PolicySource::Oci(reference), Some(store)) => {
                store.pull(reference, self.limits.max_module_bytes)
            }
            _ => return None,
        };
        Some(result.map_err(PolicyError::Registry))
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Forget the policies compiled so far (the next load reads the disk cache
    /// or compiles again). Instances already made are unaffected.
    pub fn forget_loaded(&self) {
        if let Ok(mut loaded) = self.loaded.lock() {
            loaded.clear();
        }
        if let Ok(mut builtins) = self.builtins.lock() {
            builtins.clear();
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Read, validate and compile a policy (or load its compilation from cache).
    pub fn load(&self, source: &PolicySource) -> Result<CompiledPolicy, PolicyError> {
        let builtin = match source {
            PolicySource::Builtin(name) => Some(name),
            _ => None,
        };
        if let Some(name) = builtin
            && let Some(known) = self.builtins.lock().ok().and_then(|b| b.get(name).cloned())
        {
            return Ok(known);
        }
        if let Some(stored) = self.read_stored(source) {
            let (name, bytes) = stored?;
            return self.load_bytes(&name, &bytes);
        }
        let (name, bytes) = source.read(self.limits.max_module_bytes)?;
        let compiled = self.load_bytes(&name, &bytes)?;
        if let Some(builtin) = builtin
            && let Ok(mut b) = self.builtins.lock()
        {
            b.insert(builtin.clone(), compiled.clone());
        }
        Ok(compiled)
    }

    /// Validate and compile component bytes under `name`.
    pub fn load_bytes(&self, name: &str, bytes: &[u8]) -> Result<CompiledPolicy, PolicyError> {
        if bytes.len() > self.limits.max_module_bytes {
            return Err(PolicyError::ModuleTooLarge {
                size: bytes.len(),
                max: self.limits.max_module_bytes,
            });
        }
        let digest = digest(bytes);
        if let Some(known) = self
            .loaded
            .lock()
            .ok()
            .and_then(|l| l.get(&digest).cloned())
        {
            return Ok(known);
        }
        let started = Instant::now();
        let cached = self
            .cache
            .as_ref()
            .and_then(|c| c.load(&self.engine, &digest));
        let from_cache = cached.is_some();
        let component = match cached {
            Some(c) => c,
            None => {
                let c = Component::new(&self.engine, bytes)
                    .map_err(|e| PolicyError::Compile(format!("{e:#}")))?;
                if let Some(cache) = &self.cache
                    && let Err(e) = cache.store(&self.engine, &digest, &c)
                {
                    tracing::warn!(error = %e, "could not cache compiled policy");
                }
                c
            }
        };
        let compile_time = started.elapsed();
        let contract = self.check_contract(&component)?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| PolicyError::Contract(format!("{e:#}")))?;
        let contract_err = |e: wasmtime::Error| PolicyError::Contract(format!("{e:#}"));
        let pre = match contract {
            Contract::V1 => Pre::V1(bindings::PolicyPre::new(pre).map_err(contract_err)?),
            Contract::V2 => Pre::V2(bindings_v2::ScalerPolicyPre::new(pre).map_err(contract_err)?),
        };
        let compiled = CompiledPolicy {
            inner: Arc::new(CompiledInner {
                name: Arc::from(name),
                digest: digest.clone(),
                size: bytes.len(),
                compile_time,
                from_cache,
                pre,
                engine: self.engine.clone(),
                limits: Arc::clone(&self.limits),
            }),
        };
        if let Ok(mut loaded) = self.loaded.lock() {
            loaded.insert(digest, compiled.clone());
        }
        Ok(compiled)
    }

    /// Refuse any import outside the contract, listing every one, and require
    /// the contract's exports.
    fn check_contract(&self, component: &Component) -> Result<Contract, PolicyError> {
        let ty = component.component_type();
        let imports: Vec<&str> = ty.imports(&self.engine).map(|(name, _)| name).collect();
        // The contract's package at another version: a version mismatch, not
        // a forbidden import.
        let versions: Vec<&str> = imports
            .iter()
            .filter_map(|name| Some(name.strip_prefix(CONTRACT_PACKAGE)?.split_once('@')?.1))
            .collect();
        if let Some(version) = versions.iter().find(|v| {
            !v.starts_with(&CONTRACT_VERSION_PREFIX[1..])
                && !v.starts_with(&CONTRACT_V2_PREFIX[1..])
        }) {
            return Err(PolicyError::ContractVersion {
                built_for: (*version).to_owned(),
            });
        }
        // The host provides both versions' `host` interface (only `log`), so
        // a component may import either: the SDK links 0.1's for its panic
        // hook. The exports tell the version.
        let v2_import = versions
            .iter()
            .any(|v| v.starts_with(&CONTRACT_V2_PREFIX[1..]));
        let forbidden: Vec<String> = imports
            .into_iter()
            .filter(|name| {
                !(name.starts_with(CONTRACT_PACKAGE)
                    && (name.contains(CONTRACT_VERSION_PREFIX)
                        || name.contains(CONTRACT_V2_PREFIX)))
            })
            .map(str::to_owned)
            .collect();
        if !forbidden.is_empty() {
            return Err(PolicyError::ForbiddenImports { imports: forbidden });
        }
        let exports: Vec<(String, bool)> = ty
            .exports(&self.engine)
            .map(|(name, item)| {
                (
                    name.to_owned(),
                    matches!(item.ty, ComponentItem::ComponentFunc(_)),
                )
            })
            .collect();
        let exports_save_state = exports.iter().any(|(n, _)| n == "save-state");
        let exports_manifest_world =
            !exports_save_state && exports.iter().any(|(n, _)| n == "evaluate");
        let contract = if exports_manifest_world || (v2_import && !exports_save_state) {
            Contract::V2
        } else {
            Contract::V1
        };
        if v2_import && exports_save_state {
            return Err(PolicyError::Contract(
                "a 0.2 policy exports save-state, a 0.1 function: 0.2 returns its state with each decision; build it for one version".into(),
            ));
        }
        let required = match contract {
            Contract::V1 => REQUIRED_EXPORTS,
            Contract::V2 => REQUIRED_EXPORTS_V2,
        };
        let missing: Vec<&str> = required
            .iter()
            .copied()
            .filter(|r| !exports.iter().any(|(n, is_func)| n == r && *is_func))
            .collect();
        if !missing.is_empty() {
            let found: Vec<&str> = exports.iter().map(|(n, _)| n.as_str()).collect();
            return Err(PolicyError::Contract(format!(
                "missing export(s) {} (found: {}); build with the wasmscale SDK for {}",
                missing.join(", "),
                if found.is_empty() {
                    "none".into()
                } else {
                    found.join(", ")
                },
                contract.as_str()
            )));
        }
        Ok(contract)
    }
}

/// Keep the engine's epoch moving so deadlines fire. The thread ends when the
/// engine is dropped.
fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("wasmscale-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the epoch thread: policy deadlines will not fire; fuel still bounds every call");
    }
}

struct CompiledInner {
    name: Arc<str>,
    digest: String,
    size: usize,
    compile_time: Duration,
    from_cache: bool,
    pre: Pre,
    engine: Engine,
    limits: Arc<Limits>,
}

/// A compiled policy ready to instantiate, for the contract it implements.
#[derive(Clone)]
enum Pre {
    V1(bindings::PolicyPre<StoreState>),
    V2(bindings_v2::ScalerPolicyPre<StoreState>),
}

/// A live instance, for the contract it implements; a 0.2 one with the
/// signals its manifest declared.
enum Guest {
    V1(bindings::Policy),
    V2(bindings_v2::ScalerPolicy, v2::Manifest),
}

/// A validated, compiled policy: cheap to clone, fast to instantiate.
#[derive(Clone)]
pub struct CompiledPolicy {
    inner: Arc<CompiledInner>,
}

impl std::fmt::Debug for CompiledPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledPolicy")
            .field("name", &self.inner.name)
            .field("digest", &self.inner.digest)
            .finish()
    }
}

impl CompiledPolicy {
    pub fn name(&self) -> &str {
        &self.inner.name
    }
    /// SHA-256 of the component bytes.
    pub fn digest(&self) -> &str {
        &self.inner.digest
    }
    pub fn size(&self) -> usize {
        self.inner.size
    }
    /// Time to compile, or to load from the cache when [`Self::from_cache`].
    pub fn compile_time(&self) -> Duration {
        self.inner.compile_time
    }
    pub fn from_cache(&self) -> bool {
        self.inner.from_cache
    }

    /// The same compilation with other per-call limits (a scaler's
    /// `[scaler.limits]`). Fuel, deadline, log and memory limits apply per
    /// store, so nothing is recompiled.
    pub fn with_limits(&self, limits: Limits) -> CompiledPolicy {
        let i = &self.inner;
        CompiledPolicy {
            inner: Arc::new(CompiledInner {
                name: Arc::clone(&i.name),
                digest: i.digest.clone(),
                size: i.size,
                compile_time: i.compile_time,
                from_cache: i.from_cache,
                pre: i.pre.clone(),
                engine: i.engine.clone(),
                limits: Arc::new(limits),
            }),
        }
    }

    /// The limits every call of this policy's instances runs under.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The contract the component implements.
    pub fn contract(&self) -> Contract {
        match self.inner.pre {
            Pre::V1(_) => Contract::V1,
            Pre::V2(_) => Contract::V2,
        }
    }

    /// The very same compilation (not just the same bytes)?
    pub fn same_compilation(&self, other: &CompiledPolicy) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// A new, unconfigured instance: a fresh store and the component instantiated
    /// into it. Building block of [`Self::instantiate`]; benches measure it alone.
    pub fn instantiate_raw(&self) -> Result<RawInstance, PolicyError> {
        let data = StoreState::new(Arc::clone(&self.inner.limits), Arc::clone(&self.inner.name));
        let mut store = Store::new(&self.inner.engine, data);
        store.limiter(|s| s);
        store.epoch_deadline_trap();
        let limits = Arc::clone(&self.inner.limits);
        // A trap in a start function is a trap; anything else (e.g. a full
        // instance pool) is an instantiation failure.
        let (policy, _) = call_metered(&mut store, &limits, |s| match &self.inner.pre {
            Pre::V1(pre) => pre.instantiate(s).map(Guest::V1),
            Pre::V2(pre) => pre
                .instantiate(s)
                .map(|p| Guest::V2(p, v2::Manifest::default())),
        })
        .map_err(|e| match e {
            PolicyError::Trap {
                code: None,
                message,
            } => PolicyError::Instantiate(message),
            e => e,
        })?;
        Ok(RawInstance {
            store,
            policy: Some(policy),
            limits,
        })
    }

    /// Instantiate and configure with `params` (a JSON string).
    pub fn instantiate(&self, params: &str) -> Result<PolicyInstance, PolicyError> {
        let mut raw = self.instantiate_raw()?;
        raw.configure(params)?;
        Ok(PolicyInstance {
            compiled: self.clone(),
            params: params.to_owned(),
            raw: Some(raw),
            last_good_state: Vec::new(),
            rebuilds: 0,
            failed_fuel: 0,
        })
    }
}

/// An instance with its store. Every call is metered; a failed call leaves the
/// instance unusable ([`PolicyInstance`] handles that).
pub struct RawInstance {
    store: Store<StoreState>,
    policy: Option<Guest>,
    limits: Arc<Limits>,
}

/// What one successful call cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallCost {
    pub fuel: u64,
    pub elapsed: Duration,
}

/// Run `f` under fresh per-call budgets (fuel, epoch deadline, log budget) and
/// classify any failure into a [`PolicyError`].
fn call_metered<R>(
    store: &mut Store<StoreState>,
    limits: &Limits,
    f: impl FnOnce(&mut Store<StoreState>) -> wasmtime::Result<R>,
) -> Result<(R, CallCost), PolicyError> {
    store.data_mut().begin_call();
    // Errors here only mean fuel/epochs are not configured, which Host::new does.
    let _ = store.set_fuel(limits.fuel);
    // The epoch may advance right after this call starts: one tick more, so
    // no call is stopped before its deadline (at most one tick after it).
    let ticks = limits.deadline.as_micros().div_ceil(EPOCH_TICK.as_micros()) as u64 + 1;
    store.set_epoch_deadline(ticks);
    let started = Instant::now();
    let result = f(store);
    let elapsed = started.elapsed();
    let fuel = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
    store.data_mut().last_call_fuel = fuel;
    match result {
        Ok(r) => Ok((r, CallCost { fuel, elapsed })),
        Err(e) => Err(classify(store.data(), limits, e)),
    }
}

/// Turn a failed call into a typed error: a limit we recorded first, then the
/// trap code, then whatever else the error says.
fn classify(data: &StoreState, limits: &Limits, e: wasmtime::Error) -> PolicyError {
    match data.hit {
        Some(LimitHit::Memory) => {
            return PolicyError::MemoryLimit {
                limit: limits.max_memory_bytes,
            };
        }
        Some(LimitHit::Log) => {
            return PolicyError::LogLimit {
                max_lines: limits.max_log_lines,
                max_bytes: limits.max_log_bytes,
            };
        }
        None => {}
    }
    // The SDK logs a panic's message at error level right before it traps.
    let panicked = data
        .last_error
        .as_deref()
        .filter(|m| m.starts_with(PANIC_PREFIX));
    let recursing = e
        .downcast_ref::<wasmtime::WasmBacktrace>()
        .is_some_and(is_deep_recursion);
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => PolicyError::OutOfFuel { limit: limits.fuel },
        Some(Trap::Interrupt) => PolicyError::Deadline {
            limit: limits.deadline,
        },
        Some(trap) => match panicked {
            Some(p) => PolicyError::Trap {
                code: Some(format!("{trap:?}")),
                message: format!("{p} ({trap})"),
            },
            None if is_stack_overflow(*trap, recursing) => PolicyError::Trap {
                code: Some("StackOverflow".to_owned()),
                message: format!(
                    "stack overflow: deep recursion ran out of the guest's stack \
                     ({trap}; Rust guests built by wasmscale have a {} KiB stack)",
                    GUEST_STACK_BYTES >> 10
                ),
            },
            None => PolicyError::Trap {
                code: Some(format!("{trap:?}")),
                message: format!("{trap}"),
            },
        },
        None => PolicyError::Trap {
            code: None,
            message: match panicked {
                Some(p) => format!("{p} ({e:#})"),
                None => format!("{e:#}"),
            },
        },
    }
}

/// How a panic's message starts in the log line the SDK writes before it
/// traps (`wasmscale_sdk`'s panic hook).
const PANIC_PREFIX: &str = "panicked at ";

/// The stack that `wasmscale build` (and the built-ins) give a Rust guest.
pub const GUEST_STACK_BYTES: usize = crate::guest::GUEST_STACK_BYTES as usize;

/// Deep recursion in a Rust guest runs its shadow stack (in linear memory,
/// placed first) below address 0, which shows as an out-of-bounds access;
/// wasmtime's own native stack limit shows as a stack overflow. A backtrace
/// full to wasmtime's frame cap (20) of one or two functions tells the first
/// apart from a plain bad pointer.
fn is_stack_overflow(trap: Trap, recursing: bool) -> bool {
    match trap {
        Trap::StackOverflow => true,
        Trap::MemoryOutOfBounds => recursing,
        _ => false,
    }
}

/// Frames kept in a trap's backtrace.
const BACKTRACE_FRAMES: usize = 20;

fn is_deep_recursion(backtrace: &wasmtime::WasmBacktrace) -> bool {
    let frames = backtrace.frames();
    let mut functions: Vec<u32> = frames.iter().map(|f| f.func_index()).collect();
    functions.sort_unstable();
    functions.dedup();
    frames.len() >= BACKTRACE_FRAMES && functions.len() <= 2
}

impl RawInstance {
    fn parts(&mut self) -> Result<(&mut Guest, &mut Store<StoreState>, &Limits), PolicyError> {
        let policy = self
            .policy
            .as_mut()
            .ok_or_else(|| host_err("instance was not created"))?;
        Ok((policy, &mut self.store, &self.limits))
    }

    /// The contract this instance implements.
    pub fn contract(&self) -> Option<Contract> {
        self.policy.as_ref().map(|g| match g {
            Guest::V1(_) => Contract::V1,
            Guest::V2(..) => Contract::V2,
        })
    }

    /// The signals a 0.2 instance declared (empty for 0.1).
    pub fn signals(&self) -> Vec<String> {
        match &self.policy {
            Some(Guest::V2(_, manifest)) => manifest.names(),
            _ => Vec::new(),
        }
    }

    /// The per-replica signals a 0.2 instance declared (`None`: it reads no
    /// replicas, or it is 0.1).
    pub fn replica_signals(&self) -> Option<Vec<String>> {
        match &self.policy {
            Some(Guest::V2(_, manifest)) => manifest.replica_signals().map(<[String]>::to_vec),
            _ => None,
        }
    }

    pub fn configure(&mut self, params: &str) -> Result<(), PolicyError> {
        let (guest, store, limits) = self.parts()?;
        match guest {
            Guest::V1(policy) => call_metered(store, limits, |s| policy.call_configure(s, params))?
                .0
                .map_err(PolicyError::Configure),
            Guest::V2(policy, signals) => {
                let manifest = call_metered(store, limits, |s| policy.call_configure(s, params))?
                    .0
                    .map_err(PolicyError::Configure)?;
                *signals = v2::Manifest::resolve(&manifest)?;
                Ok(())
            }
        }
    }

    /// Evaluate one snapshot; the decision is validated against the hard cap.
    /// A 0.2 policy's new state, when it returned one, comes back beside it
    /// (checked against the state cap); a 0.1 policy's needs [`Self::save_state`].
    pub fn evaluate(
        &mut self,
        snapshot: &Snapshot,
    ) -> Result<(Evaluation, Option<Vec<u8>>), PolicyError> {
        let (guest, store, limits) = self.parts()?;
        match guest {
            Guest::V1(policy) => {
                let (result, cost) = call_metered(store, limits, |s| {
                    policy.call_evaluate(s, &v1::snapshot(snapshot))
                })?;
                let decision = result.map_err(PolicyError::Rejected)?;
                let decision = ValidDecision::check(decision, limits.hard_cap_replicas)?;
                Ok((Evaluation { decision, cost }, None))
            }
            Guest::V2(policy, manifest) => {
                let tick = manifest.tick(snapshot);
                let (result, cost) =
                    call_metered(store, limits, |s| policy.call_evaluate(s, &tick))?;
                let outcome = result.map_err(PolicyError::Rejected)?;
                let decision = v2::decision(outcome.decision, snapshot, limits.hard_cap_replicas)?;
                if let Some(state) = &outcome.state {
                    check_state_size(state.len(), limits)?;
                }
                Ok((Evaluation { decision, cost }, outcome.state))
            }
        }
    }

    /// The policy's state, refused past `max_state_bytes`. A 0.2 policy has
    /// no such call: its state comes with each decision.
    pub fn save_state(&mut self) -> Result<Vec<u8>, PolicyError> {
        let (guest, store, limits) = self.parts()?;
        let Guest::V1(policy) = guest else {
            return Err(host_err("a 0.2 policy returns its state with its decision"));
        };
        let (state, _) = call_metered(store, limits, |s| policy.call_save_state(s))?;
        check_state_size(state.len(), limits)?;
        Ok(state)
    }

    pub fn load_state(&mut self, state: &[u8]) -> Result<(), PolicyError> {
        let (guest, store, limits) = self.parts()?;
        if let Err(e) = check_state_size(state.len(), limits) {
            return Err(PolicyError::LoadState(e.to_string()));
        }
        let called = match guest {
            Guest::V1(policy) => call_metered(store, limits, |s| policy.call_load_state(s, state)),
            Guest::V2(policy, _) => {
                call_metered(store, limits, |s| policy.call_load_state(s, state))
            }
        };
        match called {
            Ok((r, _)) => r.map_err(PolicyError::LoadState),
            Err(e) => Err(PolicyError::LoadState(e.to_string())),
        }
    }
}

fn check_state_size(size: usize, limits: &Limits) -> Result<(), PolicyError> {
    if size > limits.max_state_bytes {
        return Err(PolicyError::StateTooLarge {
            size,
            max: limits.max_state_bytes,
        });
    }
    Ok(())
}

/// A decision that passed the host's sanity checks.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ValidDecision {
    /// Whole replicas (the policy's value rounded up).
    pub desired: u32,
    pub spot_fraction: Option<f64>,
    pub reason: String,
    /// No opinion (a 0.2 `hold`): `desired` is the current count, and the
    /// guardrails record no recommendation for it.
    pub hold: bool,
    /// A count per capacity pool (0.2), summing to `desired`; empty: no
    /// opinion on the mix.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<PoolTarget>,
    /// Replica ids to remove first on scale-in (0.2), each one of the tick's.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub remove_first: Vec<String>,
}

/// Longest reason string kept; longer ones are cut (they end up in audit logs).
const MAX_REASON_BYTES: usize = 512;

impl ValidDecision {
    /// Reject NaN, infinite, negative and absurd decisions; round up fractions.
    pub fn check(d: Decision, hard_cap: u32) -> Result<Self, PolicyError> {
        let invalid = |why: String| Err(PolicyError::InvalidDecision(why));
        if !d.desired.is_finite() {
            return invalid(format!("desired replicas is {}", d.desired));
        }
        if d.desired < 0.0 {
            return invalid(format!("desired replicas is negative ({})", d.desired));
        }
        // Tolerate float noise such as 3.0000000001 from a ratio x count.
        let desired = (d.desired - 1e-9).ceil().max(0.0);
        if desired > f64::from(hard_cap) {
            return invalid(format!(
                "desired replicas {} is above the hard cap of {hard_cap}",
                d.desired
            ));
        }
        if let Some(f) = d.spot_fraction
            && !(f.is_finite() && (0.0..=1.0).contains(&f))
        {
            return invalid(format!("spot fraction {f} is not between 0 and 1"));
        }
        let mut reason = d.reason;
        if reason.len() > MAX_REASON_BYTES {
            let mut cut = MAX_REASON_BYTES;
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            reason.truncate(cut);
            reason.push('…');
        }
        Ok(ValidDecision {
            desired: desired as u32,
            spot_fraction: d.spot_fraction,
            reason,
            hold: false,
            pools: Vec::new(),
            remove_first: Vec::new(),
        })
    }
}

/// A successful evaluation and what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub decision: ValidDecision,
    pub cost: CallCost,
}

/// A configured policy instance that survives its own failures: after a trap or
/// a blown limit it is rebuilt from the compiled policy, reconfigured and given
/// the last good state, before the next call.
pub struct PolicyInstance {
    compiled: CompiledPolicy,
    params: String,
    raw: Option<RawInstance>,
    last_good_state: Vec<u8>,
    rebuilds: u64,
    failed_fuel: u64,
}

impl std::fmt::Debug for PolicyInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyInstance")
            .field("policy", &self.compiled.name())
            .field("rebuilds", &self.rebuilds)
            .finish()
    }
}

impl PolicyInstance {
    pub fn compiled(&self) -> &CompiledPolicy {
        &self.compiled
    }

    /// Fuel the last evaluation burned when it failed (0 after a success,
    /// whose fuel comes back in its [`Evaluation`]): a loop that runs out of
    /// fuel still burned its whole budget, and the metrics count it.
    pub fn failed_fuel(&self) -> u64 {
        self.failed_fuel
    }

    /// Calls into the live instance's sandbox so far, instantiation and
    /// `configure` included (a 0.1 tick is two, a 0.2 tick one).
    pub fn sandbox_calls(&self) -> u64 {
        self.raw.as_ref().map_or(0, |r| r.store.data().calls)
    }

    /// The contract the policy implements, and the signals a 0.2 one declared.
    pub fn contract(&self) -> (Option<Contract>, Vec<String>) {
        self.raw
            .as_ref()
            .map_or((None, Vec::new()), |r| (r.contract(), r.signals()))
    }

    /// The per-replica signals a 0.2 policy declared (`None`: it reads no
    /// replicas, or it is 0.1).
    pub fn replica_signals(&self) -> Option<Vec<String>> {
        self.raw.as_ref().and_then(RawInstance::replica_signals)
    }

    /// How many times the instance was thrown away and rebuilt.
    pub fn rebuilds(&self) -> u64 {
        self.rebuilds
    }

    /// The state the instance would be rebuilt with.
    pub fn last_good_state(&self) -> &[u8] {
        &self.last_good_state
    }

    /// Evaluate, then checkpoint the policy's state. On a failure that poisons
    /// the instance it is dropped, and rebuilt right away (or on the next call if
    /// that fails too).
    pub fn evaluate(&mut self, snapshot: &Snapshot) -> Result<Evaluation, PolicyError> {
        let raw = self.ready()?;
        let result = raw
            .evaluate(snapshot)
            .and_then(|(eval, state)| match state {
                // 0.2: one call; the state came with the decision, if it changed.
                Some(state) => Ok((eval, Some(state))),
                None if raw.contract() == Some(Contract::V2) => Ok((eval, None)),
                // 0.1: a second call for the checkpoint.
                None => match raw.save_state() {
                    Ok(state) => Ok((eval, Some(state))),
                    Err(e) => {
                        // The evaluation before the failed checkpoint burned fuel too.
                        raw.store.data_mut().last_call_fuel += eval.cost.fuel;
                        Err(e)
                    }
                },
            });
        self.failed_fuel = match &result {
            Ok(_) => 0,
            Err(_) => raw.store.data().last_call_fuel,
        };
        match result {
            Ok((eval, state)) => {
                if let Some(state) = state {
                    self.last_good_state = state;
                }
                Ok(eval)
            }
            Err(e) => {
                if e.poisons_instance() {
                    self.discard();
                    let _ = self.ready();
                }
                Err(e)
            }
        }
    }

    /// Restore state (e.g. from a previous process or policy version).
    pub fn load_state(&mut self, state: &[u8]) -> Result<(), PolicyError> {
        let raw = self.ready()?;
        match raw.load_state(state) {
            Ok(()) => {
                self.last_good_state = state.to_vec();
                Ok(())
            }
            Err(e) => {
                self.discard();
                Err(e)
            }
        }
    }

    /// Ask the policy for its state now (a 0.2 policy's is the last it returned).
    pub fn save_state(&mut self) -> Result<Vec<u8>, PolicyError> {
        let raw = self.ready()?;
        if raw.contract() == Some(Contract::V2) {
            return Ok(self.last_good_state.clone());
        }
        let state = raw.save_state();
        if state.is_err() {
            self.discard();
        }
        state
    }

    fn discard(&mut self) {
        self.raw = None;
    }

    /// The live instance, rebuilding it first if the last call poisoned it.
    fn ready(&mut self) -> Result<&mut RawInstance, PolicyError> {
        if self.raw.is_none() {
            let mut raw = self.compiled.instantiate_raw()?;
            raw.configure(&self.params)?;
            if !self.last_good_state.is_empty()
                && let Err(e) = raw.load_state(&self.last_good_state)
            {
                tracing::warn!(policy = self.compiled.name(), error = %e,
                    "rebuilt instance rejected the last good state; continuing without state");
                self.last_good_state.clear();
                raw = self.compiled.instantiate_raw()?;
                raw.configure(&self.params)?;
            }
            self.rebuilds += 1;
            tracing::info!(
                policy = self.compiled.name(),
                rebuilds = self.rebuilds,
                "policy instance rebuilt"
            );
            self.raw = Some(raw);
        }
        self.raw
            .as_mut()
            .ok_or_else(|| host_err("instance missing after rebuild"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(desired: f64, spot: Option<f64>, reason: &str) -> Decision {
        Decision {
            desired,
            spot_fraction: spot,
            reason: reason.into(),
        }
    }

    #[test]
    fn decisions_are_checked_before_anything_acts_on_them() {
        let ok = ValidDecision::check(decision(3.0000000001, Some(0.5), "r"), 100).unwrap();
        assert_eq!(
            (ok.desired, ok.spot_fraction),
            (3, Some(0.5)),
            "float noise is not a replica"
        );
        assert_eq!(
            ValidDecision::check(decision(2.2, None, ""), 100)
                .unwrap()
                .desired,
            3
        );
        for (bad, says) in [
            (decision(f64::NAN, None, ""), "NaN"),
            (decision(f64::INFINITY, None, ""), "inf"),
            (decision(-1.0, None, ""), "negative"),
            (decision(101.0, None, ""), "hard cap"),
            (decision(1.0, Some(1.5), ""), "spot fraction"),
            (decision(1.0, Some(f64::NAN), ""), "spot fraction"),
        ] {
            let e = ValidDecision::check(bad, 100).unwrap_err();
            assert_eq!(e.kind(), "invalid-decision");
            assert!(e.to_string().contains(says), "{e}");
        }
        let long = "é".repeat(1000);
        let cut = ValidDecision::check(decision(1.0, None, &long), 100).unwrap();
        assert!(cut.reason.len() <= MAX_REASON_BYTES + '…'.len_utf8());
        assert!(cut.reason.ends_with('…'));
    }

    #[test]
    fn policy_sources_name_builtins_or_paths_relative_to_their_config() {
        let base = std::path::Path::new("/etc/wasmscale");
        assert_eq!(
            PolicySource::resolve("builtin:queue-depth", base),
            PolicySource::Builtin("queue-depth".into())
        );
        assert_eq!(
            PolicySource::resolve("p.wasm", base),
            PolicySource::File(base.join("p.wasm"))
        );
        assert_eq!(
            PolicySource::resolve("/abs/p.wasm", base),
            PolicySource::File("/abs/p.wasm".into())
        );
        let e = PolicySource::parse("builtin:nope")
            .read(1 << 20)
            .unwrap_err();
        assert_eq!(e.kind(), "unknown-builtin");
        assert!(
            e.to_string().contains("queue-depth"),
            "names what exists: {e}"
        );
    }

    #[test]
    fn every_builtin_has_bytes_and_example_params() {
        let names: Vec<&str> = builtin_names().collect();
        assert!(names.contains(&"target-tracking"), "{names:?}");
        for name in names {
            assert!(builtin_bytes(name).is_some_and(|b| !b.is_empty()), "{name}");
            let params = builtin_example_params(name).unwrap();
            assert!(
                serde_json::from_str::<serde_json::Value>(params).is_ok(),
                "{name}"
            );
        }
    }

    #[test]
    fn policy_files_are_checked_before_a_byte_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.wasm");
        std::fs::write(&big, vec![0u8; 2048]).unwrap();
        let e = PolicySource::File(big).read(1024).unwrap_err();
        assert_eq!(e.kind(), "module-too-large", "{e}");
        let e = PolicySource::File(dir.path().to_path_buf())
            .read(1024)
            .unwrap_err();
        assert_eq!(e.kind(), "read");
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }

    #[test]
    fn deterministic_limits_lift_only_the_deadline() {
        let limits = Limits::default();
        let d = limits.deterministic();
        assert_eq!(d.deadline, limits::REPLAY_DEADLINE.max(limits.deadline));
        assert_eq!(
            Limits {
                deadline: limits.deadline,
                ..d
            },
            limits
        );
    }

    #[test]
    fn errors_that_poison_an_instance_say_it_is_rebuilt() {
        let trap = PolicyError::OutOfFuel { limit: 10 };
        assert!(trap.poisons_instance());
        assert!(trap.outcome().contains("rebuilt"));
        let declined = PolicyError::Rejected("no metric".into());
        assert!(!declined.poisons_instance());
        assert!(declined.outcome().contains("held"));
    }

    #[test]
    fn digests_are_stable_hex_sha256() {
        assert_eq!(
            digest(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
