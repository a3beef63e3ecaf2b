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

/// Whether a link was adopted (true) or made anew (false).
pub type Adopted = bool;

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

/// Adopts the link pinned at `pin` with `adopt`, or makes a new one with `fresh` and pins it.
fn adopt_or_attach<P>(
    prog: &mut P,
    pin: &Path,
    ifname: &str,
    adopt: impl FnOnce(&mut P, FdLink) -> Result<(), String>,
    fresh: impl FnOnce(&mut P) -> Result<FdLink, DatapathError>,
) -> Result<Adopted, DatapathError> {
    if let Ok(old) = PinnedLink::from_pin(pin) {
        match adopt(prog, FdLink::from(old)) {
            Ok(()) => return Ok(true),
            Err(reason) => {
                tracing::warn!(ifname, pin = %pin.display(), reason, "cannot adopt the pinned link; attaching anew");
                let _ = std::fs::remove_file(pin);
            }
        }
    }
    fresh(prog)?.pin(pin).map_err(|e| DatapathError::Pin {
        path: pin.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(false)
}

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
    let err = attach_err(names::XDP_PROBE_REPLY, ifname);
    adopt_or_attach(
        program::<Xdp>(ebpf, names::XDP_PROBE_REPLY)?,
        pin,
        ifname,
        |prog, old| {
            let link = XdpLink::try_from(old).map_err(|e| e.to_string())?;
            // The pin keeps the link; the program's own handle is not needed.
            let id = prog.attach_to_link(link).map_err(|e| e.to_string())?;
            drop(prog.take_link(id));
            Ok(())
        },
        |prog| {
            let id = prog
                .attach_to_if_index(ifindex, XdpMode::Default)
                .map_err(&err)?;
            let link = prog.take_link(id).map_err(&err)?;
            FdLink::try_from(link).map_err(|e| DatapathError::Pin {
                path: pin.to_path_buf(),
                reason: e.to_string(),
            })
        },
    )
}

/// TC egress on `ifname`, pinned at `pin`.
///
/// # Errors
/// When the kernel refuses both the adoption and a new attachment.
pub fn tc_egress(ebpf: &mut Ebpf, ifname: &str, pin: &Path) -> Result<Adopted, DatapathError> {
    let err = attach_err(names::TC_PROBE_STAMP, ifname);
    adopt_or_attach(
        program::<SchedClassifier>(ebpf, names::TC_PROBE_STAMP)?,
        pin,
        ifname,
        |prog, old| {
            let link = SchedClassifierLink::try_from(old).map_err(|e| e.to_string())?;
            let id = prog.attach_to_link(link).map_err(|e| e.to_string())?;
            drop(prog.take_link(id));
            Ok(())
        },
        |prog| {
            let id = prog.attach(ifname, TcAttachType::Egress).map_err(&err)?;
            let link = prog.take_link(id).map_err(&err)?;
            FdLink::try_from(link).map_err(|e| DatapathError::Pin {
                path: pin.to_path_buf(),
                reason: e.to_string(),
            })
        },
    )
}
