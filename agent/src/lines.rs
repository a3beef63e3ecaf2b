//! Lines for standard output and standard error, written by a thread of their own.
//!
//! A reader that stops reading (a paused pager, a stalled log collector, a harness that is busy
//! elsewhere) fills the pipe, and a write to a full pipe blocks. From the probing loop, that write
//! stopped probing and detection for as long as the reader slept; a reader that went away made
//! `println!` panic. Here the loop only queues a line and a writer thread does the blocking write.
//! A full queue drops the line and counts it by kind: lines per probe (a debugging flood, thousands
//! a second at scale) give way at half the queue, so the events a program follows keep the rest.

use std::{
    io::{self, Write},
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, AtomicUsize, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

/// Lines a queue holds before it drops: a start with 2,000 members (four lines each) fits in
/// it; about 3 MB of lines when full, and the channel's slots (some 40 bytes each) are taken up
/// front.
pub const DEFAULT_CAPACITY: usize = 16_384;
/// The environment variable that changes [`DEFAULT_CAPACITY`].
pub const CAPACITY_VAR: &str = "IPMPD_OUTPUT_LINES";
/// The bounds [`CAPACITY_VAR`] may take.
const CAPACITY_RANGE: std::ops::RangeInclusive<usize> = 2..=262_144;
/// How long the lines still queued may take to leave at exit: a reader that stalls must not
/// hold up a stop either.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

/// What a line is, for which one gives way first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A probe sent, answered or lost (`--json-probes`), or a debug or trace record of the log
    /// (most of them are about one probe each).
    Probe,
    /// Everything else: events, state changes, log records.
    Event,
}

impl Kind {
    /// The label of its drop counter.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Probe => "probe",
            Self::Event => "event",
        }
    }

    /// A log record's kind: debug and trace records give way first.
    #[must_use]
    pub fn of_level(level: tracing::Level) -> Self {
        if matches!(level, tracing::Level::DEBUG | tracing::Level::TRACE) {
            Self::Probe
        } else {
            Self::Event
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Self::Probe => 0,
            Self::Event => 1,
        }
    }
}

/// Errors reading [`CAPACITY_VAR`] or starting a writer.
#[derive(Debug, thiserror::Error)]
pub enum LinesError {
    #[error(
        "{CAPACITY_VAR}={value:?} is not a number of lines from 2 to 262144; unset it for the default of {DEFAULT_CAPACITY}"
    )]
    Capacity { value: String },
    #[error("cannot start the thread that writes {stream}")]
    Spawn {
        stream: &'static str,
        source: io::Error,
    },
}

/// The queue's capacity: [`CAPACITY_VAR`] when set, else [`DEFAULT_CAPACITY`].
///
/// # Errors
/// When the variable is set to anything but a number within bounds.
pub fn capacity_from_env() -> Result<usize, LinesError> {
    parse_capacity(std::env::var(CAPACITY_VAR).ok())
}

/// The capacity `value` asks for (`None`: the default).
fn parse_capacity(value: Option<String>) -> Result<usize, LinesError> {
    match value {
        None => Ok(DEFAULT_CAPACITY),
        Some(value) => value
            .trim()
            .parse()
            .ok()
            .filter(|n| CAPACITY_RANGE.contains(n))
            .ok_or(LinesError::Capacity { value }),
    }
}

enum Msg {
    Line(Kind, Vec<u8>),
    /// Answered once every line queued before it was written.
    Flush(mpsc::SyncSender<()>),
}

#[derive(Default)]
struct Shared {
    queued: AtomicUsize,
    dropped: [AtomicU64; 2],
    /// Lines taken into the queue so far: the number of the last line queued.
    admitted: AtomicU64,
    /// Lines that left the queue so far, written or lost with a reader that went away.
    written: AtomicU64,
}

/// A bounded queue of lines and the thread that writes them.
pub struct LineQueue {
    tx: mpsc::SyncSender<Msg>,
    shared: Arc<Shared>,
    capacity: usize,
}

