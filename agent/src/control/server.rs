//! The daemon's side of the control socket. All of its I/O runs on a thread of its own, never on
//! the detection thread: the detection thread only takes complete requests (a bounded number per
//! wake-up) and hands back responses and stream records, through channels. Every connection is
//! bounded in what it may send, in how long it may take, and in what may wait for it; a client
//! that does not keep up is dropped, and a privileged client is never pushed out for an
//! unprivileged one.

use std::{
    collections::VecDeque,
    io::{self, Read as _, Write as _},
    os::{
        fd::{AsFd as _, BorrowedFd, OwnedFd},
        unix::net::{UnixListener, UnixStream},
    },
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        mpsc,
    },
    thread::JoinHandle,
};

use super::{
    ControlError, MAX_REQUEST, Request, Response,
    peer::{Policy, peer},
};
use rustix::{
    event::{PollFd, PollFlags},
    fs::Mode,
};

use crate::{clock::monotonic_ns, fds};

/// Connections kept at most ...
const MAX_CONNECTIONS: usize = 64;
/// ... of which this many are kept for privileged clients only.
const PRIVILEGED_RESERVE: usize = 8;
/// A client has this long to send its request, and to take its response.
const DEADLINE_NS: u64 = 1_000_000_000;
/// Most output waiting for one connection; a subscriber beyond it is dropped.
const MAX_PENDING_OUTPUT: usize = 1024 * 1024;
/// A subscriber only listens: what it sends is read and thrown away, up to this much.
const MAX_SUBSCRIBER_INPUT: u64 = 64 * 1024;

/// What a subscriber receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Catalogue events.
    Events,
    /// Probe results (ipmpstat -p).
    Probes,
}

impl Stream {
    fn index(self) -> usize {
        match self {
            Self::Events => 0,
            Self::Probes => 1,
        }
    }
}

/// A request ready for the daemon, to be answered with [`Server::respond`].
#[derive(Debug)]
pub struct Pending {
    pub conn: u64,
    pub request: Request,
}

/// Connections refused or dropped, by reason (for the metrics).
#[derive(Debug, Default)]
pub struct Refusals {
    /// Every slot taken.
    pub full: AtomicU64,
    /// A change asked for without the privilege.
    pub permission: AtomicU64,
    /// Not a request: malformed, too long, too slow.
    pub malformed: AtomicU64,
    /// A subscriber that did not keep up, or talked.
    pub dropped: AtomicU64,
}

impl Refusals {
    /// Each reason with its count.
    #[must_use]
    pub fn by_reason(&self) -> [(&'static str, u64); 4] {
        [
            ("full", self.full.load(Ordering::Relaxed)),
            ("permission", self.permission.load(Ordering::Relaxed)),
            ("malformed", self.malformed.load(Ordering::Relaxed)),
            ("dropped", self.dropped.load(Ordering::Relaxed)),
        ]
    }
}

/// What the daemon sends the I/O thread.
enum Out {
    Respond(u64, Vec<u8>),
    Subscribe(u64, Stream, Vec<u8>),
    Publish(Stream, Vec<u8>),
}

/// The control socket, served by its own thread.
pub struct Server {
    path: PathBuf,
    to_io: mpsc::Sender<Out>,
    from_io: mpsc::Receiver<Pending>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// What the daemon and the I/O thread both hold.
struct Shared {
    /// Rung by the I/O thread when requests wait; the daemon polls it.
    ready: OwnedFd,
    /// Rung by the daemon when output waits, or to stop.
    wake: OwnedFd,
    stop: AtomicBool,
    /// Subscribers per stream, kept by the I/O thread.
    followers: [AtomicUsize; 2],
    refusals: Refusals,
}

/// Errors setting up the socket.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("another ipmpd answers on {0}; give this one another --socket or --instance")]
    InUse(PathBuf),
    #[error("cannot create the control socket {path}")]
    Bind { path: PathBuf, source: io::Error },
}

/// Binds `path` with mode 0666 from the start (a umask around bind(2), so no chmod that could
/// follow a symlink planted in between). The directory is created 0755 when missing; an existing
/// one is left as it is.
fn bind_socket(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent()
        && !dir.exists()
    {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)?;
    }
    // The old mask is put back right after bind.
    let old = rustix::process::umask(Mode::from_raw_mode(0o111));
    let listener = UnixListener::bind(path);
    rustix::process::umask(old);
    listener
}

