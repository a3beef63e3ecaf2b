//! One probing session (one test address, one interface): numbering, signing and matching.
//!
//! Pure and deterministic: the caller passes `now`. The XDP program hands over every reply that
//! carries ipmpd's header; this is where a reply is accepted (tag, identifier, sequence, source) or
//! rejected with a reason.

use std::{collections::BTreeMap, net::IpAddr};

use agent_common::{
    probe::{ProbeHeader, msg},
    record::{FAMILY_INET, ProbeReplyRecord},
};
use serde::Serialize;

use super::{
    auth::ProbeKey,
    packet::{Family, PROBE_LEN, echo_request},
};

/// Why a reply was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum Reject {
    /// The tag does not verify: forged, altered, or from an earlier run.
    #[error("authentication tag does not verify")]
    BadTag,
    /// Another session's identifier (another interface or another ipmpd).
    #[error("identifier belongs to another session")]
    OtherSession,
    /// No such probe is outstanding: a duplicate, or a reply after the probe was given up.
    #[error("no outstanding probe with this sequence number")]
    UnknownSequence,
    /// The reply came from an address the probe was not sent to ("Fake probe reply").
    #[error("reply from an address the probe was not sent to")]
    WrongSource,
}

/// Rejections counted by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RejectCounts {
    pub bad_tag: u64,
    pub other_session: u64,
    pub unknown_sequence: u64,
    pub wrong_source: u64,
}

impl RejectCounts {
    fn count(&mut self, reason: Reject) {
        match reason {
            Reject::BadTag => self.bad_tag += 1,
            Reject::OtherSession => self.other_session += 1,
            Reject::UnknownSequence => self.unknown_sequence += 1,
            Reject::WrongSource => self.wrong_source += 1,
        }
    }
}

/// An accepted reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Reply {
    pub seq: u16,
    pub target: IpAddr,
    /// XDP receive time minus TC transmit time: the network round trip, measured in the kernel.
    /// `None` when TC did not stamp the probe.
    pub net_rtt_ns: Option<u64>,
    /// Userspace processing time minus userspace send time (what ping would show).
    pub user_rtt_ns: u64,
    pub hop_limit: u8,
    pub vlan_id: Option<u16>,
}

/// A probe given up on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Lost {
    pub seq: u16,
    pub target: IpAddr,
}

#[derive(Clone, Copy, Debug)]
struct Outstanding {
    target: IpAddr,
    sent_ns: u64,
}

/// Numbering, signing and matching for one interface and family.
#[derive(Debug)]
pub struct ProbeSession {
    key: ProbeKey,
    family: Family,
    id: u16,
    ifindex: u32,
    group_id: u32,
    next_seq: u16,
    outstanding: BTreeMap<u16, Outstanding>,
    rejects: RejectCounts,
}

impl ProbeSession {
    /// A session; `id` is the ICMP identifier (in.mpathd: `((pid & 0xff) << 8) | (ifindex & 0xff)`).
    #[must_use]
    pub fn new(key: ProbeKey, family: Family, id: u16, ifindex: u32, group_id: u32) -> Self {
        Self {
            key,
            family,
            id,
            ifindex,
            group_id,
            next_seq: 1,
            outstanding: BTreeMap::new(),
            rejects: RejectCounts::default(),
        }
    }

    /// in.mpathd's identifier for a process and interface.
    #[must_use]
    pub fn identifier(pid: u32, ifindex: u32) -> u16 {
        (((pid & 0xff) << 8) | (ifindex & 0xff)) as u16
    }

    /// The ICMP identifier of this session.
    #[must_use]
    pub fn id(&self) -> u16 {
        self.id
    }

    /// Builds the next failure-detection probe to `target`, remembered as sent at `now_ns`.
    pub fn next_probe(&mut self, target: IpAddr, now_ns: u64) -> (u16, [u8; PROBE_LEN]) {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let mut header =
            ProbeHeader::new(msg::FAILURE_DETECTION, self.ifindex, self.group_id, now_ns);
        self.key.sign(&mut header, self.id, seq);
        self.outstanding.insert(
            seq,
            Outstanding {
                target,
                sent_ns: now_ns,
            },
        );
        (seq, echo_request(self.family, self.id, seq, &header))
    }

    /// Matches a reply record from the datapath, processed at `now_ns`.
    ///
    /// # Errors
    /// The reason the reply is not accepted; it is also counted.
    pub fn on_reply(&mut self, record: &ProbeReplyRecord, now_ns: u64) -> Result<Reply, Reject> {
        let result = self.match_reply(record, now_ns);
        if let Err(reason) = result {
            self.rejects.count(reason);
        }
        result
    }

    fn match_reply(&mut self, record: &ProbeReplyRecord, now_ns: u64) -> Result<Reply, Reject> {
        if record.icmp_id != self.id {
            return Err(Reject::OtherSession);
        }
        if !self
            .key
            .verify(&record.header, record.icmp_id, record.icmp_seq)
        {
            return Err(Reject::BadTag);
        }
        let out = self
            .outstanding
            .get(&record.icmp_seq)
            .ok_or(Reject::UnknownSequence)?;
        let source = source_addr(record);
        // A probe to a multicast group is answered by unicast sources; only unicast probes must match.
        if !out.target.is_multicast() && source != out.target {
            return Err(Reject::WrongSource);
        }
        let out = self
            .outstanding
            .remove(&record.icmp_seq)
            .ok_or(Reject::UnknownSequence)?;
        let rt = super::timing::round_trip(
            record.header.send_time_ns(),
            record.header.kernel_tx_ns(),
            record.rx_ns,
            now_ns,
        );
        Ok(Reply {
            seq: record.icmp_seq,
            target: source,
            net_rtt_ns: rt.kernel.then_some(rt.ns),
            user_rtt_ns: now_ns.saturating_sub(out.sent_ns),
            hop_limit: record.hop_limit,
            vlan_id: (record.vlan_tagged != 0).then_some(record.vlan_id),
        })
    }

