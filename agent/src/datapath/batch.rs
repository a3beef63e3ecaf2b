//! Every tracked interface's counters in a few system calls (`BPF_MAP_LOOKUP_BATCH`, Linux 5.6)
//! instead of one lookup per interface: at 1,024 members the per-key reads took 2.8 ms of the
//! probing loop each second (median of 33 checks), long enough to make it late for a deadline.
//! aya 0.14 has no batch operations, hence the raw `bpf(2)` call here.

use std::{
    io,
    os::fd::{AsRawFd as _, BorrowedFd},
};

use agent_common::{MAX_TRACKED, counters::IfaceCounters};
use aya::maps::{MapData, MapError, PerCpuHashMap};

/// `BPF_MAP_LOOKUP_BATCH` in `enum bpf_cmd`.
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;

/// The kernel's internal `ENOTSUPP`, which some BPF paths leak to userspace.
const ENOTSUPP: i32 = 524;

/// Entries asked for per call at first: a few calls for a thousand members, and a values buffer
/// of 256 × CPUs × 80 bytes (40 KiB on two CPUs).
const FIRST_CHUNK: usize = 256;

/// The `batch` member of `union bpf_attr`; the kernel zero-fills the rest of the union.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

const _: () = assert!(size_of::<BatchAttr>() == 56);

/// Why a batch read failed.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The kernel has no batch lookup for this map (before 5.6): read entry by entry instead.
    #[error("this kernel has no BPF_MAP_LOOKUP_BATCH for per-CPU hash maps")]
    Unsupported(#[source] io::Error),
    #[error("BPF_MAP_LOOKUP_BATCH on the counters map")]
    Lookup(#[source] io::Error),
}

/// Reads a per-CPU hash map of [`IfaceCounters`] keyed by ifindex, summing the CPUs; keeps its
/// buffers between reads.
#[derive(Debug)]
pub struct CounterBatch {
    ncpus: usize,
    chunk: usize,
    keys: Vec<u32>,
    values: Vec<IfaceCounters>,
}

impl CounterBatch {
    /// A reader for a map whose per-CPU values span `ncpus` possible CPUs.
    #[must_use]
    pub fn new(ncpus: usize) -> Self {
        Self {
            ncpus: ncpus.max(1),
            chunk: FIRST_CHUNK,
            keys: Vec::new(),
            values: Vec::new(),
        }
    }

    /// Every entry of the map behind `fd`, as (ifindex, counters summed over CPUs).
    ///
    /// # Errors
    /// [`BatchError::Unsupported`] when the kernel has no batch lookup; otherwise the kernel's
    /// error.
    pub fn read(&mut self, fd: BorrowedFd<'_>) -> Result<Vec<(u32, IfaceCounters)>, BatchError> {
        let mut out = Vec::new();
        // The kernel's position in the hash table between calls (a bucket index for hash maps);
        // 8 bytes whatever the map's key size.
        let mut token_in = [0u8; 8];
        let mut token_out = [0u8; 8];
        let mut first = true;
        // Bounded: each call returns at least one entry or ends the walk, and the map holds at
        // most MAX_TRACKED; the doubling on ENOSPC stops at MAX_TRACKED.
        for _ in 0..=MAX_TRACKED + 16 {
            self.keys.resize(self.chunk, 0);
            // `IfaceCounters` is all u64 (80 bytes, a multiple of 8): the kernel's per-CPU stride
            // (the value size rounded up to 8) is exactly one element.
            self.values
                .resize(self.chunk * self.ncpus, IfaceCounters::default());
            let mut attr = BatchAttr {
                in_batch: if first {
                    0
                } else {
                    token_in.as_mut_ptr() as u64
                },
                out_batch: token_out.as_mut_ptr() as u64,
                keys: self.keys.as_mut_ptr() as u64,
                values: self.values.as_mut_ptr() as u64,
                count: u32::try_from(self.chunk).unwrap_or(u32::MAX),
                map_fd: u32::try_from(fd.as_raw_fd()).unwrap_or(u32::MAX),
                ..BatchAttr::default()
            };
            // SAFETY: `attr` points at buffers that hold `count` keys and `count × ncpus` values
            // and at two 8-byte tokens, all alive for the call; the size passed is `attr`'s own.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_bpf,
                    BPF_MAP_LOOKUP_BATCH,
                    &raw mut attr,
                    size_of::<BatchAttr>(),
                )
            };
            let errno = (rc < 0).then(|| io::Error::last_os_error().raw_os_error().unwrap_or(0));
            let filled = (attr.count as usize).min(self.chunk);
            match errno {
                None => {}
                // One hash bucket holds more entries than asked for: ask for more, from the same
                // place (nothing was copied).
                Some(libc::ENOSPC) if filled == 0 && self.chunk < MAX_TRACKED => {
                    self.chunk = (self.chunk * 2).min(MAX_TRACKED);
                    continue;
                }
                // The end of the walk, with the last entries in this call.
                Some(libc::ENOENT) => {}
                Some(code @ (libc::EINVAL | libc::EOPNOTSUPP | libc::ENOSYS | ENOTSUPP)) => {
                    return Err(BatchError::Unsupported(io::Error::from_raw_os_error(code)));
                }
                Some(code) => return Err(BatchError::Lookup(io::Error::from_raw_os_error(code))),
            }
            for (i, &key) in self.keys[..filled].iter().enumerate() {
                let cpus = &self.values[i * self.ncpus..(i + 1) * self.ncpus];
                let sum = cpus
                    .iter()
                    .fold(IfaceCounters::default(), IfaceCounters::merged);
                out.push((key, sum));
            }
            if errno.is_some() {
                return Ok(out);
            }
            token_in = token_out;
            first = false;
        }
        Ok(out)
    }
}

/// What [`CounterBatch::read`] returns, read one entry at a time (a key walk and a lookup per
/// entry): for kernels without batch lookups.
///
/// # Errors
/// The kernel's, for the walk or a lookup.
pub fn read_each<T: std::borrow::Borrow<MapData>>(
    map: &PerCpuHashMap<T, u32, IfaceCounters>,
) -> Result<Vec<(u32, IfaceCounters)>, MapError> {
    map.iter()
        .map(|entry| {
            entry.map(|(ifindex, per_cpu)| {
                let sum = per_cpu
                    .iter()
                    .fold(IfaceCounters::default(), IfaceCounters::merged);
                (ifindex, sum)
            })
        })
        .collect()
}
