//! Hot swap: a new policy version replaces a running scaler's between two
//! of its ticks. Everything that can fail happens before the scaler is
//! touched (configure with its params, smoke-evaluate on its recent
//! snapshots); the scaler's task then only hands the state over and swaps,
//! so a tick never sees half a swap and the pause is a few microseconds.

use crate::host::{CompiledPolicy, PolicyError, PolicyInstance};
use crate::model::Snapshot;
use std::time::Duration;

/// The steps of the swap pipeline, in order: an error names the one that
/// failed, and every failure leaves the old version running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum SwapStep {
    Upload,
    Validate,
    Compile,
    Configure,
    SmokeEvaluate,
    Swap,
}

impl SwapStep {
    pub fn as_str(self) -> &'static str {
        match self {
            SwapStep::Upload => "upload",
            SwapStep::Validate => "validate",
            SwapStep::Compile => "compile",
            SwapStep::Configure => "configure",
            SwapStep::SmokeEvaluate => "smoke-evaluate",
            SwapStep::Swap => "swap",
        }
    }

    /// The step a load error belongs to: what the host refuses before
    /// compiling is validation.
    pub fn of_load_error(e: &PolicyError) -> SwapStep {
        match e {
            PolicyError::Compile(_) | PolicyError::Host(_) => SwapStep::Compile,
            PolicyError::Registry(_) | PolicyError::Read { .. } => SwapStep::Upload,
            _ => SwapStep::Validate,
        }
    }
}

impl std::fmt::Display for SwapStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A swap that did not happen: at which step, for which scaler, and why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{step} failed{}: {message}", scaler.as_ref().map(|s| format!(" for scaler {s}")).unwrap_or_default())]
pub struct SwapError {
    pub step: SwapStep,
    pub scaler: Option<String>,
    pub message: String,
}

impl SwapError {
    pub fn new(step: SwapStep, scaler: Option<&str>, message: impl Into<String>) -> Self {
        SwapError {
            step,
            scaler: scaler.map(str::to_owned),
            message: message.into(),
        }
    }
}

/// What a swapped scaler reports back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Swapped {
    pub scaler: String,
    pub from_digest: String,
    pub to_digest: String,
    /// The old version's state was handed over and the new one took it.
    pub state_handed_over: bool,
    /// Why the new version refused the old state (it then starts fresh).
    pub state_rejected: Option<String>,
    /// How long the scaler's task was held by the swap.
    pub pause_us: u64,
}

/// A request a scaler's task takes between two ticks.
#[derive(Debug)]
pub(crate) enum Command {
    Swap {
        policy: Box<PolicyInstance>,
        label: String,
        reply: tokio::sync::oneshot::Sender<Swapped>,
    },
    Inspect {
        reply: tokio::sync::oneshot::Sender<Inspection>,
    },
    /// Start (or with `None` stop) evaluating a shadow version.
    Shadow {
        policy: Option<Box<(PolicyInstance, String)>>,
        reply: tokio::sync::oneshot::Sender<()>,
    },
}

/// How a shadow version's answers compared with the active one's, since it
/// started shadowing on this scaler.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ShadowStats {
    pub label: String,
    pub digest: String,
    pub evaluations: u64,
    pub failures: u64,
    /// Ticks where both proposed a count.
    pub compared: u64,
    /// Of those, the ones where the counts differed.
    pub differing: u64,
    /// Sum and largest of |shadow - active| over the compared ticks.
    pub total_abs_difference: u64,
    pub max_abs_difference: u32,
}

/// What a running scaler holds now, as its task reports it between ticks.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Inspection {
    /// The policy as it was given (`registry:NAME@3` after a swap).
    pub policy: String,
    pub policy_digest: String,
    pub breaker: Option<crate::guard::BreakerSetting>,
    /// A swapped-in version still watched by its probation.
    pub on_probation: bool,
    /// Consecutive failed ticks (toward the fallback).
    pub failed_ticks: u32,
    pub last_replicas: Option<u32>,
    pub shadow: Option<ShadowStats>,
}

/// Have a scaler evaluate `prepared` as its shadow (or, with `None`, stop).
pub async fn shadow(desk: &super::Desk, prepared: Option<Prepared>) -> Result<(), SwapError> {
    let scaler = Some(desk.scaler.as_str());
    let (reply, answer) = tokio::sync::oneshot::channel();
    desk.commands
        .send(Command::Shadow {
            policy: prepared.map(|p| Box::new((p.policy, p.label))),
            reply,
        })
        .await
        .map_err(|_| SwapError::new(SwapStep::Swap, scaler, "the scaler is no longer running"))?;
    tokio::time::timeout(SWAP_WAIT, answer)
        .await
        .map_err(|_| SwapError::new(SwapStep::Swap, scaler, "the scaler did not answer"))?
        .map_err(|_| SwapError::new(SwapStep::Swap, scaler, "the scaler stopped"))
}

