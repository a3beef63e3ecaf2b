//! `ipmpd offline IF` and `ipmpd online IF`: if_mpadm -d and -r.

use std::path::PathBuf;

use anyhow::bail;

use crate::{
    control::{ControlError, Request, Response, client, default_socket},
    engine::AdminError,
};

/// Where to find the daemon.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// The daemon's control socket.
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// The daemon's instance name (socket /run/ipmpd/INSTANCE.sock).
    #[arg(long, value_parser = crate::datapath::parse_instance)]
    pub instance: Option<String>,
}

impl Target {
    /// The socket path.
    #[must_use]
    pub fn path(&self) -> PathBuf {
        self.socket
            .clone()
            .unwrap_or_else(|| default_socket(self.instance.as_deref()))
    }
}

/// Arguments of `ipmpd offline` / `ipmpd online`.
#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    /// The interface.
    pub interface: String,
    #[command(flatten)]
    pub target: Target,
}

/// Offlines (`offline == true`) or onlines an interface through the daemon.
///
/// # Errors
/// The daemon's refusal, in if_mpadm's words, or an unreachable daemon.
pub fn run(args: &AdminArgs, offline: bool) -> anyhow::Result<()> {
    let request = if offline {
        Request::Offline {
            ifname: args.interface.clone(),
        }
    } else {
        Request::Online {
            ifname: args.interface.clone(),
        }
    };
    let verb = if offline { "offline" } else { "online" };
    match client::call(&args.target.path(), &request)? {
        Response::Ok(_) => Ok(()),
        Response::Err(
            e @ ControlError::Refused {
                code: AdminError::UnknownInterface,
            },
        ) => bail!("{}: {e}", args.interface),
        Response::Err(e) => bail!("cannot {verb} {}: {e}", args.interface),
    }
}
