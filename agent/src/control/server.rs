//! The daemon's side of the control socket: non-blocking, polled from the daemon's loop, bounded
//! in connections, request size and time, so no client can stall or crash the daemon.

use std::{
    io::{self, Read as _, Write as _},
    os::{
        fd::{AsRawFd as _, RawFd},
        unix::{
            fs::PermissionsExt as _,
            net::{UnixListener, UnixStream},
        },
    },
    path::{Path, PathBuf},
    time::Duration,
};

use super::{ControlError, MAX_REQUEST, Request, Response};

/// Connections kept at most; a newer one pushes out the oldest.
const MAX_CONNECTIONS: usize = 64;
/// A client has this long to send its request.
const REQUEST_DEADLINE_NS: u64 = 1_000_000_000;
/// `CAP_NET_ADMIN`'s bit in the capability sets.
const CAP_NET_ADMIN: u32 = 12;

struct Conn {
    id: u64,
    stream: UnixStream,
    buf: Vec<u8>,
    deadline_ns: u64,
    privileged: bool,
    /// A subscriber to this stream of records (no more requests are read from it).
    subscribed: Option<Stream>,
}

/// What a subscriber receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Catalogue events.
    Events,
    /// Probe results (ipmpstat -p).
    Probes,
}

/// A request ready for the daemon, to be answered with [`Server::respond`].
#[derive(Debug)]
pub struct Pending {
    pub conn: u64,
    pub request: Request,
}

/// The listening socket and its connections.
pub struct Server {
    listener: UnixListener,
    path: PathBuf,
    conns: Vec<Conn>,
    next_id: u64,
}

/// Errors setting up the socket.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("another ipmpd answers on {0}; give this one another --socket or --instance")]
    InUse(PathBuf),
    #[error("cannot create the control socket {path}")]
    Bind { path: PathBuf, source: io::Error },
}

/// Whether the peer of `stream` is root or holds CAP_NET_ADMIN.
fn privileged(stream: &UnixStream) -> bool {
    let mut cred = libc::ucred {
        pid: 0,
        uid: u32::MAX,
        gid: u32::MAX,
    };
    let mut len = size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for SO_PEERCRED.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &raw mut len,
        )
    };
    if rc != 0 {
        return false;
    }
    if cred.uid == 0 {
        return true;
    }
    std::fs::read_to_string(format!("/proc/{}/status", cred.pid)).is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .is_some_and(|caps| caps & (1 << CAP_NET_ADMIN) != 0)
    })
}

