//! The only place that touches BPF: load the kernel programs, attach them per tracked interface,
//! pin maps and links under `/sys/fs/bpf/ipmpd/[INSTANCE/]`, and give the rest of the agent typed
//! access to the ring buffer, the counters and the link-state map.

pub mod attach;
pub mod batch;
pub mod bpffs;
pub mod btf_offsets;
pub mod choice;
pub mod grace;
pub mod pin_shape;
pub mod reply_hook;

use std::{
    io,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use agent_common::{
    counters::IfaceCounters,
    link::{LinkState, source},
    names,
    record::LinkRecord,
};
use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap, MapData, MapError, PerCpuArray, PerCpuHashMap, PerCpuValues, RingBuf},
    programs::{
        FEntry, ProgramError, SchedClassifier, Xdp,
        links::{FdLink, PinnedLink},
    },
};

use self::btf_offsets::{CarrierHookOffsets, KernelBtf};
pub use self::{attach::TcAttach, reply_hook::ReplyHook};
use crate::{
    link::watcher::{HookEvents, LinkStateStore},
    netlink::NetlinkError,
};

/// The compiled kernel programs (agent-ebpf), embedded by `agent/build.rs`.
pub static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/ipmpd"));

/// The maps pinned in an instance's directory, which a later agent adopts.
pub const PINNED_MAPS: [&str; 6] = [
    names::PROBE_REPLIES,
    names::IFACE_COUNTERS,
    names::PROBES_STAMPED,
    names::LINK_STATE,
    names::LINK_EVENTS,
    names::PROBE_IDS,
];

/// Root of ipmpd's pins on bpffs.
pub const PIN_ROOT: &str = "/sys/fs/bpf/ipmpd";

/// Errors of the datapath, each with what the operator can do about it.
#[derive(Debug, thiserror::Error)]
pub enum DatapathError {
    #[error(transparent)]
    Bpffs(#[from] bpffs::BpffsError),
    #[error(
        "cannot prepare pin directory {path} (ipmpd needs root, or CAP_BPF and write access to bpffs)"
    )]
    PinDir { path: PathBuf, source: io::Error },
    #[error(
        "the kernel refused ipmpd's BPF object (ipmpd needs root or CAP_BPF + CAP_NET_ADMIN + CAP_PERFMON)"
    )]
    Load(#[source] aya::EbpfError),
    #[error(
        "the kernel refused program {program} (ipmpd needs root or CAP_BPF + CAP_NET_ADMIN; the verifier log follows)"
    )]
    Program {
        program: &'static str,
        source: ProgramError,
    },
    #[error("BPF object has no {0}: the agent and its kernel programs are from different builds")]
    Missing(&'static str),
    #[error("map {map}")]
    Map { map: &'static str, source: MapError },
    #[error("unknown interface {0:?}: check the name with `ip link`")]
    UnknownInterface(String),
    #[error(
        "cannot attach {program} to {ifname} (another XDP/TC program may own the interface: see `bpftool net` and `bpftool link`)"
    )]
    Attach {
        program: &'static str,
        ifname: String,
        source: ProgramError,
    },
    #[error("cannot pin {path}: {reason}")]
    Pin { path: PathBuf, reason: String },
    #[error(
        "cannot attach the TC program to {ifname} through a clsact qdisc (this kernel has no TCX; ipmpd needs CAP_NET_ADMIN)"
    )]
    Clsact {
        ifname: String,
        source: NetlinkError,
    },
    #[error(
        "{ifname} has an {kind:?} qdisc where ipmpd needs clsact (clsact does everything ingress does: `tc qdisc del dev {ifname} ingress`, re-add its filters under clsact, then restart ipmpd)"
    )]
    QdiscInTheWay { ifname: String, kind: String },
    #[error(
        "--reply-hook tc needs TCX links (Linux 6.6 and later), which are not in use here ({reason}): take replies with XDP (--reply-hook xdp, or auto, the default)"
    )]
    ReplyHookNeedsTcx { reason: String },
    #[error(
        "another program's TC filter ({kind} {name:?}, handle {handle:#x}) holds ipmpd's place on {ifname} (egress priority {priority}, where ipmpd keeps its bpf filter at handle 0x1d0d); ipmpd does not replace it: find out who put it there (`tc filter show dev {ifname} egress`) and move it to another priority, or remove it (`tc filter del dev {ifname} egress pref {priority}`)"
    )]
    ForeignFilter {
        ifname: String,
        priority: u16,
        handle: u32,
        kind: String,
        name: String,
    },
}

