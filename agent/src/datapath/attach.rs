//! Attaching the programs to an interface, adopting what a previous agent left attached.
//!
//! A pinned link keeps its program attached after the agent that made it exits. A new agent
//! replaces the program inside that same link (`bpf_link_update`), so the interface is never
//! without XDP or TC for a single packet; only when that fails is the old link dropped and a new
//! one made. On kernels without TCX the TC program sits in a clsact filter that cannot be pinned;
//! it is found again by its place ([`crate::netlink::tc`]) and changed in place the same way.
//!
//! Pins and markers are named after the interface's index, not its name: names change (udev,
//! `ip link set name`), may hold dots that bpffs refuses, and a new device under an old name must
//! never inherit the old device's programs.

use std::{
    os::fd::{AsFd as _, AsRawFd as _},
    path::{Path, PathBuf},
};

use agent_common::names;
use aya::{
    Ebpf,
    programs::{
        LinkOrder, ProgramError, SchedClassifier, TcAttachType, Xdp, XdpMode,
        links::{FdLink, PinnedLink},
        tc::{SchedClassifierLink, TcAttachOptions},
        xdp::XdpLink,
    },
};

use super::{DatapathError, program};
use crate::netlink::{
    RouteSocket,
    tc::{self as clsact, IngressQdisc},
};

/// Whether a link was adopted (true) or made anew (false).
pub type Adopted = bool;

/// How TC programs are attached on this kernel.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum TcAttach {
    /// TCX links (Linux 6.6, and kernels that backported them), pinned like XDP's.
    Tcx,
    /// A clsact qdisc and a netlink `bpf` filter at a fixed place; `reason` says why not TCX.
    Clsact { reason: String },
}

impl TcAttach {
    /// Asks the kernel (never its version: distributions backport TCX) whether it has TCX: a
    /// query of the TCX egress hook of `lo` is refused where there is none.
    #[must_use]
    pub fn probe() -> Self {
        match SchedClassifier::query_tcx("lo", TcAttachType::Egress) {
            Ok(_) => Self::Tcx,
            Err(e) => Self::Clsact {
                reason: format!("the kernel has no TCX ({})", error_chain(&e)),
            },
        }
    }

    /// Short name for logs and metrics.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Tcx => "tcx",
            Self::Clsact { .. } => "clsact",
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The pin of the XDP link on `ifindex`.
#[must_use]
pub fn xdp_pin(links: &Path, ifindex: u32) -> PathBuf {
    links.join(format!("xdp-{ifindex}"))
}

/// The pin of the TCX egress link on `ifindex`.
#[must_use]
pub fn tcx_pin(links: &Path, ifindex: u32) -> PathBuf {
    links.join(format!("tcx-egress-{ifindex}"))
}

/// The pin of the TCX ingress link on `ifindex` (replies taken at TC ingress).
#[must_use]
pub fn tcx_ingress_pin(links: &Path, ifindex: u32) -> PathBuf {
    links.join(format!("tcx-ingress-{ifindex}"))
}

/// The marker (a directory: bpffs holds no plain files) of ipmpd's clsact filter on `ifindex`.
#[must_use]
pub fn clsact_marker(links: &Path, ifindex: u32) -> PathBuf {
    links.join(format!("clsact-egress-{ifindex}"))
}

/// Inside [`clsact_marker`]: ipmpd added the clsact qdisc itself, so it may remove it.
const QDISC_OWNED: &str = "qdisc-added-by-ipmpd";

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

/// XDP on `ifindex`, pinned in `links`; then the TC ingress reply link a previous agent started
/// with `--reply-hook tc` left there goes (after, so that no reply finds neither).
///
/// # Errors
/// When the kernel refuses both the adoption and a new attachment.
pub fn xdp(
    ebpf: &mut Ebpf,
    ifindex: u32,
    ifname: &str,
    links: &Path,
) -> Result<Adopted, DatapathError> {
    let adopted = xdp_link(ebpf, ifindex, ifname, links)?;
    unpin(&tcx_ingress_pin(links, ifindex));
    Ok(adopted)
}

/// TC ingress reply program on `ifindex` as a TCX link pinned in `links`; then the XDP link a
/// previous agent left there goes.
///
/// # Errors
/// When the kernel refuses both the adoption and a new attachment.
pub fn tc_ingress(
    ebpf: &mut Ebpf,
    ifindex: u32,
    ifname: &str,
    links: &Path,
) -> Result<Adopted, DatapathError> {
    // First on the hook, as XDP runs before TC: another program's verdict (a drop, a redirect)
    // must not keep a reply from being taken and time-stamped.
    let adopted = tcx(
        ebpf,
        names::TC_PROBE_REPLY,
        (TcAttachType::Ingress, LinkOrder::first()),
        ifname,
        &tcx_ingress_pin(links, ifindex),
    )?;
    unpin(&xdp_pin(links, ifindex));
    Ok(adopted)
}

/// Removes the link pinned at `pin`, which detaches it when the pin was its last reference.
fn unpin(pin: &Path) {
    match PinnedLink::from_pin(pin) {
        Ok(pinned) => drop(pinned.unpin()),
        Err(_) => drop(std::fs::remove_file(pin)),
    }
}

fn xdp_link(
    ebpf: &mut Ebpf,
    ifindex: u32,
    ifname: &str,
    links: &Path,
) -> Result<Adopted, DatapathError> {
    let err = attach_err(names::XDP_PROBE_REPLY, ifname);
    let pin = xdp_pin(links, ifindex);
    adopt_or_attach(
        program::<Xdp>(ebpf, names::XDP_PROBE_REPLY)?,
        &pin,
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
                path: pin.clone(),
                reason: e.to_string(),
            })
        },
    )
}

