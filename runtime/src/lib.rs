//! wasmscale: an autoscaler whose scaling logic is a sandboxed WebAssembly
//! component.
//!
//! One tick runs the pipeline, in `run`, `simulate` and `replay` alike:
//! a [`sources`] reading becomes a [`model::Snapshot`] (its JSON form is
//! [`snapshot`]), the [`host`] evaluates the
//! policy in its sandbox, the [`guard`] applies every guardrail in one order,
//! an [`actuators`] target applies the result, and [`audit`] records why.
//! The [`controller`] owns the tick ([`Scaler::tick`]) and the daemon;
//! [`sim`] drives the same tick on a virtual clock; [`config`] is the file's
//! schema and checks; [`registry`] stores policy versions by digest;
//! [`admin`] serves the admin API (the registry, hot swap, the scalers'
//! status and breakers, `/metrics`); [`cli`] is the command line. The layers and each module's public surface
//! are drawn in the README (`cargo test -p wasmscale-tests --test layers`).
//!
//! The names most callers need are re-exported here.

#![deny(unreachable_pub)]

pub mod actuators;
pub mod admin;
pub mod audit;
pub mod cli;
pub mod config;
pub mod controller;
pub mod guard;
pub mod host;
pub mod model;
pub mod registry;
pub mod sim;
pub mod snapshot;
pub mod sources;
pub mod tenants;
pub mod tls;

/// Build a policy crate into a component. The same recipe compiles the built-in
/// policies in this crate's `build.rs`.
#[path = "../build_guest.rs"]
pub mod guest;

pub use actuators::{Actuator, ActuatorError, TargetConfig};
pub use audit::{AuditLog, AuditRecord};
pub use config::{Config, ConfigErrors, ScalerConfig};
pub use controller::{RunOptions, RunSummary, Scaler, SetupError};
pub use guard::{GuardConfig, Verdict};
pub use host::{CompiledPolicy, Host, HostConfig, Limits, PolicyError, PolicyInstance};
pub use model::Snapshot;
pub use sources::{Source, SourceConfig, SourceError};
