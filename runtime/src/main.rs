//! The `wasmscale` command line.

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use wasmscale::host::{self, DiskCache, Host, HostConfig, PolicyError, PolicySource, Snapshot};
use wasmscale::snapshot;

#[derive(Parser)]
#[command(
    name = "wasmscale",
    version,
    about = "An autoscaler whose scaling logic is a sandboxed WebAssembly component.",
    long_about = "An autoscaler whose scaling logic is a sandboxed WebAssembly component.\n\n\
        A policy is a .wasm component that implements wasmscale:policy@0.1.0 (see wit/). \
        It runs under fuel, deadline, memory and log limits; the host checks every decision \
        before anything acts on it. Policies are named by path or as builtin:NAME.",
    after_help = "Examples:\n  \
        wasmscale check builtin:target-tracking\n  \
        wasmscale eval builtin:step-scaling --params examples/seed-thresholds/params.json \\\n      \
        --snapshots examples/seed-thresholds/snapshots.jsonl\n  \
        wasmscale new my-policy && cd my-policy && wasmscale build && wasmscale check my_policy.wasm"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,

    /// Where compiled policies are cached [default: $WASMSCALE_CACHE_DIR, else ~/.cache/wasmscale].
    #[arg(long, global = true, value_name = "DIR")]
    cache_dir: Option<PathBuf>,

    /// Compile policies every time instead of using the cache.
    #[arg(long, global = true)]
    no_cache: bool,

    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    #[command(flatten)]
    limits: LimitArgs,
}

/// Per-call sandbox limits (defaults in parentheses).
#[derive(clap::Args)]
struct LimitArgs {
    /// Fuel per call, roughly wasm instructions (1000000).
    #[arg(long, global = true, value_name = "UNITS")]
    fuel: Option<u64>,
    /// Wall-clock deadline per call (10).
    #[arg(long, global = true, value_name = "MS")]
    deadline_ms: Option<u64>,
    /// Largest linear memory (16).
    #[arg(long, global = true, value_name = "MIB")]
    max_memory_mib: Option<usize>,
}

