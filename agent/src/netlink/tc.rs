//! TC egress on kernels without TCX (before 6.6, and distributions that did not backport it): a
//! `clsact` qdisc and a `cls_bpf` filter, through rtnetlink.
//!
//! Such a filter cannot be pinned as a BPF link, so ipmpd finds its own again by place: a fixed
//! priority and handle on the egress hook, with the program's name. A restart replaces the program
//! inside that filter (`RTM_NEWTFILTER` without `NLM_F_EXCL` is a change of the existing filter,
//! which `cls_bpf` swaps atomically), so the interface never goes a packet without the stamper,
//! and filters are never stacked. A filter of someone else at that place is reported, never
//! replaced.

use std::os::fd::RawFd;

use netlink_packet_core::{NlasIterator, Parseable as _};
use netlink_packet_route::{
    RouteNetlinkMessage,
    tc::{TcAttribute, TcBpfFlags, TcFilterBpfOption, TcHeader, TcMessage, TcOption},
};

use super::{
    msg::{NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST},
    packet::{attributes, encode},
    socket::{NetlinkError, RouteSocket},
};

/// Priority of ipmpd's filter: 1 runs it before filters that end classification (`TC_ACT_OK`),
/// which would otherwise keep probes from being stamped; the program itself always continues
/// (`TC_ACT_UNSPEC`), so it never changes what later filters decide.
pub const PRIORITY: u16 = 1;
/// Handle of ipmpd's filter at [`PRIORITY`]: chosen to stay clear of the handles tools allocate
/// from 1 upwards (Cilium and `tc` without `handle` use 1).
pub const HANDLE: u32 = 0x1d_0d;

const RTM_NEWQDISC: u16 = 36;
const RTM_NEWTFILTER: u16 = 44;
const TCA_KIND: u16 = 1;
const TCA_OPTIONS: u16 = 2;
/// `TC_H_CLSACT` (= `TC_H_INGRESS`): the parent of the clsact qdisc.
const TC_H_CLSACT: u32 = 0xffff_fff1;
/// The clsact qdisc's own handle, `ffff:`.
const CLSACT_HANDLE: u32 = 0xffff_0000;
/// `TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_EGRESS)`: the egress hook of clsact.
pub const EGRESS: u32 = 0xffff_fff3;
/// `TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS)`: the ingress hook of clsact.
pub const INGRESS: u32 = 0xffff_fff2;
/// `htons(ETH_P_ALL)`.
const ETH_P_ALL_BE: u16 = 0x0003u16.to_be();
const TCMSG_LEN: usize = 20;
const BPF: &str = "bpf";

/// One filter on a clsact hook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    pub priority: u16,
    pub handle: u32,
    /// The classifier (`bpf`, `u32`, `flower`, ...).
    pub kind: String,
    /// For `bpf`: the program's name.
    pub name: Option<String>,
    /// For `bpf`: the program's id (`bpftool prog show id N`).
    pub prog_id: Option<u32>,
}

impl Filter {
    /// Whether this is a filter of ipmpd's program `program`.
    #[must_use]
    pub fn is(&self, program: &str) -> bool {
        self.kind == "bpf"
            && self
                .name
                .as_deref()
                .is_some_and(|n| n.split(':').next() == Some(program) || n == program)
    }
}

/// The qdisc at the root of ingress-side filtering of an interface, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IngressQdisc {
    None,
    Clsact,
    /// Another kind (`ingress`) that keeps clsact from being added.
    Other(String),
}

/// A tcmsg for `ifindex` with `handle`, `parent` and `info`, and `attributes`.
fn tcmsg(
    ifindex: u32,
    handle: u32,
    parent: u32,
    info: u32,
    attributes: Vec<TcAttribute>,
) -> TcMessage {
    let mut m = TcMessage::default();
    // The kernel's tcm_ifindex is an int; interface indexes never reach 2^31.
    m.header.index = ifindex.cast_signed();
    m.header.handle = handle.into();
    m.header.parent = parent.into();
    m.header.info = info;
    m.attributes = attributes;
    m
}

/// `TC_H_MAKE(priority << 16, htons(ETH_P_ALL))`: priority and protocol of a filter.
fn filter_info(priority: u16) -> u32 {
    (u32::from(priority) << 16) | u32::from(ETH_P_ALL_BE)
}