/// How the link-state mirror is fed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum LinkSource {
    /// fentry on netif_carrier_on/off writes the map in the kernel.
    KernelHook,
    /// The kernel refused the hook; userspace polls carrier and listens to rtnetlink.
    Poll { reason: String },
}

impl LinkSource {
    /// Short name for logs and metrics.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::KernelHook => "kernel hook",
            Self::Poll { .. } => "carrier poll",
        }
    }
}

/// Options for loading the datapath.
#[derive(Clone, Debug, Default)]
pub struct DatapathOptions {
    /// Instance name: pins go to `/sys/fs/bpf/ipmpd/INSTANCE/` so several agents can coexist.
    pub instance: Option<String>,
    /// What the operator chose (default: probe the kernel).
    pub choice: choice::KernelChoiceArgs,
    /// Start from scratch: drop pins a previous agent left instead of adopting them.
    pub reset: bool,
}

struct Attachment {
    ifindex: u32,
    ifname: String,
    /// Replies are taken at TC ingress (else XDP).
    tc_replies: bool,
}

/// What the kernel let ipmpd use, for the operator (`ipmpd features`, the start-up event, `stat`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Features {
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// How TC programs are attached.
    pub tc: TcAttach,
    /// Where link state comes from.
    pub carrier: LinkSource,
    /// Where probe replies are taken (absent from reports of builds before the choice: XDP).
    #[serde(default)]
    pub reply_hook: ReplyHook,
}

/// Loaded kernel programs and their attachments.
pub struct Datapath {
    ebpf: Ebpf,
    pin_dir: PathBuf,
    attachments: Vec<Attachment>,
    link_source: LinkSource,
    tc: TcAttach,
    reply_hook: ReplyHook,
    /// Reads every interface's counters at once; `None` once the kernel refused batch lookups
    /// (then they are read one interface at a time).
    counter_batch: Option<batch::CounterBatch>,
    _hook_links: Vec<FdLink>,
}

impl std::fmt::Debug for Datapath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Datapath")
            .field("pin_dir", &self.pin_dir)
            .field("link_source", &self.link_source)
            .finish_non_exhaustive()
    }
}

/// Checks an instance name: it becomes a directory under `/sys/fs/bpf/ipmpd/` and a file name
/// under `/run/ipmpd/`, so only letters, digits, `-` and `_`, at most 64 of them (`..` or a `/`
/// would point ipmpd at other software's files).
///
/// # Errors
/// What is wrong with it.
pub fn parse_instance(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "{s:?} is not an instance name: use 1 to 64 letters, digits, '-' or '_'"
        ))
    }
}

/// The pin directory of an instance.
#[must_use]
pub fn pin_dir(instance: Option<&str>) -> PathBuf {
    match instance {
        Some(name) => Path::new(PIN_ROOT).join(name),
        None => PathBuf::from(PIN_ROOT),
    }
}

/// Inode number of the calling thread's network namespace.
fn netns_inum() -> u32 {
    std::fs::metadata("/proc/thread-self/ns/net").map_or(0, |m| m.ino() as u32)
}

impl Datapath {
    /// Loads the programs, pins the maps and finds out how link state can be mirrored.
    ///
    /// Pins left by an earlier agent of the same instance are removed first (the programs they
    /// kept attached are detached).
    ///
    /// # Errors
    /// See [`DatapathError`]; every variant says what to do.
    pub fn load(options: &DatapathOptions) -> Result<Self, DatapathError> {
        bpffs::ensure_mounted()?;
        let pin_dir = pin_dir(options.instance.as_deref());
        // A reset drops the pins; so do pins this build cannot share (see `pin_shape`).
        let drop_pins = options.reset
            || incompatible_pins(&pin_dir).is_some_and(|reason| {
                tracing::warn!(%reason, "the pinned maps are of another build's shape; starting from scratch");
                true
            });
        if drop_pins {
            remove_pins(&pin_dir).map_err(|source| DatapathError::PinDir {
                path: pin_dir.clone(),
                source,
            })?;
        }
        std::fs::create_dir_all(pin_dir.join("links")).map_err(|source| DatapathError::PinDir {
            path: pin_dir.clone(),
            source,
        })?;
        let first = Self::load_pinned(options, pin_dir.clone());
        let result = match first {
            // Pins from an incompatible build: start from scratch rather than not at all.
            Err(e) if !options.reset => {
                tracing::warn!(error = %e, "cannot adopt the pinned maps; starting from scratch");
                let _ = remove_pins(&pin_dir);
                let _ = std::fs::create_dir_all(pin_dir.join("links"));
                Self::load_pinned(options, pin_dir.clone())
            }
            other => other,
        };
        // Whatever failed leaves no pins behind.
        result.inspect_err(|_| {
            let _ = remove_pins(&pin_dir);
        })
    }