    /// Gives up on probes sent `timeout_ns` or longer before `now_ns`.
    pub fn expire(&mut self, now_ns: u64, timeout_ns: u64) -> Vec<Lost> {
        let expired: Vec<u16> = self
            .outstanding
            .iter()
            .filter(|(_, o)| now_ns.saturating_sub(o.sent_ns) >= timeout_ns)
            .map(|(s, _)| *s)
            .collect();
        expired
            .into_iter()
            .filter_map(|seq| {
                self.outstanding.remove(&seq).map(|o| Lost {
                    seq,
                    target: o.target,
                })
            })
            .collect()
    }

    /// Probes still waiting for a reply.
    #[must_use]
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// Rejections so far, by reason.
    #[must_use]
    pub fn rejects(&self) -> RejectCounts {
        self.rejects
    }
}

/// The source address of a reply record.
#[must_use]
pub fn source_addr(record: &ProbeReplyRecord) -> IpAddr {
    if record.family == FAMILY_INET {
        IpAddr::from([
            record.src_addr[0],
            record.src_addr[1],
            record.src_addr[2],
            record.src_addr[3],
        ])
    } else {
        IpAddr::from(record.src_addr)
    }
}

#[cfg(test)]
mod tests {
    use agent_common::{probe::PROBE_HEADER_LEN, record::FAMILY_INET};

    use super::*;

    const TARGET: [u8; 4] = [192, 0, 2, 1];

    fn session() -> ProbeSession {
        ProbeSession::new(ProbeKey::from_bytes([1; 16]), Family::Inet, 0x4203, 3, 0)
    }

    /// What XDP would record for the echo of `packet`, stamped at `tx` and received at `rx`.
    fn echoed(packet: &[u8], from: [u8; 4], tx: u64, rx: u64) -> ProbeReplyRecord {
        let mut header = ProbeHeader::from_bytes(&packet[8..8 + PROBE_HEADER_LEN]).unwrap();
        header.kernel_tx_ns = tx.to_be();
        let mut src_addr = [0; 16];
        src_addr[..4].copy_from_slice(&from);
        ProbeReplyRecord {
            rx_ns: rx,
            header,
            rx_ifindex: 3,
            icmp_id: u16::from_be_bytes([packet[4], packet[5]]),
            icmp_seq: u16::from_be_bytes([packet[6], packet[7]]),
            src_addr,
            family: FAMILY_INET,
            hop_limit: 64,
            ..Default::default()
        }
    }

    #[test]
    fn reply_gives_kernel_and_user_rtt() {
        let mut s = session();
        let (seq, p) = s.next_probe(TARGET.into(), 1_000);
        let r = s
            .on_reply(&echoed(&p, TARGET, 1_500, 41_500), 90_000)
            .unwrap();
        assert_eq!(r.seq, seq);
        assert_eq!(r.net_rtt_ns, Some(40_000));
        assert_eq!(r.user_rtt_ns, 89_000);
        assert_eq!(s.outstanding(), 0);
    }

    #[test]
    fn duplicates_forgeries_and_strangers_are_rejected_by_reason() {
        let mut s = session();
        let (_, p) = s.next_probe(TARGET.into(), 0);
        let good = echoed(&p, TARGET, 1, 2);
        let mut forged = good;
        forged.header.send_time_ns = 77u64.to_be();
        assert_eq!(s.on_reply(&forged, 5), Err(Reject::BadTag));
        assert_eq!(
            s.on_reply(&echoed(&p, [192, 0, 2, 9], 1, 2), 5),
            Err(Reject::WrongSource)
        );
        let mut other = good;
        other.icmp_id ^= 1;
        assert_eq!(s.on_reply(&other, 5), Err(Reject::OtherSession));
        assert!(s.on_reply(&good, 5).is_ok());
        assert_eq!(
            s.on_reply(&good, 6),
            Err(Reject::UnknownSequence),
            "duplicate"
        );
        let c = s.rejects();
        assert_eq!(
            (
                c.bad_tag,
                c.wrong_source,
                c.other_session,
                c.unknown_sequence
            ),
            (1, 1, 1, 1)
        );
    }

    #[test]
    fn replay_from_an_earlier_run_fails_the_tag() {
        let mut old = ProbeSession::new(ProbeKey::from_bytes([9; 16]), Family::Inet, 0x4203, 3, 0);
        let (_, p) = old.next_probe(TARGET.into(), 0);
        let mut s = session();
        let _ = s.next_probe(TARGET.into(), 0);
        assert_eq!(
            s.on_reply(&echoed(&p, TARGET, 1, 2), 3),
            Err(Reject::BadTag)
        );
    }

    #[test]
    fn expiry_and_unstamped_probes() {
        let mut s = session();
        let (_, p1) = s.next_probe(TARGET.into(), 0);
        let _ = s.next_probe(TARGET.into(), 500);
        assert_eq!(s.expire(999, 1_000), vec![]);
        let lost = s.expire(1_000, 1_000);
        assert_eq!(
            lost,
            vec![Lost {
                seq: 1,
                target: TARGET.into()
            }]
        );
        assert_eq!(
            s.on_reply(&echoed(&p1, TARGET, 0, 5), 1_001),
            Err(Reject::UnknownSequence)
        );
        let (_, p3) = s.next_probe(TARGET.into(), 2_000);
        assert_eq!(
            s.on_reply(&echoed(&p3, TARGET, 0, 2_100), 2_200)
                .unwrap()
                .net_rtt_ns,
            None
        );
    }
}
