//! `wasmscale eval`: snapshots from a file through a policy, one line per
//! decision. Each snapshot goes through the same [`Scaler::tick`] as `run`,
//! with the guardrails off unless a config's scaler is given, so a threshold
//! table shows what the policy decides (and, with `--config`, what would be
//! acted on).

use super::load_params;
use crate::actuators::{Actuator, ActuatorError, Observed};
use crate::config::ScalerConfig;
use crate::controller::Scaler;
use crate::host::{Host, PolicySource};
use crate::model::Snapshot;
use crate::snapshot;
use crate::sources::{Reading, Source, SourceError};
use anyhow::{Context as _, Result};
use futures_core::future::BoxFuture;
use std::io::{BufRead as _, Write as _};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

/// What `eval` reads and how it runs.
#[derive(Debug)]
pub struct EvalArgs<'a> {
    pub policy: &'a str,
    pub params: Option<&'a str>,
    pub snapshots: &'a Path,
    /// The count before the first snapshot.
    pub replicas: u32,
    /// For snapshots without `time_ms`.
    pub interval_ms: u32,
    /// Guardrails (bounds, behavior, cooldowns, ...) from this config's scaler.
    pub config: Option<&'a Path>,
    pub scaler: Option<&'a str>,
}

pub fn eval(host: &Host, args: &EvalArgs<'_>) -> Result<std::process::ExitCode> {
    let source = PolicySource::parse(args.policy);
    let params: serde_json::Value = serde_json::from_str(&load_params(&source, args.params)?)
        .context("params are not valid JSON")?;
    let lines = read_lines(args.snapshots)?;
    let (config, base) = scaler_config(host, args, &params)?;
    let script = Script::new(args.replicas);
    let builder = Scaler::builder(&config, &base, host)
        .io(Box::new(script.clone()), Box::new(script.clone()));
    let builder = if args.config.is_some() {
        builder
    } else {
        builder.unguarded()
    };
    // One policy, one scaler: its error needs no scaler name.
    let mut scaler = builder.build().map_err(|e| anyhow::anyhow!(e.cause))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .context("cannot start the runtime")?;
    let mut failures = 0usize;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for (n, (line_no, value)) in lines.into_iter().enumerate() {
        let defaults = snapshot::Defaults {
            time_ms: n as u64 * u64::from(args.interval_ms),
            interval_ms: args.interval_ms,
            current: script.lock().current,
        };
        let (snap, _) = snapshot::from_value(value, defaults)
            .map_err(|e| anyhow::anyhow!("{}:{line_no}: {e}", args.snapshots.display()))?;
        let time_ms = snap.time_ms;
        script.lock().next = Some(snap);
        // The script answers at once: the tick never waits.
        let record = runtime.block_on(scaler.tick(time_ms));
        let mut line = match (&record.decision, record.failures.first()) {
            (Some(d), _) => serde_json::json!({
                "desired": d.desired,
                "spot_fraction": d.spot_fraction,
                "reason": d.reason,
                "fuel": record.fuel,
            }),
            (None, failure) => {
                failures += 1;
                let (message, kind) = failure.map_or(("no decision", "none"), |f| {
                    (f.message.as_str(), f.kind.as_str())
                });
                serde_json::json!({
                    "desired": record.final_replicas,
                    "spot_fraction": null,
                    "reason": format!("held: {message}"),
                    "fuel": null,
                    "error": message,
                    "kind": kind,
                })
            }
        };
        if record.decision.as_ref().is_some_and(|d| d.hold) {
            line["hold"] = true.into();
        }
        if args.config.is_some() {
            line["replicas"] = record.final_replicas.into();
            line["guardrails"] = record
                .guardrails
                .iter()
                .map(|g| serde_json::json!({ "guard": g.guard, "after": g.after, "why": g.why }))
                .collect();
        }
        writeln!(out, "{line}")?;
    }
    if failures > 0 {
        eprintln!("{failures} snapshot(s) failed to evaluate; each held the current replica count");
        return Ok(std::process::ExitCode::FAILURE);
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// Every non-empty line as JSON, parsed before anything runs: bad input
/// fails before any output.
fn read_lines(path: &Path) -> Result<Vec<(usize, serde_json::Value)>> {
    let reader: Box<dyn std::io::BufRead> = if path == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        Box::new(std::io::BufReader::new(file))
    };
    let mut lines = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line =
            line.with_context(|| format!("{}: cannot read line {}", path.display(), i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(&line)
            .map_err(|e| anyhow::anyhow!("{}:{}: malformed JSON: {e}", path.display(), i + 1))?;
        lines.push((i + 1, value));
    }
    Ok(lines)
}

/// The scaler `eval` ticks: the config's (with this policy), or one with
/// no bounds.
fn scaler_config(
    host: &Host,
    args: &EvalArgs<'_>,
    params: &serde_json::Value,
) -> Result<(ScalerConfig, std::path::PathBuf)> {
    let Some(path) = args.config else {
        let config = ScalerConfig::minimal(
            "eval",
            args.policy,
            params,
            0,
            u32::MAX,
            f64::from(args.interval_ms.max(1)) / 1000.0,
        )
        .map_err(anyhow::Error::msg)?;
        // Paths as given (relative to the working directory).
        return Ok((config, std::path::PathBuf::new()));
    };
    let config = crate::controller::load(path, host).map_err(|e| anyhow::anyhow!("{e}"))?;
    let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let mut scaler = match args.scaler {
        Some(name) => config.scalers.into_iter().find(|s| s.name == name),
        None if config.scalers.len() == 1 => config.scalers.into_iter().next(),
        None => anyhow::bail!(
            "{} has {} scalers; say which with --scaler",
            path.display(),
            config.scalers.len()
        ),
    }
    .with_context(|| format!("no such scaler in {}", path.display()))?;
    scaler.policy = args.policy.to_owned();
    scaler.params = serde_json::from_value(params.clone())
        .map_err(|e| anyhow::anyhow!("params must be a JSON object: {e}"))?;
    Ok((scaler, base))
}

/// `eval`'s source and target in one: the snapshot staged for this tick,
/// whole, and the count last set (what a snapshot without
/// `replicas.current` starts from).
#[derive(Debug, Clone)]
struct Script(Arc<Mutex<Staged>>);

#[derive(Debug)]
struct Staged {
    next: Option<Snapshot>,
    current: u32,
}

impl Script {
    fn new(current: u32) -> Self {
        Script(Arc::new(Mutex::new(Staged {
            next: None,
            current,
        })))
    }

    fn lock(&self) -> MutexGuard<'_, Staged> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Source for Script {
    fn read(&mut self) -> BoxFuture<'_, Result<Reading, SourceError>> {
        let reading = match self.lock().next.take() {
            Some(snapshot) => Ok(Reading {
                time_ms: Some(snapshot.time_ms),
                snapshot: Some(snapshot),
                ..Reading::default()
            }),
            None => Err(SourceError::Unavailable("no snapshot staged".into())),
        };
        Box::pin(std::future::ready(reading))
    }
}

impl Actuator for Script {
    fn observe(&mut self) -> BoxFuture<'_, Result<Observed, ActuatorError>> {
        let mut staged = self.lock();
        if let Some(s) = &staged.next {
            // The snapshot says what the target has now.
            staged.current = s.replicas.current;
        }
        let observed = match &staged.next {
            Some(s) => Observed {
                current: s.replicas.current,
                observed: s.replicas.observed,
                ready: s.replicas.ready,
                starting: s.replicas.starting,
                ..Observed::default()
            },
            None => Observed {
                current: staged.current,
                observed: None,
                ready: None,
                starting: None,
                ..Observed::default()
            },
        };
        drop(staged);
        Box::pin(std::future::ready(Ok(observed)))
    }

    fn apply<'a>(
        &'a mut self,
        desired: u32,
        _reason: &'a str,
    ) -> BoxFuture<'a, Result<bool, ActuatorError>> {
        let mut staged = self.lock();
        let changed = staged.current != desired;
        staged.current = desired;
        drop(staged);
        Box::pin(std::future::ready(Ok(changed)))
    }
}
