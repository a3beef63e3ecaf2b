//! `ipmpd features [IFACE...]`: what the running kernel lets ipmpd use, found by probing it the way
//! `ipmpd run` does (TCX or clsact, the carrier hook or the poll, and where XDP runs on each
//! interface given), then everything detached again.

use anyhow::Context as _;
use serde::Serialize;

use super::tracking::{Tracking, TrackingArgs};
use crate::{
    datapath::{Features, LinkSource, ReplyHook, TcAttach},
    netlink::{RouteSocket, link::XdpAttached},
};

/// Arguments of `ipmpd features`.
#[derive(Debug, clap::Args)]
pub struct FeaturesArgs {
    /// Interfaces to attach XDP to, to see whether it runs in the driver or the generic path.
    pub interfaces: Vec<String>,
    /// One JSON object.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub tracking: TrackingArgs,
}

#[derive(Serialize)]
struct Report {
    #[serde(flatten)]
    features: Features,
    /// Interface name → where its XDP program runs (`None` where replies are taken at TC ingress).
    xdp: std::collections::BTreeMap<String, Option<XdpAttached>>,
    /// Interface name → the program that takes its probe replies (`xdp` or `tc_ingress`).
    replies: std::collections::BTreeMap<String, Option<ReplyHook>>,
}

/// Runs `ipmpd features`.
///
/// # Errors
/// When the datapath cannot be loaded or attached.
pub fn run(args: &FeaturesArgs) -> anyhow::Result<()> {
    let t = Tracking::start(
        &args.interfaces,
        &args.tracking,
        format!("features-{}", std::process::id()),
    )?;
    let features = t.datapath.features();
    let replies = t
        .datapath
        .tracked()
        .map(|(ifindex, name)| (name.to_owned(), t.datapath.reply_hook_of(ifindex)))
        .collect();
    let links = RouteSocket::for_dumps()
        .and_then(|mut s| s.dump_link_info())
        .context("cannot list interfaces through rtnetlink")?;
    let xdp = args
        .interfaces
        .iter()
        .map(|n| {
            let mode = links.iter().find(|l| &l.name == n).and_then(|l| l.xdp);
            (n.clone(), mode)
        })
        .collect();
    t.finish()?;
    let report = Report {
        features,
        xdp,
        replies,
    };
    super::output::emit(args.json, &report, || human(&report));
    Ok(())
}

fn human(r: &Report) -> String {
    let mut out = describe(&r.features);
    for (name, mode) in &r.xdp {
        if r.replies.get(name) == Some(&Some(ReplyHook::TcIngress)) {
            out.push_str(&format!("\nreplies on {name}: TC ingress"));
            continue;
        }
        let mode = match mode {
            Some(XdpAttached::Driver) => "native (in the driver)",
            Some(XdpAttached::Generic) => "generic (the driver has no XDP)",
            Some(XdpAttached::Hardware) => "offloaded",
            Some(XdpAttached::Multiple) => "several modes",
            None => "not attached",
        };
        out.push_str(&format!("\nXDP on {name}: {mode}"));
    }
    out
}

/// Kernel, TC attach mode, link-state source and reply hook, one per line (also `ipmpd stat -d`).
#[must_use]
pub fn describe(f: &Features) -> String {
    let tc = match &f.tc {
        TcAttach::Tcx => "TCX links".to_owned(),
        TcAttach::Clsact { reason } => format!("clsact qdisc + netlink filter ({reason})"),
    };
    let carrier = match &f.carrier {
        LinkSource::KernelHook => "kernel hook (fentry on netif_carrier_on/off)".to_owned(),
        LinkSource::Poll { reason } => {
            format!("carrier poll + rtnetlink notifications (kernel hook unavailable: {reason})")
        }
    };
    let replies = match f.reply_hook {
        ReplyHook::Xdp => "XDP",
        ReplyHook::TcIngress => "TC ingress (TCX links; --reply-hook tc)",
        ReplyHook::TcIngressOnVeth => "TC ingress (TCX links) on veth, XDP on other devices",
    };
    format!(
        "kernel:       {}\nTC attach:    {tc}\nlink state:   {carrier}\nreplies:      {replies}",
        f.kernel
    )
}
