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
    /// Nanoseconds from the tagged send time to the kernel's receive stamp: the time base of a
    /// probe's expiry (a wake-up's `now`, shared by every probe it sends), so it includes the wait
    /// behind the other probes of that wake-up and the target's queue for them. Never below `ns`.
    pub answer_ns: u64,
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
    let answer_ns = rx.saturating_sub(send_ns);
    if sound {
        RoundTrip {
            ns: rx - tx_ns,
            kernel: true,
            bad_timestamp: false,
            answer_ns,
        }
    } else {
        RoundTrip {
            ns: answer_ns,
            kernel: false,
            bad_timestamp: tx_ns != 0,
            answer_ns,
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
    fn the_answer_time_counts_from_the_tagged_send_including_the_wait_to_leave() {
        // Tagged at 1,000 with the rest of its wake-up, left at 3,000, back at 3,100: the network
        // took 100, the expiry saw 2,100.
        let r = round_trip(1_000, 3_000, 3_100, 3_200);
        assert_eq!((r.ns, r.answer_ns), (100, 2_100));
        // A reply stamped after it was processed cannot stretch it.
        let r = round_trip(1_000, 0, 9_000, 2_000);
        assert_eq!((r.ns, r.answer_ns), (1_000, 1_000));
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
