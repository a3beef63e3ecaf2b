//! rtnetlink datagrams as the kernel (or anything that can write to the socket) might send them:
//! the message walk, the attribute walk and every parser of links, addresses, routes, rules,
//! qdiscs and filters (netlink-packet-route's types behind them) never panic, and what they
//! return stays inside the bytes they were given.
#![no_main]

use ipmpd::netlink::{
    link,
    msg::{Message, attrs, parse_messages},
    tc, update,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut bodies = 0usize;
    parse_messages(data, |m| {
        if let Message::Other(kind, body) = m {
            bodies += body.len();
            let _ = update::parse(kind, body);
            // Every kind the daemon knows, whatever the message claims to be.
            for k in [16, 17, 20, 21, 24, 25, 32, 33] {
                let _ = update::parse(k, body);
            }
            // The carrier poll's parser, and the clsact path's.
            let _ = link::parse_link(body, false);
            let _ = tc::parse_filter(body);
            let _ = tc::parse_qdisc(body);
            for (_, payload) in attrs(body) {
                assert!(payload.len() <= body.len());
            }
        }
    });
    assert!(bodies <= data.len());
});
