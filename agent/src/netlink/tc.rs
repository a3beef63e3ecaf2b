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

use super::{
    msg::{
        Builder, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST, attr, attrs,
        u32_at,
    },
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
const RTM_DELQDISC: u16 = 37;
const RTM_GETQDISC: u16 = 38;
const RTM_NEWTFILTER: u16 = 44;
const RTM_DELTFILTER: u16 = 45;
const RTM_GETTFILTER: u16 = 46;
const TCA_KIND: u16 = 1;
const TCA_OPTIONS: u16 = 2;
const TCA_BPF_FD: u16 = 6;
const TCA_BPF_NAME: u16 = 7;
const TCA_BPF_FLAGS: u16 = 8;
const TCA_BPF_ID: u16 = 11;
const TCA_BPF_FLAG_ACT_DIRECT: u32 = 1;
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

fn tcmsg(ifindex: u32, handle: u32, parent: u32, info: u32) -> Vec<u8> {
    // struct tcmsg: family, 3 bytes padding, ifindex, handle, parent, info
    let mut m = vec![0u8; 4];
    m.extend(ifindex.to_ne_bytes());
    m.extend(handle.to_ne_bytes());
    m.extend(parent.to_ne_bytes());
    m.extend(info.to_ne_bytes());
    m
}

/// `TC_H_MAKE(priority << 16, htons(ETH_P_ALL))`: priority and protocol of a filter.
fn filter_info(priority: u16) -> u32 {
    (u32::from(priority) << 16) | u32::from(ETH_P_ALL_BE)
}

/// RTM_GETQDISC dump (every qdisc of the namespace; the kernel may ignore the index).
#[must_use]
pub fn qdisc_dump_request(seq: u32, ifindex: u32) -> Vec<u8> {
    Builder::new(RTM_GETQDISC, NLM_F_REQUEST | NLM_F_DUMP, seq)
        .bytes(&tcmsg(ifindex, 0, 0, 0))
        .finish()
}

/// RTM_NEWQDISC (exclusive create) or RTM_DELQDISC of the clsact qdisc on `ifindex`.
#[must_use]
pub fn clsact_request(add: bool, seq: u32, ifindex: u32) -> Vec<u8> {
    let (kind, flags) = if add {
        (
            RTM_NEWQDISC,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )
    } else {
        (RTM_DELQDISC, NLM_F_REQUEST | NLM_F_ACK)
    };
    Builder::new(kind, flags, seq)
        .bytes(&tcmsg(ifindex, CLSACT_HANDLE, TC_H_CLSACT, 0))
        .attr(TCA_KIND, b"clsact\0")
        .finish()
}

/// RTM_GETTFILTER dump of the filters on hook `parent` ([`EGRESS`] or [`INGRESS`]) of `ifindex`.
#[must_use]
pub fn filter_dump_request(seq: u32, ifindex: u32, parent: u32) -> Vec<u8> {
    Builder::new(RTM_GETTFILTER, NLM_F_REQUEST | NLM_F_DUMP, seq)
        .bytes(&tcmsg(ifindex, 0, parent, 0))
        .finish()
}

/// RTM_NEWTFILTER of a direct-action `bpf` filter running program `prog_fd` (named `name`) at
/// [`PRIORITY`]/[`HANDLE`] on the egress hook: created when absent, changed in place (the program
/// swapped atomically) when present.
#[must_use]
pub fn filter_request(seq: u32, ifindex: u32, prog_fd: RawFd, name: &str) -> Vec<u8> {
    let mut options = Vec::new();
    attr(&mut options, TCA_BPF_FD, &prog_fd.to_ne_bytes());
    let mut cname = name.as_bytes().to_vec();
    cname.push(0);
    attr(&mut options, TCA_BPF_NAME, &cname);
    attr(
        &mut options,
        TCA_BPF_FLAGS,
        &TCA_BPF_FLAG_ACT_DIRECT.to_ne_bytes(),
    );
    Builder::new(
        RTM_NEWTFILTER,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE,
        seq,
    )
    .bytes(&tcmsg(ifindex, HANDLE, EGRESS, filter_info(PRIORITY)))
    .attr(TCA_KIND, b"bpf\0")
    .attr(TCA_OPTIONS, &options)
    .finish()
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
    Builder::new(RTM_DELTFILTER, NLM_F_REQUEST | NLM_F_ACK, seq)
        .bytes(&tcmsg(ifindex, handle, parent, filter_info(priority)))
        .attr(TCA_KIND, b"bpf\0")
        .finish()
}

fn c_string(p: &[u8]) -> String {
    String::from_utf8_lossy(p.split(|b| *b == 0).next().unwrap_or(p)).into_owned()
}

/// A filter from one RTM_NEWTFILTER body of a dump. The dump also lists each priority's chain
/// head, without a handle: those are not filters and give `None`.
#[must_use]
pub fn parse_filter(body: &[u8]) -> Option<Filter> {
    let handle = u32_at(body, 8)?;
    let info = u32_at(body, 16)?;
    if handle == 0 {
        return None;
    }
    let (mut kind, mut name, mut prog_id) = (None, None, None);
    for (t, p) in attrs(body.get(TCMSG_LEN..)?) {
        match t {
            TCA_KIND => kind = Some(c_string(p)),
            TCA_OPTIONS => {
                for (o, q) in attrs(p) {
                    match o {
                        TCA_BPF_NAME => name = Some(c_string(q)),
                        TCA_BPF_ID => prog_id = u32_at(q, 0),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Some(Filter {
        priority: (info >> 16) as u16,
        handle,
        kind: kind?,
        name,
        prog_id,
    })
}

/// (ifindex, parent, kind) of one RTM_NEWQDISC body.
#[must_use]
pub fn parse_qdisc(body: &[u8]) -> Option<(u32, u32, String)> {
    let ifindex = u32_at(body, 4)?;
    let parent = u32_at(body, 12)?;
    let kind = attrs(body.get(TCMSG_LEN..)?)
        .find(|(t, _)| *t == TCA_KIND)
        .map(|(_, p)| c_string(p))?;
    Some((ifindex, parent, kind))
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
            &tcmsg(7, 0, EGRESS, filter_info(1))[..],
            &[8, 0, 1, 0, b'b', b'p', b'f', 0],
        ]
        .concat();
        assert_eq!(parse_filter(&head), None);
        let mut options = Vec::new();
        attr(&mut options, TCA_BPF_NAME, b"ipmpd_tc_stamp:[12]\0");
        attr(&mut options, TCA_BPF_ID, &77u32.to_ne_bytes());
        let mut body = tcmsg(7, HANDLE, EGRESS, filter_info(1));
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
        let mut body = tcmsg(7, CLSACT_HANDLE, TC_H_CLSACT, 0);
        attr(&mut body, TCA_KIND, b"ingress\0");
        assert_eq!(
            parse_qdisc(&body),
            Some((7, TC_H_CLSACT, "ingress".to_owned()))
        );
    }
}