impl std::fmt::Debug for LineQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineQueue")
            .field("capacity", &self.capacity)
            .field("queued", &self.shared.queued.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl LineQueue {
    /// Starts a thread writing to `sink` (`stream` names it in errors and the thread's name)
    /// the lines queued, at most `capacity` at a time.
    ///
    /// # Errors
    /// When the thread cannot be started.
    pub fn spawn(
        stream: &'static str,
        mut sink: impl Write + Send + 'static,
        capacity: usize,
    ) -> Result<Self, LinesError> {
        let capacity = capacity.max(2);
        // One slot more than the lines may take, so a flush finds room.
        let (tx, rx) = mpsc::sync_channel::<Msg>(capacity + 1);
        let shared = Arc::new(Shared::default());
        let writer = Arc::clone(&shared);
        std::thread::Builder::new()
            .name(format!("ipmpd-{stream}"))
            .spawn(move || {
                // Writing output is no part of detection: never at the loop's real-time priority.
                crate::sched::normal_here();
                for msg in rx {
                    match msg {
                        Msg::Line(kind, line) => {
                            // A reader that went away (EPIPE) loses the line, counted.
                            if sink.write_all(&line).is_err() {
                                writer.dropped[kind.index()].fetch_add(1, Ordering::Relaxed);
                            }
                            writer.written.fetch_add(1, Ordering::Release);
                            writer.queued.fetch_sub(1, Ordering::Release);
                        }
                        Msg::Flush(done) => {
                            let _ = sink.flush();
                            let _ = done.send(());
                        }
                    }
                }
            })
            .map_err(|source| LinesError::Spawn { stream, source })?;
        Ok(Self {
            tx,
            shared,
            capacity,
        })
    }

    /// Queues `line` (with its newline) without waiting; false when it was dropped (and
    /// counted) because the queue is full for its kind.
    pub fn push(&self, kind: Kind, line: Vec<u8>) -> bool {
        let limit = match kind {
            Kind::Probe => self.capacity / 2,
            Kind::Event => self.capacity,
        };
        let admitted = self
            .shared
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok();
        if admitted && self.tx.try_send(Msg::Line(kind, line)).is_ok() {
            self.shared.admitted.fetch_add(1, Ordering::AcqRel);
            return true;
        }
        if admitted {
            self.shared.queued.fetch_sub(1, Ordering::Release);
        }
        self.shared.dropped[kind.index()].fetch_add(1, Ordering::Relaxed);
        false
    }

    /// Lines of `kind` dropped so far: the queue was full, or the write failed.
    #[must_use]
    pub fn dropped(&self, kind: Kind) -> u64 {
        self.shared.dropped[kind.index()].load(Ordering::Relaxed)
    }

    /// A mark past every line queued so far: they have all left once [`Self::left`] reaches it.
    #[must_use]
    pub fn mark(&self) -> u64 {
        self.shared.admitted.load(Ordering::Acquire)
    }

    /// Whether every line queued before `mark` was taken has left the queue (written, or lost
    /// with a reader that went away): false while a stalled reader keeps one of them waiting.
    #[must_use]
    pub fn left(&self, mark: u64) -> bool {
        self.shared.written.load(Ordering::Acquire) >= mark
    }

    /// Waits up to `timeout` for every line queued so far to be written; false when the reader
    /// did not take them in time.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (done_tx, done) = mpsc::sync_channel(1);
        let mut msg = Msg::Flush(done_tx);
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => break,
                Err(mpsc::TrySendError::Full(back)) if Instant::now() < deadline => {
                    msg = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return false,
            }
        }
        done.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_ok()
    }
}

impl Drop for LineQueue {
    fn drop(&mut self) {
        self.flush(FLUSH_TIMEOUT);
    }
}

/// Standard error's queue, once the daemon has one (see [`queue_stderr`]).
static STDERR: OnceLock<LineQueue> = OnceLock::new();

/// Sends standard error through a queue from now on. The daemon calls it once its privileges
/// are dropped, so the writer thread holds no more than the others.
///
/// # Errors
/// When the writer thread cannot be started.
pub fn queue_stderr(capacity: usize) -> Result<(), LinesError> {
    if STDERR.get().is_none() {
        let q = LineQueue::spawn("stderr", io::stderr(), capacity)?;
        let _ = STDERR.set(q);
    }
    Ok(())
}

/// Log records of `kind` dropped from standard error's queue so far.
#[must_use]
pub fn stderr_dropped(kind: Kind) -> u64 {
    STDERR.get().map_or(0, |q| q.dropped(kind))
}

/// [`LineQueue::mark`] of standard error's queue (0 before there is one).
#[must_use]
pub fn stderr_mark() -> u64 {
    STDERR.get().map_or(0, LineQueue::mark)
}

/// [`LineQueue::left`] of standard error's queue (true before there is one).
#[must_use]
pub fn stderr_left(mark: u64) -> bool {
    STDERR.get().is_none_or(|q| q.left(mark))
}

/// Writes `text` and a newline to standard error: through the queue once there is one (a
/// direct write would wait for the stderr lock its writer holds while a reader stalls).
pub fn eprint_line(text: &str) {
    match STDERR.get() {
        Some(q) => {
            q.push(Kind::Event, format!("{text}\n").into_bytes());
        }
        None => eprintln!("{text}"),
    }
}

/// Waits up to `timeout` for standard error's queue to empty (a static is never dropped).
pub fn flush_stderr(timeout: Duration) {
    if let Some(q) = STDERR.get() {
        q.flush(timeout);
    }
}

/// tracing's writers for standard error: one formatted record per write, queued once there is
/// a queue (debug and trace records as [`Kind::Probe`]), written to standard error at once before.
#[derive(Debug, Clone, Copy, Default)]
pub struct StderrLines;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for StderrLines {
    type Writer = Stderr;

