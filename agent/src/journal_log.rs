//! The log (tracing's records) to journald when systemd runs ipmpd, without ever waiting for it.
//!
//! Each record is one datagram on journald's native socket, sent non-blocking through
//! [`crate::journal::Journal`]. A record journald does not take at once (its queue is full, or
//! it went away) is dropped and counted by kind; the daemon reports the count once a second
//! (`ipmultipath.daemon.outputDropped`, stream `journal`) and in
//! `ipmpd_output_lines_dropped_total`. tracing-journald's layer, used before, blocked in
//! `sendmsg` while journald was slow, and records come from the probing loop too.
//!
//! As on standard output and error, debug and trace records (one per probe at `IPMPD_LOG=debug`)
//! give way first: once journald refused a record, they are dropped unsent for a while, so that
//! what room its queue frees goes to the other records. Span fields are not sent (ipmpd opens no
//! spans).

use std::{
    path::Path,
    sync::atomic::{AtomicU64, Ordering},
};

use tracing::{
    Event, Level, Subscriber,
    field::{Field, Visit},
};
use tracing_subscriber::{Layer, layer::Context};

use crate::{
    clock::monotonic_ns,
    events::journal::{IDENTIFIER, field_name},
    journal::{Journal, JournalError},
    lines::Kind,
};

/// Records dropped so far, by [`Kind`].
type Drops = [AtomicU64; 2];

/// The process's journal drops: log records, and catalogue events the reporter could not send.
static DROPPED: Drops = [AtomicU64::new(0), AtomicU64::new(0)];

/// How long debug and trace records are dropped unsent after journald refused a record.
const VERBOSE_BACKOFF_NS: u64 = 100_000_000;

/// Records for journald of `kind` dropped so far in this process.
#[must_use]
pub fn journal_dropped(kind: Kind) -> u64 {
    DROPPED[kind.index()].load(Ordering::Relaxed)
}

/// Counts a record of `kind` journald did not take (for senders other than the layer).
pub fn count_journal_drop(kind: Kind) {
    DROPPED[kind.index()].fetch_add(1, Ordering::Relaxed);
}

/// A tracing layer that sends each record to journald, or drops and counts it.
#[derive(Debug)]
pub struct JournalLayer {
    journal: Journal,
    dropped: &'static Drops,
    backoff_ns: u64,
    /// Until when debug and trace records are dropped unsent (CLOCK_MONOTONIC ns).
    verbose_quiet_until: AtomicU64,
}

impl JournalLayer {
    /// A layer sending to the socket at `path` (journald's, or a test's), counting what it drops
    /// in the process's counters ([`journal_dropped`]).
    ///
    /// # Errors
    /// When no socket can be created, or nothing listens at `path` (the caller logs elsewhere).
    pub fn new(path: &Path) -> Result<Self, JournalError> {
        Self::build(path, &DROPPED, VERBOSE_BACKOFF_NS)
    }

    fn build(path: &Path, dropped: &'static Drops, backoff_ns: u64) -> Result<Self, JournalError> {
        let journal = Journal::new(path)?;
        journal.reachable()?;
        Ok(Self {
            journal,
            dropped,
            backoff_ns,
            verbose_quiet_until: AtomicU64::new(0),
        })
    }

    fn drop_record(&self, kind: Kind) {
        self.dropped[kind.index()].fetch_add(1, Ordering::Relaxed);
    }
}

impl<S: Subscriber> Layer<S> for JournalLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let kind = Kind::of_level(*meta.level());
        if kind == Kind::Probe && monotonic_ns() < self.verbose_quiet_until.load(Ordering::Relaxed)
        {
            self.drop_record(kind);
            return;
        }
        let mut visitor = Fields::default();
        event.record(&mut visitor);
        let mut fields: Vec<(String, String)> = vec![
            ("PRIORITY".into(), priority(*meta.level()).into()),
            ("SYSLOG_IDENTIFIER".into(), IDENTIFIER.into()),
            ("MESSAGE".into(), visitor.message.unwrap_or_default()),
            (OWN_TARGET.into(), meta.target().into()),
        ];
        if let Some(file) = meta.file() {
            fields.push(("CODE_FILE".into(), file.into()));
        }
        if let Some(line) = meta.line() {
            fields.push(("CODE_LINE".into(), line.to_string()));
        }
        fields.extend(visitor.rest);
        if let Err(e) = self.journal.send(&fields) {
            if e.busy() {
                self.verbose_quiet_until
                    .store(monotonic_ns() + self.backoff_ns, Ordering::Relaxed);
            }
            self.drop_record(kind);
        }
    }
}

/// The field naming the record's module, as tracing-journald named it.
const OWN_TARGET: &str = "TARGET";

/// syslog's priority for a tracing level (as tracing-journald maps them).
fn priority(level: Level) -> &'static str {
    match level {
        Level::ERROR => "3",
        Level::WARN => "4",
        Level::INFO => "5",
        Level::DEBUG => "6",
        Level::TRACE => "7",
    }
}

/// A record's message and its other fields, named as catalogue parameters are (upper case,
/// `IPMPD_` in front of a name journald or this layer sets itself).
#[derive(Default)]
struct Fields {
    message: Option<String>,
    rest: Vec<(String, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, format!("{value:?}"));
    }
}

impl Fields {
    fn put(&mut self, field: &Field, value: String) {
        if field.name() == "message" {
            self.message = Some(value);
            return;
        }
        let mut name = field_name(field.name());
        if name == OWN_TARGET {
            name.insert_str(0, "IPMPD_");
        }
        self.rest.push((name, value));
    }
}

#[cfg(test)]
mod tests {
    use std::{os::unix::net::UnixDatagram, path::PathBuf, time::Instant};

    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;
    use crate::journal::tests::{parse, scratch};

