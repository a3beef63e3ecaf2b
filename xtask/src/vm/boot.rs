//! Booting a kernel under qemu with the host's root over 9p and a small busybox initramfs
//! (`xtask/vm/init.sh`), running one command line in it and reading its console.
//!
//! KVM when the CPU has vmx/svm and `/dev/kvm` opens, TCG otherwise (about 5 s to a shell here,
//! everything in it 5-50x slower). One vCPU: TCG runs one host thread per vCPU, so on these
//! two-core machines two VMs run side by side (`super::run_all`).

use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use super::VmKernel;
use crate::suite::{Binary, Shard, TestResult};

/// The initramfs's init.
const INIT: &str = include_str!("../../vm/init.sh");
/// The modules the init loads, in dependency order from `modprobe --show-depends`.
const MODULES: &[&str] = &["virtio_pci", "9pnet_virtio", "9p", "overlay"];
/// The longest a whole VM run may take.
const VM_TIMEOUT: Duration = Duration::from_secs(40 * 60);

/// Whether KVM can run here.
fn kvm() -> bool {
    let flags = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = flags.split_whitespace().any(|w| w == "vmx" || w == "svm");
    cpu && std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

/// The kernel release of an image `/boot/vmlinuz-RELEASE`.
fn release(image: &Path) -> anyhow::Result<String> {
    image
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .map(str::to_owned)
        .with_context(|| format!("{} is not /boot/vmlinuz-RELEASE", image.display()))
}

/// Builds the initramfs for `kver` in `target/vm/NAME/`: busybox, the 9p and overlay modules of
/// that kernel, and the init. One directory per VM (its label and share), not per kernel: two
/// suites of one kernel (6.1 and 6.1-lockdown), or two shares of one suite, may boot at once.
fn initramfs(kver: &str, name: &str) -> anyhow::Result<PathBuf> {
    let dir = crate::workspace_root().join("target/vm").join(name);
    let cpio = dir.join("initrd.cpio");
    let root = dir.join("root");
    let _ = std::fs::remove_dir_all(&root);
    for d in ["bin", "dev", "proc", "sys", "newroot", "mods"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox"))
        .context("no /bin/busybox (busybox-static): run `cargo xtask setup`")?;
    let mut files: Vec<String> = Vec::new();
    for m in MODULES {
        let out = Command::new("modprobe")
            .args(["-S", kver, "--show-depends", m])
            .output()
            .context("cannot run modprobe (kmod)")?;
        if !out.status.success() {
            bail!(
                "modprobe -S {kver} --show-depends {m}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let mut w = line.split_whitespace();
            if w.next() == Some("insmod")
                && let Some(f) = w.next()
                && !files.iter().any(|x| x == f)
            {
                files.push(f.to_owned());
            }
        }
    }
    for (n, f) in files.iter().enumerate() {
        let dst = root.join(format!("mods/{:02}.ko", n + 1));
        let decompress = |tool: &str| -> anyhow::Result<()> {
            let out = Command::new(tool)
                .args(["-dc", f])
                .output()
                .with_context(|| format!("cannot run {tool}"))?;
            if !out.status.success() {
                bail!("{tool} -dc {f} failed");
            }
            std::fs::write(&dst, out.stdout)?;
            Ok(())
        };
        if f.ends_with(".ko.xz") {
            decompress("xz")?;
        } else if f.ends_with(".ko.zst") {
            decompress("zstd")?;
        } else {
            std::fs::copy(f, &dst)?;
        }
    }
    let init = root.join("init");
    std::fs::write(&init, INIT)?;
    crate::run_cmd(Command::new("chmod").args(["755"]).arg(&init))?;
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cd '{}' && find . | cpio -o -H newc --quiet > '{}'",
            root.display(),
            cpio.display()
        ))
        .status()
        .context("cannot run cpio")?;
    if !status.success() {
        bail!("building the initramfs failed");
    }
    Ok(cpio)
}

/// The programs the guest runs besides the test binaries.
#[derive(Debug)]
pub struct Exes {
    pub ipmpd: PathBuf,
    pub xtask: PathBuf,
}

/// Single-quotes `s` for the guest's shell.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// What one VM runs: a kernel's suite, or one share of it.
#[derive(Clone, Copy, Debug)]
pub struct VmRun<'a> {
    pub kernel: &'a VmKernel,
    pub shard: Option<Shard>,
}

impl VmRun<'_> {
    /// The prefix of its console lines: the label, and the share when split ("6.1-lockdown 1/2").
    #[must_use]
    pub fn title(&self) -> String {
        match self.shard {
            Some(s) => format!("{} {s}", self.kernel.label),
            None => self.kernel.label.to_owned(),
        }
    }

    /// Its directory under `target/vm/`.
    pub(super) fn dir_name(&self) -> String {
        // The title with its "1/2" made safe for a path.
        self.title().replace(' ', "-").replace('/', "of")
    }
}

