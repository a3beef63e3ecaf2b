//! SIGHUP's reading of the configuration, off the detection thread: parsing and checking a large
//! file (or a broken one, with a problem on every line) takes as long as it takes while probes,
//! replies and failovers go on. One read at a time; a SIGHUP during a read asks for another one
//! after it, whose result is the one used (the file may have changed again).

use std::{
    os::fd::{AsFd as _, BorrowedFd, OwnedFd},
    sync::{Arc, mpsc},
};

use super::reload::{Loaded, read_files};
use crate::{cli::check_config::ConfigPaths, fds};

/// Reads the configuration on a thread of its own, on request.
pub struct Loader {
    /// Shared with the reading thread, which may outlive a daemon that is stopping.
    done: Arc<OwnedFd>,
    tx: mpsc::Sender<Loaded>,
    rx: mpsc::Receiver<Loaded>,
    busy: bool,
    again: bool,
}

impl Loader {
    /// A loader with nothing to do yet.
    ///
    /// # Errors
    /// When no eventfd can be made.
    pub fn new() -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel();
        Ok(Self {
            done: Arc::new(fds::event_fd()?),
            tx,
            rx,
            busy: false,
            again: false,
        })
    }

    /// The descriptor that becomes readable when a read is done.
    #[must_use]
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.done.as_fd()
    }

    /// Starts reading `paths` (or, when a read is under way, asks for one more after it).
    pub fn request(&mut self, paths: &ConfigPaths) {
        if self.busy {
            self.again = true;
            return;
        }
        let (owned, tx, done) = (paths.clone(), self.tx.clone(), Arc::clone(&self.done));
        let spawned = std::thread::Builder::new()
            .name("ipmpd-config".into())
            .spawn(move || {
                crate::sched::normal_here();
                let _ = tx.send(read_files(&owned));
                fds::ring(&*done);
            });
        if spawned.is_err() {
            // Without a thread, read here: late is better than never.
            let _ = self.tx.send(read_files(paths));
            fds::ring(&*self.done);
        }
        self.busy = true;
    }

    /// The configuration read, once the latest requested read is done.
    pub fn take(&mut self, paths: &ConfigPaths) -> Option<Loaded> {
        fds::drain(&*self.done);
        let loaded = self.rx.try_recv().ok()?;
        self.busy = false;
        if std::mem::take(&mut self.again) {
            self.request(paths);
            return None;
        }
        Some(loaded)
    }
}
