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

/// `wasmscale simulate`.
#[derive(clap::Args)]
struct SimulateArgs {
    /// The load trace: CSV or JSON lines.
    #[arg(long, value_name = "FILE")]
    trace: PathBuf,
    /// A policy to simulate, `POLICY[@PARAMS]`: builtin:NAME or a .wasm path, with params as a
    /// JSON file or inline JSON. Repeat for several. Built-ins without params get defaults matched
    /// to the service model. Default: target-tracking, step-scaling and predictive.
    #[arg(long = "policy", value_name = "SPEC")]
    policies: Vec<String>,
    /// Take policies, params, intervals and guardrails from this config's scalers instead.
    #[arg(long, value_name = "FILE", conflicts_with = "policies")]
    config: Option<PathBuf>,
    /// With --config: only these scalers (repeatable).
    #[arg(long = "scaler", value_name = "NAME", requires = "config")]
    scalers: Vec<String>,
    /// Vary one parameter of the (single) policy: KEY=V1,V2,... or KEY=START:END:STEP, KEY a
    /// dotted path into its params. Prints the frontier: cheapest cost at 99, 99.5 and 99.9 % SLO.
    #[arg(long, value_name = "KEY=VALUES")]
    sweep: Option<String>,
    /// Seed for spot interruptions.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Service model as TOML (keys as in the README); flags below override it.
    #[arg(long, value_name = "FILE")]
    model: Option<PathBuf>,
    /// Work per second one replica does at full utilization, in --capacity-unit [10].
    #[arg(long, value_name = "N")]
    capacity_per_replica: Option<f64>,
    /// What capacity counts: requests, or tokens (the trace needs token counts) [requests].
    #[arg(long, value_enum, value_name = "UNIT")]
    capacity_unit: Option<CapacityUnitArg>,
    /// Launch to ready [120].
    #[arg(long, value_name = "SECONDS")]
    cold_start_seconds: Option<f64>,
    /// The SLO on p95 latency [3000].
    #[arg(long, value_name = "MS")]
    slo_p95_ms: Option<f64>,
    /// The simulated tick; must divide a minute [1].
    #[arg(long, value_name = "SECONDS")]
    step_seconds: Option<f64>,
    /// [1]
    #[arg(long, value_name = "N")]
    min_replicas: Option<u32>,
    /// [100]
    #[arg(long, value_name = "N")]
    max_replicas: Option<u32>,
    /// Scale the load so its busiest step needs this many replicas at the SLO's utilization.
    #[arg(
        long,
        default_value_t = 32.0,
        value_name = "N",
        conflicts_with = "load_scale"
    )]
    peak_replicas: f64,
    /// Multiply the trace's load by this instead.
    #[arg(long, value_name = "FACTOR")]
    load_scale: Option<f64>,
    /// Policy tick interval for policies given with --policy.
    #[arg(long, default_value_t = 15.0, value_name = "SECONDS")]
    interval_seconds: f64,
    /// Print the report as JSON instead of the table.
    #[arg(long)]
    json: bool,
    /// Write the plot: PATH.svg and PATH.png (or just the one PATH ends with).
    #[arg(long, value_name = "PATH")]
    plot: Option<PathBuf>,
    /// Write every policy's audit records here (JSON lines), for `wasmscale replay`.
    #[arg(long, value_name = "FILE")]
    audit: Option<PathBuf>,
    #[command(flatten)]
    columns: TraceColumns,
}

#[derive(Clone, Copy, ValueEnum)]
enum CapacityUnitArg {
    Requests,
    Tokens,
}

