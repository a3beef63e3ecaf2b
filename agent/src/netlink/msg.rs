//! The netlink framing every family shares: walking the messages of a datagram (without
//! allocating: the socket reads into one buffer), the `NLM_F_*` flags, and a small builder for the
//! one request no kept crate covers (ethtool's generic-netlink LINKSTATE_GET, see
//! `link/ethtool.rs`). rtnetlink messages themselves are netlink-packet-route's types
//! (`packet.rs`); nothing that parses input panics.

/// Length of `struct nlmsghdr`.
pub const NLMSG_HDRLEN: usize = 16;
/// `NLM_F_REQUEST`.
pub const NLM_F_REQUEST: u16 = 0x1;
/// `NLM_F_ACK`.
pub const NLM_F_ACK: u16 = 0x4;
/// `NLM_F_REPLACE`.
pub const NLM_F_REPLACE: u16 = 0x100;
/// `NLM_F_EXCL`.
pub const NLM_F_EXCL: u16 = 0x200;
/// `NLM_F_CREATE`.
pub const NLM_F_CREATE: u16 = 0x400;
/// `NLM_F_DUMP`.
pub const NLM_F_DUMP: u16 = 0x300;
/// `NLMSG_ERROR`.
pub const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`.
pub const NLMSG_DONE: u16 = 3;

/// A request under construction: the header now, the length when [`Builder::finish`] is called.
#[derive(Debug)]
pub struct Builder(Vec<u8>);

impl Builder {
    /// A message of type `kind` with `flags` and sequence number `seq`.
    #[must_use]
    pub fn new(kind: u16, flags: u16, seq: u32) -> Self {
        let mut m = vec![0u8; NLMSG_HDRLEN];
        m[4..6].copy_from_slice(&kind.to_ne_bytes());
        m[6..8].copy_from_slice(&flags.to_ne_bytes());
        m[8..12].copy_from_slice(&seq.to_ne_bytes());
        Self(m)
    }

    /// Appends raw bytes (the family header after `nlmsghdr`).
    #[must_use]
    pub fn bytes(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }

    /// Appends an attribute, padded to 4 bytes.
    #[must_use]
    pub fn attr(mut self, kind: u16, payload: &[u8]) -> Self {
        attr(&mut self.0, kind, payload);
        self
    }

    /// The message with its length filled in.
    #[must_use]
    pub fn finish(mut self) -> Vec<u8> {
        let len = self.0.len() as u32;
        self.0[0..4].copy_from_slice(&len.to_ne_bytes());
        self.0
    }
}

/// Appends attribute `kind` with `payload` to `out`, padded to 4 bytes (also for nested ones).
pub fn attr(out: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    out.extend(((4 + payload.len()) as u16).to_ne_bytes());
    out.extend(kind.to_ne_bytes());
    out.extend(payload);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// One netlink message of a datagram.
#[derive(Debug, PartialEq, Eq)]
pub enum Message<'a> {
    /// Any message but the two below: its type and body (after the netlink header).
    Other(u16, &'a [u8]),
    Done,
    /// NLMSG_ERROR: 0 is an acknowledgement, otherwise the (positive) errno.
    Error(i32),
}

/// The `u16` at `at` in native order, if `b` is long enough.
#[must_use]
pub fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
/// The `u32` at `at` in native order, if `b` is long enough.
#[must_use]
pub fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Walks the messages in one datagram. Malformed messages end the walk; nothing panics.
pub fn parse_messages<'a>(mut data: &'a [u8], mut each: impl FnMut(Message<'a>)) {
    while data.len() >= NLMSG_HDRLEN {
        let Some(len) = u32_at(data, 0).map(|l| l as usize) else {
            return;
        };
        let Some(kind) = u16_at(data, 4) else { return };
        if len < NLMSG_HDRLEN || len > data.len() {
            return;
        }
        let body = &data[NLMSG_HDRLEN..len];
        match kind {
            NLMSG_DONE => each(Message::Done),
            // The kernel sends -errno; any i32 may arrive (i32::MIN has no negation).
            NLMSG_ERROR => each(Message::Error(
                u32_at(body, 0).map_or(0, |e| (e as i32).saturating_neg()),
            )),
            _ => each(Message::Other(kind, body)),
        }
        let aligned = (len + 3) & !3;
        data = data.get(aligned..).unwrap_or(&[]);
    }
}

/// The netlink attributes in `data` as (type without flag bits, payload); stops at a malformed one.
pub fn attrs(mut data: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let alen = usize::from(u16_at(data, 0)?);
        let atype = u16_at(data, 2)? & 0x3fff;
        if alen < 4 || alen > data.len() {
            return None;
        }
        let payload = &data[4..alen];
        data = data.get((alen + 3) & !3..).unwrap_or(&[]);
        Some((atype, payload))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_error_code_without_a_negation_is_no_panic() {
        // Found by the netlink fuzz target: NLMSG_ERROR carrying i32::MIN.
        let mut msg = vec![20, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        msg.extend(i32::MIN.to_ne_bytes());
        let mut seen = Vec::new();
        parse_messages(&msg, |m| seen.push(format!("{m:?}")));
        assert_eq!(seen, [format!("Error({})", i32::MAX)]);
    }

    use super::*;

    #[test]
    fn header_attributes_and_padding() {
        let m = Builder::new(20, NLM_F_REQUEST | NLM_F_ACK, 9)
            .bytes(&[1, 2, 3, 4])
            .attr(3, &[7])
            .finish();
        #[rustfmt::skip]
        assert_eq!(m, [
            28, 0, 0, 0,  20, 0,  5, 0,  9, 0, 0, 0,  0, 0, 0, 0, // header, length 28
            1, 2, 3, 4,                                             // family header
            5, 0, 3, 0, 7, 0, 0, 0,                                 // attribute 3, length 5, padded
        ]);
    }
}
