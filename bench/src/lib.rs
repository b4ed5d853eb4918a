//! Shared pieces of elastickv's benchmarks: deterministic data sets, the engines
//! compiled in, and the report generator's parsing of criterion's output.
#![deny(missing_docs)]

pub mod dataset;
pub mod engines;
pub mod report;