/// TC egress on `ifindex` the way `mode` says.
///
/// # Errors
/// When the kernel refuses both the adoption and a new attachment, or someone else's qdisc or
/// filter is in the way.
pub fn tc_egress(
    ebpf: &mut Ebpf,
    mode: &TcAttach,
    ifindex: u32,
    ifname: &str,
    links: &Path,
) -> Result<Adopted, DatapathError> {
    match mode {
        // Last on the hook: the stamp is the time nearest the wire.
        TcAttach::Tcx => tcx(
            ebpf,
            names::TC_PROBE_STAMP,
            (TcAttachType::Egress, LinkOrder::last()),
            ifname,
            &tcx_pin(links, ifindex),
        ),
        TcAttach::Clsact { .. } => clsact_egress(ebpf, ifindex, ifname, links),
    }
}

/// Program `name` on the TCX hook `hook` of `ifname` at `order` among the hook's programs, pinned
/// at `pin`.
fn tcx(
    ebpf: &mut Ebpf,
    name: &'static str,
    (hook, order): (TcAttachType, LinkOrder),
    ifname: &str,
    pin: &Path,
) -> Result<Adopted, DatapathError> {
    let err = attach_err(name, ifname);
    adopt_or_attach(
        program::<SchedClassifier>(ebpf, name)?,
        pin,
        ifname,
        |prog, old| {
            let link = SchedClassifierLink::try_from(old).map_err(|e| e.to_string())?;
            let id = prog.attach_to_link(link).map_err(|e| e.to_string())?;
            drop(prog.take_link(id));
            Ok(())
        },
        |prog| {
            let id = prog
                .attach_with_options(ifname, hook, TcAttachOptions::TcxOrder(order))
                .map_err(&err)?;
            let link = prog.take_link(id).map_err(&err)?;
            FdLink::try_from(link).map_err(|e| DatapathError::Pin {
                path: pin.to_path_buf(),
                reason: e.to_string(),
            })
        },
    )
}

fn tc_err(ifname: &str) -> impl Fn(crate::netlink::NetlinkError) -> DatapathError + '_ {
    move |source| DatapathError::Clsact {
        ifname: ifname.into(),
        source,
    }
}

