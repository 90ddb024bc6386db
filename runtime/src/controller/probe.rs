//! The policy probe: can each scaler's policy run with what its config gives
//! it? Loading, configuring and one trial evaluation, after the config's own
//! checks (which never start a sandbox) and before `run` starts or a reload
//! swaps anything. `validate`, `run`, reload and `simulate --config` call it.

use crate::config::{Checked, Config, ConfigErrors, ScalerConfig};
use crate::host::{Host, HostConfig, PolicyError, PolicySource, is_count_signal, metric_of};
use std::path::Path;

/// Read a config file, check it and probe its policies: every problem at once.
pub fn load(path: &Path, host: &Host) -> Result<Config, ConfigErrors> {
    let mut checked = crate::config::read(path);
    probe(&mut checked, host);
    checked.into_result()
}

/// Probe every scaler's policy and safety net; each problem is reported in
/// `checked` at the key it concerns.
pub fn probe(checked: &mut Checked, host: &Host) {
    let Some(config) = checked.config().cloned() else {
        return;
    };
    let base = checked.base().to_path_buf();
    for (i, s) in config.scalers.iter().enumerate() {
        let mut reads = Vec::new();
        let finding = probe_policy(s, &base, host, checked.is_flawed(i), &mut reads);
        for metric in &reads {
            checked.read_by_policy(i, metric);
        }
        if let Some((path, message, hint)) = finding {
            checked.report(i, path, &message, hint);
        }
    }
    for (i, s) in config.scalers.iter().enumerate() {
        let Some(net) = &s.safety_net else { continue };
        let source = PolicySource::resolve(&net.policy, &base);
        if let Err(e) = host
            .load(&source)
            .and_then(|c| c.instantiate(&net.params_json()))
        {
            checked.report(
                i,
                &["safety_net"],
                &format!("safety_net policy `{}`: {e}", net.policy),
                None,
            );
        }
    }
}

type Finding = (&'static [&'static str], String, Option<String>);

