//! One rtnetlink socket type for every use: dumps and requests (answered in order, one at a
//! time) and notification subscriptions (non-blocking, drained in a loop). One buffer per
//! socket, reused; nothing allocates per message.

use std::{
    io,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd},
};

use super::msg::{Message, NLM_F_DUMP, parse_messages, u16_at};

/// `RTNLGRP_LINK` as a bind(2) group mask.
const RTMGRP_LINK: u32 = 0x1;

/// Errors from the netlink socket.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("cannot open a NETLINK_ROUTE socket: {0}")]
    Open(#[source] io::Error),
    #[error("netlink {call} failed: {source}")]
    Io {
        call: &'static str,
        source: io::Error,
    },
    #[error("the kernel refused the request: {}", io::Error::from_raw_os_error(*.0))]
    Refused(i32),
    /// The kernel dropped notifications because the socket buffer was full: resynchronise with a dump.
    #[error("netlink notifications overran the socket buffer")]
    Overrun,
}

impl NetlinkError {
    /// The device the request named no longer exists (ENODEV): it went while the request was
    /// made, and the notification saying so is on its way.
    #[must_use]
    pub fn device_gone(&self) -> bool {
        matches!(self, Self::Refused(libc::ENODEV))
    }
}

/// A NETLINK_ROUTE socket, either for dumps or subscribed to link notifications.
#[derive(Debug)]
pub struct RouteSocket {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

impl RouteSocket {
    /// A socket for dump requests.
    ///
    /// # Errors
    /// When the socket cannot be opened.
    pub fn for_dumps() -> Result<Self, NetlinkError> {
        Self::open(0)
    }

    /// A non-blocking socket subscribed to link notifications (RTNLGRP_LINK).
    ///
    /// # Errors
    /// When the socket cannot be opened or bound.
    pub fn for_notifications() -> Result<Self, NetlinkError> {
        Self::open(RTMGRP_LINK)
    }

    fn open(groups: u32) -> Result<Self, NetlinkError> {
        Self::open_protocol(libc::NETLINK_ROUTE, groups)
    }

    /// A socket of netlink `protocol` (NETLINK_ROUTE, NETLINK_GENERIC), joined to `groups`;
    /// non-blocking when it listens to groups.
    ///
    /// # Errors
    /// When the socket cannot be opened or bound.
    pub fn open_protocol(protocol: libc::c_int, groups: u32) -> Result<Self, NetlinkError> {
        let nonblock = if groups != 0 { libc::SOCK_NONBLOCK } else { 0 };
        // SAFETY: plain socket(2); the result is checked.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | nonblock,
                protocol,
            )
        };
        if raw < 0 {
            return Err(NetlinkError::Open(io::Error::last_os_error()));
        }
        // SAFETY: a fresh descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: zeroed sockaddr_nl is a valid "any" address.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        sa.nl_groups = groups;
        // SAFETY: valid sockaddr_nl and length.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const sa).cast(),
                size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if rc < 0 {
            return Err(NetlinkError::Io {
                call: "bind",
                source: io::Error::last_os_error(),
            });
        }
        Ok(Self {
            fd,
            seq: 0,
            buf: vec![0; 256 * 1024],
        })
    }

    /// The descriptor, for poll(2).
    #[must_use]
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// The next sequence number for a request.
    pub fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Sends `req` and calls `each(type, body)` for every reply message until the kernel says it is
    /// done (a dump's NLMSG_DONE, or the acknowledgement of a plain request).
    ///
    /// # Errors
    /// On a socket error or a refusal by the kernel.
    pub fn request(
        &mut self,
        req: &[u8],
        mut each: impl FnMut(u16, &[u8]),
    ) -> Result<(), NetlinkError> {
        let dump = u16_at(req, 6).is_some_and(|f| f & NLM_F_DUMP == NLM_F_DUMP);
        // SAFETY: `req` is valid for its length.
        let rc = unsafe { libc::send(self.fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
        if rc < 0 {
            return Err(NetlinkError::Io {
                call: "send",
                source: io::Error::last_os_error(),
            });
        }
        loop {
            let n = self.recv()?;
            let mut done = false;
            let mut refused = None;
            parse_messages(&self.buf[..n], |msg| match msg {
                Message::Other(kind, body) => {
                    each(kind, body);
                    // A plain request is answered by one message.
                    done |= !dump;
                }
                Message::Done => done = true,
                Message::Error(0) => done = true,
                Message::Error(errno) => refused = Some(errno),
            });
            if let Some(errno) = refused {
                return Err(NetlinkError::Refused(errno));
            }
            if done {
                return Ok(());
            }
        }
    }

    /// A non-blocking socket joined to the multicast `groups` (a bind(2) mask of `RTMGRP_*`).
    ///
    /// # Errors
    /// When the socket cannot be opened or bound.
    pub fn for_groups(groups: u32) -> Result<Self, NetlinkError> {
        Self::open(groups)
    }

    /// Reads every queued message (non-blocking) and calls `each` with its type.
    ///
    /// # Errors
    /// [`NetlinkError::Overrun`] when messages were lost; other socket errors.
    pub fn drain_kinds(&mut self, mut each: impl FnMut(u16)) -> Result<(), NetlinkError> {
        self.drain(|kind, _| each(kind))
    }

    /// Reads every queued message (non-blocking) and calls `each(type, body)`.
    ///
    /// # Errors
    /// [`NetlinkError::Overrun`] when messages were lost; other socket errors.
    pub fn drain(&mut self, mut each: impl FnMut(u16, &[u8])) -> Result<(), NetlinkError> {
        loop {
            let n = match self.recv() {
                Ok(n) => n,
                Err(NetlinkError::Io { source, .. })
                    if source.kind() == io::ErrorKind::WouldBlock =>
                {
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
            parse_messages(&self.buf[..n], |msg| {
                if let Message::Other(kind, body) = msg {
                    each(kind, body);
                }
            });
        }
    }

    fn recv(&mut self) -> Result<usize, NetlinkError> {
        // SAFETY: `buf` is valid and writable for its length.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                self.buf.as_mut_ptr().cast(),
                self.buf.len(),
                0,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ENOBUFS) {
                return Err(NetlinkError::Overrun);
            }
            return Err(NetlinkError::Io {
                call: "recv",
                source: err,
            });
        }
        Ok(n as usize)
    }
}
