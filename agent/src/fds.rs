//! Descriptors the poll loops wait on besides their sockets and ring buffers: a signalfd for
//! SIGHUP/SIGTERM/SIGINT, eventfds one thread rings for another, and `ppoll` over a set
//! (rustix's `poll`, which is `ppoll` with a nanosecond timeout on Linux).

use std::{
    io,
    os::fd::{AsFd, BorrowedFd, FromRawFd as _, OwnedFd},
};

use rustix::event::{EventfdFlags, PollFd, PollFlags};

/// Blocks SIGHUP, SIGTERM and SIGINT in this thread (threads spawned afterwards inherit the mask)
/// and returns a signalfd that reads them. Still libc: rustix has neither `pthread_sigmask` nor
/// `signalfd` in its stable API.
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

/// Size of `struct signalfd_siginfo`; the signal number is its first `u32`.
const SIGINFO_LEN: usize = size_of::<libc::signalfd_siginfo>();
const _: () = assert!(SIGINFO_LEN == 128);

/// Reads the pending signals' numbers.
#[must_use]
pub fn read_signals(fd: BorrowedFd<'_>) -> Vec<i32> {
    let mut out = Vec::new();
    let mut info = [0u8; SIGINFO_LEN];
    while let Ok(SIGINFO_LEN) = rustix::io::read(fd, &mut info) {
        let signo = u32::from_ne_bytes([info[0], info[1], info[2], info[3]]);
        out.push(signo.cast_signed());
    }
    out
}

/// A non-blocking eventfd.
///
/// # Errors
/// When the kernel refuses one.
pub fn event_fd() -> io::Result<OwnedFd> {
    Ok(rustix::event::eventfd(
        0,
        EventfdFlags::NONBLOCK | EventfdFlags::CLOEXEC,
    )?)
}

/// Rings an eventfd (from any thread). A full counter (EAGAIN) means it is rung already.
pub fn ring(fd: impl AsFd) {
    let _ = rustix::io::write(fd, &1u64.to_ne_bytes());
}

/// Clears an eventfd; EAGAIN when it was not rung is fine.
pub fn drain(fd: impl AsFd) {
    let _ = rustix::io::read(fd, &mut [0u8; 8]);
}

/// Waits until one of `fds` is readable or `timeout_ns` passes (None: forever); returns which.
/// A signal interrupting the wait (EINTR) returns with nothing ready: the caller's loop looks
/// again. Nothing is allocated: the probing loop calls this at every wake-up (1,000 a second at
/// FDT 10 ms).
#[must_use]
pub fn wait<const N: usize>(fds: [BorrowedFd<'_>; N], timeout_ns: Option<u64>) -> [bool; N] {
    let mut pfds = fds.map(|fd| PollFd::from_borrowed_fd(fd, PollFlags::IN));
    let timeout = timeout_ns.map(crate::clock::timespec);
    match rustix::event::poll(&mut pfds, timeout.as_ref()) {
        Ok(n) if n > 0 => pfds.map(|p| p.revents().contains(PollFlags::IN)),
        _ => [false; N],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rung_eventfd_is_readable_until_drained() {
        let efd = event_fd().unwrap();
        let other = event_fd().unwrap();
        assert_eq!(wait([efd.as_fd(), other.as_fd()], Some(0)), [false, false]);
        ring(&efd);
        ring(&efd);
        assert_eq!(
            wait([other.as_fd(), efd.as_fd()], Some(1_000_000)),
            [false, true]
        );
        drain(&efd);
        assert_eq!(wait([efd.as_fd()], Some(0)), [false]);
    }
}
