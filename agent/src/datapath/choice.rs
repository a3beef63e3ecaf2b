//! The operator's say in what the datapath uses: by default ipmpd probes the kernel and takes the
//! best it offers; these options pin a choice (to test the other path on one kernel, or to steer
//! clear of a feature a site distrusts).

/// How TC programs are attached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum TcChoice {
    /// TCX where the kernel has it (probed), else clsact.
    #[default]
    Auto,
    /// TCX links; fails on kernels without TCX.
    Tcx,
    /// A clsact qdisc and a netlink filter, even where TCX exists.
    Clsact,
}

/// Where carrier changes come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum CarrierChoice {
    /// The fentry hook where the kernel allows it, else the poll.
    #[default]
    Auto,
    /// The carrier poll and rtnetlink notifications, even where the hook would load.
    Poll,
}

/// Where replies to probes are recognised and time-stamped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ReplyChoice {
    /// TC ingress on veth where the kernel has TCX, XDP everywhere else.
    #[default]
    Auto,
    /// XDP on every interface: native in drivers that have it (the earliest time stamp, before
    /// the kernel builds a packet buffer), generic elsewhere.
    Xdp,
    /// A TCX link on the ingress hook of every interface (Linux 6.6 and later).
    Tc,
}

/// Command-line options shared by every command that loads the datapath.
#[derive(Clone, Copy, Debug, Default, clap::Args)]
pub struct KernelChoiceArgs {
    /// How TC programs are attached: probe the kernel (auto), or force TCX links or clsact.
    #[arg(long, value_enum, default_value_t = TcChoice::Auto)]
    pub tc_attach: TcChoice,
    /// Where link state comes from: the fentry hook where the kernel allows it (auto), or the
    /// carrier poll.
    #[arg(long, value_enum, default_value_t = CarrierChoice::Auto)]
    pub carrier: CarrierChoice,
    /// Where probe replies are taken: TC ingress on veth where the kernel has TCX and XDP
    /// elsewhere (auto), XDP everywhere, or TC ingress everywhere (needs TCX).
    #[arg(long, value_enum, default_value_t = ReplyChoice::Auto)]
    pub reply_hook: ReplyChoice,
}