    fn load_pinned(options: &DatapathOptions, pin_dir: PathBuf) -> Result<Self, DatapathError> {
        let offsets = KernelBtf::from_sys_fs().and_then(|btf| CarrierHookOffsets::from_btf(&btf));
        let o = offsets
            .as_ref()
            .ok()
            .copied()
            .unwrap_or(CarrierHookOffsets {
                netdev_ifindex: 0,
                netdev_nd_net: 0,
                net_ns_inum: 0,
            });
        let inum = netns_inum();
        let map_pins: Vec<(&'static str, PathBuf)> = PINNED_MAPS
            .into_iter()
            .map(|m| (m, pin_dir.join(m)))
            .collect();
        let mut loader = EbpfLoader::new();
        // Maps already pinned (by a previous agent) are reused, others created and pinned.
        for (name, path) in &map_pins {
            loader.map_pin_path(name, path.as_path());
        }
        let mut ebpf = loader
            .override_global("NETDEV_IFINDEX_OFF", &o.netdev_ifindex, true)
            .override_global("NETDEV_ND_NET_OFF", &o.netdev_nd_net, true)
            .override_global("NET_NS_INUM_OFF", &o.net_ns_inum, true)
            .override_global("AGENT_NETNS_INUM", &inum, true)
            .load(OBJECT)
            .map_err(DatapathError::Load)?;

        let xdp: &mut Xdp = program(&mut ebpf, names::XDP_PROBE_REPLY)?;
        xdp.load().map_err(|source| DatapathError::Program {
            program: names::XDP_PROBE_REPLY,
            source,
        })?;
        let tc: &mut SchedClassifier = program(&mut ebpf, names::TC_PROBE_STAMP)?;
        tc.load().map_err(|source| DatapathError::Program {
            program: names::TC_PROBE_STAMP,
            source,
        })?;

        let tc_attach = match options.choice.tc_attach {
            choice::TcChoice::Auto => TcAttach::probe(),
            choice::TcChoice::Tcx => TcAttach::Tcx,
            choice::TcChoice::Clsact => TcAttach::Clsact {
                reason: "--tc-attach clsact".into(),
            },
        };
        let reply_hook = ReplyHook::choose(options.choice.reply_hook, &tc_attach)?;
        if reply_hook.uses_tc() {
            let tc: &mut SchedClassifier = program(&mut ebpf, names::TC_PROBE_REPLY)?;
            tc.load().map_err(|source| DatapathError::Program {
                program: names::TC_PROBE_REPLY,
                source,
            })?;
        }

        let no_hook = options.choice.carrier == choice::CarrierChoice::Poll;
        let (link_source, hook_links) = match (&offsets, no_hook) {
            (_, true) => (
                LinkSource::Poll {
                    reason: "--carrier poll".into(),
                },
                Vec::new(),
            ),
            (Err(e), false) => (
                LinkSource::Poll {
                    reason: format!("kernel BTF unusable: {e}"),
                },
                Vec::new(),
            ),
            (Ok(_), false) => match attach_carrier_hook(&mut ebpf) {
                Ok(links) => (LinkSource::KernelHook, links),
                Err(reason) => (LinkSource::Poll { reason }, Vec::new()),
            },
        };
        Ok(Self {
            ebpf,
            pin_dir,
            attachments: Vec::new(),
            link_source,
            tc: tc_attach,
            reply_hook,
            counter_batch: aya::util::nr_cpus().ok().map(batch::CounterBatch::new),
            _hook_links: hook_links,
        })
    }

    /// What the kernel let ipmpd use.
    #[must_use]
    pub fn features(&self) -> Features {
        Features {
            kernel: kernel_release(),
            tc: self.tc.clone(),
            carrier: self.link_source.clone(),
            reply_hook: self.reply_hook,
        }
    }

    /// Whether TC programs go on as TCX links (each attachment waits for an RCU grace period).
    #[must_use]
    pub fn uses_tcx(&self) -> bool {
        matches!(self.tc, TcAttach::Tcx)
    }

    /// How link state is mirrored.
    #[must_use]
    pub fn link_source(&self) -> &LinkSource {
        &self.link_source
    }

    /// Where this datapath pins its maps and links.
    #[must_use]
    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    /// Starts tracking `ifname`: creates its map entries and attaches its reply program (XDP or TC
    /// ingress, see [`ReplyHook`]) and TC egress.
    ///
    /// # Errors
    /// Unknown interface, or the kernel refused an attachment.
    pub fn track(&mut self, ifname: &str) -> Result<u32, DatapathError> {
        let ifindex = ifindex_of(ifname)?;
        let kind = self
            .reply_hook
            .needs_kind()
            .then(|| kind_of(ifindex))
            .flatten();
        self.track_index(ifindex, ifname, kind.as_deref())?;
        Ok(ifindex)
    }

    /// Starts tracking the interface `ifindex` (named `ifname`, for messages), a device of `kind`
    /// ("veth", ...; `None` for a NIC, see [`ReplyHook::at_tc_ingress`]).
    ///
    /// # Errors
    /// The kernel refused an attachment, or someone else's qdisc or filter is in the way.
    pub fn track_index(
        &mut self,
        ifindex: u32,
        ifname: &str,
        kind: Option<&str>,
    ) -> Result<(), DatapathError> {
        let ncpus = aya::util::nr_cpus().map_err(|(_, e)| DatapathError::Map {
            map: names::IFACE_COUNTERS,
            source: MapError::from(aya::sys::SyscallError {
                call: "nr_cpus",
                io_error: e,
            }),
        })?;
        {
            let mut counters: PerCpuHashMap<&mut MapData, u32, IfaceCounters> =
                map_typed(&mut self.ebpf, names::IFACE_COUNTERS)?;
            let zero = PerCpuValues::try_from(vec![IfaceCounters::default(); ncpus]).map_err(
                |source| DatapathError::Map {
                    map: names::IFACE_COUNTERS,
                    source: MapError::from(aya::sys::SyscallError {
                        call: "per-cpu values",
                        io_error: source,
                    }),
                },
            )?;
            // An adopted map keeps the counters of a previous agent.
            if counters.get(&ifindex, 0).is_err() {
                counters
                    .insert(ifindex, zero, 0)
                    .map_err(|source| DatapathError::Map {
                        map: names::IFACE_COUNTERS,
                        source,
                    })?;
            }
        }
        // The link-state entry is the link watcher's to create (from its first look at the
        // interface) and to drop: it owns the map.
        let links = self.pin_dir.join("links");
        let tc_replies = self.reply_hook.at_tc_ingress(kind);
        if tc_replies {
            attach::tc_ingress(&mut self.ebpf, ifindex, ifname, &links)?;
        } else {
            attach::xdp(&mut self.ebpf, ifindex, ifname, &links)?;
        }
        attach::tc_egress(&mut self.ebpf, &self.tc, ifindex, ifname, &links)?;
        self.attachments.retain(|a| a.ifindex != ifindex);
        self.attachments.push(Attachment {
            ifindex,
            ifname: ifname.into(),
            tc_replies,
        });
        Ok(())
    }

    /// The ICMP identifier of the probes sent from `ifindex`: XDP queues replies carrying it, and
    /// drops (and counts) replies to any other identity there. With `wake`, each reply wakes the
    /// reader at once; without, it waits for the reader's next turn (see
    /// [`agent_common::PROBE_ID_WAKE`]).
    ///
    /// # Errors
    /// When the map refuses the entry.
    pub fn set_probe_id(&mut self, ifindex: u32, id: u16, wake: bool) -> Result<(), DatapathError> {
        let mut ids: HashMap<&mut MapData, u32, u32> = map_typed(&mut self.ebpf, names::PROBE_IDS)?;
        ids.insert(ifindex, agent_common::probe_id(id, wake), 0)
            .map_err(|source| DatapathError::Map {
                map: names::PROBE_IDS,
                source,
            })
    }

    /// Stops tracking `ifindex`: detaches its programs, removes its pins and map entries. A device
    /// that is already gone is fine.
    pub fn untrack(&mut self, ifindex: u32) {
        attach::detach(&self.pin_dir.join("links"), ifindex);
        if let Ok(mut ids) =
            map_typed::<HashMap<&mut MapData, u32, u32>>(&mut self.ebpf, names::PROBE_IDS)
        {
            let _ = ids.remove(&ifindex);
        }
        if let Ok(mut m) = map_typed::<PerCpuHashMap<&mut MapData, u32, IfaceCounters>>(
            &mut self.ebpf,
            names::IFACE_COUNTERS,
        ) {
            let _ = m.remove(&ifindex);
        }
        self.attachments.retain(|a| a.ifindex != ifindex);
    }

    /// Interface indexes a previous agent left programs attached to (pins and markers).
    #[must_use]
    pub fn pinned_ifindexes(&self) -> Vec<u32> {
        attach::pinned_ifindexes(&self.pin_dir.join("links"))
    }

    /// Where replies on the tracked interface `ifindex` are taken; `None` when it is not tracked.
    #[must_use]
    pub fn reply_hook_of(&self, ifindex: u32) -> Option<ReplyHook> {
        self.attachments
            .iter()
            .find(|a| a.ifindex == ifindex)
            .map(|a| {
                if a.tc_replies {
                    ReplyHook::TcIngress
                } else {
                    ReplyHook::Xdp
                }
            })
    }

    /// Tracked interfaces as (ifindex, name).
    pub fn tracked(&self) -> impl Iterator<Item = (u32, &str)> {
        self.attachments
            .iter()
            .map(|a| (a.ifindex, a.ifname.as_str()))
    }

    /// Takes the probe-reply ring buffer (once).
    ///
    /// # Errors
    /// When it was already taken.
    pub fn take_reply_ring(&mut self) -> Result<RingBuf<MapData>, DatapathError> {
        let map = self
            .ebpf
            .take_map(names::PROBE_REPLIES)
            .ok_or(DatapathError::Missing(names::PROBE_REPLIES))?;
        RingBuf::try_from(map).map_err(|source| DatapathError::Map {
            map: names::PROBE_REPLIES,
            source,
        })
    }

    /// Counters of `ifindex`, summed over CPUs.
    ///
    /// # Errors
    /// When the interface is not tracked.
    pub fn counters(&mut self, ifindex: u32) -> Result<IfaceCounters, DatapathError> {
        let counters: PerCpuHashMap<&mut MapData, u32, IfaceCounters> =
            map_typed(&mut self.ebpf, names::IFACE_COUNTERS)?;
        let per_cpu = counters
            .get(&ifindex, 0)
            .map_err(|source| DatapathError::Map {
                map: names::IFACE_COUNTERS,
                source,
            })?;
        Ok(per_cpu
            .iter()
            .fold(IfaceCounters::default(), IfaceCounters::merged))
    }

    /// Probes the TC egress program stamped on every tracked interface together, summed over CPUs
    /// (the program keeps no count per interface: see `PROBES_STAMPED` in the kernel side).
    ///
    /// # Errors
    /// When the kernel refuses to read the map.
    pub fn probes_stamped(&mut self) -> Result<u64, DatapathError> {
        let map_error = |source| DatapathError::Map {
            map: names::PROBES_STAMPED,
            source,
        };
        let stamped: PerCpuArray<&mut MapData, u64> =
            map_typed(&mut self.ebpf, names::PROBES_STAMPED)?;
        Ok(stamped.get(&0, 0).map_err(map_error)?.iter().sum())
    }

    /// Every tracked interface's counters, summed over CPUs, as (ifindex, counters): in a few
    /// system calls where the kernel has batch lookups (5.6), one per interface elsewhere.
    ///
    /// # Errors
    /// When the kernel refuses to read the map.
    pub fn all_counters(&mut self) -> Result<Vec<(u32, IfaceCounters)>, DatapathError> {
        let map_error = |source| DatapathError::Map {
            map: names::IFACE_COUNTERS,
            source,
        };
        if let Some(reader) = &mut self.counter_batch {
            let map = self
                .ebpf
                .map(names::IFACE_COUNTERS)
                .ok_or(DatapathError::Missing(names::IFACE_COUNTERS))?;
            let aya::maps::Map::PerCpuHashMap(data) = map else {
                return Err(DatapathError::Missing(names::IFACE_COUNTERS));
            };
            match reader.read(std::os::fd::AsFd::as_fd(data.fd())) {
                Ok(all) => return Ok(all),
                Err(batch::BatchError::Unsupported(e)) => {
                    tracing::info!(error = %e, "no batch lookups in this kernel: reading the counters one interface at a time");
                    self.counter_batch = None;
                }
                Err(batch::BatchError::Lookup(e)) => {
                    return Err(map_error(MapError::from(aya::sys::SyscallError {
                        call: "bpf_map_lookup_batch",
                        io_error: e,
                    })));
                }
            }
        }
        let counters: PerCpuHashMap<&mut MapData, u32, IfaceCounters> =
            map_typed(&mut self.ebpf, names::IFACE_COUNTERS)?;
        batch::read_each(&counters).map_err(map_error)
    }

    /// Takes the carrier hook's ring buffer for the link watcher (once); `None` when the hook is
    /// not attached.
    ///
    /// # Errors
    /// When it was already taken.
    pub fn take_hook_events(&mut self) -> Result<Option<Box<dyn HookEvents>>, DatapathError> {
        if self.link_source != LinkSource::KernelHook {
            return Ok(None);
        }
        let map = self
            .ebpf
            .take_map(names::LINK_EVENTS)
            .ok_or(DatapathError::Missing(names::LINK_EVENTS))?;
        let ring = RingBuf::try_from(map).map_err(|source| DatapathError::Map {
            map: names::LINK_EVENTS,
            source,
        })?;
        Ok(Some(Box::new(HookRing(ring))))
    }

    /// Takes the link-state map as a store for the link watcher (once).
    ///
    /// # Errors
    /// When it was already taken.
    pub fn take_link_state_store(&mut self) -> Result<Box<dyn LinkStateStore>, DatapathError> {
        let map = self
            .ebpf
            .take_map(names::LINK_STATE)
            .ok_or(DatapathError::Missing(names::LINK_STATE))?;
        let map: HashMap<MapData, u32, LinkState> =
            HashMap::try_from(map).map_err(|source| DatapathError::Map {
                map: names::LINK_STATE,
                source,
            })?;
        Ok(Box::new(MapStore(map)))
    }

    /// Detaches everything and removes the pins: for diagnostics that must leave nothing behind.
    /// A daemon keeps its pins so a restart can adopt them.
    ///
    /// # Errors
    /// When a pin cannot be removed.
    pub fn detach_and_unpin(self) -> io::Result<()> {
        let dir = self.pin_dir.clone();
        drop(self);
        remove_pins(&dir)
    }
}

struct HookRing(RingBuf<MapData>);

impl HookEvents for HookRing {
    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd as _;
        self.0.as_fd()
    }

