//! The `ipmpd` binary: parses the command line and runs the subcommand. Errors end here, printed
//! with their chain of causes so the operator sees what to do.

use clap::Parser as _;
use ipmpd::cli::{Cli, Command, check_config, events, probe, watch};

fn main() -> std::process::ExitCode {
    init_logging();
    if let Some(code) = personality() {
        return code;
    }
    let cli = Cli::parse();
    match &cli.command {
        Command::CheckConfig(paths) => return check_config::run(paths),
        Command::Features(args) => return exit(ipmpd::cli::features::run(args)),
        Command::Detach(args) => return exit(ipmpd::cli::detach::run(args)),
        Command::Completions(args) => {
            ipmpd::cli::completions::run(args);
            return std::process::ExitCode::SUCCESS;
        }
        Command::Stat(args) => return exit(ipmpd::cli::stat::run(args)),
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
            let ran = ipmpd::daemon::run(args);
            if let Err(e) = &ran {
                ipmpd::lines::eprint_line(&format!("ipmpd: {e:#}"));
            }
            // The last log records, unless their reader stalls.
            ipmpd::lines::flush_stderr(ipmpd::lines::FLUSH_TIMEOUT);
            return match ran {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    // A bad configuration stays bad however often systemd restarts the daemon.
                    if e.downcast_ref::<ipmpd::daemon::ConfigRefused>().is_some() {
                        std::process::ExitCode::from(ipmpd::daemon::EX_CONFIG)
                    } else {
                        std::process::ExitCode::FAILURE
                    }
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
            | Command::Features(_)
            | Command::Detach(_)
            | Command::Run(_)
            | Command::Offline(_)
            | Command::Online(_)
            | Command::Stat(_)
            | Command::Completions(_) => Ok(()),
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

/// Prints an error the way every subcommand does and turns the result into an exit status.
fn exit(result: anyhow::Result<()>) -> std::process::ExitCode {
    exit_as("ipmpd", result)
}

/// [`exit`] with the program name the user typed (ipmpstat, if_mpadm) in front of the message.
fn exit_as(program: &str, result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{program}: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// ipmpstat and if_mpadm: the same binary under those names takes their arguments.
fn personality() -> Option<std::process::ExitCode> {
    use ipmpd::cli::names::{IfMpadm, Ipmpstat, Program};
    match Program::from_argv0(&std::env::args_os().next()?)? {
        Program::Ipmpd => None,
        Program::Ipmpstat => Some(exit_as(
            "ipmpstat",
            ipmpd::cli::stat::run(&Ipmpstat::parse().args),
        )),
        Program::IfMpadm => {
            let (request, offline) = IfMpadm::parse().request()?;
            Some(exit_as(
                "if_mpadm",
                ipmpd::cli::admin::run(&request, offline),
            ))
        }
    }
}

/// Logs to the journal when systemd runs ipmpd (JOURNAL_STREAM is set), to standard error
/// otherwise (also when nothing listens at journald's socket), never waiting for either
/// (`ipmpd::journal_log`, `ipmpd::lines`). Catalogue events go to journald by themselves
/// (`ipmpd::journal`), with their MESSAGE_ID, priority and parameters as fields; other records'
/// fields keep their own names, in upper case (`IPMPD_` in front of a name journald uses).
/// `IPMPD_LOG` filters (default: info in the journal, warn on a terminal).
fn init_logging() {
    use tracing_subscriber::{EnvFilter, layer::SubscriberExt as _, util::SubscriberInitExt as _};
    let journal = ipmpd::journal::under_systemd()
        .then(|| ipmpd::journal_log::JournalLayer::new(&ipmpd::journal::socket_path()).ok())
        .flatten();
    let default = if journal.is_some() { "info" } else { "warn" };
    let filter = EnvFilter::try_from_env("IPMPD_LOG").unwrap_or_else(|_| default.into());
    match journal {
        Some(layer) => tracing_subscriber::registry()
            .with(filter)
            .with(layer)
            .init(),
        None => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(ipmpd::lines::StderrLines)
            .init(),
    }
}
