//! The log (tracing's records) to journald when systemd runs ipmpd, without ever waiting for it.
//!
//! Each record is one datagram on journald's native socket, sent non-blocking through
//! [`crate::journal::Journal`]. A record journald does not take at once (its queue is full, or
//! it is not running) is dropped and counted by kind; the daemon reports the count once a second
//! (`ipmultipath.daemon.outputDropped`, stream `journal`) and in
//! `ipmpd_output_lines_dropped_total`. tracing-journald's layer, used before, blocked in
//! `sendmsg` while journald was slow, and records come from the probing loop too.

use std::{
    path::Path,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
};

use tracing::{
    Event, Level, Subscriber,
    field::{Field, Visit},
};
use tracing_subscriber::{Layer, layer::Context};

use crate::{
    events::journal::field_name,
    journal::{Journal, JournalError},
    lines::Kind,
};

/// Records dropped so far, by [`Kind`].
type Drops = [AtomicU64; 2];

/// The installed layer's drop counters (see [`journal_dropped`]).
static INSTALLED: OnceLock<Arc<Drops>> = OnceLock::new();

/// Log records of `kind` that journald did not take, so far (0 when the log does not go to the
/// journal).
#[must_use]
pub fn journal_dropped(kind: Kind) -> u64 {
    INSTALLED
        .get()
        .map_or(0, |d| d[kind.index()].load(Ordering::Relaxed))
}

/// A tracing layer that sends each record to journald, or drops and counts it.
#[derive(Debug)]
pub struct JournalLayer {
    journal: Journal,
    dropped: Arc<Drops>,
}

impl JournalLayer {
    /// A layer sending to the socket at `path` (journald's, or a test's).
    ///
    /// # Errors
    /// When no socket can be created.
    pub fn new(path: &Path) -> Result<Self, JournalError> {
        Ok(Self {
            journal: Journal::new(path)?,
            dropped: Arc::default(),
        })
    }

    /// Makes this layer's counters the ones [`journal_dropped`] reads (the daemon's one layer).
    #[must_use]
    pub fn installed(self) -> Self {
        let _ = INSTALLED.set(Arc::clone(&self.dropped));
        self
    }

    /// Records of `kind` dropped by this layer so far.
    #[must_use]
    pub fn dropped(&self, kind: Kind) -> u64 {
        self.dropped[kind.index()].load(Ordering::Relaxed)
    }
}

impl<S: Subscriber> Layer<S> for JournalLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut visitor = Fields::default();
        event.record(&mut visitor);
        let mut fields: Vec<(String, String)> = vec![
            ("PRIORITY".into(), priority(*meta.level()).into()),
            ("SYSLOG_IDENTIFIER".into(), "ipmpd".into()),
            ("MESSAGE".into(), visitor.message.unwrap_or_default()),
            ("TARGET".into(), meta.target().into()),
        ];
        if let Some(file) = meta.file() {
            fields.push(("CODE_FILE".into(), file.into()));
        }
        if let Some(line) = meta.line() {
            fields.push(("CODE_LINE".into(), line.to_string()));
        }
        fields.extend(visitor.rest);
        if self.journal.send(&fields).is_err() {
            self.dropped[Kind::of_level(*meta.level()).index()].fetch_add(1, Ordering::Relaxed);
        }
    }
}

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

/// A record's message and its other fields, named as catalogue parameters are (journald drops an
/// entry with a malformed name; a reserved name gets the `IPMPD_` prefix).
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
        } else {
            self.rest.push((field_name(field.name()), value));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{os::unix::net::UnixDatagram, time::Instant};

    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;
    use crate::journal::tests::{parse, scratch};

    #[test]
    fn a_record_reaches_journald_with_its_priority_message_and_fields() {
        let dir = scratch("log-fields");
        let path = dir.join("socket");
        let journald = UnixDatagram::bind(&path).unwrap();
        let layer = JournalLayer::new(&path).unwrap();
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(ifname = "h0", error = %"no such device", priority = 1, "cannot attach");
        });
        let mut buf = vec![0u8; 4096];
        let n = journald.recv(&mut buf).unwrap();
        let fields = parse(&buf[..n]);
        let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("PRIORITY"), Some("4"));
        assert_eq!(get("SYSLOG_IDENTIFIER"), Some("ipmpd"));
        assert_eq!(get("MESSAGE"), Some("cannot attach"));
        assert_eq!(get("IFNAME"), Some("h0"));
        assert_eq!(get("ERROR"), Some("no such device"));
        assert_eq!(
            get("IPMPD_PRIORITY"),
            Some("1"),
            "a field never shadows journald's own"
        );
        assert!(get("CODE_LINE").is_some());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_journald_that_does_not_read_costs_counted_records_never_a_wait() {
        let dir = scratch("log-stalled");
        let path = dir.join("socket");
        let journald = UnixDatagram::bind(&path).unwrap();
        let layer = JournalLayer::new(&path).unwrap();
        let dropped = Arc::clone(&layer.dropped);
        let subscriber = tracing_subscriber::registry().with(layer);
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
        journald.set_nonblocking(true).unwrap();
        let mut taken = 0;
        let mut buf = vec![0u8; 4096];
        while journald.recv(&mut buf).is_ok() {
            taken += 1;
        }
        assert_eq!(
            taken + lost[0] + lost[1],
            RECORDS,
            "every record taken or counted"
        );
        assert!(elapsed.as_secs() < 10, "took {elapsed:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_journald_counts_the_record_as_dropped() {
        let dir = scratch("log-missing");
        let layer = JournalLayer::new(&dir.join("absent")).unwrap();
        let dropped = Arc::clone(&layer.dropped);
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || tracing::error!("lost"));
        assert_eq!(dropped[Kind::Event.index()].load(Ordering::Relaxed), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