/// Ask a scaler's task what it holds now.
pub async fn inspect(desk: &super::Desk) -> Option<Inspection> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    desk.commands.send(Command::Inspect { reply }).await.ok()?;
    tokio::time::timeout(SWAP_WAIT, answer).await.ok()?.ok()
}

/// A policy made ready for one scaler: configured with its params and
/// smoke-evaluated, waiting to be swapped in.
#[derive(Debug)]
pub struct Prepared {
    pub(crate) scaler: String,
    pub(crate) policy: PolicyInstance,
    pub(crate) label: String,
}

/// Steps 2 (its signature, if the scaler requires one: `signers` are the
/// keys that signed it), 4 and 5 for one scaler: configure `compiled` with the scaler's
/// params and limits, then evaluate it on `snapshots` (the scaler's last
/// recorded ones) in a throwaway instance. A policy that declines a
/// snapshot with its own error passes (it would hold, as the old one may);
/// a trap, a limit or an invalid decision fails the step.
pub fn prepare(
    desk: &super::Desk,
    compiled: &CompiledPolicy,
    label: &str,
    snapshots: &[Snapshot],
    signers: &[String],
) -> Result<Prepared, SwapError> {
    let scaler = Some(desk.scaler.as_str());
    let digest = format!("sha256:{}", compiled.digest());
    super::check_signed(&desk.require_signed_by, &digest, signers)
        .map_err(|why| SwapError::new(SwapStep::Validate, scaler, why))?;
    let compiled = match &desk.limits {
        Some(l) => compiled.with_limits(l.clone()),
        None => compiled.clone(),
    };
    // A deadline missed because this busy machine preempted the call is
    // tried again; a policy that is slow every time still fails.
    let configure = |c: &CompiledPolicy| {
        let mut tries = 0;
        loop {
            match c.instantiate(&desk.params) {
                Err(PolicyError::Deadline { .. }) if tries < CONFIGURE_TRIES => tries += 1,
                other => {
                    return other
                        .map_err(|e| SwapError::new(SwapStep::Configure, scaler, e.to_string()));
                }
            }
        }
    };
    let policy = configure(&compiled)?;
    let (contract, signals) = policy.contract();
    let needs: Vec<&str> = if contract == Some(crate::host::Contract::V2) {
        signals
            .iter()
            .map(|s| crate::host::metric_of(s))
            .filter(|m| desk.unqueried.iter().any(|u| u == m))
            .collect()
    } else {
        desk.unqueried.iter().map(String::as_str).collect()
    };
    if !needs.is_empty() {
        return Err(SwapError::new(
            SwapStep::Configure,
            scaler,
            format!(
                "it reads {}, which this scaler's source does not query (the running version does not read it): reload the config to start this version with it",
                needs.join(", ")
            ),
        ));
    }
    if !snapshots.is_empty() {
        let mut trial = configure(&compiled.with_limits(compiled.limits().deterministic()))?;
        for s in snapshots {
            match trial.evaluate(s) {
                Ok(_) | Err(PolicyError::Rejected(_)) => {}
                Err(e) => {
                    return Err(SwapError::new(
                        SwapStep::SmokeEvaluate,
                        scaler,
                        format!(
                            "on the snapshot of {}: {e}",
                            crate::audit::format_time(s.time_ms)
                        ),
                    ));
                }
            }
        }
    }
    Ok(Prepared {
        scaler: desk.scaler.clone(),
        policy,
        label: label.to_owned(),
    })
}

/// Extra tries of a `configure` that missed its deadline.
const CONFIGURE_TRIES: u32 = 2;

/// How long a swap waits for the scaler's task (busy in a tick).
const SWAP_WAIT: Duration = Duration::from_secs(30);

/// Step 6: hand a prepared policy to its scaler's task, which swaps it in
/// between two ticks, and wait for its report.
pub async fn commit(desk: &super::Desk, prepared: Prepared) -> Result<Swapped, SwapError> {
    let scaler = Some(prepared.scaler.as_str());
    let (reply, answer) = tokio::sync::oneshot::channel();
    desk.commands
        .send(Command::Swap {
            policy: Box::new(prepared.policy),
            label: prepared.label,
            reply,
        })
        .await
        .map_err(|_| SwapError::new(SwapStep::Swap, scaler, "the scaler is no longer running"))?;
    match tokio::time::timeout(SWAP_WAIT, answer).await {
        Ok(Ok(swapped)) => Ok(swapped),
        Ok(Err(_)) => Err(SwapError::new(
            SwapStep::Swap,
            scaler,
            "the scaler stopped before swapping",
        )),
        // The task checks that someone still waits before it swaps: a swap
        // given up on here never happens later.
        Err(_) => Err(SwapError::new(
            SwapStep::Swap,
            scaler,
            format!(
                "the scaler did not take the swap within {}s (a tick is stuck)",
                SWAP_WAIT.as_secs()
            ),
        )),
    }
}
