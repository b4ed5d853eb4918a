//! `elastickv-load`: a closed-loop load generator. N clients, each sending its next
//! request as soon as the previous one returns, drive a cluster over gRPC with one of
//! the workloads of [`workload::Workload`] for a duration or an operation count, and
//! the run reports, per operation type, throughput, latency percentiles (from
//! [`histogram::Histogram`]) and errors by gRPC status code.
//!
//! The system under test is behind [`target::Target`] (get, put, scan, transaction) and
//! [`target::Connector`]; [`target::ElasticKvConnector`] drives elastickv and
//! [`etcd::EtcdConnector`] drives etcd, with the same workloads.

pub mod args;
pub mod etcd;
pub mod histogram;
pub mod report;
pub mod run;
pub mod target;
pub mod workload;
pub mod zipf;

pub use etcd::EtcdConnector;
pub use report::Report;
pub use run::{run, run_until, Config, Limit};
pub use target::{Connector, ElasticKvConnector, OpError, Target};
pub use workload::Workload;
pub use zipf::Distribution;
