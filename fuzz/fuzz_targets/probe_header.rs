//! The probe header on the wire and the timestamps of a reply: a header survives the round trip
//! through bytes, one nobody signed does not verify, and whatever the four timestamps say, the
//! round trip taken from them never exceeds the time that really passed since the send.
#![no_main]

use agent_common::probe::{PROBE_HEADER_LEN, ProbeHeader};
use ipmpd::probe::{auth::ProbeKey, timing::round_trip};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(h) = ProbeHeader::from_bytes(data) else {
        assert!(data.len() < PROBE_HEADER_LEN);
        return;
    };
    assert_eq!(&h.to_bytes()[..], &data[..PROBE_HEADER_LEN]);
    let key = ProbeKey::from_bytes(*b"ipmpd fuzz key!!");
    let (id, seq) = (
        u16::from_be_bytes([data[0], data[1]]),
        u16::from_be_bytes([data[2], data[3]]),
    );
    if key.verify(&h, id, seq) {
        // Only possible if the input carries the tag this key makes: sign a copy and compare.
        let mut signed = h;
        key.sign(&mut signed, id, seq);
        assert_eq!(signed.tag, h.tag);
    }
    let word = |at: usize| {
        data.get(at..at + 8)
            .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
    };
    let (send, tx, rx, now) = (h.send_time_ns(), word(40), word(48), word(56));
    let rt = round_trip(send, tx, rx, now);
    assert!(rt.ns <= now.saturating_sub(send), "{rt:?} from {send} {tx} {rx} {now}");
    assert!(!(rt.kernel && rt.bad_timestamp));
});
