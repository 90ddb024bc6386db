//! `wasmscale audit explain` and `wasmscale replay`: the audit log in words,
//! and its snapshots through another policy.

use super::load_params;
use crate::host::{Host, PolicySource};
use anyhow::{Context as _, Result, bail};
use std::io::Write as _;
use std::path::{Path, PathBuf};

pub fn explain(scaler: &str, file: &Path, since: Option<u64>) -> Result<std::process::ExitCode> {
    let (records, skipped) =
        crate::audit::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let cutoff = since.map(|s| crate::controller::wall_clock_ms().saturating_sub(s * 1000));
    let mut shown = 0;
    for r in records
        .iter()
        .filter(|r| &*r.scaler == scaler && cutoff.is_none_or(|c| r.time_ms >= c))
    {
        println!("{}", crate::audit::explain(r));
        shown += 1;
    }
    if skipped > 0 {
        eprintln!(
            "skipped {skipped} unreadable line(s) (a torn last line after a crash is expected)"
        );
    }
    if shown == 0 {
        let names: std::collections::BTreeSet<&str> = records.iter().map(|r| &*r.scaler).collect();
        bail!(
            "no records for scaler {scaler:?} in {} (scalers there: {})",
            file.display(),
            names.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
}

pub fn replay(
    host: &Host,
    audit: &Path,
    policy: &str,
    params: Option<&str>,
    config: Option<&Path>,
    scaler: Option<&str>,
) -> Result<std::process::ExitCode> {
    let (records, skipped) =
        crate::audit::read(audit).with_context(|| format!("cannot read {}", audit.display()))?;
    let source = PolicySource::parse(policy);
    let params: serde_json::Value = serde_json::from_str(&load_params(&source, params)?)
        .context("params are not valid JSON")?;
    let (config, base) = match config {
        Some(p) => (
            Some(crate::controller::load(p, host).map_err(|e| anyhow::anyhow!("{e}"))?),
            p.parent().unwrap_or(Path::new(".")).to_path_buf(),
        ),
        None => (None, PathBuf::from(".")),
    };
    let records: Vec<_> = records
        .into_iter()
        .filter(|r| scaler.is_none_or(|s| &*r.scaler == s) && r.snapshot.is_some())
        .collect();
    if records.is_empty() {
        bail!("no records with snapshots in {}", audit.display());
    }
    let rows = crate::controller::replay(&records, host, policy, &params, config.as_ref(), &base)?;
    let (mut changed, mut recorded_hours, mut replayed_hours) = (0usize, 0.0f64, 0.0f64);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    writeln!(
        out,
        "{:<20} {:<22} {:>9} {:>9}  reason",
        "time", "scaler", "recorded", "replayed"
    )?;
    for row in &rows {
        let hours = f64::from(row.interval_ms) / 3_600_000.0;
        recorded_hours += f64::from(row.recorded) * hours;
        replayed_hours += f64::from(row.replayed) * hours;
        let mark = if row.replayed != row.recorded {
            changed += 1;
            "*"
        } else {
            " "
        };
        writeln!(
            out,
            "{:<20} {:<22} {:>9} {:>8}{mark}  {}",
            crate::audit::format_time(row.time_ms),
            row.scaler,
            row.recorded,
            row.replayed,
            row.reason
        )?;
    }
    writeln!(
        out,
        "\n{changed} of {} decisions changed; replica-hours {recorded_hours:.2} recorded vs {replayed_hours:.2} replayed ({:+.2})",
        rows.len(),
        replayed_hours - recorded_hours
    )?;
    out.flush()?;
    if skipped > 0 {
        eprintln!("skipped {skipped} unreadable line(s)");
    }
    Ok(std::process::ExitCode::SUCCESS)
}
