//! The probe side of each tracked member: its index, its ICMP identifier, its probe sockets and
//! its hardware address, found by the engine's key (its outputs), by name, or by index (replies)
//! at the same cost with 2 or 2,000 members.

use std::{collections::HashMap, net::IpAddr};

use agent_common::probe::ProbeHeader;

use crate::engine::IfKey;
use crate::probe::{
    auth::ProbeKey,
    outbox::Probe,
    packet::{Family, echo_request},
    session::ProbeSession,
    socket::{ProbeSocket, SocketError, send_buffer_full},
};

/// Probes of one interface, counted for the metrics; kept across its removal and return, so its
/// counters never go back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbeCounts {
    pub sent: u64,
    /// RTT-only probes sent: while the FDT is raised they go at the configured rate, to learn
    /// whether it can come back down.
    pub rtt_sent: u64,
    /// Discovery probes sent to all-hosts.
    pub discovery_sent: u64,
    pub acked: u64,
    pub lost: u64,
    /// Probes the loop could not send on time (whole intervals skipped).
    pub missed: u64,
    /// Probes of any kind (failure detection, discovery, RTT) the kernel did not take because
    /// the send buffer was full. Such a probe is treated as sent, as in.mpathd does: a stuck
    /// lower layer shows up as lost probes.
    pub unsent_buffer_full: u64,
    /// Probes of any kind the kernel refused for another reason (no route, no address...), or
    /// whose socket closed between making and sending them.
    pub unsent_refused: u64,
    /// Probes of any kind sent on the member's own socket because the shared one was full or
    /// did not open.
    pub fallback: u64,
}

impl ProbeCounts {
    /// Counts a probe the kernel did not take.
    pub fn unsent(&mut self, e: &std::io::Error) {
        if send_buffer_full(e) {
            self.unsent_buffer_full += 1;
        } else {
            self.unsent_refused += 1;
        }
    }
}

/// One member's probe I/O.
#[derive(Debug)]
pub struct MemberIo {
    pub ifname: String,
    pub ifindex: u32,
    /// ICMP identifier of its probes.
    pub id: u16,
    sockets: Vec<(IpAddr, ProbeSocket)>,
    pub hwaddr: Option<[u8; 6]>,
    /// Whether its replies wake the loop, as last written to the datapath (`None`: its
    /// identity is not in the datapath).
    pub wake: Option<bool>,
    pub counts: ProbeCounts,
    /// The engine's key to this member, as last given (checked before each use).
    pub engine_key: Option<IfKey>,
}

/// A map looked up once per probe sent and once per reply. The keys are interface names and
/// indexes from the configuration and the kernel, never from the network, so the hasher need not
/// resist chosen keys: foldhash takes a few nanoseconds where std's SipHash took the larger share
/// of the lookups in a profile at 1,024 members.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Every tracked member, in slots found by name (engine outputs) or by index (replies: one
/// lookup of a number, no string compared).
#[derive(Debug, Default)]
pub struct Members {
    slots: Vec<Option<MemberIo>>,
    free: Vec<usize>,
    by_name: FastMap<String, usize>,
    by_ifindex: FastMap<u32, usize>,
    /// Slot by the position of the engine's key ([`IfKey::index`]), as last seen; an entry is
    /// good only while the member in that slot holds the same key.
    by_engine_index: Vec<Option<usize>>,
    /// The counts of interfaces no longer tracked, by name.
    retired: HashMap<String, ProbeCounts>,
}

