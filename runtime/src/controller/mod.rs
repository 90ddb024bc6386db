//! The controller: the one place where sources, the policy host, guardrails,
//! actuators and the audit log meet. [`Scaler::tick`] is the tick function that
//! `run` calls on a wall clock, and that `replay` and the simulator call with
//! their own clocks: one code path for all three.

mod changes;
mod daemon;
mod handle;
mod probe;
mod replay;
mod scaler;
mod schedule;
mod swap;
mod watch;

pub use changes::{Applied, ChangeError, ScalerChanges};
pub use daemon::{RunOptions, RunSummary, Service, run};
pub use handle::{
    Controls, Desk, Handle, METRICS_CONTENT_TYPE, Metrics, Notice, ScalerHandle, ScalerStatus,
};
pub use probe::{load, probe};
pub use replay::{ReplayedDecision, replay};
pub use scaler::check_signed;
pub use scaler::{PersistedState, Scaler, ScalerBuilder, SetupCause, SetupError};
pub use schedule::{Scheduler, capped, footprint};
pub use swap::{
    Inspection, Prepared, ShadowStats, SwapError, SwapStep, Swapped, commit, inspect, prepare,
    shadow,
};

/// Milliseconds since the Unix epoch, from the wall clock.
pub fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
