//! The benchmark's sections, one module each, in the order a full run takes them. Each returns
//! its part of BENCHMARKS.md and adds the targets it checks to the run's table; none uses
//! another: what several share lives in the crate's other modules.

pub mod carrier;
pub mod datapath;
pub mod load;
pub mod outage;
pub mod peers;
pub mod poll;
pub mod rtt;
pub mod scale;
pub mod throughput;
