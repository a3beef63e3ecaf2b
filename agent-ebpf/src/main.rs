//! ipmpd's kernel programs.
//!
//! - `ipmpd_xdp_reply` (XDP, every tracked interface): recognises replies to ipmpd's probes, stamps
//!   their receive time, hands a record to userspace through a ring buffer and consumes them. Every
//!   other frame passes untouched. Errors fail open (`XDP_PASS`): a parser surprise must never cost
//!   the host its traffic.
//! - `ipmpd_tc_reply` (TC ingress, instead of `ipmpd_xdp_reply` on veth where the kernel has TCX, or
//!   everywhere with `--reply-hook tc`): the same, on the path every packet takes anyway.
//! - `ipmpd_tc_stamp` (TC egress, every tracked interface): writes the kernel transmit time into
//!   outgoing probes and keeps the ICMP checksum valid.
//! - `ipmpd_carrier_on` / `ipmpd_carrier_off` (fentry): mirror carrier changes into the link-state map
//!   where the kernel lets tracing programs load; userspace falls back to polling where it does not.
#![no_std]
#![no_main]
#![allow(
    clippy::needless_pass_by_value,
    reason = "aya's program macros hand each entry point its context by value"
)]

mod carrier;
mod maps;
mod parse;
mod tc_reply;
mod tc_stamp;
mod xdp_reply;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
