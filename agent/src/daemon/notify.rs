//! systemd's notification protocol through the `sd-notify` crate: readiness once the datapath is
//! attached, watchdog keep-alives, reload and stop notices. A no-op outside systemd (no
//! `NOTIFY_SOCKET`). A failed notification is logged, never fatal: detection goes on without it.

use sd_notify::NotifyState;

/// What systemd asked for, read once at start.
#[derive(Debug)]
pub struct Notifier {
    /// Keep-alive period: half of `WATCHDOG_USEC` (when `WATCHDOG_PID` is unset or ours).
    pub watchdog_ns: Option<u64>,
}

impl Notifier {
    /// From the environment systemd sets.
    #[must_use]
    pub fn from_env() -> Self {
        let watchdog_ns = sd_notify::watchdog_enabled()
            .map(|period| u64::try_from(period.as_nanos() / 2).unwrap_or(u64::MAX));
        Self { watchdog_ns }
    }

    /// Every member present is tracked and placed.
    pub fn ready(&self, status: &str) {
        send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// The loop is alive.
    pub fn watchdog(&self) {
        send(&[NotifyState::Watchdog]);
    }

    /// A reload begins: `RELOADING=1` with the `MONOTONIC_USEC` systemd 253 and later require
    /// (without it, `systemctl reload` of a `Type=notify-reload` unit waits for its timeout).
    pub fn reloading(&self) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => send(&[NotifyState::Reloading, now]),
            Err(e) => tracing::warn!("cannot read CLOCK_MONOTONIC for systemd: {e}"),
        }
    }

    /// A reload is done (whether the new configuration was taken or refused).
    pub fn reloaded(&self) {
        send(&[NotifyState::Ready]);
    }

    /// A clean stop begins.
    pub fn stopping(&self) {
        send(&[NotifyState::Stopping]);
    }
}

fn send(states: &[NotifyState<'_>]) {
    let sent = match std::env::var("NOTIFY_SOCKET") {
        // An abstract socket (`@name`), which the crate does not speak.
        Ok(path) if path.starts_with('@') => send_abstract(&path[1..], states),
        _ => sd_notify::notify(states),
    };
    if let Err(e) = sent {
        tracing::warn!("cannot notify systemd: {e}");
    }
}

/// `states` as one datagram to the abstract socket `name`, in the crate's format (one
/// `KEY=VALUE` per line).
fn send_abstract(name: &str, states: &[NotifyState<'_>]) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt as _;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let message: String = states.iter().map(|s| format!("{s}\n")).collect();
    let addr = SocketAddr::from_abstract_name(name.as_bytes())?;
    UnixDatagram::unbound()?.send_to_addr(message.as_bytes(), &addr)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::{
        linux::net::SocketAddrExt as _,
        unix::net::{SocketAddr, UnixDatagram},
    };

    use super::*;

    #[test]
    fn an_abstract_notify_socket_is_reached() {
        let name = format!("ipmpd-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let systemd = UnixDatagram::bind_addr(&addr).unwrap();
        send_abstract(
            &name,
            &[
                NotifyState::Ready,
                NotifyState::Status("tracking 2 interfaces"),
            ],
        )
        .unwrap();
        let mut buf = [0u8; 128];
        let n = systemd.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=tracking 2 interfaces\n");
    }
}