impl LimitArgs {
    fn apply(&self, mut limits: host::Limits) -> Result<host::Limits> {
        if let Some(f) = self.fuel {
            if f == 0 {
                bail!("--fuel must be > 0");
            }
            limits.fuel = f;
        }
        if let Some(ms) = self.deadline_ms {
            if ms == 0 {
                bail!("--deadline-ms must be > 0");
            }
            limits.deadline = std::time::Duration::from_millis(ms);
        }
        if let Some(mib) = self.max_memory_mib {
            if mib == 0 || mib > 4096 {
                bail!("--max-memory-mib must be between 1 and 4096");
            }
            limits.max_memory_bytes = mib << 20;
        }
        Ok(limits)
    }
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Print a scaler's decisions in words.
    #[command(
        after_help = "Example:\n  wasmscale audit explain llm-chat --file wasmscale-audit.jsonl --since 3600"
    )]
    Explain {
        scaler: String,
        /// The audit log.
        #[arg(long, default_value = "wasmscale-audit.jsonl")]
        file: PathBuf,
        /// Only records from the last N seconds.
        #[arg(long, value_name = "SECONDS")]
        since: Option<u64>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a policy: imports, exports and contract version, compile, and a smoke evaluation.
    #[command(after_help = "Examples:\n  \
        wasmscale check builtin:predictive\n  \
        wasmscale check ./my_policy.wasm --params params.json\n\n\
        Prints the size, compile time and fuel per evaluation. Built-ins are checked with their \
        example params (policies/params/NAME.json) unless --params is given. Exit status is \
        non-zero when the policy cannot be loaded, rejects its params, or traps or exceeds a \
        limit on the smoke snapshot.")]
    Check {
        /// A .wasm component path, or builtin:NAME.
        policy: String,
        /// Params: a JSON file, or inline JSON starting with `{`.
        #[arg(long, value_name = "FILE|JSON")]
        params: Option<String>,
    },

    /// Evaluate a sequence of snapshots (JSON lines), carrying the policy's state.
    #[command(after_help = "Examples:\n  \
        wasmscale eval builtin:step-scaling --params examples/seed-thresholds/params.json \\\n      \
        --snapshots examples/seed-thresholds/snapshots.jsonl\n  \
        echo '{\"queue_depth\": 42}' | wasmscale eval builtin:queue-depth --snapshots -\n\n\
        Prints one JSON decision per line: desired, spot_fraction, reason, fuel. A snapshot \
        without replicas.current gets the previous decision (starting from --replicas), so \
        threshold tables run as a closed loop. When the policy fails on a snapshot the line \
        holds the current count and says why (error, kind); the exit status is then 1.\n\n\
        Snapshot JSON uses the WIT record's field names in snake_case, e.g.\n  \
        {\"time_ms\": 0, \"replicas\": {\"current\": 2}, \"request_rate\": 120, \"gpu_utilization\": 0.8}")]
    Eval {
        /// A .wasm component path, or builtin:NAME.
        policy: String,
        /// Params: a JSON file, or inline JSON starting with `{`.
        #[arg(long, value_name = "FILE|JSON")]
        params: Option<String>,
        /// Snapshots, one JSON object per line (`-` for stdin).
        #[arg(long, value_name = "FILE.jsonl")]
        snapshots: PathBuf,
        /// Replica count before the first snapshot.
        #[arg(long, default_value_t = 1)]
        replicas: u32,
        /// Tick interval used for snapshots without time_ms (time_ms = line index x interval).
        #[arg(long, default_value_t = 15_000, value_name = "MS")]
        interval_ms: u32,
    },

    /// Scaffold a policy crate that builds to a component with one command.
    #[command(after_help = "Example:\n  \
        wasmscale new gpu-queue && cd gpu-queue && cargo test && wasmscale build")]
    New {
        /// Crate name (also the directory created).
        name: String,
        /// Path to the wasmscale SDK [default: the SDK this binary was built from].
        #[arg(long, value_name = "DIR")]
        sdk: Option<PathBuf>,
    },

    /// Validate a config file: every error at once, with file:line:column and a hint.
    #[command(
        after_help = "Example:\n  wasmscale validate examples/configs/three-tier-saas.toml\n\n\
        Checks syntax, unknown keys (with the nearest valid name), bounds, intervals, that each \
        policy loads and accepts its params, and that every metric the params need is filled by \
        the scaler's source. `run` performs the same validation at start."
    )]
    Validate { config: PathBuf },

    /// Run the scalers of a config file until SIGTERM or Ctrl-C.
    #[command(
        after_help = "Examples:\n  wasmscale run examples/configs/gpu-inference.toml\n  \
        wasmscale run examples/configs/gpu-inference.toml --ticks 5\n\n\
        Each scaler ticks on its own interval: read the source, evaluate the policy in its sandbox, \
        apply the guardrails, act, and append one audit record (see `wasmscale audit explain`). \
        On SIGTERM in-flight ticks finish and the audit log is flushed. On SIGHUP the config is \
        re-read and validated: if valid, the scalers are replaced and each keeps its state (guard \
        windows, policy memory); if not, the errors are logged and the running scalers go on."
    )]
    Run {
        config: PathBuf,
        /// Stop each scaler after N ticks (for trials and tests).
        #[arg(long, value_name = "N")]
        ticks: Option<u64>,
    },

    /// Read the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),

    /// Run recorded snapshots through another policy, with the same guardrails, and compare.
    #[command(
        after_help = "Example:\n  wasmscale replay wasmscale-audit.jsonl --policy builtin:predictive \\\n      \
        --params policies/params/predictive.json --config examples/configs/gpu-inference.toml\n\n\
        Prints the recorded and the replayed replica count side by side for every record (a `*` \
        marks a change) and a summary: decisions changed and replica-hours delta. Guardrails \
        come from --config (the record's scaler); without it, only min/max from the snapshots."
    )]
    Replay {
        audit: PathBuf,
        /// The other policy: a .wasm path or builtin:NAME.
        #[arg(long)]
        policy: String,
        /// Its params: a JSON file, or inline JSON starting with `{`.
        #[arg(long, value_name = "FILE|JSON")]
        params: Option<String>,
        /// The config the records came from, for the guardrails.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Only this scaler's records.
        #[arg(long)]
        scaler: Option<String>,
    },

    /// Build a policy crate (in DIR) into a component: DIR/<crate>.wasm.
    #[command(after_help = "Example:\n  \
        wasmscale build examples/my-first-policy && wasmscale check examples/my-first-policy/my_first_policy.wasm\n\n\
        Runs `cargo build --release --target wasm32-unknown-unknown` and wraps the module as a \
        component. Needs the target: `rustup target add wasm32-unknown-unknown`.")]
    Build {
        /// The policy crate's directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Where to write the component [default: DIR/<crate>.wasm].
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn run(cli: Cli) -> Result<std::process::ExitCode> {
    let cache = (!cli.no_cache)
        .then(|| DiskCache::new(cli.cache_dir.clone().unwrap_or_else(DiskCache::default_dir)));
    let limits = cli.limits.apply(host::Limits::default())?;
    let make_host = || {
        Host::new(HostConfig {
            cache: cache.clone(),
            limits: limits.clone(),
            ..HostConfig::default()
        })
    };
    match cli.command {
        Command::Check { policy, params } => check(&make_host()?, &policy, params.as_deref()),
        Command::Eval {
            policy,
            params,
            snapshots,
            replicas,
            interval_ms,
        } => eval(
            &make_host()?,
            &policy,
            params.as_deref(),
            &snapshots,
            replicas,
            interval_ms,
        ),
        Command::Validate { config } => validate(&make_host()?, &config),
        Command::Run { config, ticks } => run_config(&make_host()?, &config, ticks),
        Command::Audit(AuditCommand::Explain {
            scaler,
            file,
            since,
        }) => explain(&scaler, &file, since),
        Command::Replay {
            audit,
            policy,
            params,
            config,
            scaler,
        } => replay(
            &make_host()?,
            &audit,
            &policy,
            params.as_deref(),
            config.as_deref(),
            scaler.as_deref(),
        ),
        Command::New { name, sdk } => {
            new_policy(&name, sdk).map(|()| std::process::ExitCode::SUCCESS)
        }
        Command::Build { dir, out } => build(&dir, out).map(|()| std::process::ExitCode::SUCCESS),
    }
}

/// Params from `--params` (file or inline JSON), else a built-in's example params, else `{}`.
fn load_params(source: &PolicySource, params: Option<&str>) -> Result<String> {
    let text = match params {
        Some(p) if p.trim_start().starts_with('{') => p.to_owned(),
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("cannot read params file {p}"))?
        }
        None => match source {
            PolicySource::Builtin(name) => host::builtin_example_params(name)
                .unwrap_or("{}")
                .to_owned(),
            PolicySource::File(_) => "{}".to_owned(),
        },
    };
    serde_json::from_str::<serde_json::Value>(&text).context("params are not valid JSON")?;
    Ok(text)
}

