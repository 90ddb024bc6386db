//! `wasmscale validate` and `wasmscale run`: a config file, checked and probed,
//! then its scalers until a signal.

use crate::host::Host;
use anyhow::{Result, bail};
use std::path::Path;

pub fn validate(host: &Host, path: &Path) -> Result<std::process::ExitCode> {
    match crate::controller::load(path, host) {
        Ok(config) => {
            println!("{}: ok ({} scalers)", path.display(), config.scalers.len());
            Ok(std::process::ExitCode::SUCCESS)
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{} error(s)", errors.errors.len());
            Ok(std::process::ExitCode::FAILURE)
        }
    }
}

pub fn run(host: &Host, path: &Path, ticks: Option<u64>) -> Result<std::process::ExitCode> {
    let config = match crate::controller::load(path, host) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            bail!(
                "{} has {} error(s); nothing was started",
                path.display(),
                errors.errors.len()
            );
        }
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let audit = base.join(&config.audit.path);
    eprintln!(
        "running {} scaler(s); audit log: {}",
        config.scalers.len(),
        audit.display()
    );
    let admin: Vec<Box<dyn crate::controller::Service>> = if config.admin.listen.is_empty() {
        Vec::new()
    } else {
        vec![Box::new(crate::admin::AdminServer::new(
            &config.admin.listen,
        ))]
    };
    let summary = crate::controller::run(
        config,
        base,
        host,
        crate::controller::RunOptions {
            ticks,
            metrics: None,
            reload_from: Some(path.to_path_buf()),
            services: admin,
        },
    )?;
    eprintln!(
        "stopped: {} ticks, {} with failures, {} missed, {} audit write errors",
        summary.ticks, summary.failed_ticks, summary.missed_ticks, summary.audit_errors
    );
    if !summary.lost_scalers.is_empty() {
        for (name, why) in &summary.lost_scalers {
            eprintln!("error: scaler {name} stopped abnormally: its task {why}");
        }
        bail!(
            "{} scaler(s) stopped abnormally (see above)",
            summary.lost_scalers.len()
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
}
