//! ipmpd's kernel programs loaded for BPF_PROG_TEST_RUN: synthetic frames in; verdicts, rewritten
//! frames, reply records and counters out. No interface is needed: frames "arrive" on loopback
//! ([`TEST_RUN_IFINDEX`]), whose probe identity is registered as [`PROBE_ID`]. Shared by
//! the TestRun tests and the datapath cost benchmark (`mod programs;`).
#![allow(dead_code, reason = "each user takes the part it needs")]

use agent_common::{counters::IfaceCounters, names, record::ProbeReplyRecord};
use aya::{
    Ebpf,
    maps::{MapData, PerCpuArray, PerCpuHashMap, PerCpuValues, RingBuf},
    programs::{SchedClassifier, TestRun, TestRunOptions, Xdp},
};
use tests::frames::{PROBE_ID, TEST_RUN_IFINDEX};

/// `XDP_DROP`: the XDP program consumed the frame.
pub const XDP_DROP: u32 = 1;
/// `XDP_PASS`: the frame goes on to the stack.
pub const XDP_PASS: u32 = 2;
/// `TC_ACT_SHOT`: the TC reply program consumed the frame.
pub const TC_ACT_SHOT: i32 = 2;

/// The loaded object, its interface entries in place.
pub struct Programs {
    pub ebpf: Ebpf,
    pub ring: RingBuf<MapData>,
}

impl Programs {
    /// Loads the reply programs (XDP and TC ingress) and the TC egress stamper (the verifier must
    /// accept them) and registers the test interface.
    ///
    /// # Panics
    /// When the object does not load or a program is refused.
    #[must_use]
    pub fn load() -> Self {
        let mut ebpf = Ebpf::load(ipmpd::datapath::OBJECT).expect("object loads");
        let xdp: &mut Xdp = ebpf
            .program_mut(names::XDP_PROBE_REPLY)
            .unwrap()
            .try_into()
            .unwrap();
        xdp.load().expect("verifier accepts the XDP program");
        let tc: &mut SchedClassifier = ebpf
            .program_mut(names::TC_PROBE_STAMP)
            .unwrap()
            .try_into()
            .unwrap();
        tc.load().expect("verifier accepts the TC program");
        let tc_reply: &mut SchedClassifier = ebpf
            .program_mut(names::TC_PROBE_REPLY)
            .unwrap()
            .try_into()
            .unwrap();
        tc_reply
            .load()
            .expect("verifier accepts the TC reply program");
        let ncpus = aya::util::nr_cpus().unwrap();
        let mut counters: PerCpuHashMap<_, u32, IfaceCounters> =
            PerCpuHashMap::try_from(ebpf.map_mut(names::IFACE_COUNTERS).unwrap()).unwrap();
        counters
            .insert(
                TEST_RUN_IFINDEX,
                PerCpuValues::try_from(vec![IfaceCounters::default(); ncpus]).unwrap(),
                0,
            )
            .unwrap();
        let mut ids: aya::maps::HashMap<_, u32, u32> =
            aya::maps::HashMap::try_from(ebpf.map_mut(names::PROBE_IDS).unwrap()).unwrap();
        ids.insert(TEST_RUN_IFINDEX, u32::from(PROBE_ID), 0)
            .unwrap();
        let ring = RingBuf::try_from(ebpf.take_map(names::PROBE_REPLIES).unwrap()).unwrap();
        Self { ebpf, ring }
    }

    /// The XDP program.
    pub fn xdp_program(&mut self) -> &mut Xdp {
        self.ebpf
            .program_mut(names::XDP_PROBE_REPLY)
            .unwrap()
            .try_into()
            .unwrap()
    }

    /// The TC program.
    pub fn tc_program(&mut self) -> &mut SchedClassifier {
        self.classifier(names::TC_PROBE_STAMP)
    }

    fn classifier(&mut self, name: &str) -> &mut SchedClassifier {
        self.ebpf.program_mut(name).unwrap().try_into().unwrap()
    }

