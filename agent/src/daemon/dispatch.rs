//! Carrying out what the engine decides: probes to send, events to report, and a reconcile pass
//! when the active set changes; link changes from the watcher into the engine; the gratuitous
//! ARPs / unsolicited NAs that follow an address move.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::Arc,
};

use agent_common::probe::msg;

use super::{Daemon, members::MemberIo};
use crate::{
    clock::monotonic_ns,
    control::server::Stream,
    datapath::Datapath,
    engine::{Event, IfKey, Output},
    failover::kernel::Kernel as _,
    link::{
        mirror::LinkChange,
        watcher::{WatchReport, poll_way_text},
    },
};

/// One gratuitous ARP / unsolicited NA to send at `due_ns`.
#[derive(Debug)]
pub struct Announcement {
    pub due_ns: u64,
    pub ifindex: u32,
    pub ifname: String,
    pub mac: [u8; 6],
    pub addr: IpAddr,
}

/// The all-hosts address of `test_addr`'s family, where discovery probes go.
fn all_hosts(test_addr: IpAddr) -> IpAddr {
    if test_addr.is_ipv4() {
        Ipv4Addr::new(224, 0, 0, 1).into()
    } else {
        Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1).into()
    }
}

impl Daemon {
    /// Carries out the engine's outputs.
    pub(super) fn dispatch(&mut self, mut out: Vec<Output>) {
        for o in out.drain(..) {
            match o {
                Output::SendProbe {
                    ifname,
                    key,
                    test_addr,
                    target,
                    seq,
                    sent_ns,
                    prompt_reply,
                } => {
                    // Someone watching the probes (ipmpstat -p) sees each reply as it comes.
                    let watched = self.out.control.followed(Stream::Probes);
                    // One lookup of the member per probe, for the wake bit and the send.
                    if let Some(m) = self.io.members.by_engine_key_mut(key, &ifname) {
                        m.counts.sent += 1;
                        wake_on_replies(&mut self.io.datapath, m, prompt_reply || watched);
                        if let Some(p) = m.probe(
                            &self.io.key,
                            (test_addr, target, seq, sent_ns),
                            msg::FAILURE_DETECTION,
                        ) {
                            self.io.outbox.push(p);
                        }
                    }
                }
                Output::SendDiscovery {
                    ifname,
                    key,
                    test_addr,
                    sent_ns,
                } => self.send(
                    (key, &ifname),
                    (test_addr, all_hosts(test_addr), 0, sent_ns),
                    msg::DISCOVERY,
                ),
                Output::SendRttProbe {
                    ifname,
                    key,
                    test_addr,
                    target,
                    sent_ns,
                } => self.send(
                    (key, &ifname),
                    (test_addr, target, 0, sent_ns),
                    msg::RTT_ONLY,
                ),
                Output::SetActive { ifname, active } => {
                    self.out.rep.active(&ifname, active);
                    // Data addresses and routes follow the active set: a pass at once.
                    self.rec.due = Some(0);
                    self.rec.unsaved = true;
                }
                Output::Event(e) => self.report_engine_event(&e),
            }
        }
        self.engine.recycle(out);
        self.send_queued_probes();
        // The failover is carried out by the pass at the end of this turn of the loop, after the
        // rest of the replies it woke for: one pass for every member that changed, not one per
        // reply (a thousand members repairing together made a thousand passes).
    }

    /// A pass now if one is due at once and none is in progress (the engine's answers to a pass
    /// are carried out by that pass).
    pub(super) fn reconcile_if_due_now(&mut self) {
        if self.rec.due == Some(0) && !self.rec.busy {
            self.reconcile(monotonic_ns());
        }
    }

    /// Queues a probe (test address, target, sequence number, send time) from the interface the
    /// engine's key names.
    fn send(&mut self, from: (IfKey, &str), probe: (IpAddr, IpAddr, u16, u64), kind: u16) {
        let Some(m) = self.io.members.by_engine_key_mut(from.0, from.1) else {
            return;
        };
        if kind == msg::RTT_ONLY {
            m.counts.rtt_sent += 1;
        } else if kind == msg::DISCOVERY {
            m.counts.discovery_sent += 1;
        }
        if let Some(p) = m.probe(&self.io.key, probe, kind) {
            self.io.outbox.push(p);
        }
    }