    /// A fake journald's socket in a scratch directory, removed when dropped.
    struct FakeJournald {
        dir: PathBuf,
        socket: UnixDatagram,
    }

    impl FakeJournald {
        fn new(test: &str) -> Self {
            let dir = scratch(test);
            let socket = UnixDatagram::bind(dir.join("socket")).unwrap();
            socket.set_nonblocking(true).unwrap();
            Self { dir, socket }
        }

        fn path(&self) -> PathBuf {
            self.dir.join("socket")
        }

        /// The entries queued so far (the layer's empty reachability datagram left out).
        fn entries(&self) -> Vec<Vec<(String, String)>> {
            let mut buf = vec![0u8; 65_536];
            let mut entries = Vec::new();
            while let Ok(n) = self.socket.recv(&mut buf) {
                if n > 0 {
                    entries.push(parse(&buf[..n]));
                }
            }
            entries
        }
    }

    impl Drop for FakeJournald {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn counters() -> &'static Drops {
        Box::leak(Box::default())
    }

    fn get<'a>(entry: &'a [(String, String)], name: &str) -> Option<&'a str> {
        entry
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_record_reaches_journald_with_its_priority_message_and_fields() {
        let journald = FakeJournald::new("log-fields");
        let layer = JournalLayer::build(&journald.path(), counters(), VERBOSE_BACKOFF_NS).unwrap();
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(ifname = "h0", error = %"no such device", priority = 1, target = "192.0.2.1", "cannot attach");
        });
        let entries = journald.entries();
        assert_eq!(entries.len(), 1, "{entries:?}");
        let entry = &entries[0];
        assert_eq!(get(entry, "PRIORITY"), Some("4"));
        assert_eq!(get(entry, "SYSLOG_IDENTIFIER"), Some("ipmpd"));
        assert_eq!(get(entry, "MESSAGE"), Some("cannot attach"));
        assert_eq!(get(entry, "IFNAME"), Some("h0"));
        assert_eq!(get(entry, "ERROR"), Some("no such device"));
        assert!(get(entry, "CODE_LINE").is_some());
        // A record's own fields never shadow journald's or the layer's.
        assert_eq!(get(entry, "IPMPD_PRIORITY"), Some("1"));
        assert_eq!(get(entry, "IPMPD_TARGET"), Some("192.0.2.1"));
        assert_eq!(get(entry, "TARGET"), Some(module_path!()));
        assert_eq!(entry.iter().filter(|(n, _)| n == "TARGET").count(), 1);
    }

    #[test]
    fn a_journald_that_does_not_read_costs_counted_records_never_a_wait() {
        let journald = FakeJournald::new("log-stalled");
        let dropped = counters();
        let layer = JournalLayer::build(&journald.path(), dropped, VERBOSE_BACKOFF_NS).unwrap();
        let subscriber = tracing_subscriber::registry().with(layer);
        // Far more than journald's queue holds (net.unix.max_dgram_qlen, 10 by default, or the
        // socket's buffer).
        const RECORDS: u64 = 5_000;
        let started = Instant::now();
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..RECORDS {
                if i % 2 == 0 {
                    tracing::info!(i, "an event record");
                } else {
                    tracing::debug!(i, "a probe record");
                }
            }
        });
        // A blocking sender would still be waiting here: nobody reads the socket.
        let elapsed = started.elapsed();
        let lost = [Kind::Probe, Kind::Event].map(|k| dropped[k.index()].load(Ordering::Relaxed));
        assert!(lost[0] > 0 && lost[1] > 0, "both kinds dropped: {lost:?}");
        let taken = journald.entries().len() as u64;
        assert!(taken > 0);
        assert_eq!(
            taken + lost[0] + lost[1],
            RECORDS,
            "every record taken or counted"
        );
        assert!(elapsed.as_secs() < 10, "took {elapsed:?}");
    }

    #[test]
    fn once_journald_refused_a_record_debug_records_leave_it_room_for_the_others() {
        let journald = FakeJournald::new("log-reserve");
        let dropped = counters();
        // A back-off longer than the test: timing cannot decide it.
        let layer = JournalLayer::build(&journald.path(), dropped, 600_000_000_000).unwrap();
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..1_000 {
                tracing::info!(i, "filling");
            }
            // journald reads a few; then come debug and info records, interleaved.
            let mut buf = [0u8; 4096];
            for _ in 0..4 {
                journald.socket.recv(&mut buf).unwrap();
            }
            for i in 0..4 {
                tracing::debug!(i, phase = "after", "a probe record");
                tracing::info!(i, phase = "after", "an event record");
            }
        });
        let after: Vec<_> = journald
            .entries()
            .into_iter()
            .filter(|e| get(e, "PHASE") == Some("after"))
            .collect();
        assert!(!after.is_empty(), "the freed room was used");
        assert!(
            after.iter().all(|e| get(e, "PRIORITY") == Some("5")),
            "only event records took it: {after:?}"
        );
        assert_eq!(dropped[Kind::Probe.index()].load(Ordering::Relaxed), 4);
    }

    #[test]
    fn a_missing_journald_is_refused_at_start_and_one_gone_later_costs_counted_records() {
        let journald = FakeJournald::new("log-missing");
        let absent = journald.dir.join("absent");
        let err = JournalLayer::build(&absent, counters(), VERBOSE_BACKOFF_NS).unwrap_err();
        assert!(err.to_string().contains("cannot send to journald"), "{err}");
        let dropped = counters();
        let layer = JournalLayer::build(&journald.path(), dropped, VERBOSE_BACKOFF_NS).unwrap();
        std::fs::remove_file(journald.path()).unwrap();
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || tracing::error!("lost"));
        assert_eq!(dropped[Kind::Event.index()].load(Ordering::Relaxed), 1);
    }
}
