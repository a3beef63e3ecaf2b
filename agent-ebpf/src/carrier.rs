//! fentry on `netif_carrier_on` / `netif_carrier_off`: the fastest possible link-state mirror.
//!
//! Rust cannot emit CO-RE relocations, so the field offsets inside `struct net_device` and
//! `struct net` come from the running kernel's BTF at load time (userspace reads
//! `/sys/kernel/btf/vmlinux`) and arrive here as globals. The hook fires for every device of every
//! network namespace, so it only writes entries userspace created (tracked interfaces) and only for
//! devices of the agent's own namespace (inode number of the namespace).
//!
//! Each change is also written to a ring buffer, which wakes userspace at once: the daemon learns of
//! it from here, not from rtnetlink (which linkwatch delays by up to a second on real NICs).
//!
//! Where the kernel refuses tracing programs (lockdown, BPF LSM), userspace says so and polls.

use agent_common::{
    link::{LinkState, source},
    record::LinkRecord,
};
use aya_ebpf::{
    helpers::{bpf_ktime_get_ns, bpf_probe_read_kernel},
    macros::fentry,
    programs::FEntryContext,
};

use crate::maps::{LINK_EVENTS, LINK_STATE};

/// Offset of `ifindex` in `struct net_device`.
#[unsafe(no_mangle)]
static NETDEV_IFINDEX_OFF: u32 = 0;
/// Offset of `nd_net` (a `possible_net_t`, i.e. one `struct net *`) in `struct net_device`.
#[unsafe(no_mangle)]
static NETDEV_ND_NET_OFF: u32 = 0;
/// Offset of `ns.inum` in `struct net`.
#[unsafe(no_mangle)]
static NET_NS_INUM_OFF: u32 = 0;
/// Inode number of the agent's network namespace.
#[unsafe(no_mangle)]
static AGENT_NETNS_INUM: u32 = 0;

#[inline(always)]
fn global(v: &u32) -> u32 {
    // SAFETY: reading a static; volatile so the compiler does not fold the load-time value away.
    unsafe { core::ptr::read_volatile(v) }
}

#[fentry(function = "netif_carrier_on")]
pub fn ipmpd_carrier_on(ctx: FEntryContext) -> u32 {
    let _ = mirror(&ctx, 1);
    0
}

#[fentry(function = "netif_carrier_off")]
pub fn ipmpd_carrier_off(ctx: FEntryContext) -> u32 {
    let _ = mirror(&ctx, 0);
    0
}

#[inline(always)]
fn mirror(ctx: &FEntryContext, carrier: u32) -> Result<(), i64> {
    let dev: *const u8 = ctx.arg(0);
    // SAFETY: bpf_probe_read_kernel copes with any address; offsets come from the kernel's BTF.
    let ifindex: u32 =
        unsafe { bpf_probe_read_kernel(dev.add(global(&NETDEV_IFINDEX_OFF) as usize).cast()) }?;
    // SAFETY: as above.
    let net: *const u8 =
        unsafe { bpf_probe_read_kernel(dev.add(global(&NETDEV_ND_NET_OFF) as usize).cast()) }?;
    // SAFETY: as above.
    let inum: u32 =
        unsafe { bpf_probe_read_kernel(net.add(global(&NET_NS_INUM_OFF) as usize).cast()) }?;
    if inum != global(&AGENT_NETNS_INUM) {
        return Ok(());
    }
    let Some(entry) = LINK_STATE.get_ptr_mut(ifindex) else {
        return Ok(());
    };
    // SAFETY: a pointer into a live map value; a racing writer can at worst make one flap count late.
    let entry: &mut LinkState = unsafe { &mut *entry };
    if entry.carrier == carrier {
        // netif_carrier_on/off are called without a change too (every open, every watchdog).
        return Ok(());
    }
    // SAFETY: helper without preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    entry.carrier = carrier;
    entry.flaps += 1;
    entry.last_change_ns = now;
    entry.source = source::KERNEL_HOOK;
    // Wake userspace: the map alone would be read only at its next look.
    let record = LinkRecord {
        at_ns: now,
        ifindex,
        carrier,
        flaps: entry.flaps,
        _pad: 0,
    };
    if LINK_EVENTS.output(record, 0).is_err() {
        entry.hook_records_lost += 1;
    }
    Ok(())
}
