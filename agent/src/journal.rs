//! Sending catalogue events to journald over its native socket, so each entry carries its
//! MESSAGE_ID, its syslog priority and its parameters as fields of their own
//! ([`crate::events::journal`] builds them). Used when systemd runs ipmpd (`JOURNAL_STREAM`).

use std::{
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
};

use crate::events::journal::encode;

/// journald's native protocol socket.
pub const SOCKET: &str = "/run/systemd/journal/socket";

/// Names another socket for journald's native protocol (a container's, or a test's fake).
pub const SOCKET_VAR: &str = "IPMPD_JOURNAL_SOCKET";

/// The socket entries go to: [`SOCKET_VAR`] when set, journald's own otherwise.
#[must_use]
pub fn socket_path() -> PathBuf {
    std::env::var_os(SOCKET_VAR).map_or_else(|| PathBuf::from(SOCKET), PathBuf::from)
}

/// Whether systemd runs ipmpd with its output connected to the journal.
#[must_use]
pub fn under_systemd() -> bool {
    std::env::var_os("JOURNAL_STREAM").is_some()
}

/// An entry larger than this is sent with its message cut: a datagram journald takes without a
/// memfd, and far more than any catalogue event needs.
const MAX_ENTRY: usize = 64 * 1024;

/// Why an entry could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot create a datagram socket: {0}")]
    Socket(#[source] std::io::Error),
    #[error("cannot send to journald at {path}: {source}")]
    Send {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl JournalError {
    /// journald is there but its queue is full: the entry was not taken, and waiting would hold
    /// the detection loop.
    #[must_use]
    pub fn busy(&self) -> bool {
        matches!(self, Self::Send { source, .. } if source.kind() == std::io::ErrorKind::WouldBlock)
    }
}

/// A connection-less sender to one journald socket.
#[derive(Debug)]
pub struct Journal {
    socket: UnixDatagram,
    path: PathBuf,
}

impl Journal {
    /// A sender to the socket at `path` (journald's, or a test's).
    ///
    /// # Errors
    /// When no socket can be created.
    pub fn new(path: &Path) -> Result<Self, JournalError> {
        let socket = UnixDatagram::unbound().map_err(JournalError::Socket)?;
        // The sender is the detection loop: a journald that is slow to read must not hold it.
        socket.set_nonblocking(true).map_err(JournalError::Socket)?;
        Ok(Self {
            socket,
            path: path.to_owned(),
        })
    }

    /// Whether journald is there to take entries: an empty datagram, which journald ignores (a
    /// full queue counts as there).
    ///
    /// # Errors
    /// When nothing listens at the socket, or it cannot be written.
    pub fn reachable(&self) -> Result<(), JournalError> {
        match self.socket.send_to(&[], &self.path) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
            Err(source) => Err(JournalError::Send {
                path: self.path.clone(),
                source,
            }),
        }
    }

    /// Sends one entry made of `fields`.
    ///
    /// # Errors
    /// When journald does not take it now (not running, or its queue full: never waited for).
    pub fn send(&self, fields: &[(String, String)]) -> Result<(), JournalError> {
        let mut bytes = encode(fields);
        if bytes.len() > MAX_ENTRY {
            let cut: Vec<(String, String)> = fields
                .iter()
                .map(|(k, v)| {
                    let mut v = v.clone();
                    if v.len() > 1024 {
                        let mut end = 1024;
                        while !v.is_char_boundary(end) {
                            end -= 1;
                        }
                        let total = v.len();
                        v.truncate(end);
                        v.push_str(&format!(" [cut: {total} bytes]"));
                    }
                    (k.clone(), v)
                })
                .collect();
            bytes = encode(&cut);
        }
        self.socket
            .send_to(&bytes, &self.path)
            .map(|_| ())
            .map_err(|source| JournalError::Send {
                path: self.path.clone(),
                source,
            })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::events::{journal::entry_fields, render};

    /// A fresh directory for one test's socket, removed by the caller.
    pub(crate) fn scratch(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ipmpd-journal-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Parses one native-protocol datagram back into fields.
    pub(crate) fn parse(mut b: &[u8]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        while !b.is_empty() {
            let nl = b.iter().position(|&c| c == b'\n').unwrap();
            let line = &b[..nl];
            if let Some(eq) = line.iter().position(|&c| c == b'=') {
                out.push((
                    String::from_utf8(line[..eq].to_vec()).unwrap(),
                    String::from_utf8(line[eq + 1..].to_vec()).unwrap(),
                ));
                b = &b[nl + 1..];
            } else {
                let key = String::from_utf8(line.to_vec()).unwrap();
                let len = u64::from_le_bytes(b[nl + 1..nl + 9].try_into().unwrap()) as usize;
                let v = &b[nl + 9..nl + 9 + len];
                out.push((key, String::from_utf8(v.to_vec()).unwrap()));
                b = &b[nl + 9 + len + 1..];
            }
        }
        out
    }

    #[test]
    fn a_fake_journald_receives_the_entry_field_by_field() {
        let dir = scratch("fields");
        let path = dir.join("socket");
        let fake = UnixDatagram::bind(&path).unwrap();
        let r = render(
            "ipmultipath.group.failed",
            serde_json::json!({"group": "g"})
                .as_object()
                .unwrap()
                .clone(),
        )
        .unwrap();
        let mut fields = entry_fields(&r, "");
        fields.push(("DETAIL".into(), "two\nlines".into()));
        Journal::new(&path).unwrap().send(&fields).unwrap();
        let mut buf = vec![0; 65536];
        let n = fake.recv(&mut buf).unwrap();
        assert_eq!(parse(&buf[..n]), fields);
        assert!(
            fields.contains(&("PRIORITY".into(), "1".into())),
            "ALERT is syslog 1"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_journald_that_does_not_read_is_reported_busy_at_once_never_waited_for() {
        let dir = scratch("busy");
        let path = dir.join("socket");
        let _fake = UnixDatagram::bind(&path).unwrap();
        let j = Journal::new(&path).unwrap();
        let fields = vec![("MESSAGE".to_owned(), "x".repeat(1000))];
        // The receive queue holds a bounded number of datagrams; one send after it is full fails.
        let busy = (0..10_000).find_map(|_| j.send(&fields).err());
        let err = busy.expect("the queue fills");
        assert!(err.busy(), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_oversized_entry_is_cut_not_lost_and_a_missing_journald_is_an_error() {
        let dir = scratch("cut");
        let path = dir.join("socket");
        let j = Journal::new(&path).unwrap();
        let fields = vec![("MESSAGE".to_owned(), "é".repeat(100_000))];
        let err = j.send(&fields).unwrap_err();
        assert!(err.to_string().contains("cannot send to journald"), "{err}");
        assert!(j.reachable().is_err(), "nothing listens yet");
        let fake = UnixDatagram::bind(&path).unwrap();
        j.reachable().unwrap();
        assert_eq!(fake.recv(&mut [0u8; 16]).unwrap(), 0, "an empty datagram");
        j.send(&fields).unwrap();
        let mut buf = vec![0; 300_000];
        let n = fake.recv(&mut buf).unwrap();
        let got = parse(&buf[..n]);
        assert_eq!(got[0].0, "MESSAGE");
        let (kept, mark) = got[0].1.split_once(" [cut: ").expect("the cut is marked");
        assert!(kept.len() <= 1024 && kept.starts_with('é'));
        assert_eq!(mark, "200000 bytes]");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
