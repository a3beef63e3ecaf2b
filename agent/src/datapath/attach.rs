//! Attaching the programs to an interface, adopting the links a previous agent pinned.
//!
//! A pinned link keeps its program attached after the agent that made it exits. A new agent
//! replaces the program inside that same link (`bpf_link_update`), so the interface is never
//! without XDP or TC for a single packet; only when that fails is the old link dropped and a new
//! one made.

use std::path::Path;

use agent_common::names;
use aya::{
    Ebpf,
    programs::{
        ProgramError, SchedClassifier, TcAttachType, Xdp, XdpMode,
        links::{FdLink, PinnedLink},
        tc::SchedClassifierLink,
        xdp::XdpLink,
    },
};

use super::{DatapathError, program};

fn attach_err<'a>(
    program: &'static str,
    ifname: &'a str,
) -> impl Fn(ProgramError) -> DatapathError + 'a {
    move |source| DatapathError::Attach {
        program,
        ifname: ifname.into(),
        source,
    }
}

fn pin_err(path: &Path) -> impl Fn(String) -> DatapathError + '_ {
    move |reason| DatapathError::Pin {
        path: path.to_path_buf(),
        reason,
    }
}

/// The pinned link at `path`, when there is one.
fn pinned(path: &Path) -> Option<FdLink> {
    PinnedLink::from_pin(path).ok().map(FdLink::from)
}

/// Whether a link was adopted (true) or made anew (false).
pub type Adopted = bool;

/// XDP on `ifindex`, pinned at `pin`.
///
/// # Errors
/// When the kernel refuses both the adoption and a new attachment.
pub fn xdp(
    ebpf: &mut Ebpf,
    ifindex: u32,
    ifname: &str,
    pin: &Path,
) -> Result<Adopted, DatapathError> {
    let prog: &mut Xdp = program(ebpf, names::XDP_PROBE_REPLY)?;
    if let Some(old) = pinned(pin) {
        let adopted = XdpLink::try_from(old)
            .map_err(|e| e.to_string())
            .and_then(|l| prog.attach_to_link(l).map_err(|e| e.to_string()));
        match adopted {
            // The pin keeps the link; the program's own handle is not needed.
            Ok(id) => {
                drop(prog.take_link(id));
                return Ok(true);
            }
            Err(reason) => {
                tracing::warn!(
                    ifname,
                    reason,
                    "cannot adopt the pinned XDP link; attaching anew"
                );
                let _ = std::fs::remove_file(pin);
            }
        }
    }
    let id = prog
        .attach_to_if_index(ifindex, XdpMode::Default)
        .map_err(attach_err(names::XDP_PROBE_REPLY, ifname))?;
    let link = prog
        .take_link(id)
        .map_err(attach_err(names::XDP_PROBE_REPLY, ifname))?;
    let fd = FdLink::try_from(link).map_err(|e| pin_err(pin)(e.to_string()))?;
    fd.pin(pin).map_err(|e| pin_err(pin)(e.to_string()))?;
    Ok(false)
}

/// TC egress on `ifname`, pinned at `pin`.
///
/// # Errors
/// When the kernel refuses both the adoption and a new attachment.
pub fn tc_egress(ebpf: &mut Ebpf, ifname: &str, pin: &Path) -> Result<Adopted, DatapathError> {
    let prog: &mut SchedClassifier = program(ebpf, names::TC_PROBE_STAMP)?;
    if let Some(old) = pinned(pin) {
        let adopted = SchedClassifierLink::try_from(old)
            .map_err(|e| e.to_string())
            .and_then(|l| prog.attach_to_link(l).map_err(|e| e.to_string()));
        match adopted {
            Ok(id) => {
                drop(prog.take_link(id));
                return Ok(true);
            }
            Err(reason) => {
                tracing::warn!(
                    ifname,
                    reason,
                    "cannot adopt the pinned TC link; attaching anew"
                );
                let _ = std::fs::remove_file(pin);
            }
        }
    }
    let id = prog
        .attach(ifname, TcAttachType::Egress)
        .map_err(attach_err(names::TC_PROBE_STAMP, ifname))?;
    let link = prog
        .take_link(id)
        .map_err(attach_err(names::TC_PROBE_STAMP, ifname))?;
    let fd = FdLink::try_from(link).map_err(|e| pin_err(pin)(e.to_string()))?;
    fd.pin(pin).map_err(|e| pin_err(pin)(e.to_string()))?;
    Ok(false)
}
