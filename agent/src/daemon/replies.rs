//! Probe replies from the XDP ring buffer: checked (identifier, interface, tag) and handed to the
//! engine as an acknowledgement, an RTT sample or a discovered target.

use std::net::IpAddr;

use agent_common::{probe::msg, record::ProbeReplyRecord};

use super::{Daemon, metrics};
use crate::{
    clock::monotonic_ns, control::server::Stream, probe::session::source_addr, reconcile::Observed,
};

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

impl Daemon {
    /// One reply record.
    pub(super) fn on_record(&mut self, rec: &ProbeReplyRecord) {
        let now = monotonic_ns();
        let sender = rec.header.ifindex();
        let Some(m) = self.io.members.by_ifindex(sender) else {
            return;
        };
        if rec.icmp_id != m.id || rec.rx_ifindex != sender {
            tracing::debug!(ifname = %m.ifname, "reply for another session or on another interface");
            return;
        }
        let ifname = m.ifname.clone();
        if !self.io.key.verify(&rec.header, rec.icmp_id, rec.icmp_seq) {
            metrics::bump(&mut self.out.counts.bad_tag, ifname.clone());
            self.out.rep.rejected(&ifname, "bad_tag");
            return;
        }
        let from = source_addr(rec);
        let tx = rec.header.kernel_tx_ns();
        // The kernel-stamped round trip where TC stamped the probe, else the userspace one.
        let rtt = if tx != 0 && rec.rx_ns >= tx {
            rec.rx_ns - tx
        } else {
            now.saturating_sub(rec.header.send_time_ns())
        };
        match rec.header.msg_type() {
            msg::RTT_ONLY => {
                let out = self.engine.rtt_reply(&ifname, from, rtt, now);
                self.dispatch(out);
            }
            msg::DISCOVERY => {
                if discoverable(&self.rec.host.observed, sender, from) {
                    let out = self.engine.discovered(&ifname, from, now);
                    self.dispatch(out);
                }
            }
            _ => match self
                .engine
                .probe_reply(&ifname, rec.icmp_seq, from, rtt, now)
            {
                Ok(out) => {
                    self.dispatch(out);
                    if !self.out.control.followed(Stream::Probes) {
                        return;
                    }
                    let (avg, dev) = self.engine.target_rtt(&ifname, from).unwrap_or((0, 0));
                    let user_rtt = now.saturating_sub(rec.header.send_time_ns());
                    self.out.control.publish(
                        Stream::Probes,
                        &serde_json::json!({ "at_ns": now, "ifname": ifname, "seq": rec.icmp_seq, "target": from, "acked": true,
                            "netrtt_ns": rtt, "rtt_ns": user_rtt, "rttavg_ns": avg, "rttdev_ns": dev }),
                    );
                }
                Err(why) => {
                    tracing::debug!(ifname, seq = rec.icmp_seq, ?why, "reply matches no probe");
                }
            },
        }
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
        assert!(!discoverable(&o, 3, "0.0.0.0".parse().unwrap()));
    }
}
