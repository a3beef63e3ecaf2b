//! The probes due at one turn of the loop, sent together: one raw socket per family for every
//! member, the egress device and source chosen per message (IP_PKTINFO / IPV6_PKTINFO), and one
//! `sendmmsg` for up to 64 of them instead of a `sendto` each on the member's own socket.
//!
//! On the scale section's topology (1,024 members) a bare sender spent 6.6–7.0 µs of CPU per probe
//! with a `sendto` per member socket and 5.4–6.6 µs with this (2026-12-02, same run). The members'
//! own sockets stay, and some probes still go on them ([`own_socket_only`]):
//! - binding one is how a test address is found usable, and `ipmpd probe` sends on one;
//! - a shared socket has one send buffer for every member: should it fill (a member whose
//!   transmit queue is stuck holds its probes' memory), or should the shared socket not open, the
//!   rest of the batch goes on the members' own sockets, so a stuck member loses only its own
//!   probes, as in.mpathd's per-interface sockets do;
//! - for an IPv6 target that is neither link-local nor multicast the kernel takes IPV6_PKTINFO's
//!   interface as a preference only (a socket bound to the device makes it strict), so such probes
//!   never go on the shared socket.

use std::{
    io,
    net::{IpAddr, Ipv6Addr},
    os::fd::OwnedFd,
};

use super::{
    packet::{Family, PROBE_LEN},
    socket::{configured, send_buffer_full},
};

/// One probe to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe {
    /// The member's interface, where the probe leaves.
    pub ifindex: u32,
    /// The member's test address, the probe's source.
    pub source: IpAddr,
    pub target: IpAddr,
    pub packet: [u8; PROBE_LEN],
}

impl Probe {
    fn family(&self) -> Family {
        if self.target.is_ipv4() {
            Family::Inet
        } else {
            Family::Inet6
        }
    }
}

/// Whether a probe to `target` must leave on its member's own socket, bound to the device: an
/// IPv6 target that is neither link-local nor multicast (the kernel would take IPV6_PKTINFO's
/// interface as a preference only and could route the probe out of another member).
#[must_use]
pub fn own_socket_only(target: IpAddr) -> bool {
    match target {
        IpAddr::V4(_) => false,
        IpAddr::V6(t) => {
            !(t.is_multicast() || t.is_unicast_link_local() || t == Ipv6Addr::LOCALHOST)
        }
    }
}

/// Why a batch stopped short.
#[derive(Debug)]
pub enum BatchError {
    /// The first probe was refused (its error); the next may go.
    Refused(io::Error),
    /// No more can go this way for now: the shared send buffer is full (ENOBUFS or EAGAIN), or
    /// the shared socket does not open.
    Stopped,
}

/// Where a batch goes: the kernel, or a test's record.
pub trait SendBatch {
    /// Sends `probes` (all of `family`) from the first on: how many went, or why none did.
    ///
    /// # Errors
    /// The first probe's refusal, or [`BatchError::Stopped`].
    fn send_batch(&mut self, family: Family, probes: &[Probe]) -> Result<usize, BatchError>;
}

/// What a flush did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Flushed {
    /// Handed to the kernel.
    pub sent: usize,
    /// Probes only a member's own socket keeps on its link ([`own_socket_only`]).
    pub own_socket: Vec<Probe>,
    /// Not sent here because the batch stopped: for the members' own sockets too.
    pub deferred: Vec<Probe>,
    /// Refused one by one: (interface index, target, error).
    pub refused: Vec<(u32, IpAddr, io::ErrorKind)>,
}

/// Probes queued during one turn of the loop, until [`Outbox::flush`].
#[derive(Debug, Default)]
pub struct Outbox {
    queued: Vec<Probe>,
    own_socket: Vec<Probe>,
}

impl Outbox {
    /// Queues `probe`, for the shared socket or, where only that keeps it on its link, its
    /// member's own ([`own_socket_only`]).
    pub fn push(&mut self, probe: Probe) {
        if own_socket_only(probe.target) {
            self.own_socket.push(probe);
        } else {
            self.queued.push(probe);
        }
    }

    /// How many are queued.
    #[must_use]
    pub fn len(&self) -> usize {
        self.queued.len() + self.own_socket.len()
    }

