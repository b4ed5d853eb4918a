//! Shared pieces of elastickv's benchmarks: deterministic data sets, the engines
//! compiled in, the report generator's parsing of criterion's output, and the
//! `elastickv-load` load generator ([`load`]).
#![deny(missing_docs)]

pub mod dataset;
pub mod engines;
pub mod load;
pub mod report;