    fn drain(&mut self, each: &mut dyn FnMut(LinkRecord)) {
        while let Some(item) = self.0.next() {
            if item.len() >= size_of::<LinkRecord>() {
                // SAFETY: length checked; the record type is plain old data.
                let rec = unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<LinkRecord>()) };
                each(rec);
            }
        }
    }
}

struct MapStore(HashMap<MapData, u32, LinkState>);

impl LinkStateStore for MapStore {
    fn store(&mut self, ifindex: u32, state: &LinkState) -> io::Result<()> {
        // The carrier hook writes the map itself, as the change happens; userspace's view (from
        // rtnetlink or a poll) may be older and must not overwrite a newer entry of the hook.
        if let Ok(current) = self.0.get(&ifindex, 0)
            && newer_hook_entry(&current, state)
        {
            return Ok(());
        }
        self.0.insert(ifindex, *state, 0).map_err(io::Error::other)
    }

    fn forget(&mut self, ifindex: u32) {
        let _ = self.0.remove(&ifindex);
    }
}

/// Whether `current` is the hook's record of a change after the one `view` describes.
fn newer_hook_entry(current: &LinkState, view: &LinkState) -> bool {
    current.source == source::KERNEL_HOOK && current.last_change_ns > view.last_change_ns
}

/// `uname -r`.
fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".into(), |s| s.trim().to_owned())
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T, DatapathError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    let p = ebpf.program_mut(name).ok_or(DatapathError::Missing(name))?;
    p.try_into().map_err(|source| DatapathError::Program {
        program: name,
        source,
    })
}