/// RTM_GETQDISC dump (every qdisc of the namespace; the kernel may ignore the index).
#[must_use]
pub fn qdisc_dump_request(seq: u32, ifindex: u32) -> Vec<u8> {
    let m = tcmsg(ifindex, 0, 0, 0, Vec::new());
    encode(
        RouteNetlinkMessage::GetQueueDiscipline(m),
        NLM_F_REQUEST | NLM_F_DUMP,
        seq,
    )
}

/// RTM_NEWQDISC (exclusive create) or RTM_DELQDISC of the clsact qdisc on `ifindex`.
#[must_use]
pub fn clsact_request(add: bool, seq: u32, ifindex: u32) -> Vec<u8> {
    let kind = vec![TcAttribute::Kind("clsact".into())];
    let m = tcmsg(ifindex, CLSACT_HANDLE, TC_H_CLSACT, 0, kind);
    if add {
        let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
        encode(RouteNetlinkMessage::NewQueueDiscipline(m), flags, seq)
    } else {
        encode(
            RouteNetlinkMessage::DelQueueDiscipline(m),
            NLM_F_REQUEST | NLM_F_ACK,
            seq,
        )
    }
}

/// RTM_GETTFILTER dump of the filters on hook `parent` ([`EGRESS`] or [`INGRESS`]) of `ifindex`.
#[must_use]
pub fn filter_dump_request(seq: u32, ifindex: u32, parent: u32) -> Vec<u8> {
    let m = tcmsg(ifindex, 0, parent, 0, Vec::new());
    encode(
        RouteNetlinkMessage::GetTrafficFilter(m),
        NLM_F_REQUEST | NLM_F_DUMP,
        seq,
    )
}

/// RTM_NEWTFILTER of a direct-action `bpf` filter running program `prog_fd` (named `name`) at
/// [`PRIORITY`]/[`HANDLE`] on the egress hook: created when absent, changed in place (the program
/// swapped atomically) when present.
#[must_use]
pub fn filter_request(seq: u32, ifindex: u32, prog_fd: RawFd, name: &str) -> Vec<u8> {
    let options = [
        TcFilterBpfOption::ProgFd(prog_fd.cast_unsigned()),
        TcFilterBpfOption::ProgName(name.into()),
        TcFilterBpfOption::Flags(TcBpfFlags::DirectAction),
    ];
    let attributes = vec![
        TcAttribute::Kind(BPF.into()),
        TcAttribute::Options(options.into_iter().map(TcOption::Bpf).collect()),
    ];
    let m = tcmsg(ifindex, HANDLE, EGRESS, filter_info(PRIORITY), attributes);
    encode(
        RouteNetlinkMessage::NewTrafficFilter(m),
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE,
        seq,
    )
}

/// RTM_DELTFILTER of the filter at `priority`/`handle` on hook `parent` of `ifindex`.
#[must_use]
pub fn filter_delete_request(
    seq: u32,
    ifindex: u32,
    parent: u32,
    priority: u16,
    handle: u32,
) -> Vec<u8> {
    let kind = vec![TcAttribute::Kind(BPF.into())];
    let m = tcmsg(ifindex, handle, parent, filter_info(priority), kind);
    encode(
        RouteNetlinkMessage::DelTrafficFilter(m),
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
    )
}

fn c_string(p: &[u8]) -> String {
    String::from_utf8_lossy(p.split(|b| *b == 0).next().unwrap_or(p)).into_owned()
}