    /// Whether nothing is queued.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sends every probe queued for the shared sockets through `to`, IPv4 first then IPv6, each
    /// family in queue order, and hands back the rest for the members' own sockets. A refused
    /// probe is skipped and the rest still go; a full send buffer ends the family's batch. The
    /// queue is empty afterwards (the shared batch's memory is kept for the next turn).
    pub fn flush(&mut self, to: &mut impl SendBatch) -> Flushed {
        let mut done = Flushed {
            own_socket: std::mem::take(&mut self.own_socket),
            ..Flushed::default()
        };
        if self.queued.is_empty() {
            return done;
        }
        // Stable: probes of one family keep their order (a member's probes go out in sequence).
        self.queued.sort_by_key(|p| p.family() == Family::Inet6);
        let split = self.queued.partition_point(|p| p.family() == Family::Inet);
        let (v4, v6) = self.queued.split_at(split);
        for (family, probes) in [(Family::Inet, v4), (Family::Inet6, v6)] {
            let mut at = 0;
            while at < probes.len() {
                match to.send_batch(family, &probes[at..]) {
                    Ok(n) if n > 0 => {
                        done.sent += n;
                        at += n;
                    }
                    // Nothing sent and no error counts as stopped rather than spinning.
                    Ok(_) | Err(BatchError::Stopped) => {
                        done.deferred.extend_from_slice(&probes[at..]);
                        break;
                    }
                    Err(BatchError::Refused(e)) => {
                        let p = &probes[at];
                        done.refused.push((p.ifindex, p.target, e.kind()));
                        at += 1;
                    }
                }
            }
        }
        self.queued.clear();
        done
    }
}

/// The shared raw sockets, one per family, opened at their family's first probe.
#[derive(Debug, Default)]
pub struct SharedSockets {
    inet: Option<OwnedFd>,
    inet6: Option<OwnedFd>,
    /// Whether opening the family's socket failed and was reported (once, until it opens).
    reported: [bool; 2],
}

impl SharedSockets {
    /// The socket of `family`, opened at its first use (and tried again at each batch while it
    /// does not open; said once as a warning).
    fn socket(&mut self, family: Family) -> Option<&OwnedFd> {
        let (slot, reported) = match family {
            Family::Inet => (&mut self.inet, &mut self.reported[0]),
            Family::Inet6 => (&mut self.inet6, &mut self.reported[1]),
        };
        if slot.is_none() {
            match shared_socket(family) {
                Ok(fd) => {
                    *slot = Some(fd);
                    *reported = false;
                }
                Err(e) => {
                    if !std::mem::replace(reported, true) {
                        tracing::warn!(
                            error = %e,
                            "the shared probe socket does not open; probes go on each member's own socket"
                        );
                    }
                }
            }
        }
        slot.as_ref()
    }
}

/// A shared socket: a probe socket's options, and the source check skipped for sources chosen per
/// message (the test addresses, known to be local). Best effort: without the privilege the check
/// stays. (Not on the members' own sockets: there it would also skip bind's check that the test
/// address exists, which is how a missing address is found.)
fn shared_socket(family: Family) -> Result<OwnedFd, super::socket::SocketError> {
    let fd = configured(family, "every member (shared probe socket)")?;
    if family == Family::Inet6 {
        let _ = rustix::net::sockopt::set_ipv6_freebind(&fd, true);
    }
    Ok(fd)
}

