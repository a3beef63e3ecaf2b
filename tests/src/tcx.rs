//! Someone else's program on a TCX hook, as a firewall or another agent on the host would attach
//! one: a classifier of two instructions that drops every frame, loaded and linked with raw
//! `bpf(2)` calls. The tests carry no eBPF object of their own, and the bpftool of these machines
//! cannot attach TCX links.

use std::{
    io,
    os::fd::{FromRawFd as _, OwnedFd},
};

use crate::topology::{Netns, enter_netns};

/// `bpf(2)` commands and constants from `include/uapi/linux/bpf.h`.
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_PROG_TYPE_SCHED_CLS: u64 = 3;
const BPF_TCX_INGRESS: u64 = 46;
const BPF_F_BEFORE: u64 = 1 << 3;
/// `r0 = 2 (TC_ACT_SHOT); exit`.
const DROP_ALL: [u64; 2] = [0x0000_0002_0000_00b7, 0x0000_0000_0000_0095];
/// `union bpf_attr` as 8-byte words: larger than the fields these commands use; the kernel checks
/// that the rest is zero.
type Attr = [u64; 18];

/// Where the program goes among the programs already on the hook.
#[derive(Clone, Copy, Debug)]
pub enum Place {
    /// Before every one of them (`BPF_F_BEFORE` with no relative program).
    First,
    /// After every one of them (no flag).
    Last,
}

/// A drop-every-frame classifier linked to an interface's TCX ingress hook; the link goes (and
/// the program with it) when this is dropped.
#[derive(Debug)]
pub struct TcxDropper {
    _link: OwnedFd,
}

impl TcxDropper {
    /// Links the dropper to `ifname`'s TCX ingress in `ns` at `place`.
    ///
    /// # Errors
    /// The kernel's refusal: no TCX (before Linux 6.6), no privilege.
    pub fn ingress(ns: &Netns, ifname: &str, place: Place) -> io::Result<Self> {
        let ifindex = ns.ifindex(ifname);
        let path = ns.path();
        // The kernel finds the interface by index in the calling thread's namespace.
        std::thread::scope(|s| {
            s.spawn(|| {
                enter_netns(&path);
                let prog = load()?;
                link(&prog, ifindex, place).map(|link| Self { _link: link })
            })
            .join()
            .expect("the thread in the namespace")
        })
    }
}

/// `bpf(cmd, attr)`, the descriptor it returns.
fn bpf(cmd: libc::c_long, attr: &mut Attr) -> io::Result<OwnedFd> {
    // SAFETY: `attr` is a zero-filled `union bpf_attr` of the size passed, with the fields of
    // `cmd` set; every pointer in it outlives the call.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), size_of::<Attr>()) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(|_| io::Error::other("bpf(2) returned no descriptor"))?;
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn load() -> io::Result<OwnedFd> {
    let license = c"GPL";
    let mut attr: Attr = [0; 18];
    // prog_type (u32) | insn_cnt (u32), insns, license.
    attr[0] = BPF_PROG_TYPE_SCHED_CLS | ((DROP_ALL.len() as u64) << 32);
    attr[1] = DROP_ALL.as_ptr() as u64;
    attr[2] = license.as_ptr() as u64;
    bpf(BPF_PROG_LOAD, &mut attr)
}

fn link(prog: &OwnedFd, ifindex: u32, place: Place) -> io::Result<OwnedFd> {
    use std::os::fd::AsRawFd as _;
    let flags = match place {
        Place::First => BPF_F_BEFORE,
        Place::Last => 0,
    };
    let mut attr: Attr = [0; 18];
    // prog_fd (u32) | target_ifindex (u32), attach_type (u32) | flags (u32); the relative
    // program and expected revision after them stay zero.
    attr[0] = u64::from(prog.as_raw_fd().unsigned_abs()) | (u64::from(ifindex) << 32);
    attr[1] = BPF_TCX_INGRESS | (flags << 32);
    bpf(BPF_LINK_CREATE, &mut attr)
}
