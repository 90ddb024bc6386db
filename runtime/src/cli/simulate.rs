//! `wasmscale simulate` and `wasmscale demo`: the simulator's inputs from
//! flags, its progress, and its table, plot and audit records.

use crate::host::Host;
use anyhow::{Context as _, Result, bail};
use clap::ValueEnum;
use std::path::{Path, PathBuf};

/// `wasmscale simulate`.
#[derive(clap::Args)]
pub struct SimulateArgs {
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
    /// The service model: `requests` (request by request, continuous batching; the default where
    /// the trace has requests with token counts or per-interval token sizes), `fluid` (a queue per
    /// step: fast, for traces without tokens), or a TOML file with the model's keys (see the
    /// README). Flags below override it.
    #[arg(long, value_name = "KIND|FILE")]
    model: Option<String>,
    /// Request model SLO: each minute's p95 time to first token, ms; 0 turns it off [2000].
    #[arg(long, value_name = "MS")]
    slo_ttft_p95_ms: Option<f64>,
    /// Request model SLO: each minute's p95 inter-token latency, ms; 0 turns it off [100].
    #[arg(long, value_name = "MS")]
    slo_itl_p95_ms: Option<f64>,
    /// Request model SLO: each minute's p95 end-to-end latency, ms; 0 turns it off [off].
    #[arg(long, value_name = "MS")]
    slo_e2e_p95_ms: Option<f64>,
    /// Work per second one replica does at full utilization, in --capacity-unit [10].
    #[arg(long, value_name = "N")]
    capacity_per_replica: Option<f64>,
    /// What capacity counts: requests, or tokens (the trace needs token counts) [requests].
    #[arg(long, value_enum, value_name = "UNIT")]
    capacity_unit: Option<CapacityUnitArg>,
    /// Launch to ready [120].
    #[arg(long, value_name = "SECONDS")]
    cold_start_seconds: Option<f64>,
    /// Fluid model SLO: p95 latency of every step [3000].
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
pub(crate) enum CapacityUnitArg {
    Requests,
    Tokens,
}

/// How to read traces that are not in a known format.
#[derive(clap::Args)]
pub(crate) struct TraceColumns {
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

/// The service model from `--model` and the flags that override it.
fn service_model(args: &SimulateArgs) -> Result<crate::sim::ServiceModel> {
    use crate::sim::ModelKind;
    let kind = |kind| crate::sim::ServiceModel {
        kind,
        ..Default::default()
    };
    let mut model = match args.model.as_deref() {
        Some("requests") => kind(ModelKind::Requests),
        Some("fluid") => kind(ModelKind::Fluid),
        Some("auto") | None => kind(ModelKind::Auto),
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!("--model {path}: not requests, fluid or auto, and cannot read it as a file")
            })?;
            toml::from_str(&text)
                .map_err(|e| anyhow::anyhow!("{path}: {}", e.to_string().trim_end()))?
        }
    };
    let slo = |v: f64| (v != 0.0).then_some(v);
    if let Some(v) = args.slo_ttft_p95_ms {
        model.slo_ttft_p95_ms = slo(v);
    }
    if let Some(v) = args.slo_itl_p95_ms {
        model.slo_itl_p95_ms = slo(v);
    }
    if let Some(v) = args.slo_e2e_p95_ms {
        model.slo_e2e_p95_ms = slo(v);
    }
    if let Some(v) = args.capacity_per_replica {
        model.capacity_per_replica = v;
    }
    if let Some(u) = args.capacity_unit {
        model.capacity_unit = match u {
            CapacityUnitArg::Requests => crate::sim::CapacityUnit::Requests,
            CapacityUnitArg::Tokens => crate::sim::CapacityUnit::Tokens,
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
    model: &crate::sim::ServiceModel,
) -> Result<(Vec<crate::sim::SimPolicy>, PathBuf)> {
    use crate::sim::{SimPolicy, setup};
    let (mut policies, base) = match &args.config {
        Some(path) => {
            let config = crate::controller::load(path, host).map_err(|e| anyhow::anyhow!("{e}"))?;
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
        policies = setup::sweep_policies(&policies, sweep)?;
    }
    Ok((policies, base))
}

pub fn simulate(host: &Host, args: &SimulateArgs) -> Result<std::process::ExitCode> {
    use crate::sim::{self, TraceSpec, trace};
    let mut model = service_model(args)?;
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
    model.resolve(load.requests.is_some())?;
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
    load: &mut crate::sim::Load,
    model: &crate::sim::ServiceModel,
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
            crate::sim::trace::scale_to_peak(load, model, peak_replicas)
                .context(crate::sim::trace::NO_TOKEN_COUNTS)
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
    policies: &[crate::sim::SimPolicy],
    model: &crate::sim::ServiceModel,
    load: &crate::sim::Load,
    trace: &str,
    scale: f64,
    seed: u64,
    keep_audit: bool,
) -> Result<crate::sim::SimReport> {
    use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
    let steps = load.arrivals.len() as u64;
    let bars = MultiProgress::new();
    let style = ProgressStyle::with_template("{prefix:>28} [{bar:30}] {percent:>3}% {settled_eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .with_key("settled_eta", settled_eta)
        .progress_chars("=> ");
    // One bar per policy, then the oracle's (it runs first; on the request
    // model it is the longest part).
    let handles: Vec<ProgressBar> = policies
        .iter()
        .map(|p| p.label.as_str())
        .chain(std::iter::once("oracle"))
        .map(|label| {
            let bar = bars.add(ProgressBar::new(steps));
            bar.set_style(style.clone());
            bar.set_prefix(label.chars().take(28).collect::<String>());
            bar
        })
        .collect();
    // Only long runs show progress (and only on a terminal: indicatif hides it otherwise).
    let show = steps * policies.len() as u64 > 2_000_000;
    let progress_bars = handles.clone();
    let options = crate::sim::SimOptions {
        seed,
        keep_audit,
        plot_points: 0,
        progress: show.then(|| {
            std::sync::Arc::new(move |i: usize, done: u64, _total: u64| {
                if let Some(b) = progress_bars.get(i) {
                    b.set_position(done);
                }
            }) as crate::sim::Progress
        }),
    };
    let started = std::time::Instant::now();
    let setting = crate::sim::Setting {
        host,
        base,
        model,
        load,
    };
    let report = crate::sim::simulate(setting, policies, trace, scale, &options)?;
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

/// The time left, once there is enough progress to tell (indicatif's own
/// estimate from the first few updates reads "4w" on a 4-second run).
fn settled_eta(state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write) {
    if state.fraction() < 0.05 || state.elapsed().as_secs_f64() < 1.0 {
        let _ = w.write_str("...");
        return;
    }
    let secs = state.eta().as_secs();
    let _ = if secs >= 3600 {
        write!(w, "{}h{:02}m left", secs / 3600, secs % 3600 / 60)
    } else if secs >= 60 {
        write!(w, "{}m{:02}s left", secs / 60, secs % 60)
    } else {
        write!(w, "{secs}s left")
    };
}

fn plot_paths(plot: &Path) -> Vec<PathBuf> {
    match plot.extension().and_then(|e| e.to_str()) {
        Some("svg" | "png") => vec![plot.to_path_buf()],
        _ => vec![plot.with_extension("svg"), plot.with_extension("png")],
    }
}

/// Every policy's records, through the audit log's own writer.
fn write_sim_audit(report: &crate::sim::SimReport, path: &Path) -> Result<()> {
    let context = || format!("cannot write {}", path.display());
    let mut log = crate::audit::AuditLog::create(path).with_context(context)?;
    for record in report.policies.iter().flat_map(|run| &run.audit) {
        log.append(record).with_context(context)?;
    }
    log.sync().with_context(context)
}

/// The demo's trace, bundled (see examples/traces/README.md for its source).
const DEMO_TRACE: &str =
    include_str!("../../../examples/traces/alibaba_servegen_m_small_10min.csv");
const DEMO_TRACE_NAME: &str = "examples/traces/alibaba_servegen_m_small_10min.csv";

pub fn demo(host: &Host, out: &Path) -> Result<std::process::ExitCode> {
    use crate::sim::{self, setup};
    // The fluid model: 14 days of this trace are about a billion requests.
    let mut model = sim::ServiceModel {
        kind: sim::ModelKind::Fluid,
        ..Default::default()
    };
    model.resolve(false)?;
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
         wasmscale simulate --trace examples/traces/alibaba_servegen_m_large_10min.csv --plot large\n  \
         wasmscale simulate --trace {DEMO_TRACE_NAME} --policy builtin:predictive --sweep 0.6:0.8:0.02\n  \
         wasmscale new my-policy   # then simulate it: --policy my-policy/my_policy.wasm@params.json",
        written.join(" and ")
    );
    Ok(std::process::ExitCode::SUCCESS)
}
