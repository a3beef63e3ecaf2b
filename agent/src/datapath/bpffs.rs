//! Making sure a BPF filesystem is mounted at /sys/fs/bpf.

use std::{io, path::Path};

use rustix::mount::MountFlags;

/// `BPF_FS_MAGIC` from linux/magic.h.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Errors preparing bpffs.
#[derive(Debug, thiserror::Error)]
pub enum BpffsError {
    #[error(
        "/sys/fs/bpf is not a BPF filesystem and mounting one failed (run `mount -t bpf bpf /sys/fs/bpf` as root; inside `ip netns exec` use `nsenter --net=/run/netns/NS` instead, which keeps the host's bpffs)"
    )]
    Mount(#[source] io::Error),
}

/// Whether `path` is on a BPF filesystem.
#[must_use]
pub fn is_bpffs(path: &Path) -> bool {
    rustix::fs::statfs(path).is_ok_and(|st| st.f_type == BPF_FS_MAGIC)
}

/// Mounts bpffs at /sys/fs/bpf unless one is there.
///
/// # Errors
/// When none is mounted and mounting fails (no privilege, or /sys read-only).
pub fn ensure_mounted() -> Result<(), BpffsError> {
    let target = Path::new("/sys/fs/bpf");
    if is_bpffs(target) {
        return Ok(());
    }
    let _ = std::fs::create_dir_all(target);
    rustix::mount::mount("bpf", target, "bpf", MountFlags::empty(), None)
        .map_err(|e| BpffsError::Mount(e.into()))
}