/// A snapshot with every signal present, for smoke evaluations.
fn smoke_snapshot() -> Result<Snapshot> {
    let text = r#"{"time_ms": 1767261600000, "interval_ms": 15000,
        "replicas": {"current": 3, "observed": 3, "ready": 3, "starting": 0, "pending": 0, "min": 1, "max": 10},
        "gpu_utilization": 0.72, "gpu_memory_utilization": 0.6, "cpu_utilization": 0.45,
        "queue_depth": 24, "request_rate": 30, "tokens_per_second": 5200,
        "latency_p50_ms": 180, "latency_p95_ms": 620, "latency_p99_ms": 910, "batch_seconds": 2.0,
        "ttft_p95_ms": 340, "itl_p95_ms": 45, "kv_cache_utilization": 0.5, "oldest_queued_seconds": 4,
        "cost": {"on_demand_per_hour": 2.5, "spot_per_hour": 0.9, "spot_interruption_rate": 0.05},
        "pods": [
          {"state": "ready", "metrics": [{"name": "cpu", "value": 0.45}], "request": 1.0},
          {"state": "ready", "metrics": [{"name": "cpu", "value": 0.5}], "request": 1.0},
          {"state": "ready", "metrics": [{"name": "cpu", "value": 0.4}], "request": 1.0}]}"#;
    let defaults = snapshot::Defaults {
        time_ms: 0,
        interval_ms: 15_000,
        current: 3,
    };
    snapshot::from_json(text, defaults)
        .map(|(s, _)| s)
        .map_err(|e| anyhow::anyhow!("smoke snapshot: {e}"))
}

