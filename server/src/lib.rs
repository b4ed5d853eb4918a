//! # elastickv-server
//!
//! The server of elastickv (CLUSTER.md 2-6): the gRPC services, the route table and
//! router, leader forwarding, the background tasks (lock resolver, GC, route refresh),
//! the `elastickv` binary and a Rust client.
//!
//! * [`cluster::Cluster`]: one node: its Raft groups, routes, timestamp oracle and calls
//!   to group leaders (a [`elastickv_txn::ShardClient`]);
//! * [`api`]: `RawKV` and `TransactionalKV` (wire-compatible with the seed system);
//! * [`cluster_api`]: `Distribution`, `Admin`, `Internal`;
//! * [`run`]: starting and stopping a node with all of the above;
//! * [`client`]: a small Rust client and the CLI's commands.
#![deny(missing_docs)]

pub mod api;
pub mod client;
pub mod cluster;
pub mod cluster_api;
pub mod config;
pub mod engines;
pub mod metrics;
pub mod one_write;
pub mod pb;
pub mod peers;
pub mod raft_stream;
pub mod routes;
pub mod run;
pub mod status;
pub mod whole_body;
pub mod wire;
