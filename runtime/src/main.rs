//! The `wasmscale` command line: parse the arguments, then hand each command
//! to its module in `wasmscale::cli`.

use clap::Parser as _;
use std::process::ExitCode;
use wasmscale::cli::{self, AuditCommand, Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::init_logging(cli.log_format);
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Check { policy, params } => cli::check(&cli.host()?, policy, params.as_deref()),
        Command::Eval {
            policy,
            params,
            snapshots,
            replicas,
            interval_ms,
            config,
            scaler,
        } => cli::eval(
            &cli.host()?,
            &cli::EvalArgs {
                policy,
                params: params.as_deref(),
                snapshots,
                replicas: *replicas,
                interval_ms: *interval_ms,
                config: config.as_deref(),
                scaler: scaler.as_deref(),
            },
        ),
        Command::Validate { config } => cli::validate(&cli.host()?, config),
        Command::Run {
            config,
            ticks,
            no_watch,
        } => cli::run(cli.host()?, config, *ticks, !*no_watch),
        Command::Audit(AuditCommand::Explain {
            scaler,
            file,
            since,
        }) => cli::explain(scaler, file, *since),
        Command::Replay {
            audit,
            policy,
            params,
            config,
            scaler,
        } => cli::replay(
            &cli.host()?,
            audit,
            policy,
            params.as_deref(),
            config.as_deref(),
            scaler.as_deref(),
        ),
        Command::New { name, sdk } => {
            cli::new_policy(name, sdk.clone()).map(|()| ExitCode::SUCCESS)
        }
        Command::Build { dir, out } => cli::build(dir, out.clone()).map(|()| ExitCode::SUCCESS),
        Command::Policy { command, remote } => cli::policy(command, remote),
        Command::Scaler { command, remote } => cli::scaler(command, remote),
        Command::Tenant { command, remote } => cli::tenant(command, remote),
        Command::Simulate(args) => cli::simulate(&cli.host()?, args),
        Command::Demo { out } => cli::demo(&cli.host()?, out),
    }
}
