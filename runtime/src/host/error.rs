//! Every way a policy can fail, as one typed error. The host never panics on a
//! policy's behalf: each failure becomes one of these, with a documented outcome
//! (see [`PolicyError::outcome`]).

use std::time::Duration;

/// A failure to load, configure or run a policy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    #[error("cannot read policy {path}: {message}")]
    Read { path: String, message: String },

    #[error("unknown built-in policy {name:?}; built-ins are: {available}")]
    UnknownBuiltin { name: String, available: String },

    /// A `registry:` or `sha256:` source the registry cannot serve.
    #[error("{0}")]
    Registry(String),

    #[error("policy is {size} bytes, above the {max}-byte limit")]
    ModuleTooLarge { size: usize, max: usize },

    #[error("policy does not compile as a WebAssembly component: {0}")]
    Compile(String),

    #[error("policy imports what the host does not provide: {}; only wasmscale:policy/host (0.1.x or 0.2.x) is available (no WASI, files, network or clocks)", imports.join(", "))]
    ForbiddenImports { imports: Vec<String> },

    #[error(
        "policy was built for contract {built_for}; this host runs wasmscale:policy 0.1.x and 0.2.x"
    )]
    ContractVersion { built_for: String },

    #[error("policy does not implement the wasmscale:policy contract: {0}")]
    Contract(String),

    #[error("cannot instantiate policy: {0}")]
    Instantiate(String),

    #[error("policy rejected its params: {0}")]
    Configure(String),
    /// A 0.2 policy's manifest names what the host cannot give it.
    #[error("policy's manifest is invalid: {0}")]
    Manifest(String),

    #[error("policy rejected its saved state: {0}")]
    LoadState(String),

    #[error("policy trapped: {message}")]
    Trap {
        code: Option<String>,
        message: String,
    },

    #[error("policy ran out of fuel (limit {limit} units per call)")]
    OutOfFuel { limit: u64 },

    #[error("policy exceeded its {limit:?} deadline")]
    Deadline { limit: Duration },

    #[error("policy exceeded its memory limit of {limit} bytes")]
    MemoryLimit { limit: usize },

    #[error("policy exceeded its log budget ({max_lines} lines / {max_bytes} bytes per call)")]
    LogLimit { max_lines: u32, max_bytes: usize },

    #[error("policy state is {size} bytes, above the {max}-byte limit (limits.max_state_bytes)")]
    StateTooLarge { size: usize, max: usize },

    #[error("policy returned an invalid decision: {0}")]
    InvalidDecision(String),

    #[error("policy returned an error: {0}")]
    Rejected(String),

    #[error("compiled-policy cache: {0}")]
    Cache(String),

    #[error("host setup failed: {0}")]
    Host(String),
}

impl PolicyError {
    /// A short stable name for metrics and the audit log.
    pub fn kind(&self) -> &'static str {
        match self {
            PolicyError::Read { .. } => "read",
            PolicyError::UnknownBuiltin { .. } => "unknown-builtin",
            PolicyError::Registry(_) => "registry",
            PolicyError::ModuleTooLarge { .. } => "module-too-large",
            PolicyError::Compile(_) => "compile",
            PolicyError::ForbiddenImports { .. } => "link",
            PolicyError::Contract(_) | PolicyError::ContractVersion { .. } => "contract",
            PolicyError::Instantiate(_) => "instantiate",
            PolicyError::Configure(_) => "configure",
            PolicyError::Manifest(_) => "manifest",
            PolicyError::LoadState(_) => "load-state",
            PolicyError::Trap { .. } => "trap",
            PolicyError::OutOfFuel { .. } => "out-of-fuel",
            PolicyError::Deadline { .. } => "deadline",
            PolicyError::MemoryLimit { .. } => "memory-limit",
            PolicyError::LogLimit { .. } => "log-limit",
            PolicyError::StateTooLarge { .. } => "state-limit",
            PolicyError::InvalidDecision(_) => "invalid-decision",
            PolicyError::Rejected(_) => "policy-error",
            PolicyError::Cache(_) => "cache",
            PolicyError::Host(_) => "host",
        }
    }

    /// Did this failure leave the instance in an unknown state? Then the host
    /// throws it away and builds a fresh one from the last good state.
    pub fn poisons_instance(&self) -> bool {
        matches!(
            self,
            PolicyError::Trap { .. }
                | PolicyError::OutOfFuel { .. }
                | PolicyError::Deadline { .. }
                | PolicyError::MemoryLimit { .. }
                | PolicyError::LogLimit { .. }
                | PolicyError::StateTooLarge { .. }
        )
    }

    /// What happens next, in words (for `check`, logs and the audit record).
    pub fn outcome(&self) -> &'static str {
        match self {
            PolicyError::InvalidDecision(_) | PolicyError::Rejected(_) => {
                "this evaluation is discarded and the current replica count is held"
            }
            e if e.poisons_instance() => {
                "the current replica count is held; the instance is discarded and rebuilt from its last good state"
            }
            _ => "the policy is not loaded; the previous policy (if any) stays in charge",
        }
    }
}
