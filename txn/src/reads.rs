//! Local reads of one group at a read timestamp (TXN.md 4), the first half of a
//! lock-aware read: they report the locks that block the read instead of resolving
//! them. Resolution needs other groups and lives in [`crate::resolve`].
//!
//! Locks are looked at *before* data: a transaction that commits between the two looks
//! is then either seen as a lock (and resolved) or seen as committed data, never missed.
//! Only locks that are present now and have `start_ts <= read_ts` block: a lock removed
//! by a commit after `read_ts` left data newer than the read anyway, and younger
//! transactions never block older readers. Lock-only locks never block readers.

use elastickv_engine_api::{KeyRange, KvPair, MvccEngine, Timestamp};

use crate::error::TxnError;
use crate::keys;
use crate::lock::{LockInfo, LockKind, StoredLock};
use crate::state_machine::LATEST;
use crate::TxnStateMachine;

/// Locks are read in pages of this size.
const LOCK_PAGE: usize = 256;

/// The result of a point read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PointRead {
    /// The committed value visible at the read timestamp (`None`: absent).
    Value(Option<Vec<u8>>),
    /// A lock that must be resolved before the key can be read.
    Locked(LockInfo),
}

/// The result of a scan.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScanRead {
    /// Visible pairs, ascending, at most the requested limit.
    pub pairs: Vec<KvPair>,
    /// Locks inside the range the pairs cover (up to the last returned key when the
    /// limit was reached, else the whole requested range), including locks on keys that
    /// have no committed version. The pairs are only valid when this is empty.
    pub locks: Vec<LockInfo>,
}

impl<E: MvccEngine> TxnStateMachine<E> {
    /// A lock-aware point read of `key` at `read_ts`.
    pub fn read_point(&self, key: &[u8], read_ts: Timestamp) -> Result<PointRead, TxnError> {
        keys::check_user_key(&self.engine().limits(), key)?;
        if let Some(lock) = self.present_lock(key)? {
            if blocks(&lock, read_ts) {
                return Ok(PointRead::Locked(lock.info(key)));
            }
        }
        Ok(PointRead::Value(
            self.engine().get_at(&keys::data_key(key), read_ts)?,
        ))
    }

    /// A lock-aware scan of up to `limit` pairs in `range` at `read_ts`.
    pub fn read_scan(
        &self,
        range: &KeyRange,
        limit: usize,
        read_ts: Timestamp,
    ) -> Result<ScanRead, TxnError> {
        let mut locks = Vec::new();
        if limit > 0 && !range.is_empty() {
            for lock in self.scan_locks(range, usize::MAX)? {
                if lock.kind != LockKind::LockOnly && lock.start_ts <= read_ts {
                    locks.push(lock);
                }
            }
        }
        let pairs = self.read_scan_ignoring_locks(range, limit, read_ts, false)?;
        if pairs.len() == limit {
            if let Some(last) = pairs.last() {
                locks.retain(|l| l.key <= last.key);
            }
        }
        Ok(ScanRead { pairs, locks })
    }

    /// A raw scan (no lock check), ascending or descending, of user data at `ts`.
    pub fn read_scan_ignoring_locks(
        &self,
        range: &KeyRange,
        limit: usize,
        ts: Timestamp,
        reverse: bool,
    ) -> Result<Vec<KvPair>, TxnError> {
        let engine_range = keys::range_in(keys::DATA, range);
        let pairs = if reverse {
            self.engine().reverse_scan_at(&engine_range, limit, ts)?
        } else {
            self.engine().scan_at(&engine_range, limit, ts)?
        };
        Ok(pairs
            .into_iter()
            .map(|p| KvPair {
                key: p.key.get(1..).unwrap_or_default().to_vec(),
                value: p.value,
            })
            .collect())
    }

    /// A raw point read (no lock check) of user data at `ts`.
    pub fn read_ignoring_locks(
        &self,
        key: &[u8],
        ts: Timestamp,
    ) -> Result<Option<Vec<u8>>, TxnError> {
        Ok(self.engine().get_at(&keys::data_key(key), ts)?)
    }

    /// The newest version timestamp of `key`'s user data (tombstones included).
    pub fn latest_commit_ts(&self, key: &[u8]) -> Result<Option<Timestamp>, TxnError> {
        Ok(self.engine().latest_commit_ts(&keys::data_key(key))?)
    }

    /// Up to `limit` locks present now on user keys in `range`, ascending by key, of
    /// every kind and age (for lock resolvers and GC).
    pub fn scan_locks(&self, range: &KeyRange, limit: usize) -> Result<Vec<LockInfo>, TxnError> {
        let mut engine_range = keys::range_in(keys::LOCK, range);
        let mut out = Vec::new();
        while out.len() < limit {
            let page_size = LOCK_PAGE.min(limit - out.len());
            let page = self.engine().scan_at(&engine_range, page_size, LATEST)?;
            for pair in &page {
                let lock = StoredLock::decode(&pair.value)?;
                out.push(lock.info(pair.key.get(1..).unwrap_or_default()));
            }
            match page.last() {
                Some(last) if page.len() == page_size => {
                    let mut next = last.key.clone();
                    next.push(0);
                    engine_range.start = next;
                }
                _ => break,
            }
        }
        Ok(out)
    }
}

fn blocks(lock: &StoredLock, read_ts: Timestamp) -> bool {
    lock.kind != LockKind::LockOnly && lock.start_ts <= read_ts
}
