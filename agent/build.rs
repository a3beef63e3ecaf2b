//! Builds the kernel programs (agent-ebpf) for bpfel-unknown-none with aya-build, so a plain
//! `cargo build` produces a complete `ipmpd` binary with the object embedded.
use std::path::Path;

use anyhow::Context as _;
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR unset")?;
    let root_dir = Path::new(&manifest_dir).join("../agent-ebpf");
    let root_dir = root_dir.to_str().context("non-UTF-8 source path")?;
    aya_build::build_ebpf(
        [Package { name: "agent-ebpf", root_dir, no_default_features: false, features: &[] }],
        Toolchain::default(),
    )
    .context("building the kernel programs failed; run `cargo xtask setup` (installs bpf-linker and nightly rust-src)")
}
