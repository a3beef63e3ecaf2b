//! The metrics endpoint's HTTP side, on a thread of its own, so no scraper, however slow or however
//! many, can delay a probe. The daemon hands over a rendering (a copy of its state and the
//! function that encodes it; 1,024 members make a 1.5 MB exposition, whose encoding took 38 to
//! 49 ms on the probing loop through a prometheus-client registry, and 3.8 ms here written as
//! text in BENCHMARKS.md's run) only when someone scrapes, and at most once a second; this thread
//! encodes it in the background (SCHED_IDLE). A scrape gets the last rendering if it is younger than that,
//! else asks for one and is answered with the first made after it arrived (or, should the daemon
//! be busy past [`WAIT_NS`], the last one there is). Connections are bounded in number and in
//! time.

use std::{
    io::{self, Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    os::fd::{AsFd as _, OwnedFd},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
};

use crate::{clock::monotonic_ns, fds};

/// Scrapes served at once at most; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 16;
/// A scraper has this long to send its request and take the answer, besides the wait for the
/// daemon's rendering (at most its one-second housekeeping tick; sooner while it probes).
const DEADLINE_NS: u64 = 2_000_000_000;
/// A rendering younger than this answers a scrape as it is: however many scrapers, the daemon
/// renders at most once per this.
const FRESH_NS: u64 = 1_000_000_000;
/// How long a scrape waits for a new rendering before it takes the last one (the start-up pass or
/// a reload can keep the daemon from rendering for longer).
const WAIT_NS: u64 = 1_200_000_000;

/// A rendering the daemon hands over: the state it captured, which this thread encodes.
pub trait Rendering: Send {
    /// The exposition's text.
    fn encode(&self) -> String;
}

/// A rendering handed over. Once encoded it goes back to the daemon's thread to be dropped: its
/// memory came from that thread's malloc arena, and freeing it here would take that arena's lock
/// from a SCHED_IDLE thread, which can be preempted holding it while the probing loop waits.
pub type Render = Box<dyn Rendering>;

/// What the daemon and the serving thread share.
struct Shared {
    /// The rendering handed over and not yet encoded.
    pending: Mutex<Option<Render>>,
    /// Renderings encoded, for the daemon's thread to drop.
    spent: Mutex<Vec<Render>>,
    text: Mutex<Arc<String>>,
    /// Renderings made so far.
    generation: AtomicU64,
    /// When the last one was made (monotonic ns; 0: never).
    rendered_ns: AtomicU64,
    /// [`FRESH_NS`] and [`WAIT_NS`] (shorter in tests).
    fresh_ns: u64,
    wait_ns: u64,
    /// A scrape waits for a rendering.
    wanted: AtomicBool,
    /// How long the last rendering took to encode (ns).
    encode_ns: AtomicU64,
}

/// The endpoint.
pub struct Exporter {
    shared: Arc<Shared>,
    /// Where it listens (the port the kernel chose for port 0).
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    wake: Arc<OwnedFd>,
    thread: Option<JoinHandle<()>>,
}

struct Scrape {
    stream: TcpStream,
    request: Vec<u8>,
    response: Vec<u8>,
    sent: usize,
    deadline_ns: u64,
    /// The generation its answer must come after and since when it waits, once its request is in.
    after: Option<(u64, u64)>,
}

impl Exporter {
    /// Listens on `addr` and starts serving (an empty exposition until the first
    /// [`Self::update`]).
    ///
    /// # Errors
    /// When the address is taken or not local.
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        Self::bind_with(addr, FRESH_NS, WAIT_NS)
    }

    fn bind_with(addr: SocketAddr, fresh_ns: u64, wait_ns: u64) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            pending: Mutex::default(),
            spent: Mutex::default(),
            text: Mutex::default(),
            generation: AtomicU64::new(0),
            rendered_ns: AtomicU64::new(0),
            fresh_ns,
            wait_ns,
            wanted: AtomicBool::new(false),
            encode_ns: AtomicU64::new(0),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let wake = Arc::new(fds::event_fd()?);
        let (t, s, w) = (Arc::clone(&shared), Arc::clone(&stop), Arc::clone(&wake));
        let thread = std::thread::Builder::new()
            .name("ipmpd-metrics".into())
            .spawn(move || {
                crate::sched::background_here();
                serve(&listener, &t, &s, &w);
            })?;
        Ok(Self {
            shared,
            addr,
            stop,
            wake,
            thread: Some(thread),
        })
    }

    /// Where it listens.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How long the last rendering took to encode on this thread (ns; 0 before the first).
    #[must_use]
    pub fn last_encode_ns(&self) -> u64 {
        self.shared.encode_ns.load(Ordering::Relaxed)
    }

    /// Whether a scrape waits for a rendering (taken: the next call says no until another asks).
    pub fn wanted(&self) -> bool {
        self.shared.wanted.swap(false, Ordering::Relaxed)
    }

    /// A rendering for the scrapes waiting and the ones to come, encoded on the exporter's
    /// thread. The probing loop never waits for that thread (which runs in the background, and
    /// may have been preempted holding the lock): when the lock is taken this rendering is
    /// dropped, the request stays and the next turn hands over another.
    pub fn update(&self, render: Render) {
        let spent = self
            .shared
            .spent
            .try_lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default();
        drop(spent);
        match self.shared.pending.try_lock() {
            Ok(mut p) => *p = Some(render),
            Err(std::sync::TryLockError::WouldBlock) => {
                self.shared.wanted.store(true, Ordering::Relaxed);
                return;
            }
            Err(std::sync::TryLockError::Poisoned(_)) => return,
        }
        fds::ring(&*self.wake);
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        fds::ring(&*self.wake);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(listener: &TcpListener, shared: &Shared, stop: &AtomicBool, wake: &OwnedFd) {
    let mut scrapes: Vec<Scrape> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let now = monotonic_ns();
        let next = scrapes.iter().map(|s| s.deadline_ns).min();
        // Scrapes are short: waking every few ms while one is open costs nothing worth counting,
        // and spares tracking read/write readiness per connection.
        let timeout = if scrapes.is_empty() {
            None
        } else {
            Some(next.unwrap_or(now).saturating_sub(now).min(5_000_000))
        };
        // The listener only while a connection may still be taken.
        if scrapes.len() < MAX_CONNECTIONS {
            let _ = fds::wait([wake.as_fd(), listener.as_fd()], timeout);
        } else {
            let _ = fds::wait([wake.as_fd()], timeout);
        }
        fds::drain(wake);
        encode_pending(shared);
        while scrapes.len() < MAX_CONNECTIONS {
            let Ok((stream, _)) = listener.accept() else {
                break;
            };
            if stream.set_nonblocking(true).is_ok() {
                scrapes.push(Scrape {
                    stream,
                    request: Vec::new(),
                    response: Vec::new(),
                    sent: 0,
                    deadline_ns: monotonic_ns() + DEADLINE_NS,
                    after: None,
                });
            }
        }
        let now = monotonic_ns();
        scrapes.retain_mut(|s| step(s, shared) && now < s.deadline_ns);
    }
}

