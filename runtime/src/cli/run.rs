//! `wasmscale validate` and `wasmscale run`: a config file, checked and probed,
//! then its scalers until a signal.

use crate::host::Host;
use crate::registry::Registry;
use anyhow::{Context as _, Result, bail};
use std::path::Path;
use std::sync::Arc;

/// Open the registry under the config's `state_dir` (`STATE_DIR/registry`)
/// and read `registry:` and `sha256:` policies from it. A config without a
/// `state_dir` has no registry.
pub fn open_registry(host: &Host, path: &Path) -> Result<Option<Arc<Registry>>> {
    let checked = crate::config::read(path);
    let Some(dir) = checked.config().and_then(|c| c.state_dir.clone()) else {
        return Ok(None);
    };
    let dir = checked.base().join(dir).join("registry");
    let registry = Arc::new(
        Registry::open(&dir)
            .with_context(|| format!("cannot open the policy registry in {}", dir.display()))?,
    );
    host.attach_store(registry.clone());
    Ok(Some(registry))
}

pub fn validate(host: &Host, path: &Path) -> Result<std::process::ExitCode> {
    open_registry(host, path)?;
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

pub fn run(
    host: Host,
    path: &Path,
    ticks: Option<u64>,
    watch: bool,
) -> Result<std::process::ExitCode> {
    let summary = serve(Arc::new(host), path, ticks, watch)?;
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

/// What `wasmscale run` does: the config's scalers and those the admin API
/// created (stored in the registry), the admin server beside them, SIGHUP
/// (and, with `watch`, a change of the file) reloading it, until a signal
/// or `ticks` ticks per scaler.
pub fn serve(
    host: Arc<Host>,
    path: &Path,
    ticks: Option<u64>,
    watch: bool,
) -> Result<crate::controller::RunSummary> {
    let registry = open_registry(&host, path)?;
    let config = match crate::controller::load(path, &host) {
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
    let managed = registry
        .as_ref()
        .map(|r| crate::admin::stored_scalers(r, &host, base, &config))
        .unwrap_or_default();
    let audit = base.join(&config.audit.path);
    eprintln!(
        "running {} scaler(s) from the file and {} created through the API; audit log: {}",
        config.scalers.len(),
        managed.len(),
        audit.display()
    );
    let tenants = match (&config.admin.auth, &config.state_dir) {
        (crate::config::AdminAuth::Tokens, Some(dir)) => {
            let dir = base.join(dir);
            let tenants = crate::tenants::Tenants::open(&dir)
                .with_context(|| format!("cannot open the tenants in {}", dir.display()))?;
            let token = dir.join("operator.token");
            if tenants
                .bootstrap_operator(&token)
                .with_context(|| format!("cannot write {}", token.display()))?
            {
                eprintln!(
                    "the admin API needs tokens: an operator token was written to {} (readable by this user only)",
                    token.display()
                );
            }
            tenants.set_tiers(config.tiers.clone());
            Some(Arc::new(tenants))
        }
        _ => None,
    };
    let admin: Vec<Box<dyn crate::controller::Service>> = if config.admin.listen.is_empty() {
        Vec::new()
    } else {
        let mut server = crate::admin::AdminServer::new(&config.admin.listen);
        if let Some(r) = registry {
            server = server.with_registry(r, host.clone());
        }
        if let Some(t) = &tenants {
            server = server.with_tenants(t.clone());
        }
        vec![Box::new(server)]
    };
    Ok(crate::controller::run(
        config,
        base,
        &host,
        crate::controller::RunOptions {
            ticks,
            metrics: None,
            reload_from: Some(path.to_path_buf()),
            watch,
            services: admin,
            managed,
            tenants,
        },
    )?)
}