    fn make_writer(&'a self) -> Stderr {
        Stderr(Kind::Event)
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Stderr {
        Stderr(Kind::of_level(*meta.level()))
    }
}

/// One record for standard error, of its kind.
#[derive(Debug, Clone, Copy)]
pub struct Stderr(Kind);

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match STDERR.get() {
            Some(q) => {
                q.push(self.0, buf.to_vec());
                Ok(buf.len())
            }
            None => io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match STDERR.get() {
            Some(_) => Ok(()),
            None => io::stderr().flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pipe whose reading end the test holds and reads only when it wants to.
    fn pipe() -> (std::fs::File, std::fs::File) {
        let (r, w) = rustix::pipe::pipe().expect("pipe");
        (std::fs::File::from(r), std::fs::File::from(w))
    }

    /// A pipe already full: a reader that stopped reading.
    fn stalled_pipe() -> (std::fs::File, std::fs::File) {
        let (r, mut w) = pipe();
        rustix::io::ioctl_fionbio(&w, true).unwrap();
        while w.write(&[0u8; 4096]).is_ok() {}
        rustix::io::ioctl_fionbio(&w, false).unwrap();
        (r, w)
    }

    #[test]
    fn a_reader_that_stops_costs_dropped_lines_not_a_blocked_writer() {
        let (r, w) = stalled_pipe();
        let q = LineQueue::spawn("test", w, 8).unwrap();
        // Far more than the queue holds: every push returns at once.
        let line = vec![b'x'; 4095];
        let t0 = Instant::now();
        let kept = (0..200)
            .filter(|_| q.push(Kind::Event, line.clone()))
            .count();
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
        assert!(kept <= 8, "{kept}: the queue filled");
        assert_eq!(q.dropped(Kind::Event), (200 - kept) as u64);
        // A flush gives up on a reader that never reads.
        assert!(!q.flush(Duration::from_millis(50)));
        drop(r);
    }

    #[test]
    fn probe_lines_give_way_at_half_the_queue_and_events_keep_the_rest() {
        let (r, w) = stalled_pipe();
        let q = LineQueue::spawn("test", w, 10).unwrap();
        // A line counts against the queue until it is written, and the full pipe takes none.
        let probes = (0..20)
            .filter(|_| q.push(Kind::Probe, b"p\n".to_vec()))
            .count();
        assert_eq!(probes, 5);
        let events = (0..20)
            .filter(|_| q.push(Kind::Event, b"e\n".to_vec()))
            .count();
        assert_eq!(events, 5);
        assert_eq!(q.dropped(Kind::Probe), 20 - probes as u64);
        assert_eq!(q.dropped(Kind::Event), 20 - events as u64);
        drop(r);
    }

    #[test]
    fn a_mark_is_passed_once_the_lines_before_it_left_and_not_while_the_reader_stalls() {
        let (mut r, w) = stalled_pipe();
        let q = LineQueue::spawn("test", w, 8).unwrap();
        assert!(q.left(q.mark()), "nothing queued: nothing waits");
        assert!(q.push(Kind::Event, b"report\n".to_vec()));
        let mark = q.mark();
        std::thread::sleep(Duration::from_millis(50));
        assert!(!q.left(mark), "the reader stalls: the line waits");
        // The reader reads again: the pipe's old bytes, then the line.
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            let mut buf = [0u8; 65_536];
            while !all.ends_with(b"report\n") {
                let n = io::Read::read(&mut r, &mut buf).unwrap();
                assert!(n > 0, "the line arrives");
                all.extend_from_slice(&buf[..n]);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while !q.left(mark) {
            assert!(Instant::now() < deadline, "the mark is passed within 10 s");
            std::thread::sleep(Duration::from_millis(1));
        }
        reader.join().unwrap();
    }

    #[test]
    fn every_line_arrives_in_order_when_the_reader_keeps_up() {
        let (r, w) = pipe();
        let q = LineQueue::spawn("test", w, 4).unwrap();
        let reader = std::thread::spawn(move || io::read_to_string(r).unwrap());
        for i in 0..1000 {
            let line = format!("{i}\n").into_bytes();
            // A reader that keeps up still lags a little: wait for room, bounded.
            let mut tries = 0;
            while !q.push(Kind::Event, line.clone()) {
                tries += 1;
                assert!(tries < 10_000, "room within 10 s");
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        assert!(q.flush(Duration::from_secs(5)));
        drop(q);
        let text = reader.join().unwrap();
        let got: Vec<usize> = text.lines().map(|l| l.parse().unwrap()).collect();
        assert_eq!(got, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn the_capacity_is_a_number_of_lines_within_bounds() {
        for (value, want) in [
            (None, Some(DEFAULT_CAPACITY)),
            (Some("64"), Some(64)),
            (Some(" 2 "), Some(2)),
            (Some("1"), None),
            (Some("lots"), None),
            (Some("-5"), None),
            (Some("262144"), Some(262_144)),
            (Some("262145"), None),
        ] {
            assert_eq!(
                parse_capacity(value.map(str::to_owned)).ok(),
                want,
                "{value:?}"
            );
        }
        let e = parse_capacity(Some("lots".into())).unwrap_err().to_string();
        assert!(e.contains(CAPACITY_VAR) && e.contains("unset it"), "{e}");
    }
}