/// Encodes the rendering the daemon handed over, if any, for the scrapes to take.
fn encode_pending(shared: &Shared) {
    let Some(render) = shared.pending.lock().ok().and_then(|mut p| p.take()) else {
        return;
    };
    let started = monotonic_ns();
    let text = Arc::new(render.encode());
    shared
        .encode_ns
        .store(monotonic_ns() - started, Ordering::Relaxed);
    if let Ok(mut s) = shared.spent.lock() {
        s.push(render);
    }
    if let Ok(mut t) = shared.text.lock() {
        *t = text;
    }
    shared.rendered_ns.store(monotonic_ns(), Ordering::Relaxed);
    shared.generation.fetch_add(1, Ordering::Release);
}

/// Advances one scrape; whether it is still going.
fn step(s: &mut Scrape, shared: &Shared) -> bool {
    if s.response.is_empty() && s.after.is_none() {
        let mut buf = [0u8; 1024];
        match s.stream.read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => s.request.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return false,
        }
        // The end of the request's head, or enough of it: the answer does not depend on it.
        if !s.request.windows(4).any(|w| w == b"\r\n\r\n") && s.request.len() < 8192 {
            return true;
        }
        let (generation, now) = (shared.generation.load(Ordering::Acquire), monotonic_ns());
        let rendered = shared.rendered_ns.load(Ordering::Relaxed);
        if generation > 0 && now.saturating_sub(rendered) < shared.fresh_ns {
            // Fresh enough: answered with it, the daemon not asked.
            s.after = Some((generation - 1, now));
        } else {
            s.after = Some((generation, now));
            shared.wanted.store(true, Ordering::Relaxed);
        }
    }
    if s.response.is_empty() {
        let generation = shared.generation.load(Ordering::Acquire);
        let waiting = s.after.is_some_and(|(g, since)| {
            generation <= g && !(generation > 0 && monotonic_ns() - since >= shared.wait_ns)
        });
        if waiting {
            return true;
        }
        let body = shared
            .text
            .lock()
            .map(|t| Arc::clone(&t))
            .unwrap_or_default();
        s.response = format!(
            "HTTP/1.0 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        s.response.extend_from_slice(body.as_bytes());
    }
    while s.sent < s.response.len() {
        match s.stream.write(&s.response[s.sent..]) {
            Ok(0) => return false,
            Ok(n) => s.sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use std::{io::ErrorKind, time::Duration};

    use super::*;

    /// One scrape on a thread: the whole answer.
    fn scrape(addr: SocketAddr) -> JoinHandle<String> {
        std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).expect("connect");
            // A bound on every wait: an exporter that never answers fails the test, not hangs it.
            let limit = Some(Duration::from_secs(5));
            s.set_read_timeout(limit).expect("read timeout");
            s.set_write_timeout(limit).expect("write timeout");
            s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
                .expect("request");
            let mut answer = String::new();
            if let Err(e) = s.read_to_string(&mut answer) {
                assert!(
                    !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
                    "no whole answer within 5 s: {answer:?}"
                );
            }
            answer
        })
    }

    /// A rendering of fixed text.
    struct Fixed(&'static str);

    impl Rendering for Fixed {
        fn encode(&self) -> String {
            self.0.to_owned()
        }
    }

    fn text(t: &'static str) -> Render {
        Box::new(Fixed(t))
    }

    /// Waits until a scrape asks for a rendering.
    fn until_wanted(e: &Exporter) {
        let t0 = std::time::Instant::now();
        while !e.wanted() {
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "the scrape never asked"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_scrape_asks_for_a_rendering_and_gets_the_first_one_made_after_it() {
        let e =
            Exporter::bind_with("127.0.0.1:0".parse().unwrap(), 0, 60_000_000_000).expect("bind");
        // Nothing is rendered until someone asks.
        assert!(!e.wanted());
        e.update(text("old\n"));
        let waiting = scrape(e.addr());
        until_wanted(&e);
        // Asked once: taken.
        assert!(!e.wanted());
        e.update(text("fresh\n"));
        let answer = waiting.join().unwrap();
        assert!(answer.ends_with("\r\n\r\nfresh\n"), "{answer}");
        assert!(answer.contains("Content-Length: 6\r\n"), "{answer}");
    }

    /// A rendering that records the thread that drops it.
    struct Traced(Arc<Mutex<Vec<std::thread::ThreadId>>>);

    impl Rendering for Traced {
        fn encode(&self) -> String {
            "traced\n".into()
        }
    }

    impl Drop for Traced {
        fn drop(&mut self) {
            self.0.lock().unwrap().push(std::thread::current().id());
        }
    }

    #[test]
    fn an_encoded_rendering_is_dropped_on_the_daemons_thread() {
        let e =
            Exporter::bind_with("127.0.0.1:0".parse().unwrap(), 60_000_000_000, 0).expect("bind");
        let drops = Arc::new(Mutex::new(Vec::new()));
        e.update(Box::new(Traced(Arc::clone(&drops))));
        // Encoded once the scrape is answered with it.
        assert!(scrape(e.addr()).join().unwrap().ends_with("traced\n"));
        assert!(drops.lock().unwrap().is_empty(), "dropped by the exporter");
        // The next hand-over takes it back.
        e.update(text("next\n"));
        assert_eq!(*drops.lock().unwrap(), [std::thread::current().id()]);
    }

    #[test]
    fn a_fresh_rendering_answers_at_once_and_the_daemon_is_not_asked() {
        let e =
            Exporter::bind_with("127.0.0.1:0".parse().unwrap(), 60_000_000_000, 0).expect("bind");
        e.update(text("recent\n"));
        for _ in 0..3 {
            assert!(
                scrape(e.addr())
                    .join()
                    .unwrap()
                    .ends_with("\r\n\r\nrecent\n")
            );
        }
        assert!(!e.wanted(), "three scrapes, no rendering asked for");
    }

    #[test]
    fn a_busy_daemon_still_gets_its_scrape_answered_with_the_last_rendering() {
        let e = Exporter::bind_with("127.0.0.1:0".parse().unwrap(), 0, 50_000_000).expect("bind");
        e.update(text("last\n"));
        // Asked for a new one, which never comes: the last one after the wait.
        let answer = scrape(e.addr()).join().unwrap();
        assert!(answer.ends_with("\r\n\r\nlast\n"), "{answer}");
    }
}