/// Boots `run`'s kernel, runs the suite runner (`xtask vm-guest`) on `bins` in it, and returns the
/// results it printed, with an error when the VM itself failed (results printed before are kept).
pub fn run_suite(
    run: VmRun<'_>,
    bins: &[Binary],
    exes: &Exes,
    filter: &[String],
    host_yardstick_ns: u64,
) -> (Vec<TestResult>, Option<String>) {
    let mut results = Vec::new();
    let error = match boot(run, bins, exes, filter, host_yardstick_ns, &mut results) {
        Ok(0) => None,
        Ok(status) => Some(format!("the guest's runner ended with status {status}")),
        Err(e) => Some(format!("{e:#}")),
    };
    (results, error)
}

fn guest_command(
    run: VmRun<'_>,
    bins: &[Binary],
    exes: &Exes,
    filter: &[String],
    host_yardstick_ns: u64,
) -> anyhow::Result<String> {
    let k = run.kernel;
    let root = crate::workspace_root().canonicalize()?;
    let (ipmpd, xtask) = (&exes.ipmpd, &exes.xtask);
    let mut cmd = format!(
        "cd {} || exit 125\nexport CI={} IPMPD_BIN={} RUST_BACKTRACE=0\n{} vm-guest --label {} --host-yardstick-ns {host_yardstick_ns} --expect-tc {} --expect-carrier {}",
        quote(&root.display().to_string()),
        quote(&std::env::var("CI").unwrap_or_default()),
        quote(&ipmpd.display().to_string()),
        quote(&xtask.display().to_string()),
        k.label,
        k.expect_tc,
        k.expect_carrier,
    );
    for b in bins {
        cmd.push_str(&format!(
            " --bin {}",
            quote(&format!("{}={}", b.name, b.path.display()))
        ));
    }
    for f in filter {
        cmd.push_str(&format!(" --filter {}", quote(f)));
    }
    if let Some(s) = run.shard {
        cmd.push_str(&format!(" --shard {s}"));
    }
    cmd.push('\n');
    Ok(cmd)
}

fn boot(
    run: VmRun<'_>,
    bins: &[Binary],
    exes: &Exes,
    filter: &[String],
    host_yardstick_ns: u64,
    results: &mut Vec<TestResult>,
) -> anyhow::Result<i32> {
    let k = run.kernel;
    let title = run.title();
    let kver = release(&k.image)?;
    let cpio = initramfs(&kver, &run.dir_name())?;
    // The command travels inside the initramfs: a second cpio archive appended to the first.
    let dir = cpio.parent().context("initramfs path")?.to_path_buf();
    let run_dir = dir.join("run");
    let _ = std::fs::remove_dir_all(&run_dir);
    std::fs::create_dir_all(&run_dir)?;
    std::fs::write(
        run_dir.join("cmd"),
        guest_command(run, bins, exes, filter, host_yardstick_ns)?,
    )?;
    let both = dir.join(format!("initrd-{}.cpio", k.label));
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cd '{}' && {{ cat '{}'; echo cmd | cpio -o -H newc --quiet; }} > '{}'",
            run_dir.display(),
            cpio.display(),
            both.display()
        ))
        .status()?;
    if !status.success() {
        bail!("appending the command to the initramfs failed");
    }
    let accel: &[&str] = if kvm() {
        &["-accel", "kvm", "-cpu", "host"]
    } else {
        &["-accel", "tcg", "-cpu", "max"]
    };
    let append = format!("console=ttyS0 quiet loglevel=0 panic=-1 {}", k.append);
    let mut child = Command::new("qemu-system-x86_64")
        .args([
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
        ])
        .args(["-machine", "q35"])
        .args(accel)
        .args(["-smp", "1", "-m", "2G"])
        .arg("-kernel")
        .arg(&k.image)
        .arg("-initrd")
        .arg(&both)
        .args(["-append", &append, "-serial", "stdio"])
        .args([
            "-fsdev",
            "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap",
            "-device",
            "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start qemu-system-x86_64: run `cargo xtask setup`")?;
    let stdout = child.stdout.take().context("qemu's console")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + VM_TIMEOUT;
    let mut status = None;
    let mut on_demand = None;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                let line = line.trim_end_matches('\r').to_owned();
                println!("[{title}] {line}");
                if let Some(r) = TestResult::parse(&line) {
                    results.push(r);
                } else if let Some(at) = line.find("VM-EXIT-STATUS=") {
                    status = line[at + 15..].trim().parse().ok();
                } else if let Some((_, list)) = line.split_once("VM-MODULES-ON-DEMAND=") {
                    on_demand = Some(list.trim().to_owned());
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => break,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    if Instant::now() >= deadline {
        let _ = child.kill();
    }
    let _ = child.wait();
    if let Some(list) = on_demand {
        // Seconds each under TCG, inside whichever test first needed them.
        eprintln!(
            "[{title}] warning: the guest loaded these modules on demand during the run: {list}; \
             add them to the preload in xtask/vm/init.sh"
        );
    }
    match status {
        Some(s) => Ok(s),
        None if Instant::now() >= deadline => {
            bail!("the VM did not finish within {VM_TIMEOUT:?}")
        }
        None => bail!("the guest ended without an exit status (see its console above)"),
    }
}
