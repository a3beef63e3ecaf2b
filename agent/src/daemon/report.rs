//! How the daemon tells the world: catalogue events logged with structured fields (rate-limited;
//! straight to journald, with MESSAGE_ID and priority, when systemd runs it), or as JSON lines on
//! standard output with `--json` (queued for a writer thread: a reader that stalls loses lines,
//! counted, and never holds up the loop; see [`crate::lines`]).

use serde_json::{Value, json};

use crate::{
    clock::monotonic_ns,
    config::Problem,
    engine::{Engine, Event},
    events::{self, RateLimiter, Rendered, Severity, journal::entry_fields},
    journal::Journal,
    lines::{Kind, LineQueue, LinesError},
};

/// Repeats of one event (same parameters) are counted over this window ...
const RATE_WINDOW_NS: u64 = 10_000_000_000;
/// ... beyond this many in the window.
const RATE_BURST: u32 = 5;

pub struct Reporter {
    json: bool,
    /// Standard output's queue, with `--json`.
    stdout: Option<LineQueue>,
    /// Every probe sent, answered or lost as a JSON line too (tests; thousands a second at scale).
    json_probes: bool,
    limiter: RateLimiter,
    /// Catalogue events not yet handed to the control socket's subscribers.
    published: Vec<Value>,
    /// journald's native socket, when systemd runs ipmpd.
    journal: Option<Journal>,
    /// Entries journald was too busy to take since the last one it took (that one says how many).
    journal_busy_drops: u64,
}

impl Reporter {
    /// A reporter; with `json`, standard output's writer thread holds up to `lines` lines.
    ///
    /// # Errors
    /// When that thread cannot be started.
    pub fn new(json: bool, json_probes: bool, lines: usize) -> Result<Self, LinesError> {
        let stdout = json
            .then(|| LineQueue::spawn("stdout", std::io::stdout(), lines))
            .transpose()?;
        Ok(Self {
            json,
            stdout,
            json_probes: json && json_probes,
            limiter: RateLimiter::new(RATE_WINDOW_NS, RATE_BURST),
            published: Vec::new(),
            journal: (!json && crate::journal::under_systemd())
                .then(|| Journal::new(&crate::journal::socket_path()).ok())
                .flatten()
                // Nothing listens there: events go to the log, on standard error.
                .filter(|j| j.reachable().is_ok()),
            journal_busy_drops: 0,
        })
    }

    fn line(&self, v: &Value) {
        self.queue(Kind::Event, v);
    }

    fn queue(&self, kind: Kind, v: &Value) {
        if let Some(q) = &self.stdout {
            let mut line = v.to_string().into_bytes();
            line.push(b'\n');
            q.push(kind, line);
        }
    }

    /// Lines of `kind` standard output dropped so far (its reader did not keep up).
    #[must_use]
    pub fn stdout_dropped(&self, kind: Kind) -> u64 {
        self.stdout.as_ref().map_or(0, |q| q.dropped(kind))
    }

    /// [`LineQueue::mark`] of standard output's queue (0 without `--json`).
    #[must_use]
    pub fn stdout_mark(&self) -> u64 {
        self.stdout.as_ref().map_or(0, LineQueue::mark)
    }

    /// [`LineQueue::left`] of standard output's queue (true without `--json`).
    #[must_use]
    pub fn stdout_left(&self, mark: u64) -> bool {
        self.stdout.as_ref().is_none_or(|q| q.left(mark))
    }

    fn log(&mut self, r: &Rendered) {
        let now = monotonic_ns();
        let params = Value::Object(r.params.clone());
        // Subscribers (`ipmpd events --follow`) get every event, like the JSON stream.
        self.published.push(json!({ "event": r.name, "severity": r.severity, "message": r.message, "params": params, "at_ns": now }));
        // The JSON stream is for programs: every state change reaches it. Only the log, read by
        // people and flooded by a flapping cause, is rate-limited.
        if self.json {
            self.line(&json!({ "event": r.name, "severity": r.severity, "message": r.message, "params": params, "at_ns": now }));
            return;
        }
        let Some(suppressed) = self.limiter.admit(r, now) else {
            return;
        };
        let more = if suppressed > 0 {
            format!(" ({suppressed} more since the last report)")
        } else {
            String::new()
        };
        if let Some(j) = &self.journal {
            let mut fields = entry_fields(r, &more);
            if self.journal_busy_drops > 0 {
                fields.push((
                    "IPMPD_JOURNAL_BUSY_DROPS".into(),
                    self.journal_busy_drops.to_string(),
                ));
            }
            match j.send(&fields) {
                Ok(()) => {
                    self.journal_busy_drops = 0;
                    return;
                }
                // Falling back to the log would only queue it for the same busy journald.
                Err(e) if e.busy() => {
                    self.journal_busy_drops += 1;
                    crate::journal_log::count_journal_drop(Kind::Event);
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "logging through tracing instead"),
            }
        }
        match r.severity {
            Severity::Emergency | Severity::Alert | Severity::Error => {
                tracing::error!(event = r.name, params = %params, "{}{more}", r.message);
            }
            Severity::Notice => {
                tracing::warn!(event = r.name, params = %params, "{}{more}", r.message);
            }
            Severity::Informational => {
                tracing::info!(event = r.name, params = %params, "{}{more}", r.message);
            }
            Severity::Debug => {
                tracing::debug!(event = r.name, params = %params, "{}{more}", r.message);
            }
        }
    }

