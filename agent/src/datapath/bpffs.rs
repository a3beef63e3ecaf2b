//! Making sure a BPF filesystem is mounted at /sys/fs/bpf.

use std::{ffi::CString, io, path::Path};

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
    let Ok(c) = CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: zeroed statfs is a valid out-parameter.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated, `st` writable.
    let rc = unsafe { libc::statfs(c.as_ptr(), &raw mut st) };
    rc == 0 && st.f_type as i64 == BPF_FS_MAGIC
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
    let (src, tgt, fstype) = (c"bpf", c"/sys/fs/bpf", c"bpf");
    // SAFETY: all pointers are valid NUL-terminated strings; no data argument.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            tgt.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(BpffsError::Mount(io::Error::last_os_error()));
    }
    Ok(())
}