impl Members {
    /// Starts `ifname` (index `ifindex`) with no sockets.
    pub fn insert(&mut self, ifname: &str, ifindex: u32, hwaddr: Option<[u8; 6]>) {
        self.remove(ifname);
        let m = MemberIo {
            ifname: ifname.to_owned(),
            ifindex,
            id: ProbeSession::identifier(std::process::id(), ifindex),
            sockets: Vec::new(),
            hwaddr,
            wake: None,
            counts: self.retired.remove(ifname).unwrap_or_default(),
            engine_key: None,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(m);
                slot
            }
            None => {
                self.slots.push(Some(m));
                self.slots.len() - 1
            }
        };
        self.by_name.insert(ifname.to_owned(), slot);
        self.by_ifindex.insert(ifindex, slot);
    }

    /// Forgets `ifname`, closing its sockets.
    pub fn remove(&mut self, ifname: &str) -> Option<MemberIo> {
        let slot = self.by_name.remove(ifname)?;
        let m = self.slots[slot].take()?;
        self.free.push(slot);
        if self.by_ifindex.get(&m.ifindex) == Some(&slot) {
            self.by_ifindex.remove(&m.ifindex);
        }
        self.retired.insert(m.ifname.clone(), m.counts);
        Some(m)
    }

    /// The member named `ifname`.
    #[must_use]
    pub fn get(&self, ifname: &str) -> Option<&MemberIo> {
        self.slots[*self.by_name.get(ifname)?].as_ref()
    }

    /// The member named `ifname`, to change.
    pub fn get_mut(&mut self, ifname: &str) -> Option<&mut MemberIo> {
        self.slots[*self.by_name.get(ifname)?].as_mut()
    }

    /// The member the engine's `key` names, `ifname`: one step into a table and a check of the
    /// key the member holds. Only a key new to this table (the first probe, or the engine's
    /// interfaces moved) costs the lookup by name, after which the member holds that key.
    pub fn by_engine_key_mut(&mut self, key: IfKey, ifname: &str) -> Option<&mut MemberIo> {
        let index = key.index();
        let kept = self
            .by_engine_index
            .get(index)
            .copied()
            .flatten()
            .filter(|&slot| self.at(slot).is_some_and(|m| m.engine_key == Some(key)));
        let slot = match kept {
            Some(slot) => slot,
            None => {
                let slot = *self.by_name.get(ifname)?;
                if self.by_engine_index.len() <= index {
                    self.by_engine_index.resize(index + 1, None);
                }
                self.by_engine_index[index] = Some(slot);
                slot
            }
        };
        let m = self.slots[slot].as_mut()?;
        m.engine_key = Some(key);
        Some(m)
    }

    /// The member with index `ifindex`.
    #[must_use]
    pub fn by_ifindex(&self, ifindex: u32) -> Option<&MemberIo> {
        self.slots[*self.by_ifindex.get(&ifindex)?].as_ref()
    }

    /// The member with index `ifindex`, to change.
    pub fn by_ifindex_mut(&mut self, ifindex: u32) -> Option<&mut MemberIo> {
        self.slots[*self.by_ifindex.get(&ifindex)?].as_mut()
    }

    /// The slot of the member with index `ifindex`: one lookup, after which [`Self::at`] and
    /// [`Self::at_mut`] reach it by position until a member is inserted or removed.
    #[must_use]
    pub fn slot_of(&self, ifindex: u32) -> Option<usize> {
        self.by_ifindex.get(&ifindex).copied()
    }

    /// The member in `slot`.
    #[must_use]
    pub fn at(&self, slot: usize) -> Option<&MemberIo> {
        self.slots.get(slot)?.as_ref()
    }

    /// The member in `slot`, to change.
    pub fn at_mut(&mut self, slot: usize) -> Option<&mut MemberIo> {
        self.slots.get_mut(slot)?.as_mut()
    }

    /// Every member.
    pub fn iter(&self) -> impl Iterator<Item = &MemberIo> {
        self.slots.iter().flatten()
    }

    /// The probe counts of every interface tracked now or before, by name.
    pub fn probe_counts(&self) -> impl Iterator<Item = (&str, ProbeCounts)> {
        self.iter()
            .map(|m| (m.ifname.as_str(), m.counts))
            .chain(self.retired.iter().map(|(n, c)| (n.as_str(), *c)))
    }
}

impl MemberIo {
    /// Opens a probe socket for test address `addr`.
    ///
    /// # Errors
    /// When the socket cannot be opened or bound.
    pub fn open(&mut self, addr: IpAddr) -> Result<(), SocketError> {
        self.close(addr);
        let s = ProbeSocket::open(&self.ifname, self.ifindex, addr)?;
        self.sockets.push((addr, s));
        Ok(())
    }

