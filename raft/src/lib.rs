//! # elastickv-raft: Raft replication over any engine
//!
//! This crate runs [openraft](https://docs.rs/openraft/0.10.0-alpha.37) groups over any
//! [`MvccEngine`](elastickv_engine_api::MvccEngine) (their state in the engine, their
//! log in files beside it), behind a small API that keeps openraft's types out of the
//! rest of elastickv:
//!
//! * [`Group`]: one group on one node: [`Group::propose`] a command and get the
//!   [`Applier`]'s response, [`Group::read_barrier`] for linearizable reads (ReadIndex,
//!   shared by concurrent readers), membership changes, [`Group::status`], shutdown.
//! * [`RaftNode`]: the groups of a node, each with its own engine in
//!   `<data-dir>/group-<id>/`, sharing one [`Transport`] and one [`SharedLog`] in
//!   `<data-dir>/log/`; it routes incoming RPCs by group id.
//! * [`Applier`]: the deterministic command logic: [`TxnApplier`] adapts `txn`'s state
//!   machine (the tests also use a small key-value applier);
//!   [`RaftCeilingStore`] keeps the timestamp oracle's ceiling in the default group.
//! * [`Transport`] / [`RaftService`]: the byte-level network boundary;
//!   [`InProcessNetwork`] implements it in process, with fault injection.
//!
//! ## Storage
//!
//! The log entries live in the node's one append-only log shared by its groups
//! ([`LogStorage::Shared`], [`SharedLog`]: one `fdatasync` covers every group's
//! appends), in segment files of the group's own ([`LogStorage::Files`]), or in the
//! engine's raw keyspace ([`LogStorage::Engine`], for engines that keep nothing across
//! restarts); the vote and the rest of the Raft state are in the raw keyspace (layouts
//! in `docs/replication.md`). Appends and votes are durable before openraft is told they
//! are flushed; concurrent appends share one sync. The state machine writes each entry's effects
//! and the applied log id (and membership) in one atomic engine write, buffered.
//! Snapshots are the engine's portable snapshot stream, kept in a file, sent in chunks
//! and installed with `restore_with`; memory use does not depend on their size.
#![deny(missing_docs)]

mod applier;
mod apply_thread;
mod config;
mod error;
mod group;
mod inproc;
mod layout;
mod log_file;
mod log_store;
mod log_sync;
mod network;
mod node;
mod propose;
mod read;
mod runtime;
mod segment;
mod shared_log;
mod snapshot;
mod snapshot_file;
mod snapshot_receive;
mod state_machine;
#[cfg(test)]
mod storage_suite;
mod transport;
mod txn;
mod types;

pub use applier::{Applied, Applier, ApplyEntry};
pub use apply_thread::set_apply_threads;
pub use config::{GroupConfig, LogStorage};
pub use error::{RaftError, Result};
pub use group::{Group, GroupStatus, Leadership, Proposed, Role};
pub use inproc::{InProcessNetwork, InProcessTransport};
pub use log_store::LogStore;
pub use network::SnapshotTransfer;
pub use node::RaftNode;
pub use runtime::{rpc_wait_floor, Runtime};
pub use shared_log::SharedLog;
pub use snapshot::SnapshotBuilder;
pub use snapshot_file::SnapshotFile;
pub use state_machine::StateMachine;
pub use transport::{RaftRequest, RaftService, RpcKind, Transport, TransportError};
pub use txn::{RaftCeilingStore, TxnApplier};
pub use types::{
    CommandBatch, Entry, GroupId, LeaderId, LogId, NodeAddr, NodeId, Reply, SnapshotMeta,
    StoredMembership, TypeConfig, Vote, DEFAULT_GROUP,
};