fn map_typed<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<T, DatapathError>
where
    T: TryFrom<&'a mut aya::maps::Map, Error = MapError>,
{
    let m = ebpf.map_mut(name).ok_or(DatapathError::Missing(name))?;
    T::try_from(m).map_err(|source| DatapathError::Map { map: name, source })
}

/// Index of interface `name` in the current network namespace.
///
/// # Errors
/// [`DatapathError::UnknownInterface`] when there is none.
pub fn ifindex_of(name: &str) -> Result<u32, DatapathError> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    // SIOCGIFINDEX, as if_nametoindex(3) does, on a socket of its own.
    rustix::net::socket_with(
        AddressFamily::INET,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .and_then(|s| rustix::net::netdevice::name_to_index(&s, name))
    .map_err(|_| DatapathError::UnknownInterface(name.into()))
}

/// Tries to load and attach the fentry carrier hooks; the reason when the kernel refuses.
fn attach_carrier_hook(ebpf: &mut Ebpf) -> Result<Vec<FdLink>, String> {
    let btf = aya::Btf::from_sys_fs().map_err(|e| format!("kernel BTF unavailable: {e}"))?;
    let mut links = Vec::new();
    for (prog, func) in [
        ("ipmpd_carrier_on", "netif_carrier_on"),
        ("ipmpd_carrier_off", "netif_carrier_off"),
    ] {
        let p: &mut FEntry = ebpf
            .program_mut(prog)
            .ok_or_else(|| format!("program {prog} missing"))?
            .try_into()
            .map_err(|e: ProgramError| e.to_string())?;
        p.load(func, &btf).map_err(|e| {
            format!(
                "the kernel refused fentry on {func}: {} (lockdown or a BPF LSM forbids tracing programs)",
                brief(&e.to_string())
            )
        })?;
        let id = p
            .attach()
            .map_err(|e| format!("cannot attach fentry on {func}: {e}"))?;
        let link = p.take_link(id).map_err(|e| e.to_string())?;
        links.push(link.into());
    }
    Ok(links)
}