    /// Closes the socket of `addr`.
    pub fn close(&mut self, addr: IpAddr) {
        self.sockets.retain(|(a, _)| *a != addr);
    }

    /// The socket of this member for probes from `source` to `target` (bound to `source`, of
    /// `target`'s family).
    fn socket_for(&self, source: IpAddr, target: IpAddr) -> Option<&ProbeSocket> {
        self.sockets
            .iter()
            .find(|(a, s)| *a == source && (s.family() == Family::Inet) == target.is_ipv4())
            .map(|(_, s)| s)
    }

    /// Probe `seq` of message type `kind` from `test_addr` to `target`, carrying `sent_ns` (the
    /// engine's send time, which a reply must carry back) and signed with `key`; `None` when no
    /// socket of the target's family is bound to `test_addr` (the address is not usable).
    #[must_use]
    pub fn probe(
        &self,
        key: &ProbeKey,
        probe: (IpAddr, IpAddr, u16, u64),
        kind: u16,
    ) -> Option<Probe> {
        let (test_addr, target, seq, sent_ns) = probe;
        let sock = self.socket_for(test_addr, target)?;
        let mut header = ProbeHeader::new(kind, self.ifindex, 0, sent_ns);
        key.sign(&mut header, self.id, seq);
        Some(Probe {
            ifindex: self.ifindex,
            source: test_addr,
            target,
            packet: echo_request(sock.family(), self.id, seq, &header),
        })
    }