/// The policy must exist, load, and accept its params; a scaler without
/// other problems also gets a trial evaluation. The metrics a 0.2 policy
/// declared it reads go into `reads`.
fn probe_policy(
    s: &ScalerConfig,
    base: &Path,
    host: &Host,
    flawed: bool,
    reads: &mut Vec<String>,
) -> Option<Finding> {
    let limits_host;
    let host = match &s.limits {
        Some(l) => match Host::new(HostConfig {
            limits: l.clone(),
            ..Default::default()
        }) {
            Ok(h) => {
                limits_host = h;
                &limits_host
            }
            Err(e) => return Some((&["limits"], format!("invalid limits: {e}"), None)),
        },
        None => host,
    };
    let compiled = match host.load(&s.policy_source(base)) {
        Ok(c) => c,
        Err(e) => {
            return Some((
                &["policy"],
                format!("policy `{}`: {e}", s.policy),
                policy_hint(&e),
            ));
        }
    };
    let mut instance = match compiled.instantiate(&s.params_json()) {
        Ok(i) => i,
        Err(e) => {
            let message = match &e {
                PolicyError::Configure(why) => {
                    format!("policy `{}` rejected its params: {why}", s.policy)
                }
                other => format!(
                    "policy `{}` failed while configuring [{}]: {other}",
                    s.policy,
                    other.kind()
                ),
            };
            return Some((&["params"], message, limit_hint(&e)));
        }
    };
    // A 0.2 policy names what it reads. A declared signal the source does
    // not fill is an error when the policy cannot decide without it: its
    // trial evaluation fails or holds. One it decides without is optional to it.
    let (_, signals) = instance.contract();
    reads.extend(signals.iter().map(|s| metric_of(s).to_owned()));
    let unfilled: Vec<&String> = match s.source.provided(&s.metrics, base) {
        // Replica counts come from the target, not the source.
        Ok(provided) => signals
            .iter()
            .filter(|signal| !is_count_signal(signal))
            .filter(|signal| !provided.iter().any(|p| p == metric_of(signal)))
            .collect(),
        Err(_) => Vec::new(),
    };
    // Can the policy decide with what this scaler provides? One evaluation
    // on the static values (or 1.0 per provided metric) finds a metric the
    // params need but nothing fills, even when the params only imply it (a
    // policy's default metric).
    if flawed {
        return None;
    }
    let snapshot = trial_snapshot(s, base)?;
    let outcome = instance.evaluate(&snapshot);
    if let Some(first) = unfilled.first() {
        let why = match &outcome {
            Ok(eval) if !eval.decision.hold => None,
            Ok(eval) => Some(format!("it holds: {}", eval.decision.reason)),
            Err(PolicyError::Rejected(m)) => Some(m.clone()),
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = why {
            let names: Vec<&str> = unfilled.iter().map(|n| n.as_str()).collect();
            return Some((
                &["params"],
                format!(
                    "policy `{}` reads {} (its manifest), which this scaler's source does not fill, and cannot decide without: {why}",
                    s.policy,
                    names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Some(s.source.fill_hint(metric_of(first))),
            ));
        }
    }
    let e = outcome.err()?;
    let (message, hint) = match &e {
        PolicyError::Rejected(m) => (
            format!(
                "policy `{}` cannot decide with the metrics this scaler provides: {m}",
                s.policy
            ),
            Some("fill the metric it names in `metrics` (or the trace)".into()),
        ),
        other => (
            format!(
                "policy `{}` failed its trial evaluation [{}]: {other}",
                s.policy,
                other.kind()
            ),
            limit_hint(other),
        ),
    };
    Some((&["params"], message, hint))
}

/// A snapshot with what this scaler's source provides: static values, a
/// trace's first row, or 1.0 for each Prometheus query.
fn trial_snapshot(s: &ScalerConfig, base: &Path) -> Option<crate::model::Snapshot> {
    let values = s.source.sample(&s.metrics, base)?;
    let current = s.min_replicas.max(1);
    let replicas = crate::model::ReplicaCounts {
        current,
        observed: Some(current),
        ready: Some(current),
        starting: None,
        pending: None,
        min: Some(s.min_replicas),
        max: Some(s.max_replicas),
    };
    let interval_ms = (s.interval_seconds * 1000.0) as u32;
    let now = super::wall_clock_ms();
    crate::snapshot::from_values(
        values.iter().map(|(k, v)| (k.as_str(), *v)),
        now,
        interval_ms,
        replicas,
    )
    .ok()
}

/// What to do about a policy that blew a limit (or trapped) at validation.
fn limit_hint(e: &PolicyError) -> Option<String> {
    use PolicyError as E;
    Some(match e {
        E::OutOfFuel { limit } => format!(
            "it used all {limit} units of fuel: raise [scaler.limits] fuel, or make the policy cheaper"
        ),
        E::Deadline { limit } => format!(
            "it ran past its {} ms deadline: raise [scaler.limits] deadline (ms)",
            limit.as_millis()
        ),
        E::MemoryLimit { limit } => {
            format!("it asked for more than {limit} bytes: raise [scaler.limits] max_memory_bytes")
        }
        E::LogLimit { .. } => {
            "it logged too much: raise [scaler.limits] max_log_lines / max_log_bytes, or log less"
                .into()
        }
        E::StateTooLarge { max, .. } => {
            format!(
                "its state is over {max} bytes: raise [scaler.limits] max_state_bytes, or keep less state"
            )
        }
        E::Configure(_) | E::Rejected(_) => return None,
        _ => "run `wasmscale check` on it for details".into(),
    })
}

fn policy_hint(e: &PolicyError) -> Option<String> {
    match e {
        PolicyError::UnknownBuiltin { .. } => None,
        PolicyError::Read { .. } => {
            Some("paths are relative to the config file; built-ins are builtin:NAME".into())
        }
        _ => Some("run `wasmscale check` on it for details".into()),
    }
}
