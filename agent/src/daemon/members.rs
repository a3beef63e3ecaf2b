//! The probe side of each tracked member: its index, its ICMP identifier, its probe sockets and
//! its hardware address, found by name (engine outputs) and by index (replies) at the same cost
//! with 2 or 2,000 members.

use std::{collections::HashMap, net::IpAddr};

use agent_common::probe::ProbeHeader;

use crate::probe::{
    auth::ProbeKey,
    packet::{Family, echo_request},
    session::ProbeSession,
    socket::{ProbeSocket, SocketError},
};

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
}

/// Every tracked member.
#[derive(Debug, Default)]
pub struct Members {
    by_name: HashMap<String, MemberIo>,
    names: HashMap<u32, String>,
}

impl Members {
    /// Starts `ifname` (index `ifindex`) with no sockets.
    pub fn insert(&mut self, ifname: &str, ifindex: u32, hwaddr: Option<[u8; 6]>) {
        self.remove(ifname);
        self.names.insert(ifindex, ifname.to_owned());
        self.by_name.insert(
            ifname.to_owned(),
            MemberIo {
                ifname: ifname.to_owned(),
                ifindex,
                id: ProbeSession::identifier(std::process::id(), ifindex),
                sockets: Vec::new(),
                hwaddr,
                wake: None,
            },
        );
    }

    /// Forgets `ifname`, closing its sockets.
    pub fn remove(&mut self, ifname: &str) -> Option<MemberIo> {
        let m = self.by_name.remove(ifname)?;
        if self.names.get(&m.ifindex).is_some_and(|n| n == ifname) {
            self.names.remove(&m.ifindex);
        }
        Some(m)
    }

    /// The member named `ifname`.
    #[must_use]
    pub fn get(&self, ifname: &str) -> Option<&MemberIo> {
        self.by_name.get(ifname)
    }

    /// The member named `ifname`, to change.
    pub fn get_mut(&mut self, ifname: &str) -> Option<&mut MemberIo> {
        self.by_name.get_mut(ifname)
    }

    /// The member with index `ifindex`.
    #[must_use]
    pub fn by_ifindex(&self, ifindex: u32) -> Option<&MemberIo> {
        self.by_name.get(self.names.get(&ifindex)?)
    }

    /// Every member.
    pub fn iter(&self) -> impl Iterator<Item = &MemberIo> {
        self.by_name.values()
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

    /// Sends probe `seq` of message type `kind` from `test_addr` to `target`, carrying `sent_ns`
    /// (the engine's send time, which a reply must carry back) and signed with `key`.
    pub fn send(&self, key: &ProbeKey, probe: (IpAddr, IpAddr, u16, u64), kind: u16) {
        let (test_addr, target, seq, sent_ns) = probe;
        let Some((_, sock)) = self
            .sockets
            .iter()
            .find(|(a, s)| *a == test_addr && (s.family() == Family::Inet) == target.is_ipv4())
        else {
            return;
        };
        let mut header = ProbeHeader::new(kind, self.ifindex, 0, sent_ns);
        key.sign(&mut header, self.id, seq);
        let packet = echo_request(sock.family(), self.id, seq, &header);
        if let Err(e) = sock.send(target, &packet) {
            tracing::debug!(ifname = self.ifname, %target, error = %e, "probe not sent");
        }
    }
}
