//! Garbage collection (TXN.md 7): the safe point, the cluster-wide step that makes old
//! transaction records collectable, and each replica's compaction.
//!
//! 1. safe point = min(oldest running transaction's start_ts, now - retention);
//! 2. every lock older than it is resolved (a still-pending one lowers the point used
//!    for records to its start_ts);
//! 3. every group applies `PurgeTxnRecords`, which raises the GC fence (no prewrite
//!    below it) and tombstones commit/rollback records of transactions that started and
//!    finished before the point;
//! 4. every replica compacts its user data, locks, intents and records at the safe point
//!    through a [`CompactionScope`] (metadata and system values are left alone).

use std::sync::Arc;
use std::time::Duration;

use elastickv_engine_api::{
    CompactionScope, CompactionStats, EngineError, KeyRange, MvccEngine, Timestamp,
};

use crate::command::{Command, CommandOutput};
use crate::keys;
use crate::lock_resolver::ResolverError;
use crate::resolve::{resolve_locks, StatusCache};
use crate::shard_client::ShardClient;
use crate::transaction::ActiveTxns;
use crate::ts::sub_millis;
use crate::tso::TimestampSource;

/// The GC safe point: `min(oldest running start_ts, now - retention)`.
pub fn safe_point(
    oldest_running: Option<Timestamp>,
    now: Timestamp,
    retention: Duration,
) -> Timestamp {
    let retention_millis = u64::try_from(retention.as_millis()).unwrap_or(u64::MAX);
    let by_age = sub_millis(now, retention_millis);
    oldest_running.map_or(by_age, |oldest| oldest.min(by_age))
}

/// The engine ranges GC compacts: user data, intents, locks and transaction records.
pub fn compaction_scope() -> CompactionScope {
    CompactionScope::Only(vec![
        keys::whole(keys::DATA),
        keys::whole(keys::INTENT),
        keys::whole(keys::LOCK),
        keys::whole(keys::RECORD),
    ])
}

/// Compacts one replica's engine at `safe_point` (reads at or above it are unchanged).
pub fn compact_txn_data<E: MvccEngine>(
    engine: &E,
    safe_point: Timestamp,
) -> Result<CompactionStats, EngineError> {
    engine.compact(safe_point, &compaction_scope())
}

/// GC settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcConfig {
    /// How far back reads must stay possible.
    pub retention: Duration,
    /// Locks and records handled per request.
    pub page_size: usize,
}

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig {
            retention: Duration::from_secs(600),
            page_size: 256,
        }
    }
}

/// What one GC round decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GcRound {
    /// The safe point replicas compact at.
    pub safe_point: Timestamp,
    /// The point records were purged below (lower when old locks are still pending).
    pub record_safe_point: Timestamp,
    /// Old locks resolved.
    pub locks_resolved: usize,
    /// Records dropped.
    pub records_purged: u64,
}

/// The cluster-wide part of GC, run by one node.
#[derive(Debug)]
pub struct GcDriver<C: ShardClient> {
    client: Arc<C>,
    tso: Arc<dyn TimestampSource>,
    active: Arc<ActiveTxns>,
    config: GcConfig,
}

impl<C: ShardClient> GcDriver<C> {
    /// A driver that keeps every transaction registered in `active` readable.
    pub fn new(
        client: Arc<C>,
        tso: Arc<dyn TimestampSource>,
        active: Arc<ActiveTxns>,
        config: GcConfig,
    ) -> Self {
        GcDriver {
            client,
            tso,
            active,
            config,
        }
    }

    /// One round: steps 1-3 of the module documentation. Replicas then compact at the
    /// returned safe point ([`compact_txn_data`]).
    pub async fn run_round(&self) -> Result<GcRound, ResolverError> {
        let now = self.tso.timestamp().await?;
        let safe = safe_point(self.active.oldest(), now, self.config.retention);
        let mut round = GcRound {
            safe_point: safe,
            record_safe_point: safe,
            ..GcRound::default()
        };
        let page = self.config.page_size.max(1);
        let mut cache = StatusCache::default();
        for group in self.client.groups() {
            let mut cursor = Vec::new();
            loop {
                let locks = self
                    .client
                    .scan_locks(group, KeyRange::from(cursor.clone()), page)
                    .await?;
                let old: Vec<_> = locks
                    .iter()
                    .filter(|l| l.start_ts < safe)
                    .cloned()
                    .collect();
                let pending = resolve_locks(self.client.as_ref(), &old, now, &mut cache).await?;
                round.locks_resolved += old.len() - pending.len();
                for lock in &pending {
                    round.record_safe_point = round.record_safe_point.min(lock.start_ts);
                }
                match locks.last() {
                    Some(last) if locks.len() == page => {
                        cursor = last.key.clone();
                        cursor.push(0);
                    }
                    _ => break,
                }
            }
        }
        if round.record_safe_point == 0 {
            return Ok(round);
        }
        for group in self.client.groups() {
            let mut cursor = Vec::new();
            loop {
                let command = Command::PurgeTxnRecords {
                    safe_point: round.record_safe_point,
                    cursor: cursor.clone(),
                    limit: u32::try_from(page).unwrap_or(u32::MAX),
                };
                match self.client.apply(group, command).await? {
                    CommandOutput::Purged {
                        purged,
                        next_cursor,
                    } => {
                        round.records_purged += purged;
                        match next_cursor {
                            Some(next) => cursor = next,
                            None => break,
                        }
                    }
                    _ => break,
                }
            }
        }
        Ok(round)
    }
}
