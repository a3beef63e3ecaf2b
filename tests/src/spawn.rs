//! Starting commands cheaply, in a network namespace or not.
//!
//! A process start is cheap on the host (a few ms) but costs 0.1-0.3 s in the VM suites under
//! emulation, where a `nsenter --net=X sh -c 'ip ...'` was four of them and a test's topology
//! dozens. So a command enters its namespace itself, between fork and exec (as `nsenter --net`
//! does: only the network namespace, so the host's bpffs and sysfs stay visible); a command line
//! with nothing for a shell to do runs without one; and what needs no program at all (a
//! sysctl, an interface up, a namespace's removal) is done from a thread of this process.

use std::ffi::{CString, OsStr};
use std::os::unix::process::CommandExt as _;
use std::process::Command;

/// A command that runs `program` inside the network namespace at `path` (`/run/netns/NAME`).
/// The child opens the namespace file and enters it before exec, so a namespace that is gone
/// fails the spawn (an `Err` from `output`/`spawn`/`status`), as `nsenter` would have failed.
#[must_use]
pub fn command_in(path: &str, program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    let path = CString::new(path).expect("a namespace path has no NUL");
    // SAFETY: the closure runs in the forked child before exec. It calls only open(2), setns(2)
    // and close(2), which are async-signal-safe, and allocates nothing (`last_os_error` builds
    // the error from errno alone); `path` was made before the fork.
    unsafe {
        cmd.pre_exec(move || {
            let fd = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let rc = libc::setns(fd, libc::CLONE_NEWNET);
            let err = std::io::Error::last_os_error();
            libc::close(fd);
            if rc == 0 { Ok(()) } else { Err(err) }
        });
    }
    cmd
}

/// The words of `line` when a shell would do nothing with it but split it at spaces (no quotes,
/// variables, globs, redirections, pipes or lists); `None` otherwise.
fn plain_words(line: &str) -> Option<Vec<&str>> {
    let plain = line
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b" ._:/=,@+-".contains(&b));
    let words: Vec<&str> = line.split_whitespace().collect();
    (plain && !words.is_empty()).then_some(words)
}

/// A command for the shell line `line`, inside the namespace at `ns_path` when given: the
/// program itself when the line is [`plain_words`], else `sh -c LINE`.
#[must_use]
pub fn shell(ns_path: Option<&str>, line: &str) -> Command {
    let (program, args) = match plain_words(line) {
        Some(words) => (words[0], words[1..].to_vec()),
        None => ("sh", vec!["-c", line]),
    };
    let mut cmd = match ns_path {
        Some(path) => command_in(path, program),
        None => Command::new(program),
    };
    cmd.args(args);
    cmd
}

/// Runs `cmd` (described as `what` in the failure) to completion; its stdout. Panics with the
/// command's output when it cannot start or fails.
pub fn checked_output(mut cmd: Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("command failed to start: {what}: {e}"));
    assert!(
        out.status.success(),
        "command failed: {what}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `f` on a thread of its own that entered the network namespace at `path` (only that
/// thread changes namespace); what `f` returns.
pub fn in_netns_thread<T: Send + 'static>(path: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = path.to_owned();
    std::thread::spawn(move || {
        crate::topology::enter_netns(&path);
        f()
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// Sets each `(key, value)` sysctl (`net.ipv6.conf.all.accept_dad`: dots for slashes, so no
/// interface name with a dot) in the namespace at `path`, as `sysctl -qw` would.
pub fn sysctls_in(path: &str, settings: &[(&str, &str)]) {
    let settings: Vec<(String, String)> = settings
        .iter()
        .map(|(k, v)| {
            (
                format!("/proc/sys/{}", k.replace('.', "/")),
                (*v).to_owned(),
            )
        })
        .collect();
    in_netns_thread(path, move || {
        for (file, value) in settings {
            std::fs::write(&file, &value).unwrap_or_else(|e| panic!("cannot write {file}: {e}"));
        }
    });
}

/// Kills every process in the namespace `name` and deletes it, as `ip netns pids NAME | xargs
/// kill -9; ip netns del NAME` did, without starting either. Best effort: it runs on drop.
pub fn delete_netns(name: &str) {
    use std::os::unix::fs::MetadataExt as _;
    let path = format!("/run/netns/{name}");
    let Ok(ns) = std::fs::metadata(&path) else {
        return;
    };
    let same = |m: &std::fs::Metadata| m.dev() == ns.dev() && m.ino() == ns.ino();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        if std::fs::metadata(entry.path().join("ns/net")).is_ok_and(|m| same(&m)) {
            // SAFETY: kill(2) with a pid read from /proc; a process that ended meanwhile makes
            // it fail with ESRCH, which is ignored.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    let Ok(cpath) = CString::new(path.clone()) else {
        return;
    };
    // SAFETY: umount2 on a NUL-terminated path; MNT_DETACH, as `ip netns del` does.
    unsafe { libc::umount2(cpath.as_ptr(), libc::MNT_DETACH) };
    let _ = std::fs::remove_file(&path);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lines_a_shell_would_just_split_run_without_one() {
        assert_eq!(
            plain_words("ip -o addr show dev h0"),
            Some(vec!["ip", "-o", "addr", "show", "dev", "h0"])
        );
        assert_eq!(
            plain_words("sysctl -qw net.ipv4.conf.all.arp_ignore=1"),
            Some(vec!["sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1"])
        );
        for needs_a_shell in [
            "ip link set a up && ip link set b up",
            "cat /sys/class/net/h0/ifindex 2>/dev/null",
            "nft 'add table netdev t'",
            "echo $HOME",
            "ls *",
            "a; b",
            "a | b",
            "",
            "   ",
        ] {
            assert_eq!(plain_words(needs_a_shell), None, "{needs_a_shell:?}");
        }
    }

    #[test]
    fn a_plain_line_runs_its_program_and_another_runs_in_sh() {
        let plain = shell(None, "echo one two");
        assert_eq!(plain.get_program(), "echo");
        assert_eq!(plain.get_args().collect::<Vec<_>>(), ["one", "two"]);
        let out = checked_output(shell(None, "echo one && echo two"), "a list");
        assert_eq!(out, "one\ntwo\n");
    }

    #[test]
    #[should_panic(expected = "command failed: false")]
    fn a_failing_command_panics_with_what_it_was() {
        let _ = checked_output(shell(None, "false"), "false");
    }

    #[test]
    fn a_namespace_that_does_not_exist_fails_the_spawn() {
        let err = command_in("/nonexistent/netns", "true")
            .status()
            .expect_err("no namespace to enter");
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    }
}
