//! `cargo xtask setup`: install what a fresh machine of this kind lacks. Idempotent; says what it did.

use std::process::Command;

use anyhow::{Context as _, bail};

use crate::run_cmd;

/// Debian packages: LLVM 22 for bpf-linker, and the tools the tests, demo and benchmarks use.
const PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "bpftool",
    "iproute2",
    "nftables",
    "ethtool",
    "iputils-ping",
    "util-linux",
    "stress-ng",
    "python3",
    "systemd",
    "man-db",
    "iperf3",
    // The package test (`cargo xtask package`): rpm reads the .rpm and installs it into a scratch
    // root; prometheus brings promtool for the alerting rules' tests.
    "rpm",
    "prometheus",
    // The peers the benchmarks compare with: FRR's bfdd and keepalived (VRRP).
    "frr",
    "keepalived",
    // The VM suites (`cargo xtask vm-test`): qemu, a static busybox for the initramfs, cpio,
    // modprobe to find the guest kernel's modules, and the decompressors for them.
    "qemu-system-x86",
    "busybox-static",
    "cpio",
    "kmod",
    "xz-utils",
    "zstd",
];
/// The kernels the VM suites boot: Debian 12's 6.1 (the newest ABI, found with apt-cache) and its
/// 6.12 from the security archive. The generic flavour: the cloud one has no 9p.
const KERNEL_61_PATTERN: &str = r"^linux-image-6\.1\.0-[0-9]+-amd64$";
const KERNEL_612: &str = "linux-image-6.12-amd64";
const BPF_LINKER_VERSION: &str = "0.13.0";
/// Cargo subcommands the project's commands run, installed with `cargo install --locked`.
struct CargoTool {
    krate: &'static str,
    version: &'static str,
    /// The toolchain that runs it (`+nightly`), if not the default.
    toolchain: Option<&'static str>,
    /// Its `cargo` subcommand.
    subcommand: &'static str,
    why: &'static str,
}

const CARGO_TOOLS: &[CargoTool] = &[
    CargoTool {
        krate: "cargo-fuzz",
        version: "0.13.2",
        toolchain: Some("+nightly"),
        subcommand: "fuzz",
        why: "`cargo xtask fuzz` and the brief fuzzing in `cargo xtask test`; about half a minute",
    },
    CargoTool {
        krate: "cargo-deb",
        version: "3.8.0",
        toolchain: None,
        subcommand: "deb",
        why: "the .deb of `cargo xtask package`; about a minute",
    },
    CargoTool {
        krate: "cargo-generate-rpm",
        version: "0.21.1",
        toolchain: None,
        subcommand: "generate-rpm",
        why: "the .rpm of `cargo xtask package`; about two minutes",
    },
];

impl CargoTool {
    fn present(&self) -> bool {
        let mut c = Command::new("cargo");
        c.args(self.toolchain).args([self.subcommand, "--version"]);
        output(&mut c).is_some_and(|s| s.contains(self.version))
    }
}

fn output(cmd: &mut Command) -> Option<String> {
    cmd.output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
}

fn missing_packages() -> Vec<&'static str> {
    PACKAGES
        .iter()
        .copied()
        .filter(|p| {
            !output(Command::new("dpkg-query").args(["-W", "-f=${Status}", p]))
                .is_some_and(|s| s.contains("install ok installed"))
        })
        .collect()
}

fn has_rust_src() -> bool {
    output(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]))
    .is_some_and(|s| s.lines().any(|l| l.starts_with("rust-src")))
}

fn has_bpf_linker() -> bool {
    output(Command::new("bpf-linker").arg("--version"))
        .is_some_and(|s| s.contains(BPF_LINKER_VERSION))
}

fn bpffs_mounted() -> bool {
    std::fs::read_to_string("/proc/mounts").is_ok_and(|m| {
        m.lines()
            .any(|l| l.split_whitespace().nth(1) == Some("/sys/fs/bpf") && l.contains(" bpf "))
    })
}

/// Whether the VM suites' kernel images are under /boot.
fn has_vm_kernels() -> bool {
    crate::vm::kernels().is_ok()
}

