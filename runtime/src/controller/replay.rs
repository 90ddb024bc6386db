//! `wasmscale replay`: recorded snapshots through another policy, with the
//! same tick.

use super::scaler::{Scaler, SetupCause, SetupError};
use crate::actuators::Memory;
use crate::audit::AuditRecord;
use crate::config::{Config, ScalerConfig};
use crate::host::Host;
use crate::sources::Recorded;
use std::path::Path;

/// One decision of `replay`, beside the one recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayedDecision {
    pub time_ms: u64,
    pub scaler: String,
    pub recorded: u32,
    pub replayed: u32,
    /// The replayed policy's reason, or why the tick held.
    pub reason: String,
    /// The snapshot's interval, for replica-hours.
    pub interval_ms: u32,
}

/// Run recorded snapshots through another policy with the same tick as `run`
/// and `simulate` ([`Scaler::tick`]): the same missing-metric and fallback
/// rules and guardrails. Each scaler replays closed-loop: its current count is
/// what the replayed policy last set, starting from the first record's count.
/// Guardrails come from `config`'s scaler of the same name; without one, from
/// the defaults a config would give, with the snapshots' min and max.
pub fn replay(
    records: &[AuditRecord],
    host: &Host,
    policy: &str,
    params: &serde_json::Value,
    config: Option<&Config>,
    base: &Path,
) -> Result<Vec<ReplayedDecision>, SetupError> {
    let mut names: Vec<&str> = Vec::new();
    for r in records {
        if r.snapshot.is_some() && !names.contains(&&*r.scaler) {
            names.push(&r.scaler);
        }
    }
    let mut out = Vec::new();
    for name in names {
        let mine: Vec<&AuditRecord> = records
            .iter()
            .filter(|r| &*r.scaler == name && r.snapshot.is_some())
            .collect();
        let Some(first) = mine.first() else { continue };
        let Some(first_snapshot) = first.snapshot.as_ref() else {
            continue;
        };
        let fail = |cause: SetupCause| SetupError::new(name, cause);
        let scaler_config = match config.and_then(|c| c.scalers.iter().find(|s| s.name == name)) {
            Some(s) => {
                let mut s = s.clone();
                s.policy = policy.to_owned();
                s.params = serde_json::from_value(params.clone()).map_err(|e| {
                    fail(SetupCause::Config(format!(
                        "params must be a JSON object: {e}"
                    )))
                })?;
                s
            }
            None => ScalerConfig::minimal(
                name,
                policy,
                params,
                first_snapshot.replicas.min.unwrap_or(0),
                first_snapshot.replicas.max.unwrap_or(u32::MAX),
                f64::from(first_snapshot.interval_ms.max(1)) / 1000.0,
            )
            .map_err(|e| fail(SetupCause::Config(e)))?,
        };
        let recorded = Recorded::new(
            mine.iter()
                .filter_map(|r| r.snapshot.clone().map(|s| (s, r.missing.clone()))),
        );
        let mut scaler = Scaler::with_io(
            &scaler_config,
            base,
            host,
            Box::new(recorded),
            Box::new(Memory::new(first.previous_replicas)),
        )?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| fail(SetupCause::Runtime(e)))?;
        for r in mine {
            // The recorded source and the memory target never wait.
            let tick = runtime.block_on(scaler.tick(r.time_ms));
            let reason = match (&tick.decision, tick.failures.first()) {
                (Some(d), _) => d.reason.clone(),
                (None, Some(f)) => format!("held: {}", f.message),
                (None, None) => "held".into(),
            };
            out.push(ReplayedDecision {
                time_ms: r.time_ms,
                scaler: name.to_owned(),
                recorded: r.final_replicas,
                replayed: tick.final_replicas,
                reason,
                interval_ms: r.snapshot.as_ref().map_or(0, |s| s.interval_ms),
            });
        }
    }
    Ok(out)
}