fn check(host: &Host, policy: &str, params: Option<&str>) -> Result<std::process::ExitCode> {
    let source = PolicySource::parse(policy);
    let params = load_params(&source, params)?;
    let compiled = host.load(&source)?;
    println!("policy:        {}", compiled.name());
    println!("digest:        sha256:{}", compiled.digest());
    println!("size:          {} bytes", compiled.size());
    println!("contract:      wasmscale:policy@0.1.0 (imports and exports ok)");
    println!(
        "compile time:  {:.1} ms{}",
        compiled.compile_time().as_secs_f64() * 1e3,
        if compiled.from_cache() {
            " (loaded from cache)"
        } else {
            ""
        }
    );
    let mut instance = compiled.instantiate(&params)?;
    let smoke = smoke_snapshot()?;
    match instance.evaluate(&smoke) {
        Ok(eval) => {
            println!(
                "smoke eval:    desired {} ({}), {} fuel, {:.1} µs",
                eval.decision.desired,
                eval.decision.reason,
                eval.cost.fuel,
                eval.cost.elapsed.as_secs_f64() * 1e6
            );
            println!("ok");
            Ok(std::process::ExitCode::SUCCESS)
        }
        Err(PolicyError::Rejected(msg)) => {
            println!("smoke eval:    the policy declined the smoke snapshot: {msg}");
            println!("ok (the host would hold the current count on such a tick)");
            Ok(std::process::ExitCode::SUCCESS)
        }
        Err(e) => bail!(
            "smoke evaluation failed [{}]: {e}; {}",
            e.kind(),
            e.outcome()
        ),
    }
}

fn eval(
    host: &Host,
    policy: &str,
    params: Option<&str>,
    snapshots: &Path,
    replicas: u32,
    interval_ms: u32,
) -> Result<std::process::ExitCode> {
    let source = PolicySource::parse(policy);
    let params = load_params(&source, params)?;
    let reader: Box<dyn std::io::BufRead> = if snapshots == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        let file = std::fs::File::open(snapshots)
            .with_context(|| format!("cannot open {}", snapshots.display()))?;
        Box::new(std::io::BufReader::new(file))
    };
    // Parse everything first: bad input fails before any output.
    let mut lines = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line =
            line.with_context(|| format!("{}: cannot read line {}", snapshots.display(), i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(&line).map_err(|e| {
            anyhow::anyhow!("{}:{}: malformed JSON: {e}", snapshots.display(), i + 1)
        })?;
        lines.push((i + 1, value));
    }
    let compiled = host.load(&source)?;
    let mut instance = compiled.instantiate(&params)?;
    let mut current = replicas;
    let mut failures = 0usize;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for (n, (line_no, value)) in lines.into_iter().enumerate() {
        let defaults = snapshot::Defaults {
            time_ms: n as u64 * u64::from(interval_ms),
            interval_ms,
            current,
        };
        let (snap, _) = snapshot::from_value(value, defaults)
            .map_err(|e| anyhow::anyhow!("{}:{line_no}: {e}", snapshots.display()))?;
        let line = match instance.evaluate(&snap) {
            Ok(eval) => {
                current = eval.decision.desired;
                serde_json::json!({
                    "desired": eval.decision.desired,
                    "spot_fraction": eval.decision.spot_fraction,
                    "reason": eval.decision.reason,
                    "fuel": eval.cost.fuel,
                })
            }
            Err(e) => {
                failures += 1;
                current = snap.replicas.current;
                serde_json::json!({
                    "desired": current,
                    "spot_fraction": null,
                    "reason": format!("held: {e}"),
                    "fuel": null,
                    "error": e.to_string(),
                    "kind": e.kind(),
                })
            }
        };
        writeln!(out, "{line}")?;
    }
    if failures > 0 {
        eprintln!("{failures} snapshot(s) failed to evaluate; each held the current replica count");
        return Ok(std::process::ExitCode::FAILURE);
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn new_policy(name: &str, sdk: Option<PathBuf>) -> Result<()> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        bail!("policy name {name:?} must be letters, digits, '-' or '_'");
    }
    let dir = PathBuf::from(name);
    if dir.exists() {
        bail!("{} already exists", dir.display());
    }
    let sdk = match sdk {
        Some(p) => p,
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("sdk"),
    };
    let sdk = sdk.canonicalize().with_context(|| {
        format!(
            "cannot find the wasmscale SDK at {}; pass --sdk DIR",
            sdk.display()
        )
    })?;
    let files = wasmscale::guest::scaffold(name, &sdk);
    for (path, text) in &files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    println!("created {}/ (a policy crate)", dir.display());
    println!("next:");
    println!("  cd {name}");
    println!("  cargo test                     # the policy's unit test, natively");
    println!(
        "  wasmscale build                # -> {}.wasm",
        name.replace('-', "_")
    );
    println!("  wasmscale check {}.wasm", name.replace('-', "_"));
    Ok(())
}

