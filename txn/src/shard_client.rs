//! The abstract, async shard client the coordinator, readers and background tasks use:
//! it routes keys to groups and sends commands and reads to a group's leader. The
//! raft/server layers implement it over Raft and gRPC; [`crate::MemShards`] implements
//! it in memory for tests.

use std::fmt;

use async_trait::async_trait;
use elastickv_engine_api::{KeyRange, Timestamp};

use crate::command::{Command, CommandOutput};
use crate::error::TxnError;
use crate::lock::LockInfo;
use crate::reads::{PointRead, ScanRead};

/// Identifies a shard (Raft group).
pub type GroupId = u64;

/// Why a request to a group did not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// The group evaluated the request and refused it (deterministically).
    #[error("refused: {0}")]
    Rejected(#[from] TxnError),
    /// The request was certainly not applied (no leader, connection refused, ...).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The request may or may not have been applied (timeout, leader change, ...).
    #[error("outcome unknown: {0}")]
    Ambiguous(String),
    /// A `OnePhase` command was not applied because the group already served a read at
    /// or above its commit_ts: applying it would change what that read saw. Retry with
    /// a fresh commit_ts.
    #[error("commit_ts {commit_ts} is not above the group's highest read timestamp {max_read_ts}")]
    CommitTsTooOld {
        /// The refused commit_ts.
        commit_ts: Timestamp,
        /// The highest read timestamp the group has served.
        max_read_ts: Timestamp,
    },
}

/// Routes keys to groups and talks to them.
///
/// One rule binds implementations: a `OnePhase` command writes without taking locks, so
/// a group must never apply one whose commit_ts is at or below a read timestamp it has
/// already served (the read would have missed it). Implementations track the highest
/// read timestamp served (as TiKV's `max_ts`) and refuse such commands with
/// [`ShardError::CommitTsTooOld`], atomically with respect to reads.
#[async_trait]
pub trait ShardClient: Send + Sync + fmt::Debug + 'static {
    /// The group owning `key`.
    fn route_key(&self, key: &[u8]) -> GroupId;

    /// The groups covering `range`, with the part of the range each owns, ascending.
    fn route_range(&self, range: &KeyRange) -> Vec<(GroupId, KeyRange)>;

    /// Every group.
    fn groups(&self) -> Vec<GroupId>;

    /// Replicates and applies `command` on `group`, returning the apply result.
    async fn apply(&self, group: GroupId, command: Command) -> Result<CommandOutput, ShardError>;

    /// A linearizable lock-aware point read on `group` (no resolution).
    async fn read_point(
        &self,
        group: GroupId,
        key: Vec<u8>,
        read_ts: Timestamp,
    ) -> Result<PointRead, ShardError>;

    /// A linearizable lock-aware scan on `group` (no resolution).
    async fn read_scan(
        &self,
        group: GroupId,
        range: KeyRange,
        limit: usize,
        read_ts: Timestamp,
    ) -> Result<ScanRead, ShardError>;

    /// Up to `limit` locks present on `group` for keys in `range`, ascending.
    async fn scan_locks(
        &self,
        group: GroupId,
        range: KeyRange,
        limit: usize,
    ) -> Result<Vec<LockInfo>, ShardError>;
}

/// A static route table: each group owns `[start, next start)`; the first range starts
/// at the empty key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTable {
    starts: Vec<(Vec<u8>, GroupId)>,
}

impl RouteTable {
    /// A table from `(start key, group)` pairs. The pairs are sorted; the first range is
    /// extended down to the empty key. An empty list routes everything to group 0.
    pub fn new(mut starts: Vec<(Vec<u8>, GroupId)>) -> Self {
        starts.sort();
        starts.dedup_by(|a, b| a.0 == b.0);
        match starts.first_mut() {
            Some(first) => first.0.clear(),
            None => starts.push((Vec::new(), 0)),
        }
        RouteTable { starts }
    }

    /// The group owning `key`.
    pub fn route_key(&self, key: &[u8]) -> GroupId {
        let idx = self
            .starts
            .partition_point(|(start, _)| start.as_slice() <= key);
        self.starts[idx.saturating_sub(1)].1
    }

    /// The groups covering `range`, ascending.
    pub fn route_range(&self, range: &KeyRange) -> Vec<(GroupId, KeyRange)> {
        let mut out = Vec::new();
        if range.is_empty() {
            return out;
        }
        for (i, (start, group)) in self.starts.iter().enumerate() {
            let next = self.starts.get(i + 1).map(|(s, _)| s.clone());
            let piece_start = start.clone().max(range.start.clone());
            let piece_end = match (&next, &range.end) {
                (Some(a), Some(b)) => Some(a.clone().min(b.clone())),
                (Some(a), None) => Some(a.clone()),
                (None, b) => b.clone(),
            };
            let piece = KeyRange {
                start: piece_start,
                end: piece_end,
            };
            if !piece.is_empty() {
                out.push((*group, piece));
            }
        }
        out
    }

    /// Every group, ascending by id.
    pub fn groups(&self) -> Vec<GroupId> {
        let mut groups: Vec<GroupId> = self.starts.iter().map(|(_, g)| *g).collect();
        groups.sort_unstable();
        groups.dedup();
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_table_splits_ranges_by_group() {
        let t = RouteTable::new(vec![
            (b"m".to_vec(), 2),
            (b"".to_vec(), 1),
            (b"t".to_vec(), 3),
        ]);
        assert_eq!(t.route_key(b""), 1);
        assert_eq!(t.route_key(b"l\xff"), 1);
        assert_eq!(t.route_key(b"m"), 2);
        assert_eq!(t.route_key(b"zz"), 3);
        let pieces = t.route_range(&KeyRange::new("k", "u"));
        assert_eq!(
            pieces,
            vec![
                (1, KeyRange::new("k", "m")),
                (2, KeyRange::new("m", "t")),
                (3, KeyRange::new("t", "u")),
            ]
        );
        assert_eq!(
            t.route_range(&KeyRange::from("x")),
            vec![(3, KeyRange::from("x"))]
        );
        assert!(t.route_range(&KeyRange::new("b", "a")).is_empty());
        assert_eq!(t.groups(), vec![1, 2, 3]);
    }
}