    /// Catalogue events since the last call, for the control socket's subscribers.
    pub fn take_published(&mut self) -> Vec<Value> {
        std::mem::take(&mut self.published)
    }

    /// A catalogue event by name with its parameters.
    pub fn catalogue(&mut self, name: &str, params: Value) {
        let map = match params {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        if let Some(r) = events::render(name, map) {
            self.log(&r);
        }
    }

    /// An engine event; probe results only at debug level (ipmpstat -p is their place).
    pub fn engine_event(&mut self, e: &Event) {
        match events::from_engine(e) {
            Some(r) => self.log(&r),
            None => {
                tracing::debug!(?e, "probe");
                if self.json_probes {
                    self.queue(Kind::Probe, &json!({ "probe": e, "at_ns": monotonic_ns() }));
                }
            }
        }
    }

    /// A configuration problem: in.mpathd's own message where it has one.
    pub fn config_problem(&mut self, p: &Problem) {
        let name = if p.message.starts_with("Too small failure detection time") {
            Some("ipmultipath.config.smallFdt")
        } else if p.message.starts_with("Invalid failure detection time") {
            Some("ipmultipath.config.invalidFdt")
        } else if p.message.starts_with("Invalid value for FAILBACK") {
            Some("ipmultipath.config.invalidFailback")
        } else if p
            .message
            .starts_with("Invalid value for TRACK_INTERFACES_ONLY_WITH_GROUPS")
        {
            Some("ipmultipath.config.invalidTrack")
        } else {
            None
        };
        if self.json {
            self.line(&json!({ "event": name.unwrap_or("config"), "message": p.message, "path": p.path, "line": p.line, "fix": p.fix }));
        } else {
            tracing::error!(path = %p.path.display(), line = p.line, "{} ({})", p.message, p.fix);
        }
    }

    /// An interface starts or stops carrying data traffic.
    pub fn active(&mut self, ifname: &str, active: bool) {
        tracing::info!(ifname, active, "activation");
        self.line(&json!({ "event": "active", "ifname": ifname, "active": active, "at_ns": monotonic_ns() }));
    }

    /// The daemon is set up.
    pub fn ready(&mut self, engine: &Engine) {
        let ifs = engine.interfaces();
        tracing::info!(interfaces = ifs.len(), "ipmpd running");
        self.line(&json!({ "event": "ready", "interfaces": ifs, "at_ns": monotonic_ns() }));
    }

    /// A carrier change as the link watcher saw it, with the source that saw it first (the hook,
    /// the poll or a notification): the engine's link events say what, this says how.
    pub fn link(&self, ifname: &str, ev: &crate::link::mirror::LinkEvent) {
        self.line(&json!({
            "event": "link", "ifname": ifname, "change": ev.change, "carrier": ev.carrier,
            "flaps": ev.flaps, "at_ns": ev.at_ns, "seen_ns": ev.seen_ns,
            "source": crate::link::mirror::source_name(ev.source),
        }));
    }

    pub fn stopping(&mut self, signal: i32) {
        tracing::info!(signal, "ipmpd stopping");
        self.line(&json!({ "event": "stopping", "signal": signal }));
    }

    pub fn reloading(&mut self) {
        tracing::info!("configuration changed: reconciling");
        self.line(&json!({ "event": "reloading" }));
    }

    pub fn reload_refused(&mut self) {
        tracing::error!("the new configuration has problems; keeping the running one");
        self.line(&json!({ "event": "reload_refused" }));
    }
}
