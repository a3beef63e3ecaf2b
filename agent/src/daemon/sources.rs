//! The descriptors the daemon's loop waits on, by name: probe replies (the XDP ring buffer),
//! signals, link changes (the watcher's eventfd), rtnetlink notifications, the metrics listener and
//! the control socket's connections.

use std::os::fd::{AsRawFd as _, OwnedFd, RawFd};

use agent_common::record::ProbeReplyRecord;
use aya::maps::{MapData, RingBuf};

use crate::fds;

/// The descriptors the daemon owns.
pub struct Sources {
    ring: RingBuf<MapData>,
    signals: OwnedFd,
    link_events: OwnedFd,
}

/// Which of them are ready.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ready {
    pub replies: bool,
    pub signals: bool,
    pub links: bool,
    pub host: bool,
    pub metrics: bool,
    pub control: bool,
}

impl Sources {
    /// The ring buffer, the signalfd and the link watcher's eventfd.
    #[must_use]
    pub fn new(ring: RingBuf<MapData>, signals: OwnedFd, link_events: OwnedFd) -> Self {
        Self {
            ring,
            signals,
            link_events,
        }
    }

    /// Waits until something is ready or `timeout_ns` passes.
    pub fn wait(
        &self,
        host: RawFd,
        metrics: Option<RawFd>,
        control: &[RawFd],
        timeout_ns: u64,
    ) -> Ready {
        let fixed = [
            self.ring.as_raw_fd(),
            self.signals.as_raw_fd(),
            self.link_events.as_raw_fd(),
            host,
        ];
        let all: Vec<RawFd> = fixed
            .iter()
            .copied()
            .chain(metrics)
            .chain(control.iter().copied())
            .collect();
        let ready = fds::wait(&all, Some(timeout_ns));
        let control_from = fixed.len() + usize::from(metrics.is_some());
        Ready {
            replies: ready[0],
            signals: ready[1],
            links: ready[2],
            host: ready[3],
            metrics: metrics.is_some() && ready[fixed.len()],
            control: ready[control_from..].iter().any(|r| *r),
        }
    }

    /// Every reply record waiting in the ring buffer.
    pub fn replies(&mut self) -> Vec<ProbeReplyRecord> {
        let mut out = Vec::new();
        while let Some(item) = self.ring.next() {
            if item.len() >= size_of::<ProbeReplyRecord>() {
                // SAFETY: length checked; the record type is plain old data.
                out.push(unsafe {
                    std::ptr::read_unaligned(item.as_ptr().cast::<ProbeReplyRecord>())
                });
            }
        }
        out
    }

    /// The signals received.
    #[must_use]
    pub fn signals(&self) -> Vec<i32> {
        fds::read_signals(self.signals.as_raw_fd())
    }

    /// Clears the link watcher's eventfd.
    pub fn clear_link_events(&self) {
        fds::drain(self.link_events.as_raw_fd());
    }
}