    /// The TC ingress reply program's verdict on `frame`, or the kernel's refusal to run it.
    ///
    /// # Errors
    /// When BPF_PROG_TEST_RUN refuses the frame.
    pub fn try_tc_reply(&mut self, frame: &[u8]) -> Result<i32, aya::programs::ProgramError> {
        let r = self
            .classifier(names::TC_PROBE_REPLY)
            .test_run(TestRunOptions {
                data_in: Some(frame),
                ..Default::default()
            })?;
        Ok(r.return_value as i32)
    }

    /// Runs XDP on `frame` `times` times in one test run (each run queues what one frame would).
    pub fn xdp_repeat(&mut self, frame: &[u8], times: u32) -> u32 {
        self.xdp_program()
            .test_run(TestRunOptions {
                data_in: Some(frame),
                repeat: times,
                ..Default::default()
            })
            .unwrap_or_else(|e| panic!("XDP test run of {frame:02x?} x {times}: {e}"))
            .return_value
    }

    /// The XDP verdict on `frame`.
    pub fn xdp(&mut self, frame: &[u8]) -> u32 {
        self.try_xdp(frame)
            .unwrap_or_else(|e| panic!("XDP test run of {frame:02x?}: {e}"))
    }

    /// [`Self::xdp`], or the kernel's refusal to run it on `frame`.
    ///
    /// # Errors
    /// When BPF_PROG_TEST_RUN refuses the frame.
    pub fn try_xdp(&mut self, frame: &[u8]) -> Result<u32, aya::programs::ProgramError> {
        Ok(self
            .xdp_program()
            .test_run(TestRunOptions {
                data_in: Some(frame),
                ..Default::default()
            })?
            .return_value)
    }

    /// The TC verdict on `frame` and the frame as it leaves.
    pub fn tc(&mut self, frame: &[u8]) -> (i32, Vec<u8>) {
        self.try_tc(frame)
            .unwrap_or_else(|e| panic!("TC test run of {frame:02x?}: {e}"))
    }

    /// [`Self::tc`], or the kernel's refusal to run it on `frame`.
    ///
    /// # Errors
    /// When BPF_PROG_TEST_RUN refuses the frame.
    pub fn try_tc(&mut self, frame: &[u8]) -> Result<(i32, Vec<u8>), aya::programs::ProgramError> {
        let mut out = vec![0u8; frame.len() + 64];
        let r = self.tc_program().test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ..Default::default()
        })?;
        out.truncate(r.data_size_out as usize);
        Ok((r.return_value as i32, out))
    }

    /// The test interface's counters, summed over CPUs.
    pub fn counters(&mut self) -> IfaceCounters {
        let c: PerCpuHashMap<_, u32, IfaceCounters> =
            PerCpuHashMap::try_from(self.ebpf.map_mut(names::IFACE_COUNTERS).unwrap()).unwrap();
        c.get(&TEST_RUN_IFINDEX, 0)
            .unwrap()
            .iter()
            .fold(IfaceCounters::default(), IfaceCounters::merged)
    }

    /// Probes the TC egress program stamped, summed over CPUs.
    pub fn stamped(&mut self) -> u64 {
        let c: PerCpuArray<_, u64> =
            PerCpuArray::try_from(self.ebpf.map_mut(names::PROBES_STAMPED).unwrap()).unwrap();
        c.get(&0, 0).unwrap().iter().sum()
    }

    /// Registers the test interface's probe identity as the `PROBE_IDS` value `value` (an
    /// identifier, perhaps with [`agent_common::PROBE_ID_WAKE`]).
    pub fn set_probe_ids_value(&mut self, value: u32) {
        let mut ids: aya::maps::HashMap<_, u32, u32> =
            aya::maps::HashMap::try_from(self.ebpf.map_mut(names::PROBE_IDS).unwrap()).unwrap();
        ids.insert(TEST_RUN_IFINDEX, value, 0).unwrap();
    }

    /// The reply records queued since the last call.
    pub fn records(&mut self) -> Vec<ProbeReplyRecord> {
        let mut out = Vec::new();
        while let Some(item) = self.ring.next() {
            assert!(item.len() >= size_of::<ProbeReplyRecord>());
            // SAFETY: length checked; the record type is plain old data.
            out.push(unsafe { std::ptr::read_unaligned(item.as_ptr().cast::<ProbeReplyRecord>()) });
        }
        out
    }
}
