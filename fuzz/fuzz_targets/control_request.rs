//! A control-socket request line from any local user: it parses or is refused, never panics, and
//! a request that parses serialises back to something that parses to the same request.
#![no_main]

use ipmpd::control::Request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = serde_json::from_slice::<Request>(data) {
        let again: Request = serde_json::from_slice(&serde_json::to_vec(&r).unwrap()).unwrap();
        assert_eq!(again, r);
    }
});
