//! [`GroupConfig`]: the tunables of one Raft group, and their mapping onto openraft.

use std::time::Duration;

use crate::network::SnapshotTransfer;
use crate::{GroupId, RaftError, Result};

/// The settings of a Raft group. `GroupConfig::default()` suits a LAN deployment;
/// tests use shorter timeouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// How often the leader sends heartbeats.
    pub heartbeat_interval: Duration,
    /// The smallest election timeout (a follower that hears nothing for a random time in
    /// `[min, max)` starts an election). Must exceed `heartbeat_interval`.
    pub election_timeout_min: Duration,
    /// The largest election timeout.
    pub election_timeout_max: Duration,
    /// The smallest timeout of an AppendEntries or Vote RPC (openraft asks for one
    /// heartbeat interval, which a follower's synced log write can exceed under load).
    /// openraft's own bound on those calls is raised to
    /// `min(rpc_timeout, election_timeout_min / 2)` (see [`crate::Runtime`]).
    pub rpc_timeout: Duration,
    /// A snapshot is built after this many entries were applied since the last one.
    pub snapshot_after_logs: u64,
    /// Entries kept in the log behind the latest snapshot (so that slightly lagging
    /// followers catch up from the log rather than a snapshot).
    pub logs_kept_after_snapshot: u64,
    /// Most entries in one AppendEntries request.
    pub max_payload_entries: u64,
    /// How snapshots are sent (chunk size and timeouts).
    pub snapshot_transfer: SnapshotTransfer,
    /// Most commands replicated together in one log entry.
    pub max_batch_commands: usize,
    /// Most command bytes in one log entry (a single larger command goes alone).
    pub max_batch_bytes: usize,
    /// Most entries of proposals in flight at once; proposals arriving meanwhile queue
    /// and go out together (the leader's group commit).
    pub proposal_pipeline: usize,
    /// How long a proposal may wait to be committed and applied.
    pub propose_timeout: Duration,
    /// How long a read barrier may wait (leadership confirmation plus local apply).
    pub read_timeout: Duration,
    /// How long a membership change may take (adding a learner waits for it to catch up,
    /// which may include a large snapshot).
    pub membership_timeout: Duration,
    /// Where the log is kept: the node's shared log (the default), the group's own files
    /// or the engine's raw keyspace.
    pub log_storage: LogStorage,
}

/// Where a group keeps its Raft log. The vote, the purge marker and the state machine
/// are always in the engine. Changing it for an existing group moves the group's
/// entries when the group next starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogStorage {
    /// The node's one log shared by its groups, in `<data dir>/log/`: one `fdatasync`
    /// makes the appends of every group durable, so a node with many busy groups syncs
    /// no more often than a node with one. Needs the node's [`crate::SharedLog`]
    /// ([`crate::RaftNode`] opens it).
    #[default]
    Shared,
    /// The group's own append-only segment files in `<group dir>/log/`, each append
    /// synced with `fdatasync` (one sync per group per batch).
    Files,
    /// The engine's raw keyspace: exactly as durable as the engine. Use it with an
    /// engine that keeps nothing across restarts (the in-memory engine), so that the log
    /// never outlives the state it belongs to.
    Engine,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            heartbeat_interval: Duration::from_millis(100),
            election_timeout_min: Duration::from_millis(1000),
            election_timeout_max: Duration::from_millis(2000),
            rpc_timeout: Duration::from_secs(2),
            snapshot_after_logs: 10_000,
            logs_kept_after_snapshot: 1_000,
            max_payload_entries: 300,
            snapshot_transfer: SnapshotTransfer::default(),
            max_batch_commands: 512,
            max_batch_bytes: 4 * 1024 * 1024,
            proposal_pipeline: 2,
            propose_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(5),
            membership_timeout: Duration::from_secs(600),
            log_storage: LogStorage::Shared,
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl GroupConfig {
    /// The openraft configuration of group `group`, validated.
    pub(crate) fn to_openraft(&self, group: GroupId) -> Result<openraft::Config> {
        crate::runtime::set_rpc_wait_floor(self.rpc_timeout.min(self.election_timeout_min / 2));
        let config = openraft::Config {
            cluster_name: format!("elastickv-group-{group}"),
            heartbeat_interval: millis(self.heartbeat_interval),
            election_timeout_min: millis(self.election_timeout_min),
            election_timeout_max: millis(self.election_timeout_max),
            install_snapshot_timeout: millis(self.snapshot_transfer.chunk_timeout),
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(
                self.snapshot_after_logs.max(1),
            ),
            max_in_snapshot_log_to_keep: self.logs_kept_after_snapshot,
            snapshot_max_chunk_size: self.snapshot_transfer.chunk_size as u64,
            max_payload_entries: self.max_payload_entries.max(1),
            ..openraft::Config::default()
        };
        config
            .validate()
            .map_err(|e| RaftError::Config(e.to_string()))
    }
}