fn clsact_egress(
    ebpf: &mut Ebpf,
    ifindex: u32,
    ifname: &str,
    links: &Path,
) -> Result<Adopted, DatapathError> {
    let err = tc_err(ifname);
    let mut tc = RouteSocket::for_dumps().map_err(&err)?;
    let marker = clsact_marker(links, ifindex);
    let mkdir = |p: &Path| {
        std::fs::create_dir_all(p).map_err(|e| DatapathError::Pin {
            path: p.to_path_buf(),
            reason: e.to_string(),
        })
    };
    match tc.ingress_qdisc(ifindex).map_err(&err)? {
        IngressQdisc::Clsact => {}
        IngressQdisc::None => {
            tc.add_clsact(ifindex).map_err(&err)?;
            mkdir(&marker.join(QDISC_OWNED))?;
        }
        IngressQdisc::Other(kind) => {
            return Err(DatapathError::QdiscInTheWay {
                ifname: ifname.into(),
                kind,
            });
        }
    }
    let mut adopted = false;
    for f in tc.tc_filters(ifindex, clsact::EGRESS).map_err(&err)? {
        let ours = f.is(names::TC_PROBE_STAMP);
        let here = (f.priority, f.handle) == (clsact::PRIORITY, clsact::HANDLE);
        // One priority holds one classifier kind: another kind there keeps ipmpd's bpf out too.
        let blocks = f.priority == clsact::PRIORITY && (f.kind != "bpf" || (here && !ours));
        if blocks {
            return Err(DatapathError::ForeignFilter {
                ifname: ifname.into(),
                priority: f.priority,
                handle: f.handle,
                kind: f.kind,
                name: f.name.unwrap_or_default(),
            });
        }
        if here {
            adopted = true;
        } else if ours {
            // Left by an older ipmpd at another place: one stamper per interface, never two.
            tracing::info!(
                ifname,
                priority = f.priority,
                handle = f.handle,
                "removing a stale ipmpd filter"
            );
            tc.del_tc_filter(ifindex, clsact::EGRESS, f.priority, f.handle)
                .map_err(&err)?;
        }
    }
    let prog = program::<SchedClassifier>(ebpf, names::TC_PROBE_STAMP)?;
    let fd = prog
        .fd()
        .map_err(attach_err(names::TC_PROBE_STAMP, ifname))?
        .as_fd()
        .as_raw_fd();
    tc.set_tc_filter(ifindex, fd, names::TC_PROBE_STAMP)
        .map_err(&err)?;
    mkdir(&marker)?;
    Ok(adopted)
}

/// Detaches what ipmpd attached to `ifindex` and removes its pins and markers; whatever is already
/// gone (the device deleted) is fine.
pub fn detach(links: &Path, ifindex: u32) {
    for pin in [
        xdp_pin(links, ifindex),
        tcx_ingress_pin(links, ifindex),
        tcx_pin(links, ifindex),
    ] {
        unpin(&pin);
    }
    let marker = clsact_marker(links, ifindex);
    if marker.is_dir() {
        remove_clsact(ifindex, &marker);
    }
}

/// Removes ipmpd's clsact filter, and the qdisc when ipmpd added it and nobody else's filter is on
/// it now; then the marker.
fn remove_clsact(ifindex: u32, marker: &Path) {
    if let Ok(mut tc) = RouteSocket::for_dumps() {
        let _ = tc.del_tc_filter(ifindex, clsact::EGRESS, clsact::PRIORITY, clsact::HANDLE);
        let others = [clsact::INGRESS, clsact::EGRESS]
            .iter()
            .any(|&hook| tc.tc_filters(ifindex, hook).is_ok_and(|f| !f.is_empty()));
        if marker.join(QDISC_OWNED).is_dir() && !others {
            let _ = tc.del_clsact(ifindex);
        }
    }
    let _ = std::fs::remove_dir(marker.join(QDISC_OWNED));
    let _ = std::fs::remove_dir(marker);
}

/// How many TCX links (egress stampers and ingress reply takers) are pinned in `links`.
#[must_use]
pub fn pinned_tcx_count(links: &Path) -> usize {
    std::fs::read_dir(links)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("tcx-"))
        .count()
}

/// The interface indexes that have pins or markers in `links`.
#[must_use]
pub fn pinned_ifindexes(links: &Path) -> Vec<u32> {
    let mut out: Vec<u32> = std::fs::read_dir(links)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let idx = ["xdp-", "tcx-ingress-", "tcx-egress-", "clsact-egress-"]
                .iter()
                .find_map(|p| name.strip_prefix(p))?;
            idx.parse().ok()
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}
