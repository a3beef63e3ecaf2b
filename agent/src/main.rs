//! The `ipmpd` binary: parses the command line and runs the subcommand. Errors end here, printed
//! with their chain of causes so the operator sees what to do.

use clap::Parser as _;
use ipmpd::cli::{Cli, Command, check_config, events, probe, watch};

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("IPMPD_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match &cli.command {
        Command::CheckConfig(paths) => return check_config::run(paths),
        Command::Offline(args) | Command::Online(args) => {
            let offline = matches!(cli.command, Command::Offline(_));
            return match ipmpd::cli::admin::run(args, offline) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ipmpd: {e:#}");
                    std::process::ExitCode::FAILURE
                }
            };
        }
        // The daemon runs its own poll loop (nanosecond timers), without the async runtime.
        Command::Run(args) => {
            return match ipmpd::daemon::run(args) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ipmpd: {e:#}");
                    std::process::ExitCode::FAILURE
                }
            };
        }
        _ => {}
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ipmpd: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Probe(args) => probe::run(args).await,
            Command::Watch(args) => watch::run(args).await,
            Command::Events(args) => events::run(&args),
            Command::CheckConfig(_)
            | Command::Run(_)
            | Command::Offline(_)
            | Command::Online(_) => Ok(()),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ipmpd: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