/// What `ipmpd detach` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Detached {
    /// The instance had a pin directory.
    pub existed: bool,
    /// TCX links detached with grace periods expedited (0: not expedited).
    pub expedited: usize,
}

/// The kind of device `ifindex` is ("veth", ...), or `None` for a NIC and when rtnetlink cannot
/// say (then replies are taken by XDP, which works on every device). One RTM_GETLINK: for the
/// diagnostics, which track a few interfaces by name; the daemon has the kind from its dumps.
fn kind_of(ifindex: u32) -> Option<String> {
    crate::netlink::RouteSocket::for_dumps()
        .and_then(|mut s| s.link_kind(ifindex))
        .inspect_err(|e| tracing::debug!(ifindex, error = %e, "cannot read the device's kind"))
        .ok()
        .flatten()
}

/// Detaches everything an instance left attached (XDP and TCX links, clsact filters and the
/// qdiscs ipmpd added) and removes its pins: `ipmpd detach`, for an operator who stops using
/// ipmpd. A running daemon of that instance keeps running without its datapath.
///
/// # Errors
/// When a pin cannot be removed.
pub fn detach_instance(instance: Option<&str>) -> io::Result<Detached> {
    let dir = pin_dir(instance);
    let existed = dir.exists();
    // Each TCX detachment waits for a grace period under the RTNL, as each attachment does: 12 s
    // for 1,024 interfaces measured, and the host's RTNL held all along. Expedited, as at start.
    let tcx = attach::pinned_tcx_count(&dir.join("links"));
    let expedited = (tcx >= grace::MIN_BATCH)
        .then(|| grace::Expedite::for_instance(instance).begin())
        .flatten();
    remove_pins(&dir)?;
    Ok(Detached {
        existed,
        expedited: if expedited.is_some() { tcx } else { 0 },
    })
}