/// A filter from one RTM_NEWTFILTER body of a dump. The dump also lists each priority's chain
/// head, without a handle: those are not filters and give `None`. Only `bpf` options are read:
/// another classifier's options (which ipmpd never needs) cannot make its filter disappear
/// from the dump, so a foreign filter at ipmpd's place is always seen.
#[must_use]
pub fn parse_filter(body: &[u8]) -> Option<Filter> {
    let header = TcHeader::parse(body).ok()?;
    let handle = u32::from(header.handle);
    if handle == 0 {
        return None;
    }
    let (mut kind, mut name, mut prog_id) = (None, None, None);
    for nla in attributes(body, TCMSG_LEN) {
        match nla.kind() {
            TCA_KIND => kind = Some(c_string(nla.value())),
            TCA_OPTIONS if kind.as_deref() == Some(BPF) => {
                for option in NlasIterator::new(nla.value()).map_while(Result::ok) {
                    match TcFilterBpfOption::parse(&option) {
                        Ok(TcFilterBpfOption::ProgName(n)) => name = Some(n),
                        Ok(TcFilterBpfOption::ProgId(id)) => prog_id = Some(id),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Some(Filter {
        priority: (header.info >> 16) as u16,
        handle,
        kind: kind?,
        name,
        prog_id,
    })
}

/// (ifindex, parent, kind) of one RTM_NEWQDISC body (the header and the kind only: no qdisc's
/// options, whatever their kind, can hide it).
#[must_use]
pub fn parse_qdisc(body: &[u8]) -> Option<(u32, u32, String)> {
    let header = TcHeader::parse(body).ok()?;
    let kind = attributes(body, TCMSG_LEN)
        .find(|nla| nla.kind() == TCA_KIND)
        .map(|nla| c_string(nla.value()))?;
    Some((header.index.cast_unsigned(), u32::from(header.parent), kind))
}

/// The clsact operations ipmpd needs.
impl RouteSocket {
    /// The ingress-side qdisc of `ifindex`.
    ///
    /// # Errors
    /// The kernel's refusal.
    pub fn ingress_qdisc(&mut self, ifindex: u32) -> Result<IngressQdisc, NetlinkError> {
        let seq = self.next_seq();
        let mut found = IngressQdisc::None;
        self.request(&qdisc_dump_request(seq, ifindex), |kind, body| {
            if kind == RTM_NEWQDISC
                && let Some((i, parent, k)) = parse_qdisc(body)
                && i == ifindex
                && parent == TC_H_CLSACT
            {
                found = if k == "clsact" {
                    IngressQdisc::Clsact
                } else {
                    IngressQdisc::Other(k)
                };
            }
        })?;
        Ok(found)
    }

    /// Adds the clsact qdisc to `ifindex`.
    ///
    /// # Errors
    /// The kernel's refusal (`EEXIST` when one is there).
    pub fn add_clsact(&mut self, ifindex: u32) -> Result<(), NetlinkError> {
        let seq = self.next_seq();
        self.request(&clsact_request(true, seq, ifindex), |_, _| {})
    }

    /// Removes the clsact qdisc of `ifindex` (and every filter on it); absent is fine.
    ///
    /// # Errors
    /// The kernel's refusal.
    pub fn del_clsact(&mut self, ifindex: u32) -> Result<(), NetlinkError> {
        let seq = self.next_seq();
        match self.request(&clsact_request(false, seq, ifindex), |_, _| {}) {
            Err(NetlinkError::Refused(libc::ENOENT | libc::EINVAL | libc::ENODEV)) => Ok(()),
            other => other,
        }
    }

    /// The filters on hook `parent` of `ifindex`.
    ///
    /// # Errors
    /// The kernel's refusal.
    pub fn tc_filters(&mut self, ifindex: u32, parent: u32) -> Result<Vec<Filter>, NetlinkError> {
        let seq = self.next_seq();
        let mut out = Vec::new();
        self.request(&filter_dump_request(seq, ifindex, parent), |kind, body| {
            if kind == RTM_NEWTFILTER
                && let Some(f) = parse_filter(body)
            {
                out.push(f);
            }
        })?;
        Ok(out)
    }

    /// Creates ipmpd's filter, or swaps the program inside the one already there.
    ///
    /// # Errors
    /// The kernel's refusal.
    pub fn set_tc_filter(
        &mut self,
        ifindex: u32,
        prog_fd: RawFd,
        name: &str,
    ) -> Result<(), NetlinkError> {
        let seq = self.next_seq();
        self.request(&filter_request(seq, ifindex, prog_fd, name), |_, _| {})
    }

    /// Removes the filter at `priority`/`handle` on hook `parent`; absent is fine.
    ///
    /// # Errors
    /// The kernel's refusal.
    pub fn del_tc_filter(
        &mut self,
        ifindex: u32,
        parent: u32,
        priority: u16,
        handle: u32,
    ) -> Result<(), NetlinkError> {
        let seq = self.next_seq();
        let req = filter_delete_request(seq, ifindex, parent, priority, handle);
        match self.request(&req, |_, _| {}) {
            Err(NetlinkError::Refused(libc::ENOENT | libc::EINVAL | libc::ENODEV)) => Ok(()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::msg::attr;

    const TCA_BPF_NAME: u16 = 7;
    const TCA_BPF_ID: u16 = 11;

    /// A tcmsg as the kernel sends it (the input of the parsers).
    fn raw_tcmsg(ifindex: u32, handle: u32, parent: u32, info: u32) -> Vec<u8> {
        let mut m = vec![0u8; 4];
        for field in [ifindex, handle, parent, info] {
            m.extend(field.to_ne_bytes());
        }
        m
    }

    #[test]
    fn clsact_requests_golden() {
        #[rustfmt::skip]
        assert_eq!(clsact_request(true, 3, 7), [
            48, 0, 0, 0,  36, 0,  0x05, 0x06,  3, 0, 0, 0,  0, 0, 0, 0, // RTM_NEWQDISC, REQ|ACK|EXCL|CREATE
            0, 0, 0, 0,                  // family, padding
            7, 0, 0, 0,                  // ifindex 7
            0, 0, 0xff, 0xff,            // handle ffff:
            0xf1, 0xff, 0xff, 0xff,      // parent TC_H_CLSACT
            0, 0, 0, 0,                  // info
            11, 0, 1, 0, b'c', b'l', b's', b'a', b'c', b't', 0, 0, // TCA_KIND "clsact"
        ]);
        assert_eq!(&clsact_request(false, 3, 7)[4..8], &[37, 0, 0x05, 0]);
    }

    #[test]
    fn filter_request_golden() {
        #[rustfmt::skip]
        assert_eq!(filter_request(9, 7, 42, "ipmpd_tc"), [
            80, 0, 0, 0,  44, 0,  0x05, 0x04,  9, 0, 0, 0,  0, 0, 0, 0, // RTM_NEWTFILTER, REQ|ACK|CREATE (no EXCL: change in place)
            0, 0, 0, 0,
            7, 0, 0, 0,                  // ifindex 7
            0x0d, 0x1d, 0, 0,            // handle 0x1d0d
            0xf3, 0xff, 0xff, 0xff,      // parent: clsact egress
            0, 3, 1, 0,                  // info: protocol htons(ETH_P_ALL), priority 1
            8, 0, 1, 0, b'b', b'p', b'f', 0, // TCA_KIND "bpf"
            36, 0, 2, 0,                 // TCA_OPTIONS
              8, 0, 6, 0, 42, 0, 0, 0,   //   TCA_BPF_FD 42
              13, 0, 7, 0, b'i', b'p', b'm', b'p', b'd', b'_', b't', b'c', 0, 0, 0, 0, // TCA_BPF_NAME
              8, 0, 8, 0, 1, 0, 0, 0,    //   TCA_BPF_FLAGS direct action
        ]);
    }

    #[test]
    fn filters_from_a_dump() {
        // A chain head (handle 0) and one bpf filter at priority 1, handle 0x1d0d.
        let head = [
            &raw_tcmsg(7, 0, EGRESS, filter_info(1))[..],
            &[8, 0, 1, 0, b'b', b'p', b'f', 0],
        ]
        .concat();
        assert_eq!(parse_filter(&head), None);
        let mut options = Vec::new();
        attr(&mut options, TCA_BPF_NAME, b"ipmpd_tc_stamp:[12]\0");
        attr(&mut options, TCA_BPF_ID, &77u32.to_ne_bytes());
        let mut body = raw_tcmsg(7, HANDLE, EGRESS, filter_info(1));
        attr(&mut body, TCA_KIND, b"bpf\0");
        attr(&mut body, TCA_OPTIONS, &options);
        let f = parse_filter(&body).unwrap();
        assert_eq!(
            (f.priority, f.handle, f.kind.as_str(), f.prog_id),
            (1, HANDLE, "bpf", Some(77))
        );
        assert!(f.is("ipmpd_tc_stamp"));
        assert!(!f.is("ipmpd_tc"));
        // Truncated bodies never panic.
        for cut in 0..body.len() {
            let _ = parse_filter(&body[..cut]);
        }
    }

    #[test]
    fn qdiscs_from_a_dump() {
        let mut body = raw_tcmsg(7, CLSACT_HANDLE, TC_H_CLSACT, 0);
        attr(&mut body, TCA_KIND, b"ingress\0");
        assert_eq!(
            parse_qdisc(&body),
            Some((7, TC_H_CLSACT, "ingress".to_owned()))
        );
    }
}
