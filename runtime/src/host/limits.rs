//! Per-evaluation limits and the store data that enforces them.

use super::bindings::wasmscale::policy::{host, types::LogLevel};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// Limits applied to every call into a policy. Defaults suit a scaling policy,
/// which should need microseconds and kilobytes; raise them per scaler if needed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Fuel (roughly, wasm instructions) per call.
    pub fuel: u64,
    /// Wall-clock deadline per call, enforced by epoch interruption.
    #[serde(with = "millis")]
    pub deadline: Duration,
    /// Largest linear memory, bytes.
    pub max_memory_bytes: usize,
    /// Largest table, elements.
    pub max_table_elements: usize,
    /// Instances, memories and tables a component may create.
    pub max_instances: usize,
    pub max_memories: usize,
    pub max_tables: usize,
    /// Largest accepted `.wasm` file, bytes.
    pub max_module_bytes: usize,
    /// Log budget per call.
    pub max_log_lines: u32,
    pub max_log_bytes: usize,
    /// Largest replica count a decision may ask for before it is called absurd.
    pub hard_cap_replicas: u32,
    /// Largest policy state (`save-state`), bytes. It is checkpointed after
    /// every evaluation and persisted with the scaler, so it must stay small.
    pub max_state_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: 1_000_000,
            deadline: Duration::from_millis(10),
            max_memory_bytes: 16 << 20,
            max_table_elements: 10_000,
            max_instances: 8,
            max_memories: 2,
            max_tables: 4,
            max_module_bytes: 16 << 20,
            max_log_lines: 32,
            max_log_bytes: 8 << 10,
            hard_cap_replicas: 100_000,
            max_state_bytes: 64 << 10,
        }
    }
}

impl Limits {
    /// These limits with the wall-clock deadline lifted to [`REPLAY_DEADLINE`],
    /// for simulation and replay: a deadline depends on how busy the machine
    /// is, and a result must not. Fuel still bounds every call.
    pub fn deterministic(&self) -> Limits {
        Limits {
            deadline: self.deadline.max(REPLAY_DEADLINE),
            ..self.clone()
        }
    }
}

/// The wall-clock deadline under [`Limits::deterministic`].
pub(crate) const REPLAY_DEADLINE: Duration = Duration::from_secs(2);

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// Which limit, if any, stopped the last call (set by the limiter and the log
/// import, read by the host to turn a bare trap into a typed error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LimitHit {
    Memory,
    Log,
}

/// Data of one policy's store: its resource limits and its log budget.
pub(crate) struct StoreState {
    pub limits: Arc<Limits>,
    pub hit: Option<LimitHit>,
    pub log_lines: u32,
    pub log_bytes: usize,
    /// Name used in the policy's log lines.
    pub policy: Arc<str>,
    /// Fuel the last call burned, failed calls included.
    pub last_call_fuel: u64,
    /// The last error-level line the policy logged in this call: the SDK
    /// logs a panic's message there just before the trap.
    pub last_error: Option<String>,
    /// Calls into the sandbox so far (instantiation included).
    pub calls: u64,
}

impl StoreState {
    pub(crate) fn new(limits: Arc<Limits>, policy: Arc<str>) -> Self {
        StoreState {
            limits,
            hit: None,
            log_lines: 0,
            log_bytes: 0,
            policy,
            last_call_fuel: 0,
            last_error: None,
            calls: 0,
        }
    }

    /// Reset per-call budgets before a call.
    pub(crate) fn begin_call(&mut self) {
        self.hit = None;
        self.log_lines = 0;
        self.log_bytes = 0;
        self.last_error = None;
        self.calls += 1;
    }
}

impl wasmtime::ResourceLimiter for StoreState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limits.max_memory_bytes {
            self.hit = Some(LimitHit::Memory);
            wasmtime::bail!(
                "memory limit of {} bytes reached",
                self.limits.max_memory_bytes
            );
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.limits.max_table_elements)
    }

    fn instances(&self) -> usize {
        self.limits.max_instances
    }

    fn tables(&self) -> usize {
        self.limits.max_tables
    }

    fn memories(&self) -> usize {
        self.limits.max_memories
    }
}

impl host::Host for StoreState {
    fn log(&mut self, level: LogLevel, message: String) -> wasmtime::Result<()> {
        self.log_lines += 1;
        self.log_bytes += message.len();
        if self.log_lines > self.limits.max_log_lines || self.log_bytes > self.limits.max_log_bytes
        {
            self.hit = Some(LimitHit::Log);
            wasmtime::bail!("log budget exceeded");
        }
        let policy = &*self.policy;
        match level {
            LogLevel::Debug => tracing::debug!(target: "policy", policy, "{message}"),
            LogLevel::Info => tracing::info!(target: "policy", policy, "{message}"),
            LogLevel::Warn => tracing::warn!(target: "policy", policy, "{message}"),
            LogLevel::Error => tracing::error!(target: "policy", policy, "{message}"),
        }
        if matches!(level, LogLevel::Error) {
            self.last_error = Some(message);
        }
        Ok(())
    }
}

impl super::bindings::wasmscale::policy::types::Host for StoreState {}

impl super::bindings_v2::wasmscale::policy::host::Host for StoreState {
    fn log(
        &mut self,
        level: super::bindings_v2::wasmscale::policy::types::LogLevel,
        message: String,
    ) -> wasmtime::Result<()> {
        use super::bindings_v2::wasmscale::policy::types::LogLevel as V2;
        let level = match level {
            V2::Debug => LogLevel::Debug,
            V2::Info => LogLevel::Info,
            V2::Warn => LogLevel::Warn,
            V2::Error => LogLevel::Error,
        };
        host::Host::log(self, level, message)
    }
}

impl super::bindings_v2::wasmscale::policy::types::Host for StoreState {}
