//! Probe replies from the XDP ring buffer: checked (identity, interface, tag, timestamps, the
//! probe it answers) and handed to the engine as an acknowledgement, an RTT sample or a
//! discovered target. Every reply refused is counted by reason; nothing forged or replayed counts
//! as an answer.

use std::net::IpAddr;

use agent_common::{probe::msg, record::ProbeReplyRecord};

use super::{
    Daemon,
    sources::{MAX_REPLIES_PER_WAKE, Sources},
};
use crate::{
    clock::monotonic_ns,
    control::server::Stream,
    engine::instance::ReplyMismatch,
    probe::{session::source_addr, timing::round_trip},
    reconcile::Observed,
};

/// Why a reply was refused (metrics label and event parameter).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Refused {
    /// Not for a probe identity of this daemon (ICMP id), or arrived on another interface.
    Identity,
    /// The authentication tag does not match: forged or altered.
    BadTag,
    /// The kernel transmit time (outside the tag) cannot be true: rewritten on the way, so the
    /// reply is no answer.
    BadTimestamp,
    /// For no probe in the history window, or no probe at all.
    Unknown,
    /// A probe's sequence number with another send time, or a discovery or RTT reply for no such
    /// probe in flight: replayed.
    Replayed,
    /// From an address the probe was not sent to.
    WrongSource,
    /// The probe was already answered.
    Duplicate,
    /// A discovered host that is this host, unspecified, or off the subnet.
    Discovery,
    /// Arrived while the interface's link was down (in.mpathd ignores those).
    LinkDown,
}

impl Refused {
    /// The label.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::BadTag => "bad_tag",
            Self::BadTimestamp => "bad_timestamp",
            Self::Unknown => "unknown",
            Self::Replayed => "replayed",
            Self::WrongSource => "wrong_source",
            Self::Duplicate => "duplicate",
            Self::Discovery => "discovery",
            Self::LinkDown => "link_down",
        }
    }

    fn of(m: ReplyMismatch) -> Self {
        match m {
            ReplyMismatch::OutOfWindow | ReplyMismatch::UnknownProbe => Self::Unknown,
            ReplyMismatch::Fake => Self::WrongSource,
            ReplyMismatch::Duplicate => Self::Duplicate,
            ReplyMismatch::Stale => Self::Replayed,
            ReplyMismatch::LinkDown => Self::LinkDown,
        }
    }
}

/// Whether `from` may become a target of `ifindex` found by all-hosts discovery: not one of this
/// host's own addresses, not unspecified, and on a subnet of the interface.
#[must_use]
pub fn discoverable(observed: &Observed, ifindex: u32, from: IpAddr) -> bool {
    let mine = observed.addrs.keys().any(|(_, p)| p.addr == from);
    let on_subnet = observed
        .addrs
        .keys()
        .any(|(i, p)| *i == ifindex && p.contains(from));
    !mine && !from.is_unspecified() && on_subnet
}

/// Rounds of [`MAX_REPLIES_PER_WAKE`] records that empty a full ring: what is read before the
/// engine's timer runs (bounded, so a flood of forged replies cannot hold the loop for long).
pub const ROUNDS_TO_EMPTY: usize = agent_common::PROBE_REPLIES_BYTES
    / agent_common::record::PROBE_REPLY_SLOT_BYTES
    / MAX_REPLIES_PER_WAKE
    + 1;

impl Daemon {
    /// Reads up to `rounds` batches of reply records, stopping at the first that does not fill.
    pub(super) fn read_replies(&mut self, sources: &mut Sources, rounds: usize) {
        for _ in 0..rounds {
            let batch = sources.replies();
            let full = batch.len() == MAX_REPLIES_PER_WAKE;
            for rec in batch {
                self.on_record(rec);
            }
            if !full {
                break;
            }
        }
    }

    fn refuse(&mut self, ifname: &str, why: Refused) {
        *self
            .out
            .counts
            .rejected
            .entry((ifname.to_owned(), why.name()))
            .or_default() += 1;
    }