/// An error with its verifier log cut to the end, where the verifier says what it refused.
fn brief(e: &str) -> String {
    const KEEP: usize = 160;
    let Some((head, log)) = e.split_once("Verifier output:") else {
        return e.to_owned();
    };
    let log = log.split_whitespace().collect::<Vec<_>>().join(" ");
    if log.is_empty() {
        return head.trim_end().trim_end_matches('.').to_owned();
    }
    let tail: String = log
        .chars()
        .rev()
        .take(KEEP)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let cut = if tail.len() < log.len() { "..." } else { "" };
    format!(
        "{}; the verifier: {cut}{tail}",
        head.trim_end().trim_end_matches('.')
    )
}

/// Removes an instance's pins (detaching pinned links) and its directory; absent is fine.
/// Why the maps pinned in `pin_dir` cannot be adopted by this build (see [`pin_shape`]); `None`
/// when every pin present has the shape this build declares.
fn incompatible_pins(pin_dir: &Path) -> Option<String> {
    match pin_shape::declared(OBJECT) {
        Ok(declared) => pin_shape::first_mismatch(&PINNED_MAPS, &declared, |name| {
            pin_shape::pinned(&pin_dir.join(name))
        }),
        Err(e) => Some(format!("this build's own object does not parse: {e}")),
    }
}

