//! What hostile neighbours do: a local user holding connections open (from a thread that dropped
//! to another user), an on-link host recording, replaying, reflecting or flooding probe replies
//! (`helpers/onlink.py`), and the daemon's CPU use while it happens.

use std::{os::unix::net::UnixStream, path::Path};

use serde_json::Value;

use crate::Netns;

/// Opens `n` connections to the Unix socket at `path` as user `uid` (from a thread whose own
/// credentials are changed, so the kernel records that user for each connection).
///
/// # Panics
/// When the thread cannot change its user or connect.
#[must_use]
pub fn connect_as(uid: u32, path: &Path, n: usize) -> Vec<UnixStream> {
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        // SAFETY: the raw syscall changes only this thread's credentials (glibc's setresuid
        // would change every thread's); the thread ends right after.
        let rc = unsafe { libc::syscall(libc::SYS_setresgid, uid, uid, uid) }
            | unsafe { libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()) }
            | unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) };
        assert_eq!(rc, 0, "this thread becomes uid {uid}");
        (0..n)
            .map(|_| UnixStream::connect(&path).expect("connect"))
            .collect()
    })
    .join()
    .expect("the connecting thread")
}

/// CPU time (user + system, all threads) process `pid` has used, in ns; 0 once it is gone.
#[must_use]
pub fn cpu_ns(pid: u32) -> u64 {
    let ticks =
        crate::procstat::Stat::read(format!("/proc/{pid}/stat")).map_or(0, |s| s.cpu_ticks());
    ticks * 1_000_000_000 / crate::procstat::ticks_per_second()
}

/// Starts `onlink.py ARGS` in `ns` (see the helper for the modes); its JSON summary is returned
/// by [`OnLink::finish`]. Killed on drop if it is still running (a test that failed half-way).
pub struct OnLink(Option<std::process::Child>);

impl OnLink {
    /// Starts the helper.
    #[must_use]
    pub fn start(ns: &Netns, args: &[&str]) -> Self {
        let helper = concat!(env!("CARGO_MANIFEST_DIR"), "/helpers/onlink.py");
        let child = ns
            .command("python3")
            .arg(helper)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs");
        Self(Some(child))
    }

    /// Waits for it to end (each mode is bounded in time); its summary line.
    ///
    /// # Panics
    /// When it fails.
    #[must_use]
    pub fn finish(mut self) -> Value {
        let child = self.0.take().expect("started");
        let out = child.wait_with_output().expect("onlink.py ends");
        assert!(out.status.success(), "onlink.py failed");
        serde_json::from_slice(&out.stdout).expect("onlink.py prints a JSON summary")
    }
}

impl Drop for OnLink {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `ipmpd stat -r --json` for the daemon at `socket`: (source, interface, reason) → count.
#[must_use]
pub fn refusals(ns: &Netns, socket: &str) -> Vec<(String, String, String, u64)> {
    let (ok, out, err) = crate::daemon::run(ns, &["stat", "-r", "--json", "--socket", socket]);
    assert!(ok, "ipmpd stat -r: {err}");
    let rows: Vec<Value> = serde_json::from_str(&out).expect("a JSON array");
    rows.iter()
        .map(|r| {
            (
                r["source"].as_str().unwrap_or_default().to_owned(),
                r["interface"].as_str().unwrap_or_default().to_owned(),
                r["reason"].as_str().unwrap_or_default().to_owned(),
                r["count"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

/// The count of `reason` from `source` on `interface` in [`refusals`]' rows (0 when absent).
#[must_use]
pub fn refused(
    rows: &[(String, String, String, u64)],
    source: &str,
    iface: &str,
    reason: &str,
) -> u64 {
    rows.iter()
        .filter(|r| r.0 == source && r.1 == iface && r.2 == reason)
        .map(|r| r.3)
        .sum()
}
