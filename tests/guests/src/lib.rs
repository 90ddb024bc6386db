//! Hostile policies: each module misbehaves in one way, and is exported as its
//! own component when its feature is on. The host must turn each into a typed
//! error and stay healthy.
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    reason = "hostile fixtures panic on purpose"
)]

use wasmscale_sdk::{Decision, Snapshot};

pub mod bad_decision;
pub mod deep_recursion;
pub mod flaky_counter;
pub mod huge_state;
pub mod infinite_loop;
pub mod load_state_panic;
pub mod log_spam;
pub mod memory_bomb;
pub mod sleeper;
pub mod unreachable;
#[cfg(feature = "v2-exports-save-state")]
mod v2_exports_save_state;
#[cfg(feature = "v2-queue")]
pub mod v2_queue;

#[cfg(feature = "infinite-loop")]
wasmscale_sdk::export_policy!(infinite_loop::InfiniteLoop);
#[cfg(feature = "memory-bomb")]
wasmscale_sdk::export_policy!(memory_bomb::MemoryBomb);
#[cfg(feature = "deep-recursion")]
wasmscale_sdk::export_policy!(deep_recursion::DeepRecursion);
#[cfg(feature = "unreachable")]
wasmscale_sdk::export_policy!(unreachable::Unreachable);
#[cfg(feature = "bad-decision")]
wasmscale_sdk::export_policy!(bad_decision::BadDecision);
#[cfg(feature = "log-spam")]
wasmscale_sdk::export_policy!(log_spam::LogSpam);
#[cfg(feature = "load-state-panic")]
wasmscale_sdk::export_policy!(load_state_panic::LoadStatePanic);
#[cfg(feature = "flaky-counter")]
wasmscale_sdk::export_policy!(flaky_counter::FlakyCounter);
#[cfg(feature = "huge-state")]
wasmscale_sdk::export_policy!(huge_state::HugeState);
#[cfg(feature = "sleeper")]
wasmscale_sdk::export_policy!(sleeper::Sleeper);
#[cfg(feature = "v2-queue")]
wasmscale_sdk::export_policy_v2!(v2_queue::V2Queue);

/// Hold the current count: what the fixtures return when they behave.
pub(crate) fn hold(s: &Snapshot) -> Result<Decision, String> {
    Ok(Decision::hold(s, "hold"))
}

/// A policy whose configure accepts anything.
pub(crate) fn accept(_params: &str) -> Result<(), String> {
    Ok(())
}
