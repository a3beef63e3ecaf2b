//! Who is on the other end of a control connection, and whether they may change anything.
//!
//! Judged only on the credentials the kernel recorded when the peer connected (SO_PEERCRED's uid
//! and gid, SO_PEERGROUPS' supplementary groups): they cannot be swapped afterwards (reading
//! `/proc/PID/status` could be raced with an exec of a setuid program, as in polkit's
//! CVE-2013-4288), and the kernel maps them into the daemon's user namespace, so a process in its
//! own user namespace (`unshare -Ur`, where it is "root" with every capability) is seen as the
//! unprivileged user it is. Capabilities are not honoured: they are exactly what a user namespace
//! hands out for free.

use std::os::fd::{AsRawFd as _, BorrowedFd};

/// `SO_PEERGROUPS` (Linux 4.13).
const SO_PEERGROUPS: libc::c_int = 59;

/// A peer's credentials at connect time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

/// Who may change things (offline/online).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// Members of this group (primary or supplementary) may, besides root.
    pub admin_gid: Option<u32>,
}

impl Policy {
    /// Whether `peer` may change things.
    #[must_use]
    pub fn may_change(&self, peer: &Peer) -> bool {
        peer.uid == 0
            || self
                .admin_gid
                .is_some_and(|g| peer.gid == g || peer.groups.contains(&g))
    }
}

/// The credentials of the peer of `fd`.
#[must_use]
pub fn peer(fd: BorrowedFd<'_>) -> Option<Peer> {
    let cred = rustix::net::sockopt::socket_peercred(fd).ok()?;
    Some(Peer {
        uid: cred.uid.as_raw(),
        gid: cred.gid.as_raw(),
        groups: peer_groups(fd),
    })
}

/// The peer's supplementary groups at connect time (empty where the kernel cannot say).
fn peer_groups(fd: BorrowedFd<'_>) -> Vec<u32> {
    let mut groups = vec![0u32; 64];
    for _ in 0..4 {
        let mut len = (groups.len() * size_of::<u32>()) as libc::socklen_t;
        // SAFETY: `groups` is writable for `len` bytes. Stays libc: rustix has no SO_PEERGROUPS.
        let rc = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &raw mut len,
            )
        };
        let n = len as usize / size_of::<u32>();
        if rc == 0 {
            groups.truncate(n);
            return groups;
        }
        // ERANGE: `len` says how much is needed.
        if std::io::Error::last_os_error().raw_os_error() == Some(libc::ERANGE) && n > groups.len()
        {
            groups.resize(n, 0);
            continue;
        }
        break;
    }
    Vec::new()
}

/// The id of group `name`.
///
/// # Errors
/// When there is no such group.
pub fn group_id(name: &str) -> std::io::Result<u32> {
    let c = std::ffi::CString::new(name)
        .map_err(|_| std::io::Error::other("a group name has no NUL byte"))?;
    // SAFETY: a zeroed `struct group` is a valid out-parameter.
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut buf = vec![0u8; 16 * 1024];
    let mut out: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `buf` outlives `grp`'s use below. Stays libc:
    // group lookup goes through NSS, which only the C library offers.
    let rc = unsafe {
        libc::getgrnam_r(
            c.as_ptr(),
            &raw mut grp,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &raw mut out,
        )
    };
    if rc != 0 || out.is_null() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no group named {name:?} (see /etc/group)"),
        ));
    }
    Ok(grp.gr_gid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(uid: u32, gid: u32, groups: &[u32]) -> Peer {
        Peer {
            uid,
            gid,
            groups: groups.to_vec(),
        }
    }

    #[test]
    fn root_and_the_admin_group_may_change_nobody_else() {
        let open = Policy::default();
        assert!(open.may_change(&p(0, 0, &[])));
        assert!(!open.may_change(&p(1000, 1000, &[27])));
        let admins = Policy {
            admin_gid: Some(27),
        };
        assert!(admins.may_change(&p(1000, 27, &[])), "primary group");
        assert!(
            admins.may_change(&p(1000, 1000, &[4, 27])),
            "supplementary group"
        );
        assert!(!admins.may_change(&p(65534, 65534, &[])));
    }

    #[test]
    fn a_connected_pair_knows_its_own_credentials() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        use std::os::fd::AsFd as _;
        let me = peer(a.as_fd()).unwrap();
        let uid = rustix::process::getuid().as_raw();
        let gid = rustix::process::getgid().as_raw();
        assert_eq!((me.uid, me.gid), (uid, gid));
        assert!(group_id("root").is_ok_and(|g| g == 0));
        assert!(group_id("no-such-group-ipmpd").is_err());
    }
}
