//! The metrics endpoint's HTTP side, on a thread of its own, so no scraper, however slow or however
//! many, can delay a probe. A scrape asks the daemon for a rendering and is answered with the first
//! one made after it arrived: the daemon renders (1,024 members: a 1.5 MB exposition, a fifth of
//! its CPU when it rendered every second) only when someone scrapes. Connections are bounded in
//! number and in time.

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

/// What the daemon and the serving thread share.
#[derive(Default)]
struct Shared {
    text: Mutex<Arc<String>>,
    /// Renderings made so far.
    generation: AtomicU64,
    /// A scrape waits for a rendering.
    wanted: AtomicBool,
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
    /// The generation its answer must come after, once its request is in.
    after: Option<u64>,
}

impl Exporter {
    /// Listens on `addr` and starts serving (an empty exposition until the first
    /// [`Self::update`]).
    ///
    /// # Errors
    /// When the address is taken or not local.
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared: Arc<Shared> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let wake = Arc::new(fds::event_fd()?);
        let (t, s, w) = (Arc::clone(&shared), Arc::clone(&stop), Arc::clone(&wake));
        let thread = std::thread::Builder::new()
            .name("ipmpd-metrics".into())
            .spawn(move || serve(&listener, &t, &s, &w))?;
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

    /// Whether a scrape waits for a rendering (taken: the next call says no until another asks).
    pub fn wanted(&self) -> bool {
        self.shared.wanted.swap(false, Ordering::Relaxed)
    }

    /// A rendering for the scrapes waiting and the ones to come.
    pub fn update(&self, text: String) {
        if let Ok(mut t) = self.shared.text.lock() {
            *t = Arc::new(text);
        }
        self.shared.generation.fetch_add(1, Ordering::Release);
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
        let mut watched = vec![wake.as_fd()];
        if scrapes.len() < MAX_CONNECTIONS {
            watched.push(listener.as_fd());
        }
        let next = scrapes.iter().map(|s| s.deadline_ns).min();
        // Scrapes are short: waking every few ms while one is open costs nothing worth counting,
        // and spares tracking read/write readiness per connection.
        let timeout = if scrapes.is_empty() {
            None
        } else {
            Some(next.unwrap_or(now).saturating_sub(now).min(5_000_000))
        };
        let _ = fds::wait(&watched, timeout);
        fds::drain(wake);
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
        s.after = Some(shared.generation.load(Ordering::Acquire));
        shared.wanted.store(true, Ordering::Relaxed);
    }
    if s.response.is_empty() {
        if s.after
            .is_some_and(|g| shared.generation.load(Ordering::Acquire) <= g)
        {
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
    use std::time::Duration;

    use super::*;

    /// One scrape on a thread: the whole answer.
    fn scrape(addr: SocketAddr) -> JoinHandle<String> {
        std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).expect("connect");
            s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n")
                .expect("request");
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            answer
        })
    }

    #[test]
    fn a_scrape_asks_for_a_rendering_and_gets_the_first_one_made_after_it() {
        let e = Exporter::bind("127.0.0.1:0".parse().unwrap()).expect("bind");
        let addr = e.addr();
        // Nothing is rendered until someone asks.
        assert!(!e.wanted());
        e.update("old\n".into());
        let waiting = scrape(addr);
        let t0 = std::time::Instant::now();
        while !e.wanted() {
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "the scrape never asked"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        // Asked once: taken.
        assert!(!e.wanted());
        e.update("fresh\n".into());
        let answer = waiting.join().unwrap();
        assert!(answer.ends_with("\r\n\r\nfresh\n"), "{answer}");
        assert!(answer.contains("Content-Length: 6\r\n"), "{answer}");
    }
}