fn build(dir: &Path, out: Option<PathBuf>) -> Result<()> {
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("cannot read {}", manifest.display()))?;
    let name = wasmscale::guest::package_name(&text)
        .with_context(|| format!("{}: no [package] name", manifest.display()))?;
    let target_dir =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| dir.join("target"), PathBuf::from);
    eprintln!("building {name} for {} ...", wasmscale::guest::GUEST_TARGET);
    let core = wasmscale::guest::GuestBuild {
        manifest: &manifest,
        package: None,
        features: &[],
        profile: "release",
        target_dir: &target_dir,
    }
    .build_core(&name)?;
    let bytes = std::fs::read(&core)?;
    let component = wasmscale::guest::componentize(&bytes)?;
    let out = out.unwrap_or_else(|| dir.join(format!("{}.wasm", name.replace('-', "_"))));
    std::fs::write(&out, &component).with_context(|| format!("writing {}", out.display()))?;
    println!("{} ({} bytes)", out.display(), component.len());
    Ok(())
}

fn validate(host: &Host, path: &Path) -> Result<std::process::ExitCode> {
    match wasmscale::config::load(path, host) {
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

fn run_config(host: &Host, path: &Path, ticks: Option<u64>) -> Result<std::process::ExitCode> {
    let config = match wasmscale::config::load(path, host) {
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
    let summary = wasmscale::controller::run(
        config,
        base,
        host,
        wasmscale::controller::RunOptions {
            ticks,
            metrics: None,
            reload_from: Some(path.to_path_buf()),
        },
    )?;
    eprintln!(
        "stopped: {} ticks, {} with failures, {} missed, {} audit write errors",
        summary.ticks, summary.failed_ticks, summary.missed_ticks, summary.audit_errors
    );
    Ok(std::process::ExitCode::SUCCESS)
}

fn explain(scaler: &str, file: &Path, since: Option<u64>) -> Result<std::process::ExitCode> {
    let (records, skipped) = wasmscale::controller::audit::read(file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let cutoff = since.map(|s| wasmscale::controller::wall_clock_ms().saturating_sub(s * 1000));
    let mut shown = 0;
    for r in records
        .iter()
        .filter(|r| r.scaler == scaler && cutoff.is_none_or(|c| r.time_ms >= c))
    {
        println!("{}", wasmscale::controller::audit::explain(r));
        shown += 1;
    }
    if skipped > 0 {
        eprintln!(
            "skipped {skipped} unreadable line(s) (a torn last line after a crash is expected)"
        );
    }
    if shown == 0 {
        let names: std::collections::BTreeSet<&str> =
            records.iter().map(|r| r.scaler.as_str()).collect();
        bail!(
            "no records for scaler {scaler:?} in {} (scalers there: {})",
            file.display(),
            names.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn replay(
    host: &Host,
    audit: &Path,
    policy: &str,
    params: Option<&str>,
    config: Option<&Path>,
    scaler: Option<&str>,
) -> Result<std::process::ExitCode> {
    use wasmscale::guard::{self, GuardConfig, GuardState, Tick};
    let (records, skipped) = wasmscale::controller::audit::read(audit)
        .with_context(|| format!("cannot read {}", audit.display()))?;
    let source = PolicySource::parse(policy);
    let params = load_params(&source, params)?;
    let compiled = host.load(&source)?;
    let config = config
        .map(|p| wasmscale::config::load(p, host).map_err(|e| anyhow::anyhow!("{e}")))
        .transpose()?;
    let records: Vec<_> = records
        .into_iter()
        .filter(|r| scaler.is_none_or(|s| r.scaler == s) && r.snapshot.is_some())
        .collect();
    if records.is_empty() {
        bail!("no records with snapshots in {}", audit.display());
    }
    // One instance and one guard state per scaler, fed in recorded order.
    let mut lanes: std::collections::BTreeMap<
        String,
        (host::PolicyInstance, GuardConfig, GuardState, u32),
    > = Default::default();
    let (mut changed, mut total) = (0usize, 0usize);
    let (mut recorded_hours, mut replayed_hours) = (0.0f64, 0.0f64);
    println!(
        "{:<20} {:<22} {:>9} {:>9}  reason",
        "time", "scaler", "recorded", "replayed"
    );
    for r in &records {
        let Some(snap) = r.snapshot.clone() else {
            continue;
        };
        if !lanes.contains_key(&r.scaler) {
            let guard = config
                .as_ref()
                .and_then(|c| c.scalers.iter().find(|s| s.name == r.scaler))
                .map(|s| s.guard_config())
                .unwrap_or_else(|| {
                    GuardConfig::bounds(
                        snap.replicas.min.unwrap_or(0),
                        snap.replicas.max.unwrap_or(u32::MAX),
                    )
                });
            lanes.insert(
                r.scaler.clone(),
                (
                    compiled.instantiate(&params)?,
                    guard,
                    GuardState::default(),
                    r.previous_replicas,
                ),
            );
        }
        let Some((instance, guard_config, guard_state, current)) = lanes.get_mut(&r.scaler) else {
            continue;
        };
        let mut snap = snap;
        snap.replicas.current = *current;
        let (proposal, reason) = match instance.evaluate(&snap) {
            Ok(e) => (Some(e.decision.desired), e.decision.reason),
            Err(e) => (None, format!("held: {e}")),
        };
        let verdict = guard::apply(
            guard_config,
            guard_state,
            Tick {
                now_ms: r.time_ms,
                current: *current,
                proposal,
                price_per_replica_hour: snap.cost.on_demand_per_hour,
            },
        );
        let hours = f64::from(snap.interval_ms) / 3_600_000.0;
        recorded_hours += f64::from(r.final_replicas) * hours;
        replayed_hours += f64::from(verdict.replicas) * hours;
        total += 1;
        let mark = if verdict.replicas != r.final_replicas {
            changed += 1;
            "*"
        } else {
            " "
        };
        println!(
            "{:<20} {:<22} {:>9} {:>8}{mark}  {reason}",
            wasmscale::controller::audit::format_time(r.time_ms),
            r.scaler,
            r.final_replicas,
            verdict.replicas
        );
        *current = verdict.replicas;
    }
    println!(
        "\n{changed} of {total} decisions changed; replica-hours {recorded_hours:.2} recorded vs {replayed_hours:.2} replayed ({:+.2})",
        replayed_hours - recorded_hours
    );
    if skipped > 0 {
        eprintln!("skipped {skipped} unreadable line(s)");
    }
    Ok(std::process::ExitCode::SUCCESS)
}
