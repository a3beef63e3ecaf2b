//! Policy rules ("from ADDRESS lookup TABLE"): requests, dumps and notifications.

use std::net::IpAddr;

use super::{
    msg::{
        Builder, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST, attrs, family,
        ip_bytes, u32_at,
    },
    socket::{NetlinkError, RouteSocket},
};
use crate::ip::Prefix;

/// `RTM_NEWRULE`.
pub const RTM_NEWRULE: u16 = 32;
/// `RTM_DELRULE`.
pub const RTM_DELRULE: u16 = 33;
const RTM_GETRULE: u16 = 34;
const FRA_SRC: u16 = 2;
const FRA_PRIORITY: u16 = 6;
const FRA_TABLE: u16 = 15;
/// `FRA_PROTOCOL` (Linux 4.17): who made the rule, like a route's protocol.
const FRA_PROTOCOL: u16 = 21;
/// `FR_ACT_TO_TBL`.
pub const FR_ACT_TO_TBL: u8 = 1;
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
    let src_len = r.src.map_or(0, |s| s.len);
    // fib_rule_hdr: family, dst_len, src_len, tos, table, res1, res2, action, flags
    let mut hdr = vec![r.family, 0, src_len, 0, 0, 0, 0, r.action];
    hdr.extend(0u32.to_ne_bytes());
    let (kind, flags) = if add {
        (
            RTM_NEWRULE,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )
    } else {
        (RTM_DELRULE, NLM_F_REQUEST | NLM_F_ACK)
    };
    let m = Builder::new(kind, flags, seq)
        .bytes(&hdr)
        .attr(FRA_TABLE, &r.table.to_ne_bytes())
        .attr(FRA_PRIORITY, &r.priority.to_ne_bytes())
        .attr(FRA_PROTOCOL, &[r.protocol]);
    match r.src {
        Some(s) => m.attr(FRA_SRC, &ip_bytes(s.addr)).finish(),
        None => m.finish(),
    }
}

/// The RTM_GETRULE dump request for `family`.
#[must_use]
pub fn dump_request(seq: u32, family: u8) -> Vec<u8> {
    let mut hdr = [0u8; FIB_RULE_HDR_LEN];
    hdr[0] = family;
    Builder::new(RTM_GETRULE, NLM_F_REQUEST | NLM_F_DUMP, seq)
        .bytes(&hdr)
        .finish()
}

/// A rule from one RTM_NEWRULE / RTM_DELRULE body.
#[must_use]
pub fn parse_rule(body: &[u8]) -> Option<Rule> {
    let fam = *body.first()?;
    let src_len = *body.get(2)?;
    let mut table = u32::from(*body.get(4)?);
    let action = *body.get(7)?;
    let (mut src, mut priority, mut protocol) = (None, 0, 0);
    for (t, p) in attrs(body.get(FIB_RULE_HDR_LEN..)?) {
        match (t, i32::from(fam), p.len()) {
            (FRA_SRC, libc::AF_INET, 4) => {
                src = Some(IpAddr::from(<[u8; 4]>::try_from(p).ok()?));
            }
            (FRA_SRC, libc::AF_INET6, 16) => {
                src = Some(IpAddr::from(<[u8; 16]>::try_from(p).ok()?));
            }
            (FRA_TABLE, _, _) => table = u32_at(p, 0).unwrap_or(table),
            (FRA_PRIORITY, _, _) => priority = u32_at(p, 0).unwrap_or(0),
            (FRA_PROTOCOL, _, _) => protocol = *p.first().unwrap_or(&0),
            _ => {}
        }
    }
    Some(Rule {
        src: src.map(|addr| Prefix { addr, len: src_len }),
        family: fam,
        table,
        priority,
        protocol,
        action,
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
            family: family(src),
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