impl Server {
    /// Binds `path` (its directory 0755, the socket 0666: anyone may query; changes are checked
    /// per request). A stale socket file is replaced; a live one is refused.
    ///
    /// # Errors
    /// Another daemon answering there, or no permission.
    pub fn bind(path: &Path) -> Result<Self, ServerError> {
        let bind_err = |source| ServerError::Bind {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(bind_err)?;
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755));
        }
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(ServerError::InUse(path.to_path_buf()));
            }
            let _ = std::fs::remove_file(path);
        }
        let listener = UnixListener::bind(path).map_err(bind_err)?;
        listener.set_nonblocking(true).map_err(bind_err)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).map_err(bind_err)?;
        Ok(Self {
            listener,
            path: path.to_path_buf(),
            conns: Vec::new(),
            next_id: 0,
        })
    }

    /// Descriptors to poll.
    #[must_use]
    pub fn fds(&self) -> Vec<RawFd> {
        std::iter::once(self.listener.as_raw_fd())
            .chain(self.conns.iter().map(|c| c.stream.as_raw_fd()))
            .collect()
    }

    /// Accepts, reads and expires; returns the complete requests. Refusals (permission, malformed,
    /// too long) are answered here.
    pub fn poll(&mut self, now_ns: u64) -> Vec<Pending> {
        while let Ok((stream, _)) = self.listener.accept() {
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            if self.conns.len() >= MAX_CONNECTIONS {
                self.conns.remove(0);
            }
            let privileged = privileged(&stream);
            self.next_id += 1;
            self.conns.push(Conn {
                id: self.next_id,
                stream,
                buf: Vec::new(),
                deadline_ns: now_ns + REQUEST_DEADLINE_NS,
                privileged,
                subscribed: None,
            });
        }
        let mut ready = Vec::new();
        let mut done = Vec::new();
        for c in &mut self.conns {
            if c.subscribed.is_some() {
                // A subscriber only listens; its end of the connection closing ends the stream.
                let mut probe = [0u8; 1];
                if matches!(c.stream.read(&mut probe), Ok(0)) {
                    done.push(c.id);
                }
                continue;
            }
            let mut chunk = [0u8; 4096];
            let mut eof = false;
            loop {
                match c.stream.read(&mut chunk) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => {
                        c.buf.extend_from_slice(&chunk[..n]);
                        if c.buf.len() > MAX_REQUEST || c.buf.contains(&b'\n') {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
            if let Some(end) = c.buf.iter().position(|b| *b == b'\n') {
                match serde_json::from_slice::<Request>(&c.buf[..end]) {
                    Ok(request) => {
                        let change =
                            matches!(request, Request::Offline { .. } | Request::Online { .. });
                        if change && !c.privileged {
                            answer(
                                &mut c.stream,
                                &Response::Err(ControlError::PermissionDenied),
                            );
                            done.push(c.id);
                        } else {
                            ready.push(Pending {
                                conn: c.id,
                                request,
                            });
                        }
                    }
                    Err(e) => {
                        answer(
                            &mut c.stream,
                            &Response::Err(ControlError::Malformed {
                                reason: e.to_string(),
                            }),
                        );
                        done.push(c.id);
                    }
                }
            } else if c.buf.len() > MAX_REQUEST {
                answer(
                    &mut c.stream,
                    &Response::Err(ControlError::Malformed {
                        reason: format!("request longer than {MAX_REQUEST} bytes"),
                    }),
                );
                done.push(c.id);
            } else if eof || now_ns >= c.deadline_ns {
                done.push(c.id);
            }
        }
        self.conns.retain(|c| !done.contains(&c.id));
        ready
    }

    /// Turns connection `conn` into a subscriber of `stream` after answering `response`.
    pub fn subscribe(&mut self, conn: u64, stream: Stream, response: &Response) {
        if let Some(c) = self.conns.iter_mut().find(|c| c.id == conn) {
            answer(&mut c.stream, response);
            let _ = c.stream.set_nonblocking(true);
            c.subscribed = Some(stream);
        }
    }

    /// Whether anyone follows `stream` (so that records nobody reads are not even built).
    #[must_use]
    pub fn followed(&self, stream: Stream) -> bool {
        self.conns.iter().any(|c| c.subscribed == Some(stream))
    }

    /// Sends one record to every subscriber of `stream`. A subscriber that cannot take it at once
    /// is dropped: a slow reader never holds the daemon up.
    pub fn publish(&mut self, stream: Stream, record: &serde_json::Value) {
        if !self.followed(stream) {
            return;
        }
        let Ok(mut line) = serde_json::to_vec(record) else {
            return;
        };
        line.push(b'\n');
        self.conns
            .retain_mut(|c| c.subscribed != Some(stream) || c.stream.write_all(&line).is_ok());
    }

    /// Sends `response` on connection `conn` and closes it.
    pub fn respond(&mut self, conn: u64, response: &Response) {
        if let Some(pos) = self.conns.iter().position(|c| c.id == conn) {
            let mut c = self.conns.remove(pos);
            answer(&mut c.stream, response);
        }
    }

    /// The socket's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Writes one response line; a client that does not read gets at most 100 ms.
fn answer(stream: &mut UnixStream, response: &Response) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
    if let Ok(mut line) = serde_json::to_vec(response) {
        line.push(b'\n');
        let _ = stream.write_all(&line);
    }
}