impl Server {
    /// Binds `path` (anyone may connect and query; `policy` says who may change things) and starts
    /// the I/O thread. A stale socket file is replaced; a live one is refused.
    ///
    /// # Errors
    /// Another daemon answering there, or no permission.
    pub fn bind(path: &Path, policy: Policy) -> Result<Self, ServerError> {
        let bind_err = |source| ServerError::Bind {
            path: path.to_path_buf(),
            source,
        };
        if std::fs::symlink_metadata(path).is_ok() {
            if UnixStream::connect(path).is_ok() {
                return Err(ServerError::InUse(path.to_path_buf()));
            }
            let _ = std::fs::remove_file(path);
        }
        let listener = bind_socket(path).map_err(bind_err)?;
        listener.set_nonblocking(true).map_err(bind_err)?;
        let shared = Arc::new(Shared {
            ready: fds::event_fd().map_err(bind_err)?,
            wake: fds::event_fd().map_err(bind_err)?,
            stop: AtomicBool::new(false),
            followers: [AtomicUsize::new(0), AtomicUsize::new(0)],
            refusals: Refusals::default(),
        });
        let (to_io, outs) = mpsc::channel();
        let (requests, from_io) = mpsc::channel();
        let mut io = Io {
            listener,
            policy,
            conns: Vec::new(),
            next_id: 0,
            outs,
            requests,
            shared: Arc::clone(&shared),
        };
        let thread = std::thread::Builder::new()
            .name("ipmpd-control".into())
            .spawn(move || {
                crate::sched::normal_here();
                io.run();
            })
            .map_err(bind_err)?;
        Ok(Self {
            path: path.to_path_buf(),
            to_io,
            from_io,
            shared,
            thread: Some(thread),
        })
    }

    /// The descriptor that becomes readable when requests wait.
    #[must_use]
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.shared.ready.as_fd()
    }

    /// At most `max` complete requests; the rest wait for the next call (the descriptor stays
    /// readable).
    pub fn poll(&mut self, max: usize) -> Vec<Pending> {
        fds::drain(&self.shared.ready);
        let out: Vec<Pending> = self.from_io.try_iter().take(max).collect();
        if out.len() == max {
            fds::ring(&self.shared.ready);
        }
        out
    }

    fn send(&self, out: Out) {
        let _ = self.to_io.send(out);
        fds::ring(&self.shared.wake);
    }

    /// Answers `response` on connection `conn` and closes it.
    pub fn respond(&self, conn: u64, response: &Response) {
        self.respond_line(conn, line(response));
    }

    /// Answers with a line [`answer_line`] made (one answer built for many connections).
    pub fn respond_line(&self, conn: u64, line: Vec<u8>) {
        self.send(Out::Respond(conn, line));
    }

    /// Turns connection `conn` into a subscriber of `stream` after answering `response`.
    pub fn subscribe(&self, conn: u64, stream: Stream, response: &Response) {
        self.send(Out::Subscribe(conn, stream, line(response)));
    }

    /// Whether anyone follows `stream` (so that records nobody reads are not even built).
    #[must_use]
    pub fn followed(&self, stream: Stream) -> bool {
        self.shared.followers[stream.index()].load(Ordering::Relaxed) > 0
    }

    /// Sends one record to every subscriber of `stream`; one that cannot take it is dropped.
    pub fn publish(&self, stream: Stream, record: &serde_json::Value) {
        if self.followed(stream) {
            self.send(Out::Publish(stream, line(record)));
        }
    }

    /// Connections refused or dropped, by reason.
    #[must_use]
    pub fn refusals(&self) -> &Refusals {
        &self.shared.refusals
    }

    /// The socket's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        fds::ring(&self.shared.wake);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `response` as the line a client reads.
#[must_use]
pub fn answer_line(response: &Response) -> Vec<u8> {
    line(response)
}

fn line(v: &impl serde::Serialize) -> Vec<u8> {
    let mut l = serde_json::to_vec(v).unwrap_or_default();
    l.push(b'\n');
    l
}

/// One connection, as the I/O thread keeps it.
struct Conn {
    id: u64,
    stream: UnixStream,
    input: Vec<u8>,
    output: VecDeque<u8>,
    deadline_ns: u64,
    privileged: bool,
    /// A request was handed to the daemon; its answer is awaited.
    asked: bool,
    /// Close once the output is written.
    closing: bool,
    subscribed: Option<Stream>,
    /// What a subscriber sent (read and thrown away).
    chatter: u64,
}

