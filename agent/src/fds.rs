//! Descriptors the poll loops wait on besides their sockets and ring buffers: a signalfd for
//! SIGHUP/SIGTERM/SIGINT, eventfds one thread rings for another, and `ppoll` over a set.

use std::{
    io,
    os::fd::{FromRawFd as _, OwnedFd, RawFd},
};

/// Blocks SIGHUP, SIGTERM and SIGINT in this thread (threads spawned afterwards inherit the mask)
/// and returns a signalfd that reads them.
///
/// # Errors
/// When the mask or the signalfd cannot be set up.
pub fn signal_fd() -> io::Result<OwnedFd> {
    // SAFETY: a zeroed sigset is valid input for sigemptyset.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t; the signal numbers are valid.
    unsafe {
        libc::sigemptyset(&raw mut set);
        libc::sigaddset(&raw mut set, libc::SIGHUP);
        libc::sigaddset(&raw mut set, libc::SIGTERM);
        libc::sigaddset(&raw mut set, libc::SIGINT);
    }
    // SAFETY: valid set, null old-set.
    let rc =
        unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &raw const set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    // SAFETY: valid set; -1 asks for a new descriptor.
    let fd = unsafe { libc::signalfd(-1, &raw const set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reads the pending signals' numbers.
#[must_use]
pub fn read_signals(fd: RawFd) -> Vec<i32> {
    let mut out = Vec::new();
    loop {
        // SAFETY: a zeroed siginfo is a valid buffer.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = size_of::<libc::signalfd_siginfo>();
        // SAFETY: `info` is writable for `size` bytes.
        let n = unsafe { libc::read(fd, (&raw mut info).cast(), size) };
        if n != size as isize {
            return out;
        }
        out.push(info.ssi_signo as i32);
    }
}

/// A non-blocking eventfd.
///
/// # Errors
/// When the kernel refuses one.
pub fn event_fd() -> io::Result<OwnedFd> {
    // SAFETY: plain eventfd(2).
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Rings an eventfd (from any thread).
pub fn ring(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writing 8 bytes from a valid u64; failure (counter overflow) only means it is rung.
    let _ = unsafe { libc::write(fd, (&raw const one).cast(), 8) };
}

/// Clears an eventfd.
pub fn drain(fd: RawFd) {
    let mut v: u64 = 0;
    // SAFETY: reading 8 bytes into a valid u64; EAGAIN when not rung is fine.
    let _ = unsafe { libc::read(fd, (&raw mut v).cast(), 8) };
}

/// Waits until one of `fds` is readable or `timeout_ns` passes (None: forever); returns which.
#[must_use]
pub fn wait(fds: &[RawFd], timeout_ns: Option<u64>) -> Vec<bool> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ts = timeout_ns.map(|t| libc::timespec {
        tv_sec: (t / 1_000_000_000) as i64,
        tv_nsec: (t % 1_000_000_000) as i64,
    });
    let tsp = ts.as_ref().map_or(std::ptr::null(), std::ptr::from_ref);
    // SAFETY: `pfds` is valid for its length; `tsp` null or valid; no signal mask change.
    let rc = unsafe {
        libc::ppoll(
            pfds.as_mut_ptr(),
            pfds.len() as libc::nfds_t,
            tsp,
            std::ptr::null(),
        )
    };
    if rc <= 0 {
        return vec![false; fds.len()];
    }
    pfds.iter().map(|p| p.revents & libc::POLLIN != 0).collect()
}
