//! `cargo xtask package`: the .deb (cargo-deb) and the .rpm (cargo-generate-rpm), both from the
//! lists in `agent/Cargo.toml`, built from one `dist` build (release code, no debug information;
//! the eBPF object is inside the binary). The package test installs what this builds.

use std::path::PathBuf;

use anyhow::Context as _;

use crate::{cargo, run_cmd, workspace_root};

/// The profile both packages take the binary from.
const PROFILE: &str = "dist";

/// Where the packages are written.
#[must_use]
pub fn out_dir() -> PathBuf {
    workspace_root().join("target").join("package")
}

/// The packages built.
#[derive(Debug)]
pub struct Packages {
    pub deb: PathBuf,
    pub rpm: PathBuf,
}

/// Builds both packages into [`out_dir`].
///
/// # Errors
/// When the build or either packager fails, or a package is not where it was written.
pub fn build() -> anyhow::Result<Packages> {
    let out = out_dir();
    // Stale packages of another version must not be mistaken for this one's.
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    run_cmd(cargo().args(["build", "-p", "agent", "--profile", PROFILE]))?;
    let out_arg = out.display().to_string();
    run_cmd(cargo().args([
        "deb",
        "-p",
        "agent",
        "--profile",
        PROFILE,
        "--no-build",
        "--output",
        &out_arg,
    ]))
    .context("cargo-deb failed (`cargo xtask setup` installs it)")?;
    run_cmd(cargo().args([
        "generate-rpm",
        "-p",
        "agent",
        "--profile",
        PROFILE,
        "--output",
        &out_arg,
    ]))
    .context("cargo-generate-rpm failed (`cargo xtask setup` installs it)")?;
    let find = |ext: &str| -> anyhow::Result<PathBuf> {
        std::fs::read_dir(&out)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == ext))
            .with_context(|| format!("no .{ext} in {}", out.display()))
    };
    let packages = Packages {
        deb: find("deb")?,
        rpm: find("rpm")?,
    };
    println!(
        "package: {} and {}",
        packages.deb.display(),
        packages.rpm.display()
    );
    Ok(packages)
}