impl Conn {
    /// Still to send its request.
    fn awaits_request(&self) -> bool {
        self.subscribed.is_none() && !self.closing && !self.asked
    }

    /// When the connection is given up: its request is due by the deadline; an answer in the
    /// making or being written gets one more deadline; a subscriber has none.
    fn expiry(&self) -> Option<u64> {
        if self.subscribed.is_some() {
            None
        } else if self.awaits_request() {
            Some(self.deadline_ns)
        } else {
            Some(self.deadline_ns.saturating_add(DEADLINE_NS))
        }
    }

    /// What to wait for. Input is only read when it is wanted (a request not yet complete, or a
    /// subscriber's chatter); a connection wanting nothing is left out (`None`), so that unread
    /// input never makes the thread spin.
    fn pollfd(&self) -> Option<PollFd<'_>> {
        let mut events = PollFlags::empty();
        if self.subscribed.is_some() || self.awaits_request() {
            events |= PollFlags::IN;
        }
        if !self.output.is_empty() {
            events |= PollFlags::OUT;
        }
        (!events.is_empty()).then(|| PollFd::new(&self.stream, events))
    }
}

/// The I/O thread's state.
struct Io {
    listener: UnixListener,
    policy: Policy,
    conns: Vec<Conn>,
    next_id: u64,
    outs: mpsc::Receiver<Out>,
    requests: mpsc::Sender<Pending>,
    shared: Arc<Shared>,
}

impl Io {
    fn run(&mut self) {
        while !self.shared.stop.load(Ordering::Relaxed) {
            let now = monotonic_ns();
            let next = self.conns.iter().filter_map(Conn::expiry).min();
            let mut pfds: Vec<PollFd<'_>> = [
                PollFd::new(&self.listener, PollFlags::IN),
                PollFd::new(&self.shared.wake, PollFlags::IN),
            ]
            .into_iter()
            .chain(self.conns.iter().filter_map(Conn::pollfd))
            .collect();
            let timeout = next.map(|d| crate::clock::timespec(d.saturating_sub(now)));
            // What became ready is found by trying: every connection is read and written below.
            let _ = rustix::event::poll(&mut pfds, timeout.as_ref());
            drop(pfds);
            fds::drain(&self.shared.wake);
            self.take_outs();
            self.accept(monotonic_ns());
            let now = monotonic_ns();
            for c in &mut self.conns {
                if !c.closing {
                    read(c, &self.requests, &self.shared);
                }
                write(c);
                if c.expiry().is_some_and(|t| now >= t) {
                    if c.awaits_request() {
                        // Too slow to say what it wants.
                        self.shared
                            .refusals
                            .malformed
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    c.closing = true;
                    c.output.clear();
                }
            }
            let before = self.conns.len();
            self.conns.retain(|c| !(c.closing && c.output.is_empty()));
            if self.conns.len() != before {
                self.count_followers();
            }
        }
    }

    fn count_followers(&self) {
        for s in [Stream::Events, Stream::Probes] {
            let n = self
                .conns
                .iter()
                .filter(|c| c.subscribed == Some(s) && !c.closing)
                .count();
            self.shared.followers[s.index()].store(n, Ordering::Relaxed);
        }
    }

    fn take_outs(&mut self) {
        while let Ok(out) = self.outs.try_recv() {
            match out {
                Out::Respond(id, bytes) => {
                    if let Some(c) = self.conns.iter_mut().find(|c| c.id == id) {
                        c.output.extend(bytes);
                        c.closing = true;
                        c.deadline_ns = monotonic_ns() + DEADLINE_NS;
                    }
                }
                Out::Subscribe(id, stream, bytes) => {
                    if let Some(c) = self.conns.iter_mut().find(|c| c.id == id) {
                        c.output.extend(bytes);
                        c.subscribed = Some(stream);
                        c.asked = false;
                    }
                    self.count_followers();
                }
                Out::Publish(stream, bytes) => {
                    let mut dropped = false;
                    for c in self
                        .conns
                        .iter_mut()
                        .filter(|c| c.subscribed == Some(stream) && !c.closing)
                    {
                        if c.output.len() + bytes.len() > MAX_PENDING_OUTPUT {
                            // A slow reader never holds anything up: it is let go.
                            self.shared.refusals.dropped.fetch_add(1, Ordering::Relaxed);
                            c.closing = true;
                            c.output.clear();
                            dropped = true;
                        } else {
                            c.output.extend(bytes.iter().copied());
                        }
                    }
                    if dropped {
                        self.count_followers();
                    }
                }
            }
        }
    }