/// Installs the VM suites' kernels. Installing a kernel package only adds files under /boot and
/// /lib/modules (these machines boot no bootloader); `INITRD=No` spares Debian's initramfs hook,
/// since the VM brings its own.
fn install_vm_kernels() -> anyhow::Result<()> {
    let list =
        output(Command::new("apt-cache").args(["search", "--names-only", KERNEL_61_PATTERN]))
            .unwrap_or_default();
    let newest_61 = list
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .max_by_key(|name| {
            name.split(|c: char| !c.is_ascii_digit())
                .filter_map(|n| n.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .context(
            "apt-cache knows no linux-image-6.1.0-N-amd64 (is Debian 12's archive configured?)",
        )?
        .to_owned();
    println!("setup: installing the VM kernels {newest_61} and {KERNEL_612}");
    run_cmd(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args([newest_61.as_str(), KERNEL_612])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env("INITRD", "No"),
    )
}

/// Whether anything is missing.
#[must_use]
pub fn needed() -> bool {
    !missing_packages().is_empty()
        || !has_rust_src()
        || !has_bpf_linker()
        || CARGO_TOOLS.iter().any(|t| !t.present())
        || !bpffs_mounted()
        || !has_vm_kernels()
}

/// Runs setup when anything is missing.
pub fn ensure() -> anyhow::Result<()> {
    if needed() {
        println!("== some prerequisites are missing: running `cargo xtask setup` ==");
        run()?;
    }
    Ok(())
}

/// Installs what is missing.
pub fn run() -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let missing = missing_packages();
    if missing.is_empty() {
        println!("setup: Debian packages present ({})", PACKAGES.join(" "));
    } else {
        if !root {
            bail!(
                "Debian packages missing ({}); run `sudo -E cargo xtask setup`",
                missing.join(" ")
            );
        }
        println!("setup: installing Debian packages: {}", missing.join(" "));
        run_cmd(Command::new("apt-get").args(["update", "-qq"]))?;
        run_cmd(
            Command::new("apt-get")
                .args(["install", "-y", "-qq", "--no-install-recommends"])
                .args(&missing)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )?;
    }
    if has_vm_kernels() {
        println!("setup: VM kernels present under /boot");
    } else {
        if !root {
            bail!("the VM kernels are missing; run `sudo -E cargo xtask setup`");
        }
        if missing.is_empty() {
            run_cmd(Command::new("apt-get").args(["update", "-qq"]))?;
        }
        install_vm_kernels()?;
    }
    if has_rust_src() {
        println!("setup: nightly rust-src present");
    } else {
        println!("setup: adding rust-src to the nightly toolchain");
        let installed = output(Command::new("rustup").args(["toolchain", "list"]))
            .is_some_and(|s| s.lines().any(|l| l.starts_with("nightly")));
        if installed {
            run_cmd(Command::new("rustup").args([
                "component",
                "add",
                "rust-src",
                "--toolchain",
                "nightly",
            ]))?;
        } else {
            run_cmd(Command::new("rustup").args([
                "toolchain",
                "install",
                "nightly",
                "--profile",
                "minimal",
                "--component",
                "rust-src",
            ]))?;
        }
    }
    if has_bpf_linker() {
        println!("setup: bpf-linker {BPF_LINKER_VERSION} present");
    } else {
        println!(
            "setup: building bpf-linker {BPF_LINKER_VERSION} against LLVM 22 (about 1.5 minutes)"
        );
        run_cmd(
            Command::new("cargo")
                .args([
                    "install",
                    &format!("bpf-linker@{BPF_LINKER_VERSION}"),
                    "--locked",
                    "--no-default-features",
                    "--features",
                    "llvm-22",
                ])
                .env("LLVM_PREFIX", "/usr/lib/llvm-22"),
        )
        .context("bpf-linker did not build; is llvm-22-dev installed?")?;
    }
    for tool in CARGO_TOOLS {
        let CargoTool { krate, version, .. } = tool;
        if tool.present() {
            println!("setup: {krate} {version} present");
            continue;
        }
        println!("setup: installing {krate} {version} ({})", tool.why);
        run_cmd(Command::new("cargo").args(["install", &format!("{krate}@{version}"), "--locked"]))
            .with_context(|| format!("{krate} did not build"))?;
    }
    if bpffs_mounted() {
        println!("setup: bpffs mounted at /sys/fs/bpf");
    } else if root {
        println!("setup: mounting bpffs at /sys/fs/bpf");
        run_cmd(Command::new("mount").args(["-t", "bpf", "bpf", "/sys/fs/bpf"]))?;
    } else {
        println!("setup: bpffs not mounted; ipmpd mounts it itself when it runs as root");
    }
    Ok(())
}
