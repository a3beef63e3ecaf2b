//! The control socket: a Unix stream socket under `/run/ipmpd/` speaking one JSON request and one
//! JSON response per connection, one line each. Queries are for any local user; changes
//! (offline/online) only for root or members of `--admin-group`, judged on the credentials the
//! peer connected with ([`peer`]).

pub mod client;
pub mod peer;
pub mod server;
pub mod snapshot;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::engine::AdminError;

/// Longest request line accepted; anything longer is refused without being read further.
pub const MAX_REQUEST: usize = 64 * 1024;

/// The socket of an instance: `/run/ipmpd/ipmpd.sock`, or `/run/ipmpd/NAME.sock`.
#[must_use]
pub fn default_socket(instance: Option<&str>) -> PathBuf {
    PathBuf::from(format!("/run/ipmpd/{}.sock", instance.unwrap_or("ipmpd")))
}

/// A request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    /// Is the daemon there?
    Ping,
    /// The state of every interface.
    Interfaces,
    /// Groups, interfaces, targets and addresses as ipmpstat shows them.
    Snapshot,
    /// Keep the connection and send catalogue events as they happen, one JSON line each.
    FollowEvents,
    /// Keep the connection and send probe results as they happen (ipmpstat -p).
    FollowProbes,
    /// if_mpadm -d.
    Offline { ifname: String },
    /// if_mpadm -r.
    Online { ifname: String },
}

/// Why a request failed, with if_mpadm's wording where it has one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum ControlError {
    /// The engine refused (if_mpadm's errors).
    #[error("{code}")]
    Refused { code: AdminError },
    #[error(
        "permission denied: changes need root, or membership of the group ipmpd was started with --admin-group"
    )]
    PermissionDenied,
    #[error("malformed request: {reason}")]
    Malformed { reason: String },
}

impl From<AdminError> for ControlError {
    fn from(code: AdminError) -> Self {
        Self::Refused { code }
    }
}

/// A response: a result or an error.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    Ok(serde_json::Value),
    Err(ControlError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format() {
        let r = Request::Offline {
            ifname: "h0".into(),
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"request":"offline","ifname":"h0"}"#
        );
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"request":"ping"}"#).unwrap(),
            Request::Ping
        );
        let e = Response::Err(AdminError::MinRedundancy.into());
        let wire = serde_json::to_string(&e).unwrap();
        assert_eq!(
            wire,
            r#"{"err":{"error":"refused","code":"min_redundancy"}}"#
        );
        assert_eq!(serde_json::from_str::<Response>(&wire).unwrap(), e);
        assert!(serde_json::from_str::<Request>(r#"{"request":"reboot"}"#).is_err());
    }
}
