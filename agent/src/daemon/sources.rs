//! The descriptors the daemon's loop waits on, by name: probe replies (the XDP ring buffer),
//! signals, link changes (the watcher's eventfd), rtnetlink notifications and requests from the
//! control socket's thread, and the configuration reader's.

use std::{
    os::fd::{AsFd as _, BorrowedFd, OwnedFd},
    sync::Arc,
};

use agent_common::record::ProbeReplyRecord;
use aya::maps::{MapData, RingBuf};

use crate::fds;

/// Reply records taken from the ring buffer per turn of the loop at most.
pub const MAX_REPLIES_PER_WAKE: usize = 1024;

/// The descriptors the daemon owns.
pub struct Sources {
    ring: RingBuf<MapData>,
    /// The last batch of reply records, kept so that reading allocates nothing.
    batch: Vec<ProbeReplyRecord>,
    signals: OwnedFd,
    link_events: Arc<OwnedFd>,
}

/// Which of them are ready. The ring buffer is not among them: the loop reads it every turn
/// (most replies are queued without waking it), and waits on it only so that a reply that asks
/// to wake (or one left over from a full turn) ends the wait.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ready {
    pub signals: bool,
    pub links: bool,
    pub host: bool,
    pub control: bool,
    pub config: bool,
}

impl Sources {
    /// The ring buffer, the signalfd and the link watcher's eventfd.
    #[must_use]
    pub fn new(ring: RingBuf<MapData>, signals: OwnedFd, link_events: Arc<OwnedFd>) -> Self {
        Self {
            ring,
            batch: Vec::new(),
            signals,
            link_events,
        }
    }

    /// Waits until something is ready or `timeout_ns` passes; `[host, control, config]` are the
    /// descriptors of rtnetlink, the control socket's thread and the configuration reader.
    pub fn wait(&self, [host, control, config]: [BorrowedFd<'_>; 3], timeout_ns: u64) -> Ready {
        let all = [
            self.ring.as_fd(),
            self.signals.as_fd(),
            self.link_events.as_fd(),
            host,
            control,
            config,
        ];
        let ready = fds::wait(all, Some(timeout_ns));
        Ready {
            signals: ready[1],
            links: ready[2],
            host: ready[3],
            control: ready[4],
            config: ready[5],
        }
    }

    /// The reply records waiting in the ring buffer, at most [`MAX_REPLIES_PER_WAKE`]: the rest
    /// wait for the next turn of the loop (the ring stays readable), so a flood never keeps the
    /// loop from its timers.
    pub fn replies(&mut self) -> &[ProbeReplyRecord] {
        self.batch.clear();
        while self.batch.len() < MAX_REPLIES_PER_WAKE
            && let Some(item) = self.ring.next()
        {
            if item.len() >= size_of::<ProbeReplyRecord>() {
                // SAFETY: length checked; the record type is plain old data.
                self.batch.push(unsafe {
                    std::ptr::read_unaligned(item.as_ptr().cast::<ProbeReplyRecord>())
                });
            }
        }
        &self.batch
    }

    /// The signals received.
    #[must_use]
    pub fn signals(&self) -> Vec<i32> {
        fds::read_signals(self.signals.as_fd())
    }

    /// Clears the link watcher's eventfd.
    pub fn clear_link_events(&self) {
        fds::drain(&self.link_events);
    }
}
