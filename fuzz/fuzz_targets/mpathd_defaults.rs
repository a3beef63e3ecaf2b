//! `/etc/default/mpathd`'s parser on any text: it never panics (multi-byte characters next to a
//! key included), and the FDT it returns is always within in.mpathd's bounds.
#![no_main]

use ipmpd::config::mpathd_defaults::{MAX_FDT_MS, MIN_FDT_MS, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (d, _) = parse(&String::from_utf8_lossy(data));
    assert!((MIN_FDT_MS..=MAX_FDT_MS).contains(&d.failure_detection_time_ms));
});