/// How to read traces that are not in a known format.
#[derive(clap::Args)]
struct TraceColumns {
    /// Per-request traces: the arrival time column [arrival_s].
    #[arg(long, value_name = "COLUMN")]
    arrival_column: Option<String>,
    /// Per-interval traces: each row's start time [window_start_s, t_min].
    #[arg(long, value_name = "COLUMN")]
    time_column: Option<String>,
    /// Unit of the time column: s, ms or min.
    #[arg(long, value_name = "UNIT")]
    time_unit: Option<String>,
    /// Requests per second per row [request_rate_rps].
    #[arg(long, value_name = "COLUMN")]
    rate_column: Option<String>,
    /// Requests per row [requests].
    #[arg(long, value_name = "COLUMN")]
    count_column: Option<String>,
    /// Rows that are gaps in the record, COLUMN=VALUE [observed=0, all_clients_zero=1].
    #[arg(long, value_name = "COLUMN=VALUE")]
    gap_where: Option<String>,
    /// Per-request traces: only rows of this service.
    #[arg(long)]
    service: Option<String>,
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
        come from --config (the record's scaler); without it, the defaults a config would give \
        (HPA behavior), with min/max from the snapshots. Replay runs the same tick as run and \
        simulate."
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

    /// Backtest policies on a load trace: the real controller, sandbox and guardrails on a virtual clock.
    #[command(after_help = "Examples:\n  \
        wasmscale simulate --trace ../shared/traces/nasa_http_1995_per_minute.csv\n  \
        wasmscale simulate --trace examples/traces/alibaba_servegen_m_small_10min.csv \\\n      \
        --policy builtin:predictive --policy 'builtin:target-tracking@tt.json' --plot out/sim\n  \
        wasmscale simulate --trace ../shared/traces/azure_llm_2023_requests.csv --service code --json\n  \
        wasmscale simulate --trace examples/traces/alibaba_servegen_m_large_10min.csv \\\n      \
        --policy builtin:predictive --sweep target_utilization=0.5:0.8:0.05\n  \
        wasmscale simulate --trace t.csv --config prod.toml --scaler llm-chat\n\n\
        Each policy runs on its own simulated cluster: every step (1 s) requests arrive and ready \
        replicas serve them; every policy interval (15 s) the controller ticks exactly as `run` \
        does (snapshot, sandboxed policy, guardrails, actuator, audit record). The oracle is the \
        cheapest schedule that meets the SLO at every step knowing the future. The table gives \
        SLO attainment (minutes in which every step met the p95 SLO), cost against the oracle, \
        scale events, direction changes and flaps, p95 latency and fuel per tick.\n\n\
        Trace formats are detected (per-request `arrival_s`, per-window `window_start_s` + \
        `request_rate_rps`, per-minute `t_min` + `requests`); name columns with the flags below \
        for others. The load is scaled so the busiest step needs --peak-replicas replicas. The same \
        inputs and --seed give the same output, byte for byte.")]
    Simulate(Box<SimulateArgs>),

    /// The simulator on a bundled real trace: three built-in policies against the oracle, with a plot.
    #[command(
        after_help = "Example:\n  wasmscale demo\n  wasmscale demo --out /tmp/demo\n\n\
        Runs target-tracking (the Kubernetes HPA on GPU utilization), step-scaling (AWS steps) \
        and predictive (seasonal forecast + pre-warm) on 14 days of LLM serving load \
        (Alibaba ServeGen m-small, bundled), prints the table and writes the plot."
    )]
    Demo {
        /// Where to write wasmscale-demo.svg and wasmscale-demo.png.
        #[arg(long, default_value = ".")]
        out: PathBuf,
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
        Command::Simulate(args) => simulate(&make_host()?, &args),
        Command::Demo { out } => demo(&make_host()?, &out),
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
    match wasmscale::controller::load(path, host) {
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
    let config = match wasmscale::controller::load(path, host) {
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

fn explain(scaler: &str, file: &Path, since: Option<u64>) -> Result<std::process::ExitCode> {
    let (records, skipped) =
        wasmscale::audit::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let cutoff = since.map(|s| wasmscale::controller::wall_clock_ms().saturating_sub(s * 1000));
    let mut shown = 0;
    for r in records
        .iter()
        .filter(|r| &*r.scaler == scaler && cutoff.is_none_or(|c| r.time_ms >= c))
    {
        println!("{}", wasmscale::audit::explain(r));
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

fn replay(
    host: &Host,
    audit: &Path,
    policy: &str,
    params: Option<&str>,
    config: Option<&Path>,
    scaler: Option<&str>,
) -> Result<std::process::ExitCode> {
    let (records, skipped) = wasmscale::audit::read(audit)
        .with_context(|| format!("cannot read {}", audit.display()))?;
    let source = PolicySource::parse(policy);
    let params: serde_json::Value = serde_json::from_str(&load_params(&source, params)?)
        .context("params are not valid JSON")?;
    let (config, base) = match config {
        Some(p) => (
            Some(wasmscale::controller::load(p, host).map_err(|e| anyhow::anyhow!("{e}"))?),
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
    let rows =
        wasmscale::controller::replay(&records, host, policy, &params, config.as_ref(), &base)?;
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
            wasmscale::audit::format_time(row.time_ms),
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

/// The service model from `--model` and the flags that override it.
fn service_model(args: &SimulateArgs) -> Result<wasmscale::sim::ServiceModel> {
    let mut model = match &args.model {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the model {}", path.display()))?;
            toml::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.to_string().trim_end()))?
        }
        None => wasmscale::sim::ServiceModel::default(),
    };
    if let Some(v) = args.capacity_per_replica {
        model.capacity_per_replica = v;
    }
    if let Some(u) = args.capacity_unit {
        model.capacity_unit = match u {
            CapacityUnitArg::Requests => wasmscale::sim::CapacityUnit::Requests,
            CapacityUnitArg::Tokens => wasmscale::sim::CapacityUnit::Tokens,
        };
    }
    if let Some(v) = args.cold_start_seconds {
        model.cold_start_seconds = v;
    }
    if let Some(v) = args.slo_p95_ms {
        model.slo_p95_ms = v;
    }
    if let Some(v) = args.step_seconds {
        model.step_seconds = v;
    }
    if let Some(v) = args.min_replicas {
        model.min_replicas = v;
    }
    if let Some(v) = args.max_replicas {
        model.max_replicas = v;
    }
    model.validate()?;
    Ok(model)
}

/// The policies to simulate: from a config's scalers, or from `--policy`
/// specs (the three defaults when none), expanded by `--sweep`.
fn sim_policies(
    host: &Host,
    args: &SimulateArgs,
    model: &wasmscale::sim::ServiceModel,
) -> Result<(Vec<wasmscale::sim::SimPolicy>, PathBuf)> {
    use wasmscale::sim::{SimPolicy, setup};
    let (mut policies, base) = match &args.config {
        Some(path) => {
            let config = wasmscale::controller::load(path, host).map_err(|e| anyhow::anyhow!("{e}"))?;
            let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
            let chosen: Vec<SimPolicy> = config
                .scalers
                .into_iter()
                .filter(|s| args.scalers.is_empty() || args.scalers.contains(&s.name))
                .map(|s| SimPolicy {
                    label: s.name.clone(),
                    scaler: s,
                })
                .collect();
            for want in &args.scalers {
                if !chosen.iter().any(|p| &p.label == want) {
                    bail!("no scaler {want:?} in {}", path.display());
                }
            }
            (chosen, base)
        }
        None => {
            if !(args.interval_seconds.is_finite() && args.interval_seconds > 0.0) {
                bail!(
                    "--interval-seconds must be > 0, got {}",
                    args.interval_seconds
                );
            }
            let specs: Vec<String> = if args.policies.is_empty() {
                setup::DEFAULT_POLICIES
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect()
            } else {
                args.policies.clone()
            };
            let policies = specs
                .iter()
                .map(|spec| setup::parse_policy(spec, model, args.interval_seconds))
                .collect::<Result<Vec<_>, _>>()?;
            (policies, PathBuf::from("."))
        }
    };
    if policies.is_empty() {
        bail!("no policies to simulate");
    }
    if let Some(sweep) = &args.sweep {
        let [one] = policies.as_slice() else {
            bail!("--sweep varies one policy; {} were given", policies.len());
        };
        let spec = if sweep.contains('=') {
            sweep.clone()
        } else {
            let builtin = one.scaler.policy.strip_prefix("builtin:").unwrap_or("");
            let key = setup::main_parameter(builtin)
                .with_context(|| format!("--sweep {sweep}: say which parameter, KEY={sweep}"))?;
            format!("{key}={sweep}")
        };
        policies = setup::sweep(one, &spec)?;
    }
    Ok((policies, base))
}

fn simulate(host: &Host, args: &SimulateArgs) -> Result<std::process::ExitCode> {
    use wasmscale::sim::{self, TraceSpec, trace};
    let model = service_model(args)?;
    let c = &args.columns;
    let spec = TraceSpec {
        arrival_column: c.arrival_column.clone(),
        time_column: c.time_column.clone(),
        time_unit: c.time_unit.clone(),
        rate_column: c.rate_column.clone(),
        count_column: c.count_column.clone(),
        gap_where: c.gap_where.clone(),
        service: c.service.clone(),
    };
    let mut load = trace::load(&args.trace, &spec, model.step_ms())?;
    let scale = scale_load(&mut load, &model, args.load_scale, args.peak_replicas)?;
    let (policies, base) = sim_policies(host, args, &model)?;
    let report = run_simulation(
        host,
        &base,
        &policies,
        &model,
        &load,
        &args.trace.display().to_string(),
        scale,
        args.seed,
        args.audit.is_some(),
    )?;
    if args.json {
        println!("{}", sim::report::json(&report));
    } else {
        print!("{}", sim::report::table(&report));
        if args.sweep.is_some() {
            print!("\n{}", sim::report::frontier_text(&report));
        }
    }
    if let Some(path) = &args.audit {
        write_sim_audit(&report, path)?;
        eprintln!("audit records: {}", path.display());
    }
    if let Some(plot) = &args.plot {
        for path in plot_paths(plot) {
            sim::report::plot(&report, &path)?;
            eprintln!("plot: {}", path.display());
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}

fn scale_load(
    load: &mut wasmscale::sim::Load,
    model: &wasmscale::sim::ServiceModel,
    factor: Option<f64>,
    peak_replicas: f64,
) -> Result<f64> {
    match factor {
        Some(f) => {
            if !(f.is_finite() && f > 0.0) {
                bail!("--load-scale must be > 0, got {f}");
            }
            load.scale(f);
            Ok(f)
        }
        None => {
            if !(peak_replicas.is_finite() && peak_replicas > 0.0) {
                bail!("--peak-replicas must be > 0, got {peak_replicas}");
            }
            wasmscale::sim::trace::scale_to_peak(load, model, peak_replicas)
                .context(wasmscale::sim::trace::NO_TOKEN_COUNTS)
        }
    }
}

#[allow(
    clippy::too_many_arguments,
    reason = "the simulation's inputs, each from its own flag"
)]
fn run_simulation(
    host: &Host,
    base: &Path,
    policies: &[wasmscale::sim::SimPolicy],
    model: &wasmscale::sim::ServiceModel,
    load: &wasmscale::sim::Load,
    trace: &str,
    scale: f64,
    seed: u64,
    keep_audit: bool,
) -> Result<wasmscale::sim::SimReport> {
    use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
    let steps = load.arrivals.len() as u64;
    let bars = MultiProgress::new();
    let style = ProgressStyle::with_template("{prefix:>28} [{bar:30}] {percent:>3}% {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let handles: Vec<ProgressBar> = policies
        .iter()
        .map(|p| {
            let bar = bars.add(ProgressBar::new(steps));
            bar.set_style(style.clone());
            bar.set_prefix(p.label.chars().take(28).collect::<String>());
            bar
        })
        .collect();
    // Only long runs show progress (and only on a terminal: indicatif hides it otherwise).
    let show = steps * policies.len() as u64 > 2_000_000;
    let progress_bars = handles.clone();
    let options = wasmscale::sim::SimOptions {
        seed,
        keep_audit,
        plot_points: 0,
        progress: show.then(|| {
            std::sync::Arc::new(move |i: usize, done: u64, _total: u64| {
                if let Some(b) = progress_bars.get(i) {
                    b.set_position(done);
                }
            }) as wasmscale::sim::Progress
        }),
    };
    let started = std::time::Instant::now();
    let setting = wasmscale::sim::Setting {
        host,
        base,
        model,
        load,
    };
    let report = wasmscale::sim::simulate(setting, policies, trace, scale, &options)?;
    for b in &handles {
        b.finish_and_clear();
    }
    let ticks: u64 = steps * policies.len() as u64;
    let secs = started.elapsed().as_secs_f64();
    tracing::info!(
        steps = ticks,
        seconds = secs,
        steps_per_second = ticks as f64 / secs.max(1e-9),
        "simulation finished"
    );
    Ok(report)
}

fn plot_paths(plot: &Path) -> Vec<PathBuf> {
    match plot.extension().and_then(|e| e.to_str()) {
        Some("svg" | "png") => vec![plot.to_path_buf()],
        _ => vec![plot.with_extension("svg"), plot.with_extension("png")],
    }
}

fn write_sim_audit(report: &wasmscale::sim::SimReport, path: &Path) -> Result<()> {
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
    );
    for run in &report.policies {
        for record in &run.audit {
            serde_json::to_writer(&mut out, record)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The demo's trace, bundled (see examples/traces/README.md for its source).
const DEMO_TRACE: &str = include_str!("../../examples/traces/alibaba_servegen_m_small_10min.csv");
const DEMO_TRACE_NAME: &str = "examples/traces/alibaba_servegen_m_small_10min.csv";

fn demo(host: &Host, out: &Path) -> Result<std::process::ExitCode> {
    use wasmscale::sim::{self, setup};
    let model = sim::ServiceModel::default();
    let mut load = sim::trace::load_text(
        DEMO_TRACE_NAME,
        DEMO_TRACE,
        false,
        &sim::TraceSpec::default(),
        model.step_ms(),
    )?;
    let scale = scale_load(&mut load, &model, None, 32.0)?;
    let policies = setup::DEFAULT_POLICIES
        .iter()
        .map(|spec| setup::parse_policy(spec, &model, 15.0))
        .collect::<Result<Vec<_>, _>>()?;
    eprintln!(
        "simulating 14 days of LLM serving load (Alibaba ServeGen m-small) at 1 s steps for {} policies ...",
        policies.len()
    );
    let report = run_simulation(
        host,
        Path::new("."),
        &policies,
        &model,
        &load,
        DEMO_TRACE_NAME,
        scale,
        1,
        false,
    )?;
    print!("{}", sim::report::table(&report));
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut written = Vec::new();
    for ext in ["svg", "png"] {
        let path = out.join(format!("wasmscale-demo.{ext}"));
        sim::report::plot(&report, &path)?;
        written.push(path.display().to_string());
    }
    println!(
        "\nplot: {}\n\nwhat to try next:\n  \
         wasmscale simulate --trace ../shared/traces/nasa_http_1995_per_minute.csv --plot nasa\n  \
         wasmscale simulate --trace {DEMO_TRACE_NAME} --policy builtin:predictive --sweep 0.6:0.8:0.02\n  \
         wasmscale new my-policy   # then simulate it: --policy my-policy/my_policy.wasm@params.json",
        written.join(" and ")
    );
    Ok(std::process::ExitCode::SUCCESS)
}
