//! Policy rules ("from ADDRESS lookup TABLE"): requests, dumps and notifications.

use std::net::IpAddr;

use netlink_packet_core::Parseable as _;
use netlink_packet_route::{
    RouteNetlinkMessage,
    rule::{RuleAttribute, RuleHeader, RuleMessage},
};

use super::{
    msg::{NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST},
    packet::{attributes, encode, family, family_of},
    socket::{NetlinkError, RouteSocket},
};
use crate::ip::Prefix;

/// `RTM_NEWRULE`.
pub const RTM_NEWRULE: u16 = 32;
/// `RTM_DELRULE`.
pub const RTM_DELRULE: u16 = 33;
/// `FR_ACT_TO_TBL`.
pub const FR_ACT_TO_TBL: u8 = 1;
/// Length of `struct fib_rule_hdr`.
const FIB_RULE_HDR_LEN: usize = 12;

/// A rule selecting a table by source address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rule {
    /// The source prefix, `None` for "from all".
    pub src: Option<Prefix>,
    /// AF_INET or AF_INET6 (needed for "from all").
    pub family: u8,
    pub table: u32,
    pub priority: u32,
    pub protocol: u8,
    /// `FR_ACT_*`.
    pub action: u8,
}

/// RTM_NEWRULE (exclusive: EEXIST when present) or RTM_DELRULE of `r`.
#[must_use]
pub fn rule_request(add: bool, seq: u32, r: &Rule) -> Vec<u8> {
    let mut m = RuleMessage::default();
    m.header.family = family(r.family);
    m.header.src_len = r.src.map_or(0, |s| s.len);
    m.header.action = r.action.into();
    m.attributes = vec![
        RuleAttribute::Table(r.table),
        RuleAttribute::Priority(r.priority),
        RuleAttribute::Protocol(r.protocol.into()),
    ];
    if let Some(s) = r.src {
        m.attributes.push(RuleAttribute::Source(s.addr));
    }
    if add {
        let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
        encode(RouteNetlinkMessage::NewRule(m), flags, seq)
    } else {
        encode(
            RouteNetlinkMessage::DelRule(m),
            NLM_F_REQUEST | NLM_F_ACK,
            seq,
        )
    }
}

/// The RTM_GETRULE dump request for `af`.
#[must_use]
pub fn dump_request(seq: u32, af: u8) -> Vec<u8> {
    let mut m = RuleMessage::default();
    m.header.family = family(af);
    encode(
        RouteNetlinkMessage::GetRule(m),
        NLM_F_REQUEST | NLM_F_DUMP,
        seq,
    )
}

/// A rule from one RTM_NEWRULE / RTM_DELRULE body; `None` when malformed.
#[must_use]
pub fn parse_rule(body: &[u8]) -> Option<Rule> {
    let header = RuleHeader::parse(body).ok()?;
    let mut table = u32::from(header.table);
    let (mut src, mut priority, mut protocol) = (None, 0, 0);
    for nla in attributes(body, FIB_RULE_HDR_LEN) {
        match RuleAttribute::parse(&nla) {
            Ok(RuleAttribute::Source(ip)) => src = Some(ip),
            Ok(RuleAttribute::Table(t)) => table = t,
            Ok(RuleAttribute::Priority(p)) => priority = p,
            Ok(RuleAttribute::Protocol(p)) => protocol = p.into(),
            _ => {}
        }
    }
    Some(Rule {
        src: src.map(|addr| Prefix {
            addr,
            len: header.src_len,
        }),
        family: header.family.into(),
        table,
        priority,
        protocol,
        action: header.action.into(),
    })
}

impl Rule {
    /// "from `src` lookup `table`" at `priority`, made by `protocol`.
    #[must_use]
    pub fn from_source(src: IpAddr, table: u32, priority: u32, protocol: u8) -> Self {
        Self {
            src: Some(Prefix {
                addr: src,
                len: crate::ip::host_len(src),
            }),
            family: family_of(src).into(),
            table,
            priority,
            protocol,
            action: FR_ACT_TO_TBL,
        }
    }
}

impl RouteSocket {
    /// Every rule of `family`.
    ///
    /// # Errors
    /// On a socket error or a refusal by the kernel.
    pub fn dump_rules(&mut self, family: u8) -> Result<Vec<Rule>, NetlinkError> {
        let seq = self.next_seq();
        let mut out = Vec::new();
        self.request(&dump_request(seq, family), |kind, body| {
            if kind == RTM_NEWRULE
                && let Some(r) = parse_rule(body)
            {
                out.push(r);
            }
        })?;
        Ok(out)
    }

    /// Adds `r`; one already there is fine.
    ///
    /// # Errors
    /// The kernel's refusal.
    pub fn add_rule(&mut self, r: &Rule) -> Result<(), NetlinkError> {
        let seq = self.next_seq();
        match self.request(&rule_request(true, seq, r), |_, _| {}) {
            Err(NetlinkError::Refused(libc::EEXIST)) => Ok(()),
            other => other,
        }
    }

    /// Deletes `r`; absent is fine.
    ///
    /// # Errors
    /// The kernel's refusal.
    pub fn del_rule(&mut self, r: &Rule) -> Result<(), NetlinkError> {
        let seq = self.next_seq();
        match self.request(&rule_request(false, seq, r), |_, _| {}) {
            Err(NetlinkError::Refused(libc::ENOENT | libc::ESRCH)) => Ok(()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_request_golden_and_round_trip() {
        let r = Rule::from_source([192, 0, 2, 100].into(), 1000, 1000, 233);
        #[rustfmt::skip]
        assert_eq!(rule_request(true, 6, &r), [
            60, 0, 0, 0,  32, 0,  0x05, 0x06,  6, 0, 0, 0,  0, 0, 0, 0, // RTM_NEWRULE, REQ|ACK|EXCL|CREATE
            2, 0, 32, 0, 0, 0, 0, 1,  0, 0, 0, 0,       // AF_INET, src /32, action to table
            8, 0, 15, 0,  0xe8, 0x03, 0, 0,             // FRA_TABLE 1000
            8, 0, 6, 0,  0xe8, 0x03, 0, 0,              // FRA_PRIORITY 1000
            5, 0, 21, 0,  233, 0, 0, 0,                 // FRA_PROTOCOL ipmpd
            8, 0, 2, 0,  192, 0, 2, 100,                // FRA_SRC
        ]);
        let m = rule_request(true, 6, &r);
        assert_eq!(parse_rule(&m[16..]), Some(r));
        let v6 = Rule::from_source("2001:db8::100".parse().unwrap(), 7, 1000, 233);
        assert_eq!(parse_rule(&rule_request(false, 1, &v6)[16..]), Some(v6));
        for cut in 0..m.len() - 16 {
            let _ = parse_rule(&m[16..16 + cut]);
        }
    }
}