impl SendBatch for SharedSockets {
    fn send_batch(&mut self, family: Family, probes: &[Probe]) -> Result<usize, BatchError> {
        let fd = self.socket(family).ok_or(BatchError::Stopped)?;
        match super::mmsg::send(fd, probes) {
            Ok(n) => Ok(n),
            Err(e) if send_buffer_full(&e) => Err(BatchError::Stopped),
            Err(e) => Err(BatchError::Refused(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    /// Records batches; answers from a script of outcomes, then sends everything.
    #[derive(Default)]
    struct Script {
        outcomes: Vec<Result<usize, BatchError>>,
        calls: Vec<(Family, Vec<u32>)>,
    }

    impl SendBatch for Script {
        fn send_batch(&mut self, family: Family, probes: &[Probe]) -> Result<usize, BatchError> {
            self.calls
                .push((family, probes.iter().map(|p| p.ifindex).collect()));
            if self.outcomes.is_empty() {
                Ok(probes.len())
            } else {
                self.outcomes.remove(0)
            }
        }
    }

    fn probe(ifindex: u32, v6: bool) -> Probe {
        let (source, target): (IpAddr, IpAddr) = if v6 {
            (
                Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2).into(),
                Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1).into(),
            )
        } else {
            (
                Ipv4Addr::new(192, 0, 2, 2).into(),
                Ipv4Addr::new(192, 0, 2, 1).into(),
            )
        };
        Probe {
            ifindex,
            source,
            target,
            packet: [0; PROBE_LEN],
        }
    }

    #[test]
    fn one_batch_per_family_in_queue_order() {
        let mut out = Outbox::default();
        for (i, v6) in [(1, false), (2, true), (3, false), (4, true)] {
            out.push(probe(i, v6));
        }
        let mut s = Script::default();
        let done = out.flush(&mut s);
        assert_eq!(done.sent, 4);
        assert_eq!(
            s.calls,
            [(Family::Inet, vec![1, 3]), (Family::Inet6, vec![2, 4])]
        );
        assert!(out.is_empty());
        // Nothing queued: no call at all.
        assert_eq!(out.flush(&mut s), Flushed::default());
        assert_eq!(s.calls.len(), 2);
    }

    #[test]
    fn a_refused_probe_is_skipped_and_the_rest_still_go() {
        let mut out = Outbox::default();
        (1..=5).for_each(|i| out.push(probe(i, false)));
        let mut s = Script {
            outcomes: vec![
                Ok(2),
                Err(BatchError::Refused(
                    io::ErrorKind::NetworkUnreachable.into(),
                )),
            ],
            ..Script::default()
        };
        let done = out.flush(&mut s);
        assert_eq!(done.sent, 4);
        assert_eq!(
            done.refused,
            [(
                3,
                IpAddr::from(Ipv4Addr::new(192, 0, 2, 1)),
                io::ErrorKind::NetworkUnreachable
            )]
        );
        let starts: Vec<u32> = s.calls.iter().map(|c| c.1[0]).collect();
        assert_eq!(starts, [1, 3, 4]);
    }

    #[test]
    fn a_stopped_batch_leaves_the_rest_of_its_family_to_the_members_sockets() {
        let mut out = Outbox::default();
        (1..=3).for_each(|i| out.push(probe(i, false)));
        out.push(probe(9, true));
        let mut s = Script {
            outcomes: vec![Ok(1), Err(BatchError::Stopped)],
            ..Script::default()
        };
        let done = out.flush(&mut s);
        assert_eq!(done.sent, 2);
        let deferred: Vec<u32> = done.deferred.iter().map(|p| p.ifindex).collect();
        assert_eq!(deferred, [2, 3]);
        assert!(done.refused.is_empty());
        // The other family still went on its shared socket.
        assert_eq!(s.calls.last().unwrap(), &(Family::Inet6, vec![9]));
    }

    #[test]
    fn a_batch_that_sends_nothing_without_error_ends_rather_than_spins() {
        let mut out = Outbox::default();
        (1..=3).for_each(|i| out.push(probe(i, false)));
        let mut s = Script {
            outcomes: vec![Ok(0)],
            ..Script::default()
        };
        let done = out.flush(&mut s);
        assert_eq!((done.sent, done.deferred.len()), (0, 3));
        assert_eq!(s.calls.len(), 1);
    }

    #[test]
    fn probes_to_global_ipv6_targets_are_handed_back_for_the_members_own_sockets() {
        let mut out = Outbox::default();
        let mut global = probe(7, true);
        global.target = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1).into();
        for p in [global, probe(8, true), probe(9, false)] {
            out.push(p);
        }
        assert_eq!(out.len(), 3);
        let mut s = Script::default();
        let done = out.flush(&mut s);
        assert_eq!(done.sent, 2);
        assert_eq!(done.own_socket, [global]);
        assert!(done.deferred.is_empty());
        assert_eq!(s.calls, [(Family::Inet, vec![9]), (Family::Inet6, vec![8])]);
        // Only own-socket probes: handed back, and no batch at all.
        out.push(global);
        let done = out.flush(&mut s);
        assert_eq!((done.sent, done.own_socket.len()), (0, 1));
        assert_eq!(s.calls.len(), 2);
        assert!(out.is_empty());
    }

    #[test]
    fn only_global_ipv6_targets_need_the_members_own_socket() {
        for (target, own) in [
            ("192.0.2.1", false),
            ("224.0.0.1", false),
            ("fe80::1", false),
            ("ff02::1", false),
            ("2001:db8::1", true),
        ] {
            assert_eq!(own_socket_only(target.parse().unwrap()), own, "{target}");
        }
    }
}
