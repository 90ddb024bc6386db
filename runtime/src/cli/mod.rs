//! The command line: its arguments (parsed in `main.rs`) and one module per
//! command, each holding what the command prints. The work itself is done
//! below: the controller, the simulator, the audit log.

mod audit;
mod check;
mod eval;
mod remote;
mod run;
mod scaffold;
mod simulate;

pub use audit::{explain, replay};
pub use check::check;
pub use eval::{EvalArgs, eval};
pub use remote::{
    Output, PolicyCommand, RemoteArgs, ScalerCommand, TenantCommand, policy, scaler, tenant,
};
pub use run::{open_registry, run, serve, validate};
pub use scaffold::{build, new_policy};
pub use simulate::{SimulateArgs, demo, simulate};

use crate::host::{self, DiskCache, Host, HostConfig, PolicySource};
use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "wasmscale",
    version,
    about = "An autoscaler whose scaling logic is a sandboxed WebAssembly component.",
    long_about = "An autoscaler whose scaling logic is a sandboxed WebAssembly component.\n\n\
        A policy is a .wasm component that implements wasmscale:policy@0.1.0, or the 0.2 draft \
        (see wit/ and wit/v0.2/). \
        It runs under fuel, deadline, memory and log limits; the host checks every decision \
        before anything acts on it. Policies are named by path or as builtin:NAME.",
    after_help = "Examples:\n  \
        wasmscale check builtin:target-tracking\n  \
        wasmscale eval builtin:step-scaling --params examples/seed-thresholds/params.json \\\n      \
        --snapshots examples/seed-thresholds/snapshots.jsonl\n  \
        wasmscale new my-policy && cd my-policy && wasmscale build && wasmscale check my_policy.wasm"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Where compiled policies are cached [default: $WASMSCALE_CACHE_DIR, else ~/.cache/wasmscale].
    #[arg(long, global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Compile policies every time instead of using the cache.
    #[arg(long, global = true)]
    pub no_cache: bool,

    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(flatten)]
    pub limits: LimitArgs,
}

impl Cli {
    /// The policy host every command shares: the cache and limits asked for.
    pub fn host(&self) -> Result<Host> {
        let cache = (!self.no_cache).then(|| {
            DiskCache::new(
                self.cache_dir
                    .clone()
                    .unwrap_or_else(DiskCache::default_dir),
            )
        });
        Ok(Host::new(HostConfig {
            cache,
            limits: self.limits.apply(host::Limits::default())?,
            ..HostConfig::default()
        })?)
    }
}

/// Per-call sandbox limits (defaults in parentheses).
#[derive(clap::Args)]
pub struct LimitArgs {
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
pub enum AuditCommand {
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
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
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
        threshold tables run as a closed loop. Each snapshot goes through the same tick as \
        `run`, with the guardrails off unless --config is given. When the policy fails on a snapshot the line \
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
        /// Apply this config's guardrails (its scaler's bounds, behavior, cooldowns, cost
        /// ceiling, fallback) with the policy above in its place; each line then also gives
        /// the count acted on (`replicas`) and the guardrails that changed it.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// With --config: the scaler whose guardrails apply (needed when it has several).
        #[arg(long, value_name = "NAME", requires = "config")]
        scaler: Option<String>,
    },

    /// Scaffold a policy crate that builds to a component with one command.
    #[command(after_help = "Example:\n  \
        wasmscale new gpu-queue && cd gpu-queue && cargo test && wasmscale build")]
    New {
        /// Crate name (also the directory created).
        name: String,
        /// Use the wasmscale SDK at this path [default: the SDK built into this binary, copied
        /// into the new crate as vendor/, so it builds anywhere].
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
        On SIGTERM in-flight ticks finish and the audit log is flushed. When the config file \
        changes (or on SIGHUP) it is re-read, checked and applied as a diff: only scalers whose \
        entry changed are rebuilt, each keeping its state (guard windows, policy memory); a bad \
        entry refuses only its scaler, which goes on as it was; a file that does not parse \
        changes nothing. Scalers created through the admin API (`wasmscale scaler apply`) start \
        beside the file's, and survive restarts."
    )]
    Run {
        config: PathBuf,
        /// Stop each scaler after N ticks (for trials and tests).
        #[arg(long, value_name = "N")]
        ticks: Option<u64>,
        /// Reload only on SIGHUP, not when the config file changes.
        #[arg(long)]
        no_watch: bool,
    },

    /// Read the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),

    /// The policy registry of a running server: push, list, show, activate, roll back.
    #[command(after_help = "Examples:\n  \
        wasmscale policy push ttft-guard ttft_guard.wasm --activate\n  \
        wasmscale policy show ttft-guard\n  \
        wasmscale policy rollback ttft-guard\n\n\
        A scaler follows a registry policy with `policy = \"registry:NAME\"` (its active version) \
        or pins one with `policy = \"sha256:HEX\"`. The server keeps the registry in \
        STATE_DIR/registry, so its config needs a `state_dir`.")]
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
        #[command(flatten)]
        remote: RemoteArgs,
    },

    /// The scalers of a running server: list, status, decisions, pause, resume.
    #[command(after_help = "Examples:\n  \
        wasmscale scaler list\n  \
        wasmscale scaler decisions llm-chat --since 1h\n  \
        wasmscale scaler pause llm-chat --for 30m")]
    Scaler {
        #[command(subcommand)]
        command: ScalerCommand,
        #[command(flatten)]
        remote: RemoteArgs,
    },

    /// Tenants and their tokens (an operator's token): create, list, delete, token, tokens, revoke.
    #[command(after_help = "Examples:\n  \
        wasmscale tenant create acme --tier pro\n  \
        wasmscale tenant token acme --role tenant-admin --expires 30d\n  \
        WASMSCALE_TOKEN=wst_... wasmscale scaler list\n\n\
        The server keeps tenants when its config says `[admin] auth = \"tokens\"`; it writes the \
        first operator token to STATE_DIR/operator.token. A token is shown once, when issued: \
        only its hash is kept. A tenant's token sees only its tenant's scalers, named without \
        the `TENANT/` prefix they carry in the process.")]
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
        #[command(flatten)]
        remote: RemoteArgs,
    },

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
        wasmscale simulate --trace examples/traces/alibaba_servegen_m_small_10min.csv\n  \
        wasmscale simulate --trace examples/traces/alibaba_servegen_m_small_10min.csv \\\n      \
        --policy builtin:predictive --policy 'builtin:target-tracking@tt.json' --plot out/sim\n  \
        wasmscale simulate --trace requests.csv --service code --json\n  \
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

pub fn init_logging(format: LogFormat) {
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

/// Params from `--params` (file or inline JSON), else a built-in's example params, else `{}`.
pub(crate) fn load_params(source: &PolicySource, params: Option<&str>) -> Result<String> {
    let text = match params {
        Some(p) if p.trim_start().starts_with('{') => p.to_owned(),
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("cannot read params file {p}"))?
        }
        None => match source {
            PolicySource::Builtin(name) => host::builtin_example_params(name)
                .unwrap_or("{}")
                .to_owned(),
            _ => "{}".to_owned(),
        },
    };
    serde_json::from_str::<serde_json::Value>(&text).context("params are not valid JSON")?;
    Ok(text)
}
