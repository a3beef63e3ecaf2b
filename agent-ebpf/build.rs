//! Rebuild the kernel programs when bpf-linker changes (a new LLVM can change the object).
use which::which;

fn main() {
    if let Ok(linker) = which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
}
