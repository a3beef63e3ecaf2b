//! The round trip of a reply from its timestamps, trusting only what can be trusted: the send time
//! userspace wrote (covered by the tag), the receive time XDP took on this host, and this host's
//! clock. The kernel transmit time the TC program wrote on the way out travels in the packet
//! outside the tag, so a reply could carry any value there: it is used only when it lies where it
//! must (send <= tx <= rx <= now, and rx - tx <= now - send), else the reply has a bad timestamp
//! (the daemon refuses it: a reply that came back as it was sent cannot have one).

/// A reply's round trip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoundTrip {
    /// Nanoseconds: the network round trip (rx - tx) where the kernel stamps are sound, else
    /// rx - send (still kernel-received, never shorter than the truth).
    pub ns: u64,
    /// Whether the kernel transmit time was usable.
    pub kernel: bool,
    /// The reply carried a kernel transmit time that cannot be true (rewritten on the way).
    pub bad_timestamp: bool,
}

/// The round trip of a probe sent at `send_ns` (tagged), stamped `tx_ns` by TC (0: unstamped),
/// received at `rx_ns` by XDP, processed at `now_ns`.
#[must_use]
pub fn round_trip(send_ns: u64, tx_ns: u64, rx_ns: u64, now_ns: u64) -> RoundTrip {
    let rx = rx_ns.min(now_ns);
    let sound = tx_ns != 0
        && send_ns <= tx_ns
        && tx_ns <= rx
        && rx - tx_ns <= now_ns.saturating_sub(send_ns);
    if sound {
        RoundTrip {
            ns: rx - tx_ns,
            kernel: true,
            bad_timestamp: false,
        }
    } else {
        RoundTrip {
            ns: rx.saturating_sub(send_ns),
            kernel: false,
            bad_timestamp: tx_ns != 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sound_stamps_give_the_network_round_trip() {
        let r = round_trip(1_000, 1_010, 1_110, 1_200);
        assert_eq!((r.ns, r.kernel, r.bad_timestamp), (100, true, false));
    }

    #[test]
    fn a_rewritten_transmit_time_is_refused_and_cannot_stretch_the_round_trip() {
        // tx moved back before the send: the "round trip" would look huge.
        let r = round_trip(1_000_000, 1, 1_000_100, 1_000_200);
        assert_eq!((r.ns, r.kernel, r.bad_timestamp), (100, false, true));
        // tx after rx, or rx - tx longer than the whole exchange.
        assert!(round_trip(1_000, 5_000, 1_100, 1_200).bad_timestamp);
        assert!(round_trip(1_000, 1_000, 90_000, 2_000).ns <= 1_000);
        // Unstamped (TC not attached): the tagged send time, no complaint.
        let r = round_trip(1_000, 0, 1_100, 1_200);
        assert_eq!((r.ns, r.kernel, r.bad_timestamp), (100, false, false));
        // Extreme values never overflow.
        let r = round_trip(u64::MAX, u64::MAX, 0, 0);
        assert_eq!(r.ns, 0);
    }
}
