//! One rtnetlink socket type for every use: dumps and requests (answered in order, one at a
//! time) and notification subscriptions (non-blocking, drained in a loop). One buffer per
//! socket, reused; nothing allocates per message.

use std::{
    io,
    os::fd::{AsFd, BorrowedFd, OwnedFd},
};

use rustix::net::{
    AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType, netlink::SocketAddrNetlink,
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

/// The descriptor, for poll(2).
impl AsFd for RouteSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
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
        // NETLINK_ROUTE is protocol 0, which rustix spells as no protocol.
        Self::open_protocol(None, groups)
    }

    /// A socket of netlink `protocol` (NETLINK_ROUTE, NETLINK_GENERIC), joined to `groups`;
    /// non-blocking when it listens to groups.
    ///
    /// # Errors
    /// When the socket cannot be opened or bound.
    pub fn open_protocol(
        protocol: Option<rustix::net::Protocol>,
        groups: u32,
    ) -> Result<Self, NetlinkError> {
        let flags = if groups != 0 {
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK
        } else {
            SocketFlags::CLOEXEC
        };
        let fd = rustix::net::socket_with(AddressFamily::NETLINK, SocketType::RAW, flags, protocol)
            .map_err(|e| NetlinkError::Open(e.into()))?;
        rustix::net::bind(&fd, &SocketAddrNetlink::new(0, groups)).map_err(|e| {
            NetlinkError::Io {
                call: "bind",
                source: e.into(),
            }
        })?;
        Ok(Self {
            fd,
            seq: 0,
            buf: vec![0; 256 * 1024],
        })
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
        rustix::net::send(&self.fd, req, SendFlags::empty()).map_err(|e| NetlinkError::Io {
            call: "send",
            source: e.into(),
        })?;
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
        match rustix::net::recv(&self.fd, &mut self.buf[..], RecvFlags::empty()) {
            Ok((n, _)) => Ok(n),
            Err(rustix::io::Errno::NOBUFS) => Err(NetlinkError::Overrun),
            Err(e) => Err(NetlinkError::Io {
                call: "recv",
                source: e.into(),
            }),
        }
    }
}