    /// Sends `probe` on this member's own socket of its test address (bound to the device, with
    /// its own send buffer), counting what the kernel does not take; whether the socket was
    /// there. A probe whose socket closed since it was made counts as refused (nothing closes
    /// one between the making and the sending today, which happen in one turn; should that
    /// change, the probe is counted rather than lost).
    pub fn send_own(&mut self, probe: &Probe) -> bool {
        let Some(sock) = self.socket_for(probe.source, probe.target) else {
            self.counts.unsent_refused += 1;
            return false;
        };
        if let Err(e) = sock.send(probe.target, &probe.packet) {
            tracing::debug!(ifname = self.ifname, target = %probe.target, error = %e, "probe not sent");
            self.counts.unsent(&e);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_is_found_by_name_and_by_index_until_removed() {
        let mut ms = Members::default();
        ms.insert("a", 3, None);
        ms.insert("b", 4, None);
        assert_eq!(ms.get("a").map(|m| m.ifindex), Some(3));
        assert_eq!(ms.by_ifindex(4).map(|m| m.ifname.as_str()), Some("b"));
        let a_slot = ms.slot_of(3).unwrap();
        assert_eq!(ms.at(a_slot).map(|m| m.ifname.as_str()), Some("a"));
        assert!(ms.remove("a").is_some());
        assert!(ms.get("a").is_none() && ms.by_ifindex(3).is_none());
        assert!(ms.slot_of(3).is_none() && ms.at(a_slot).is_none());
        assert!(ms.at(7).is_none() && ms.at_mut(7).is_none(), "no such slot");
        assert_eq!(ms.iter().count(), 1);
        // The freed slot is taken again; the other member is where it was.
        ms.insert("c", 5, None);
        assert_eq!(ms.by_ifindex(5).map(|m| m.ifname.as_str()), Some("c"));
        assert_eq!(ms.slot_of(5), Some(a_slot), "a's slot, now c's");
        assert_eq!(ms.by_ifindex(4).map(|m| m.ifname.as_str()), Some("b"));
        let b_slot = ms.slot_of(4).unwrap();
        ms.at_mut(b_slot).unwrap().counts.acked += 1;
        assert_eq!(ms.get("b").unwrap().counts.acked, 1);
        assert_eq!(ms.slots.len(), 2);
    }

    #[test]
    fn an_interface_back_with_a_new_index_keeps_its_counts_and_loses_the_old_index() {
        let mut ms = Members::default();
        ms.insert("a", 3, None);
        let counts = ProbeCounts {
            sent: 10,
            rtt_sent: 6,
            discovery_sent: 7,
            acked: 8,
            lost: 2,
            missed: 1,
            unsent_buffer_full: 3,
            unsent_refused: 4,
            fallback: 5,
        };
        ms.get_mut("a").unwrap().counts = counts;
        ms.remove("a");
        let retired: Vec<_> = ms.probe_counts().collect();
        assert_eq!(retired, [("a", counts)]);
        ms.insert("a", 9, None);
        assert!(ms.by_ifindex(3).is_none());
        ms.by_ifindex_mut(9).unwrap().counts.sent += 1;
        let now: Vec<_> = ms.probe_counts().collect();
        assert_eq!(now, [("a", ProbeCounts { sent: 11, ..counts })]);
    }

    #[test]
    fn a_probe_not_taken_is_counted_by_reason() {
        let mut c = ProbeCounts::default();
        for errno in [
            libc::ENOBUFS,
            libc::EAGAIN,
            libc::ENETUNREACH,
            libc::EADDRNOTAVAIL,
        ] {
            c.unsent(&std::io::Error::from_raw_os_error(errno));
        }
        assert_eq!((c.unsent_buffer_full, c.unsent_refused), (2, 2));
        // A probe whose socket closed before it went (its address removed within the turn).
        let mut ms = Members::default();
        ms.insert("a", 3, None);
        let m = ms.get_mut("a").unwrap();
        let sent = m.send_own(&Probe {
            ifindex: 3,
            source: std::net::Ipv4Addr::new(192, 0, 2, 2).into(),
            target: std::net::Ipv4Addr::new(192, 0, 2, 1).into(),
            packet: [0; crate::probe::packet::PROBE_LEN],
        });
        assert!(!sent);
        assert_eq!(m.counts.unsent_refused, 1);
    }

    #[test]
    fn a_member_found_by_the_engines_key_is_the_one_the_key_names_through_removals_and_moves() {
        let mut ms = Members::default();
        ms.insert("a", 3, None);
        ms.insert("b", 4, None);
        let (ka, kb) = (IfKey::made_up(0, 1), IfKey::made_up(1, 1));
        let name = |ms: &mut Members, k, n| ms.by_engine_key_mut(k, n).map(|m| m.ifname.clone());
        assert_eq!(name(&mut ms, ka, "a").as_deref(), Some("a"));
        assert_eq!(name(&mut ms, kb, "b").as_deref(), Some("b"));
        assert_eq!(
            ms.get("a").unwrap().engine_key,
            Some(ka),
            "the member holds its key"
        );
        // Found again by the key alone: the name given is not looked at.
        assert_eq!(name(&mut ms, ka, "ignored").as_deref(), Some("a"));
        // "a" leaves and "c" takes its slot: a's key must not reach the newcomer.
        ms.remove("a");
        ms.insert("c", 5, None);
        assert!(name(&mut ms, ka, "a").is_none(), "a is gone");
        // The engine's interfaces moved (a new layout): "b" now has index 0, "c" index 1.
        let (kb2, kc2) = (IfKey::made_up(0, 2), IfKey::made_up(1, 2));
        assert_eq!(name(&mut ms, kb2, "b").as_deref(), Some("b"));
        assert_eq!(name(&mut ms, kc2, "c").as_deref(), Some("c"));
        assert_eq!(name(&mut ms, kb2, "ignored").as_deref(), Some("b"));
        // A key of the old layout at b's old position no longer finds b by the table.
        assert!(name(&mut ms, kb, "gone").is_none());
        // An index far beyond any seen grows the table.
        assert_eq!(
            name(&mut ms, IfKey::made_up(900, 2), "c").as_deref(),
            Some("c")
        );
    }

    #[test]
    fn an_index_taken_over_by_another_name_stays_with_the_newcomer() {
        let mut ms = Members::default();
        ms.insert("old", 3, None);
        // Renamed: the new name arrives before the old one is forgotten.
        ms.insert("new", 3, None);
        ms.remove("old");
        assert_eq!(ms.by_ifindex(3).map(|m| m.ifname.as_str()), Some("new"));
    }
}
