//! wasmscale: an autoscaler whose scaling logic is a sandboxed WebAssembly
//! component.
//!
//! - [`host`]: the sandbox (engine, limits, loading, typed errors).
//! - [`guard`]: guardrails applied outside the sandbox, HPA-exact.
//! - [`snapshot`]: the JSON form of a metric snapshot.
//! - [`audit`]: one record per decision that says why; the log, its writer and reader.
//! - [`sim`]: trace-driven simulation on a virtual clock, through the controller.
//! - [`guest`]: building a policy crate into a component (`wasmscale build`).

pub mod actuators;
pub mod admin;
pub mod audit;
pub mod cli;
pub mod config;
pub mod controller;
pub mod guard;
pub mod host;
pub mod sim;
pub mod snapshot;
pub mod sources;

/// Build a policy crate into a component. The same recipe compiles the built-in
/// policies in this crate's `build.rs`.
#[path = "../build_guest.rs"]
pub mod guest;