fn remove_pins(dir: &Path) -> io::Result<()> {
    let links = dir.join("links");
    for ifindex in attach::pinned_ifindexes(&links) {
        attach::detach(&links, ifindex);
    }
    if let Ok(entries) = std::fs::read_dir(&links) {
        for e in entries.flatten() {
            // Anything else (an older ipmpd's name-based pins): unpinning a link whose last
            // reference is the pin detaches it.
            if let Ok(pinned) = PinnedLink::from_pin(e.path()) {
                drop(pinned.unpin());
            } else {
                let _ = std::fs::remove_file(e.path());
            }
        }
        std::fs::remove_dir(&links)?;
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            // Pinned maps are files on bpffs; directories belong to other instances.
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                std::fs::remove_file(e.path())?;
            }
        }
        // The root may hold other instances' directories; only remove it when empty.
        let _ = std::fs::remove_dir(dir);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(src: u32, at: u64) -> LinkState {
        LinkState {
            source: src,
            last_change_ns: at,
            ..LinkState::default()
        }
    }

    #[test]
    fn a_refusal_keeps_the_end_of_the_verifier_log() {
        assert_eq!(
            brief("BPF_PROG_LOAD returned Operation not permitted (os error 1). Verifier output: "),
            "BPF_PROG_LOAD returned Operation not permitted (os error 1)"
        );
        let long = format!(
            "load failed. Verifier output: {} call bpf_probe_read#4 unknown func bpf_probe_read#4\n",
            "x ".repeat(500)
        );
        let b = brief(&long);
        assert!(b.starts_with("load failed; the verifier: ..."), "{b}");
        assert!(b.ends_with("unknown func bpf_probe_read#4"), "{b}");
        assert!(b.len() < 220);
    }

    #[test]
    fn instance_names_cannot_leave_the_pin_directory() {
        assert!(parse_instance("t123-x_y").is_ok());
        for bad in ["", "..", "a/b", "a.b", "x y", &"a".repeat(65)] {
            assert!(parse_instance(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn userspace_never_overwrites_a_newer_entry_of_the_hook() {
        // The hook saw the change at 200; a notification's view of 100 arrives later.
        assert!(newer_hook_entry(
            &state(source::KERNEL_HOOK, 200),
            &state(source::NOTIFICATION, 100)
        ));
        // The same change, as userspace folded it in from the hook's record: harmless to write.
        assert!(!newer_hook_entry(
            &state(source::KERNEL_HOOK, 200),
            &state(source::KERNEL_HOOK, 200)
        ));
        // A userspace view newer than the hook's entry (admin down, which the hook does not see).
        assert!(!newer_hook_entry(
            &state(source::KERNEL_HOOK, 200),
            &state(source::POLL, 300)
        ));
        // Entries written by userspace are userspace's to replace.
        assert!(!newer_hook_entry(
            &state(source::POLL, 500),
            &state(source::NOTIFICATION, 100)
        ));
    }
}
