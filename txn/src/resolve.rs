//! Lock resolution and the lock-aware read path through the shard client (TXN.md 4).
//!
//! A reader that meets a lock asks the lock's primary group for the transaction's status
//! (`CheckTxnStatus`, cached per request): committed -> commit the locked keys,
//! rolled back -> roll them back, then read again; pending -> back off briefly and
//! retry, and finally give up with a retryable `Locked` error.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use elastickv_engine_api::{KeyRange, KvPair, Timestamp};

use crate::command::{Command, CommandOutput, TxnStatus};
use crate::error::TxnError;
use crate::lock::LockInfo;
use crate::reads::PointRead;
use crate::shard_client::{GroupId, ShardClient, ShardError};
use crate::transaction_error::TransactionError;
use crate::tso::TimestampSource;

/// How long readers wait for pending locks before giving up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Resolution attempts before returning `Locked`.
    pub attempts: u32,
    /// The first wait.
    pub initial: Duration,
    /// The longest wait (waits double up to it).
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            attempts: 5,
            initial: Duration::from_millis(2),
            max: Duration::from_millis(50),
        }
    }
}

impl Backoff {
    /// The wait before attempt `n` (0-based).
    pub fn delay(&self, n: u32) -> Duration {
        self.initial.saturating_mul(1u32 << n.min(16)).min(self.max)
    }
}

/// A transaction's identity: its primary key and start_ts.
type TxnId = (Vec<u8>, Timestamp);

/// Final transaction statuses already learned in this request.
#[derive(Debug, Default)]
pub struct StatusCache {
    known: HashMap<TxnId, TxnStatus>,
}

/// Resolves `locks` as far as possible: returns the locks whose transactions are still
/// pending. `caller_ts` is the current time as a timestamp (locks expired before it are
/// rolled back).
pub async fn resolve_locks<C: ShardClient + ?Sized>(
    client: &C,
    locks: &[LockInfo],
    caller_ts: Timestamp,
    cache: &mut StatusCache,
) -> Result<Vec<LockInfo>, ShardError> {
    // (primary, start_ts) -> group -> keys
    let mut by_txn: BTreeMap<TxnId, BTreeMap<GroupId, Vec<&LockInfo>>> = BTreeMap::new();
    for lock in locks {
        by_txn
            .entry((lock.primary.clone(), lock.start_ts))
            .or_default()
            .entry(client.route_key(&lock.key))
            .or_default()
            .push(lock);
    }
    let mut pending = Vec::new();
    for ((primary, start_ts), groups) in by_txn {
        let status = txn_status(client, &primary, start_ts, caller_ts, cache).await?;
        for (group, group_locks) in groups {
            let keys: Vec<Vec<u8>> = group_locks.iter().map(|l| l.key.clone()).collect();
            let command = match status {
                TxnStatus::Committed(commit_ts) => Command::Commit {
                    primary: primary.clone(),
                    start_ts,
                    commit_ts,
                    keys,
                },
                TxnStatus::RolledBack => Command::Rollback {
                    primary: primary.clone(),
                    start_ts,
                    keys,
                },
                TxnStatus::Pending { .. } => {
                    pending.extend(group_locks.into_iter().cloned());
                    continue;
                }
            };
            client.apply(group, command).await?;
        }
    }
    Ok(pending)
}

/// The status of `(primary, start_ts)`, from the cache or `CheckTxnStatus`.
pub async fn txn_status<C: ShardClient + ?Sized>(
    client: &C,
    primary: &[u8],
    start_ts: Timestamp,
    caller_ts: Timestamp,
    cache: &mut StatusCache,
) -> Result<TxnStatus, ShardError> {
    let id = (primary.to_vec(), start_ts);
    if let Some(status) = cache.known.get(&id) {
        return Ok(*status);
    }
    let command = Command::CheckTxnStatus {
        primary: primary.to_vec(),
        start_ts,
        caller_ts,
    };
    let status = match client.apply(client.route_key(primary), command).await? {
        CommandOutput::Status(status) => status,
        other => {
            return Err(ShardError::Rejected(TxnError::Decode(format!(
                "unexpected answer to CheckTxnStatus: {other:?}"
            ))))
        }
    };
    if !matches!(status, TxnStatus::Pending { .. }) {
        cache.known.insert(id, status);
    }
    Ok(status)
}

/// A lock-aware reader for one request at one read timestamp.
#[derive(Debug)]
pub struct LockAwareReader<'a, C: ShardClient + ?Sized> {
    client: &'a C,
    tso: &'a dyn TimestampSource,
    backoff: Backoff,
    cache: StatusCache,
}

impl<'a, C: ShardClient + ?Sized> LockAwareReader<'a, C> {
    /// A reader using `tso` for the current time when checking lock expiry.
    pub fn new(client: &'a C, tso: &'a dyn TimestampSource, backoff: Backoff) -> Self {
        LockAwareReader {
            client,
            tso,
            backoff,
            cache: StatusCache::default(),
        }
    }

    /// Handles locks met by a read: resolves what can be resolved; fails with `Locked`
    /// once the attempts are used up, otherwise waits before the next attempt.
    async fn handle_locks(
        &mut self,
        locks: &[LockInfo],
        attempt: u32,
    ) -> Result<(), TransactionError> {
        let now = self.tso.timestamp().await?;
        let pending = resolve_locks(self.client, locks, now, &mut self.cache).await?;
        if let Some(first) = pending.into_iter().next() {
            if attempt + 1 >= self.backoff.attempts {
                return Err(TransactionError::Locked(Box::new(first)));
            }
            tokio::time::sleep(self.backoff.delay(attempt)).await;
        }
        Ok(())
    }

    /// The value of `key` at `read_ts`.
    pub async fn get(
        &mut self,
        key: &[u8],
        read_ts: Timestamp,
    ) -> Result<Option<Vec<u8>>, TransactionError> {
        let group = self.client.route_key(key);
        let mut attempt = 0;
        loop {
            match self.client.read_point(group, key.to_vec(), read_ts).await? {
                PointRead::Value(value) => return Ok(value),
                PointRead::Locked(lock) => self.handle_locks(&[lock], attempt).await?,
            }
            attempt += 1;
        }
    }

    /// Up to `limit` pairs of `range` at `read_ts`, ascending, across groups.
    pub async fn scan(
        &mut self,
        range: &KeyRange,
        limit: usize,
        read_ts: Timestamp,
    ) -> Result<Vec<KvPair>, TransactionError> {
        let mut out = Vec::new();
        for (group, piece) in self.client.route_range(range) {
            if out.len() >= limit {
                break;
            }
            let want = limit - out.len();
            let mut attempt = 0;
            loop {
                let read = self
                    .client
                    .read_scan(group, piece.clone(), want, read_ts)
                    .await?;
                if read.locks.is_empty() {
                    out.extend(read.pairs);
                    break;
                }
                self.handle_locks(&read.locks, attempt).await?;
                attempt += 1;
            }
        }
        Ok(out)
    }
}