    fn accept(&mut self, now: u64) {
        while let Ok((stream, _)) = self.listener.accept() {
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let privileged = peer(stream.as_fd()).is_some_and(|p| self.policy.may_change(&p));
            let open = self.conns.iter().filter(|c| !c.closing).count();
            let limit = if privileged {
                MAX_CONNECTIONS
            } else {
                MAX_CONNECTIONS - PRIVILEGED_RESERVE
            };
            if open >= limit {
                // Full: the newcomer takes the place of the oldest connection that has not even
                // sent its request yet (so half-open connections cannot lock everyone out), or,
                // when privileged, of any unprivileged one. Never of a more privileged one, and
                // never of one whose answer is being made.
                let victim = self
                    .conns
                    .iter_mut()
                    .filter(|c| {
                        !c.closing
                            && !c.asked
                            && (c.awaits_request() && (privileged || !c.privileged)
                                || privileged && !c.privileged)
                    })
                    .min_by_key(|c| (c.privileged, !c.awaits_request(), c.id));
                match victim {
                    Some(v) => {
                        v.closing = true;
                        v.output.clear();
                    }
                    None => {
                        self.shared.refusals.full.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                }
                self.shared.refusals.full.fetch_add(1, Ordering::Relaxed);
            }
            self.next_id += 1;
            self.conns.push(Conn {
                id: self.next_id,
                stream,
                input: Vec::new(),
                output: VecDeque::new(),
                deadline_ns: now + DEADLINE_NS,
                privileged,
                asked: false,
                closing: false,
                subscribed: None,
                chatter: 0,
            });
        }
    }
}

/// Reads what `c` sent: a subscriber's chatter is thrown away (up to a limit); a request is
/// parsed once its line is complete and, if allowed, handed to the daemon.
fn read(c: &mut Conn, requests: &mpsc::Sender<Pending>, shared: &Shared) {
    let refusals = &shared.refusals;
    let mut chunk = [0u8; 4096];
    if c.subscribed.is_some() {
        loop {
            match c.stream.read(&mut chunk) {
                Ok(0) => {
                    c.closing = true;
                    c.output.clear();
                    return;
                }
                Ok(n) => {
                    c.chatter += n as u64;
                    if c.chatter > MAX_SUBSCRIBER_INPUT {
                        refusals.dropped.fetch_add(1, Ordering::Relaxed);
                        c.closing = true;
                        c.output.clear();
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    }
    if c.asked {
        return;
    }
    let mut eof = false;
    while c.input.len() <= MAX_REQUEST && !c.input.contains(&b'\n') {
        match c.stream.read(&mut chunk) {
            Ok(0) => {
                eof = true;
                break;
            }
            Ok(n) => c.input.extend_from_slice(&chunk[..n]),
            Err(_) => break,
        }
    }
    let refuse = |c: &mut Conn, e: ControlError| {
        c.output.extend(line(&Response::Err(e)));
        c.closing = true;
    };
    if let Some(end) = c.input.iter().position(|b| *b == b'\n') {
        match serde_json::from_slice::<Request>(&c.input[..end]) {
            Ok(request) => {
                let change = matches!(request, Request::Offline { .. } | Request::Online { .. });
                if change && !c.privileged {
                    refusals.permission.fetch_add(1, Ordering::Relaxed);
                    refuse(c, ControlError::PermissionDenied);
                } else {
                    c.asked = true;
                    let _ = requests.send(Pending {
                        conn: c.id,
                        request,
                    });
                    fds::ring(&shared.ready);
                }
            }
            Err(e) => {
                refusals.malformed.fetch_add(1, Ordering::Relaxed);
                refuse(
                    c,
                    ControlError::Malformed {
                        reason: e.to_string(),
                    },
                );
            }
        }
    } else if c.input.len() > MAX_REQUEST {
        refusals.malformed.fetch_add(1, Ordering::Relaxed);
        refuse(
            c,
            ControlError::Malformed {
                reason: format!("request longer than {MAX_REQUEST} bytes"),
            },
        );
    } else if eof {
        c.closing = true;
        c.output.clear();
    }
}

/// Writes what waits for `c`, as much as the socket takes now.
fn write(c: &mut Conn) {
    while !c.output.is_empty() {
        let (a, _) = c.output.as_slices();
        match c.stream.write(a) {
            Ok(0) => break,
            Ok(n) => {
                c.output.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(_) => {
                c.output.clear();
                c.closing = true;
                break;
            }
        }
    }
}
