//! Setup shared by the diagnostics: load the datapath, track interfaces, start the link watcher.

use std::collections::HashMap;

use anyhow::Context as _;
use tokio::sync::mpsc;

use crate::{
    datapath::{Datapath, DatapathOptions, LinkSource},
    link::watcher::{LinkWatcher, WatchConfig, WatchReport},
};

/// A datapath attached to some interfaces, with its link watcher running.
pub struct Tracking {
    pub datapath: Datapath,
    pub watcher: LinkWatcher,
    pub reports: mpsc::UnboundedReceiver<WatchReport>,
    pub names: HashMap<u32, String>,
    poll: crate::link::watcher::LinkPollArgs,
}

/// Options common to the commands that attach the datapath.
#[derive(Debug, Clone, clap::Args)]
pub struct TrackingArgs {
    #[command(flatten)]
    pub poll: crate::link::watcher::LinkPollArgs,
    /// Instance name: pins go under /sys/fs/bpf/ipmpd/INSTANCE/.
    #[arg(long, value_parser = crate::datapath::parse_instance)]
    pub instance: Option<String>,
    #[command(flatten)]
    pub kernel: crate::datapath::choice::KernelChoiceArgs,
}

impl Tracking {
    /// Loads the datapath for `ifnames` and starts watching their links.
    ///
    /// # Errors
    /// With a message saying what to do (privileges, interface names, bpffs).
    pub fn start(
        ifnames: &[String],
        args: &TrackingArgs,
        default_instance: String,
    ) -> anyhow::Result<Self> {
        let instance = args.instance.clone().unwrap_or(default_instance);
        let mut datapath = Datapath::load(&DatapathOptions {
            instance: Some(instance),
            choice: args.kernel,
            reset: true,
        })
        .context("cannot load ipmpd's kernel programs")?;
        let mut names = HashMap::new();
        for name in ifnames {
            match datapath.track(name) {
                Ok(ifindex) => {
                    names.insert(ifindex, name.clone());
                }
                Err(e) => {
                    // A diagnostic leaves nothing behind, also when it fails.
                    let _ = datapath.detach_and_unpin();
                    return Err(anyhow::Error::from(e).context(format!("cannot track {name}")));
                }
            }
        }
        let poll = match datapath.link_source() {
            LinkSource::KernelHook => None,
            LinkSource::Poll { .. } => Some(args.poll.pacing(None)),
        };
        let store = datapath.take_link_state_store()?;
        let hook = datapath.take_hook_events()?;
        let (tx, reports) = mpsc::unbounded_channel();
        let watcher = LinkWatcher::spawn(
            WatchConfig {
                ifindexes: names.keys().copied().collect(),
                poll,
            },
            store,
            hook,
            move |r| {
                let _ = tx.send(r);
            },
        )
        .context("cannot watch link state through rtnetlink")?;
        Ok(Self {
            datapath,
            watcher,
            reports,
            names,
            poll: args.poll.clone(),
        })
    }

    /// One line saying where link state comes from and how TC is attached.
    #[must_use]
    pub fn link_source_line(&self) -> String {
        let tc = match self.datapath.features().tc {
            crate::datapath::TcAttach::Tcx => "TC: TCX links".to_owned(),
            crate::datapath::TcAttach::Clsact { reason } => {
                format!("TC: clsact qdisc + netlink filter ({reason})")
            }
        };
        format!("{}; {tc}", self.link_line())
    }

    fn link_line(&self) -> String {
        match self.datapath.link_source() {
            LinkSource::KernelHook => {
                "link state: kernel hook (fentry on netif_carrier_on/off)".into()
            }
            LinkSource::Poll { reason } => format!(
                "link state: carrier poll every {} us or slower to stay within {} % of a core, + rtnetlink notifications (kernel hook unavailable: {reason})",
                self.poll.floor_us(None),
                self.poll.link_poll_cpu
            ),
        }
    }

    /// Name of `ifindex`.
    #[must_use]
    pub fn name(&self, ifindex: u32) -> &str {
        self.names.get(&ifindex).map_or("?", String::as_str)
    }

    /// Stops watching, detaches the programs and removes the pins.
    ///
    /// # Errors
    /// When pins cannot be removed.
    pub fn finish(self) -> anyhow::Result<()> {
        drop(self.watcher);
        self.datapath
            .detach_and_unpin()
            .context("cannot remove ipmpd's pins")
    }
}

/// A link change as printed by the diagnostics.
#[derive(Debug, serde::Serialize)]
struct LinkLine<'a> {
    event: &'static str,
    interface: &'a str,
    #[serde(flatten)]
    link: &'a crate::link::mirror::LinkEvent,
    source_name: &'static str,
}

/// `watch --json`'s line for the carrier poll's way.
#[derive(Debug, serde::Serialize)]
struct PollWayLine {
    event: &'static str,
    way: &'static str,
    members: usize,
    devices: usize,
}

impl Tracking {
    /// Prints one watcher report.
    pub fn print_report(&self, json: bool, report: &WatchReport) {
        use crate::link::mirror::{LinkChange, source_name};
        match report {
            WatchReport::Link(ev) => {
                let interface = self.name(ev.ifindex);
                let line = LinkLine {
                    event: "link",
                    interface,
                    link: ev,
                    source_name: source_name(ev.source),
                };
                super::output::emit(json, &line, || {
                    let what = match ev.change {
                        LinkChange::Initial => {
                            format!("carrier {}", if ev.carrier { "up" } else { "down" })
                        }
                        LinkChange::Down => "link down".into(),
                        LinkChange::Up => "link up".into(),
                        LinkChange::Flapped { transitions } => format!(
                            "link flapped ({transitions} carrier changes between two looks)"
                        ),
                        LinkChange::Removed => "interface removed".into(),
                    };
                    format!(
                        "{interface}: {what} [{}; flaps {}]",
                        source_name(ev.source),
                        ev.flaps
                    )
                });
            }
            WatchReport::Overrun => {
                eprintln!("ipmpd: rtnetlink notifications overran; resynchronised with a dump");
            }
            WatchReport::Error(e) => eprintln!("ipmpd: link watcher: {e}"),
            &WatchReport::PollWay {
                way,
                members,
                devices,
            } => {
                let line = PollWayLine {
                    event: "carrier_poll",
                    way: way.name(),
                    members,
                    devices,
                };
                super::output::emit(json, &line, || {
                    crate::link::watcher::poll_way_text(way, members, devices)
                });
            }
        }
    }
}
