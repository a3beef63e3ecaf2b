#![no_std]
//! Placeholder library target so `cargo` can treat agent-ebpf as a dependency of agent; the programs
//! are the `ipmpd` binary target.