    /// One reply record.
    pub(super) fn on_record(&mut self, rec: &ProbeReplyRecord) {
        let now = monotonic_ns();
        let sender = rec.header.ifindex();
        // One lookup by index; the member is then reached by its slot until dispatch, which may
        // change the members.
        let Some(slot) = self.io.members.slot_of(rec.rx_ifindex) else {
            return;
        };
        let Some(m) = self.io.members.at(slot) else {
            return;
        };
        if rec.icmp_id != m.id || rec.rx_ifindex != sender {
            self.refuse_at(slot, Refused::Identity);
            return;
        }
        if !self.io.key.verify(&rec.header, rec.icmp_id, rec.icmp_seq) {
            self.refuse_at(slot, Refused::BadTag);
            return;
        }
        let from = source_addr(rec);
        let sent = rec.header.send_time_ns();
        let rt = round_trip(sent, rec.header.kernel_tx_ns(), rec.rx_ns, now);
        if rt.bad_timestamp {
            // The kernel stamps cannot be wrong on a reply that came back as it was sent: this one
            // was rewritten by whoever sent it (a reflected probe, say), so it proves nothing
            // about the path and is not an answer.
            self.refuse_at(slot, Refused::BadTimestamp);
            return;
        }
        if rec.header.msg_type() == msg::DISCOVERY
            && !discoverable(&self.rec.host.observed, sender, from)
        {
            self.refuse_at(slot, Refused::Discovery);
            return;
        }
        // The engine's key to this member, asked by name only when it has none or the engine's
        // interfaces moved since: an answer to a tracked member costs no hash or copy of its
        // name.
        let Some(m) = self.io.members.at_mut(slot) else {
            return;
        };
        let key = self.engine.key_again(m.engine_key, &m.ifname);
        m.engine_key = key;
        let result = match (key, rec.header.msg_type()) {
            (None, _) => Err(ReplyMismatch::UnknownProbe),
            (Some(k), msg::RTT_ONLY) => self.engine.rtt_reply(k, from, sent, rt.ns, now),
            (Some(k), msg::DISCOVERY) => self.engine.discovered(k, from, sent, now),
            (Some(k), _) => self
                .engine
                .probe_reply(k, rec.icmp_seq, from, sent, rt.ns, now),
        };
        match result {
            Ok(out) => {
                self.dispatch(out);
                if rec.header.msg_type() == msg::FAILURE_DETECTION {
                    // An answer the engine took is an acknowledgement (`Event::ProbeAcked`).
                    // Looked up again: dispatch may have removed or replaced members.
                    if let Some(slot) = self.io.members.slot_of(rec.rx_ifindex) {
                        if let Some(m) = self.io.members.at_mut(slot) {
                            m.counts.acked += 1;
                        }
                        self.publish_ack(slot, rec, from, rt.ns, now);
                    }
                }
            }
            Err(why) => self.refuse_at(slot, Refused::of(why)),
        }
    }

    /// Counts a reply refused on the member in `slot`.
    fn refuse_at(&mut self, slot: usize, why: Refused) {
        if let Some(ifname) = self.io.members.at(slot).map(|m| m.ifname.clone()) {
            self.refuse(&ifname, why);
        }
    }

    /// `ipmpstat -p`'s line for an answered probe of the member in `slot`.
    fn publish_ack(
        &mut self,
        slot: usize,
        rec: &ProbeReplyRecord,
        from: IpAddr,
        rtt: u64,
        now: u64,
    ) {
        if !self.out.control.followed(Stream::Probes) {
            return;
        }
        let Some(ifname) = self.io.members.at(slot).map(|m| &m.ifname) else {
            return;
        };
        let (avg, dev) = self.engine.target_rtt(ifname, from).unwrap_or((0, 0));
        let user_rtt = now.saturating_sub(rec.header.send_time_ns());
        self.out.control.publish(
            Stream::Probes,
            &serde_json::json!({ "at_ns": now, "ifname": ifname, "seq": rec.icmp_seq, "target": from, "acked": true,
                "netrtt_ns": rtt, "rtt_ns": user_rtt, "rttavg_ns": avg, "rttdev_ns": dev }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        ip::Prefix,
        netlink::{addr::Addr, update::Update},
    };

    #[test]
    fn discovered_hosts_are_on_the_subnet_and_not_this_host() {
        let mut o = Observed::default();
        o.apply(Update::Addr {
            addr: Addr {
                ifindex: 3,
                prefix: Prefix {
                    addr: "192.0.2.10".parse().unwrap(),
                    len: 24,
                },
                flags: 0,
            },
            deleted: false,
        });
        assert!(discoverable(&o, 3, "192.0.2.1".parse().unwrap()));
        assert!(
            !discoverable(&o, 3, "192.0.2.10".parse().unwrap()),
            "ourselves"
        );
        assert!(
            !discoverable(&o, 3, "198.51.100.1".parse().unwrap()),
            "off-subnet"
        );
        assert!(
            !discoverable(&o, 4, "192.0.2.1".parse().unwrap()),
            "another interface"
        );
    }
}
