//! TC ingress: the same work as the XDP program (recognise replies to ipmpd's probes, time-stamp
//! them, hand them to userspace), for devices where XDP costs every packet more than it saves.
//! On a veth, a native XDP program moves the peer's transmissions onto a NAPI queue of its own:
//! a TCP flow loses about 5 % of its throughput to that even under a program that does nothing,
//! while a TC program runs on the path the packet takes anyway.

use aya_ebpf::{
    bindings::{TC_ACT_SHOT, TC_ACT_UNSPEC},
    macros::classifier,
    programs::TcContext,
};

use crate::xdp_reply::{Taken, take};

/// Consumed replies stop here (`TC_ACT_SHOT`); everything else continues the chain
/// (`TC_ACT_UNSPEC`, which TCX calls `TCX_NEXT`).
#[classifier]
pub fn ipmpd_tc_reply(ctx: TcContext) -> i32 {
    // SAFETY: `skb` is the context pointer the kernel handed this program; plain field reads.
    let (ifindex, vlan) = unsafe {
        let skb = &*ctx.skb.skb;
        // On ingress the stack has already taken a VLAN tag off the frame into the buffer.
        (
            skb.ifindex,
            (skb.vlan_present != 0).then_some((skb.vlan_tci & 0x0fff) as u16),
        )
    };
    // Probe replies are small frames the stack keeps in the linear part, which is all direct
    // packet access sees; a reply cut short there passes to the stack like any other frame.
    match take(ctx.data(), ctx.data_end(), ifindex, vlan) {
        Taken::Consumed => TC_ACT_SHOT,
        Taken::Pass => TC_ACT_UNSPEC,
    }
}