    /// Sends the probes queued by this turn's outputs, together; what the shared sockets could not
    /// take, and what only a member's own socket keeps on its link, goes on the member's own
    /// socket. What the kernel refuses is counted on its member.
    fn send_queued_probes(&mut self) {
        let done = self.io.outbox.flush(&mut self.io.shared_sockets);
        let members = &mut self.io.members;
        for (ifindex, target, error) in done.refused {
            tracing::debug!(ifindex, %target, %error, "probe not sent");
            // A full buffer stops the batch instead: a refusal here is of another kind.
            if let Some(m) = members.by_ifindex_mut(ifindex) {
                m.counts.unsent_refused += 1;
            }
        }
        if !done.deferred.is_empty() {
            tracing::debug!(
                probes = done.deferred.len(),
                "shared probe socket full or not open; sending on the members' own sockets"
            );
        }
        for p in &done.own_socket {
            if let Some(m) = members.by_ifindex_mut(p.ifindex) {
                m.send_own(p);
            }
        }
        for p in &done.deferred {
            if let Some(m) = members.by_ifindex_mut(p.ifindex)
                && m.send_own(p)
            {
                m.counts.fallback += 1;
            }
        }
    }

    fn report_engine_event(&mut self, e: &Event) {
        match e {
            Event::ProbeLost {
                ifname,
                seq,
                target,
            } => {
                if self.out.control.followed(Stream::Probes) {
                    self.out.control.publish(
                        Stream::Probes,
                        &serde_json::json!({ "at_ns": monotonic_ns(), "ifname": ifname, "seq": seq, "target": target, "acked": false }),
                    );
                }
                if let Some(m) = self.io.members.get_mut(ifname) {
                    m.counts.lost += 1;
                }
            }
            // Counted where the reply is read, by interface index (see `on_record`).
            Event::ProbeAcked { .. } => {}
            // Summed and reported once a second per interface (`check_counters`): a starved
            // loop skips intervals on every member at once, and an event for each skip (tens of
            // thousands a second at 1,024 members) cost the CPU it was short of.
            Event::ProbesMissed { ifname, count } => {
                if let Some(m) = self.io.members.get_mut(ifname) {
                    m.counts.missed += count;
                }
                *self
                    .out
                    .counts
                    .missed_unreported
                    .entry(Arc::clone(ifname))
                    .or_default() += count;
                return;
            }
            // A verdict worth keeping across a restart.
            _ => self.rec.unsaved = true,
        }
        self.out.rep.engine_event(e);
    }

    /// A report of the link watcher.
    pub(super) fn on_watch(&mut self, r: WatchReport) {
        let now = monotonic_ns();
        match r {
            WatchReport::Link(ev) => {
                let Some(name) = self
                    .io
                    .members
                    .by_ifindex(ev.ifindex)
                    .map(|m| m.ifname.clone())
                else {
                    return;
                };
                self.out.rep.link(&name, &ev);
                let changes: &[bool] = match ev.change {
                    // A member's first look: the engine started from rtnetlink's (older) view,
                    // and ignores a "change" to what it already has.
                    LinkChange::Initial if ev.carrier => &[true],
                    LinkChange::Initial => &[false],
                    LinkChange::Down | LinkChange::Removed => &[false],
                    LinkChange::Up => &[true],
                    // A flap between two looks: the engine sees it go down and come back.
                    LinkChange::Flapped { .. } if ev.carrier => &[false, true],
                    LinkChange::Flapped { .. } => &[true, false],
                };
                for &up in changes {
                    let out = self.engine.link_changed(&name, up, now);
                    self.dispatch(out);
                }
            }
            WatchReport::Overrun => {
                tracing::warn!("rtnetlink notifications overran; resynchronised");
            }
            WatchReport::Error(e) => tracing::warn!(error = e, "link watcher"),
            WatchReport::PollWay {
                way,
                members,
                devices,
            } => tracing::info!("{}", poll_way_text(way, members, devices)),
        }
    }

    /// Sends the announcements that are due; returns when the next one is.
    pub(super) fn send_due_announcements(&mut self, now: u64) -> Option<u64> {
        let (due, later): (Vec<Announcement>, Vec<Announcement>) =
            std::mem::take(&mut self.io.announcements)
                .into_iter()
                .partition(|a| a.due_ns <= now);
        self.io.announcements = later;
        for a in due {
            if let Err(e) = self.io.kernel.announce(a.ifindex, &a.ifname, a.mac, a.addr) {
                tracing::warn!(ifname = a.ifname, address = %a.addr, error = %e, "announcement not sent");
            }
        }
        self.io.announcements.iter().map(|a| a.due_ns).min()
    }
}

/// Makes `m`'s replies wake the loop, or wait for its next turn (see
/// [`agent_common::PROBE_ID_WAKE`]); one map update when that changes, none otherwise.
fn wake_on_replies(datapath: &mut Datapath, m: &mut MemberIo, wake: bool) {
    if m.wake.is_none_or(|w| w == wake) {
        return;
    }
    match datapath.set_probe_id(m.ifindex, m.id, wake) {
        Ok(()) => m.wake = Some(wake),
        Err(e) => {
            tracing::warn!(ifname = m.ifname, error = %e, "cannot change when replies wake the loop");
        }
    }
}
