//! systemd's notification protocol (sd_notify): readiness once the datapath is attached, watchdog
//! keep-alives, reload and stop notices. A no-op outside systemd (no `NOTIFY_SOCKET`).

use std::os::unix::net::UnixDatagram;

/// The notification socket, when running under systemd with `Type=notify`.
#[derive(Debug)]
pub struct Notifier {
    socket: Option<(UnixDatagram, String)>,
    /// Keep-alive period: half of `WATCHDOG_USEC`.
    pub watchdog_ns: Option<u64>,
}

impl Notifier {
    /// From the environment systemd sets.
    #[must_use]
    pub fn from_env() -> Self {
        let socket = std::env::var("NOTIFY_SOCKET").ok().and_then(|path| {
            // An abstract socket is written with a leading '@'.
            let target = path.replacen('@', "\0", 1);
            UnixDatagram::unbound().ok().map(|s| (s, target))
        });
        let watchdog_ns = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map(|us| us * 1000 / 2);
        Self {
            socket,
            watchdog_ns,
        }
    }

    /// A reload begins: `RELOADING=1` with the monotonic time systemd (253 and later) asks for.
    pub fn reloading(&self) {
        let usec = crate::clock::monotonic_ns() / 1000;
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"));
    }

    /// Sends `state` (e.g. `READY=1`).
    pub fn send(&self, state: &str) {
        if let Some((sock, target)) = &self.socket {
            let _ = send_to(sock, target, state);
        }
    }
}

fn send_to(sock: &UnixDatagram, target: &str, state: &str) -> std::io::Result<usize> {
    if let Some(name) = target.strip_prefix('\0') {
        use std::os::linux::net::SocketAddrExt as _;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        sock.send_to_addr(state.as_bytes(), &addr)
    } else {
        sock.send_to(state.as_bytes(), target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_a_path_socket() {
        let dir = std::env::temp_dir().join(format!("ipmpd-notify-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("notify");
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        let n = Notifier {
            socket: Some((UnixDatagram::unbound().unwrap(), path.display().to_string())),
            watchdog_ns: None,
        };
        n.send("READY=1\nSTATUS=tracking 2 interfaces");
        let mut buf = [0u8; 128];
        let len = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=tracking 2 interfaces");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn outside_systemd_it_does_nothing() {
        let n = Notifier {
            socket: None,
            watchdog_ns: None,
        };
        n.send("READY=1");
    }
}
