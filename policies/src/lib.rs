//! The built-in policies. Each module is one policy with documented params and
//! native unit tests; the host embeds each as its own component, addressed as
//! `builtin:NAME`, built for the 0.2 contract: each is written against the
//! SDK's snapshot and declares what it reads (`wasmscale_sdk::v2::Declares`),
//! and the SDK's adapter fills the snapshot from each 0.2 tick in the guest.

pub mod predictive;
pub mod queue_depth;
pub mod scheduled;
pub mod spot_mix;
pub mod step_scaling;
pub mod target_tracking;

// The list of built-ins is this crate's features (Cargo.toml): one feature,
// one component, embedded by runtime/build.rs; the host lists them as
// `wasmscale::host::builtin_names()`.

#[cfg(feature = "target-tracking")]
wasmscale_sdk::export_policy_as_v2!(target_tracking::TargetTracking);
#[cfg(feature = "step-scaling")]
wasmscale_sdk::export_policy_as_v2!(step_scaling::StepScaling);
#[cfg(feature = "queue-depth")]
wasmscale_sdk::export_policy_as_v2!(queue_depth::QueueDepth);
#[cfg(feature = "scheduled")]
wasmscale_sdk::export_policy_as_v2!(scheduled::Scheduled);
#[cfg(feature = "predictive")]
wasmscale_sdk::export_policy_as_v2!(predictive::Predictive);
#[cfg(feature = "spot-mix")]
wasmscale_sdk::export_policy_as_v2!(spot_mix::SpotMix);
