//! The metrics endpoint's HTTP side, on a thread of its own: it answers every scrape with the
//! latest exposition the daemon rendered (once a second), so no scraper, however slow or however
//! many, can delay a probe. Connections are bounded in number and in time.

use std::{
    io::{self, Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    os::fd::{AsFd as _, OwnedFd},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
};

use crate::{clock::monotonic_ns, fds};

/// Scrapes served at once at most; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 16;
/// A scraper has this long to send its request and take the answer.
const DEADLINE_NS: u64 = 1_000_000_000;

/// The endpoint.
pub struct Exporter {
    text: Arc<Mutex<Arc<String>>>,
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
        let text: Arc<Mutex<Arc<String>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let wake = Arc::new(fds::event_fd()?);
        let (t, s, w) = (Arc::clone(&text), Arc::clone(&stop), Arc::clone(&wake));
        let thread = std::thread::Builder::new()
            .name("ipmpd-metrics".into())
            .spawn(move || serve(&listener, &t, &s, &w))?;
        Ok(Self {
            text,
            stop,
            wake,
            thread: Some(thread),
        })
    }

    /// The exposition scrapes get from now on.
    pub fn update(&self, text: String) {
        if let Ok(mut t) = self.text.lock() {
            *t = Arc::new(text);
        }
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

fn serve(listener: &TcpListener, text: &Mutex<Arc<String>>, stop: &AtomicBool, wake: &OwnedFd) {
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
                });
            }
        }
        let now = monotonic_ns();
        scrapes.retain_mut(|s| step(s, text) && now < s.deadline_ns);
    }
}

/// Advances one scrape; whether it is still going.
fn step(s: &mut Scrape, text: &Mutex<Arc<String>>) -> bool {
    if s.response.is_empty() {
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
        let body = text.lock().map(|t| Arc::clone(&t)).unwrap_or_default();
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
