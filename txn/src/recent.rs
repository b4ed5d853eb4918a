//! [`RecentWrites`]: what planning asks the store about each key, answered from memory
//! for keys written recently and for keys never locked.
//!
//! Planning a one-phase commit or a prewrite asks, for every key, whether a lock is
//! present on it and whether its data or its lock key has a version newer than the
//! transaction's start_ts. Asked of the engine, each question is a seek (on RocksDB, a
//! memtable skip-list descent of a few microseconds: the largest single cost in a
//! 3-node put profile, about a tenth of the machine's CPU at 256 clients), made by every
//! replica for every write. The answers are deterministic functions of the store, so
//! this index gives the same answers from what the state machine itself wrote:
//!
//! * `horizon`: no engine key has a version newer than `horizon` that `newest` lacks;
//! * `newest`: for each engine key with a version newer than `horizon`, the ts of its
//!   newest version;
//! * `locked`: every lock key whose newest version may be a live lock (a superset: a
//!   key leaves it only when a delete is known to be its newest version).
//!
//! So "a version of `k` newer than `start_ts`?" is answered exactly when `start_ts >=
//! horizon` (a key missing from `newest` has nothing above `horizon`), and "a lock on
//! `k`?" is answered "no" when `k` is not in `locked`; otherwise the engine is asked.
//!
//! The index is only sound while every version written to the engine passes through
//! [`RecentWrites::record`]. That holds for the state machine's applying caller (TXN.md:
//! nothing else writes versions to a group's engine), with three exceptions, each
//! handled: a snapshot restore replaces the store ([`RecentWrites::forget`], called
//! through `TxnStateMachine::forget_recent_writes`); a failed engine write may have
//! written part of a group (forgotten too); and GC compaction removes versions, but only
//! versions at or below the GC fence, and a command starting below the fence is refused
//! before any key is checked, so no question it could change the answer of is asked.
//!
//! Forgotten (or never loaded), the index loads on the next question: `horizon` is the
//! engine's `last_commit_ts` (the contract: at least the ts of every version stored),
//! `newest` is empty and `locked` is read from the store (the live locks, few). It is
//! bounded: past its capacity, `horizon` rises to the median ts held and the entries at
//! or below it are dropped, so questions with an older start_ts go to the engine.
//!
//! Only planning uses it, never reads: a reader runs beside the applying thread, which
//! records a write after the engine took it.

use std::collections::{HashMap, HashSet};

use elastickv_engine_api::{Mutation, MvccEngine, Timestamp};
use foldhash::fast::RandomState;
use parking_lot::Mutex;

use crate::error::TxnError;
use crate::keys;
use crate::state_machine::LATEST;

/// Entries of `newest` kept before the oldest half is dropped: with engine keys of a few
/// dozen bytes, about 2 MiB per state machine. At 5,000 writes per second to one group it
/// still answers every question from a transaction started in the last 3 seconds.
pub const DEFAULT_CAPACITY: usize = 1 << 15;

/// Live locks read per page when loading.
const LOAD_PAGE: usize = 1_024;

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct RecentWrites {
    capacity: usize,
    index: Mutex<Option<Index>>,
}

#[derive(Debug)]
struct Index {
    horizon: Timestamp,
    // foldhash: a fraction of SipHash's cost on short keys, and still seeded per map
    // (keys are chosen by clients).
    newest: HashMap<Vec<u8>, Timestamp, RandomState>,
    locked: HashSet<Vec<u8>, RandomState>,
}

impl RecentWrites {
    /// An index holding at most `capacity` recent keys; `0` turns it off (every
    /// question goes to the engine).
    pub(crate) fn new(capacity: usize) -> Self {
        RecentWrites {
            capacity,
            index: Mutex::new(None),
        }
    }

    /// Drops what the index knows; it loads again on the next question.
    pub(crate) fn forget(&self) {
        *self.index.lock() = None;
    }

    /// `Some(answer)` to "the ts of `engine_key`'s newest version, if newer than
    /// `start_ts`" when the index knows it; `None` when the engine must be asked.
    pub(crate) fn newer_version<E: MvccEngine>(
        &self,
        engine: &E,
        engine_key: &[u8],
        start_ts: Timestamp,
    ) -> Result<Option<Option<Timestamp>>, TxnError> {
        self.with_index(engine, |index| {
            (start_ts >= index.horizon).then(|| {
                index
                    .newest
                    .get(engine_key)
                    .copied()
                    .filter(|ts| *ts > start_ts)
            })
        })
    }

    /// `Some(false)` when no lock can be present on the engine lock key `lock_key`;
    /// `None` when the engine must be asked (the key may be locked, or the index is off).
    pub(crate) fn may_be_locked<E: MvccEngine>(
        &self,
        engine: &E,
        lock_key: &[u8],
    ) -> Result<Option<bool>, TxnError> {
        self.with_index(engine, |index| {
            (!index.locked.contains(lock_key)).then_some(false)
        })
    }

    /// Notes versions at `ts` of the keys `mutations` name, just written to the engine.
    pub(crate) fn record(&self, mutations: &[Mutation], ts: Timestamp) {
        if self.capacity == 0 || mutations.is_empty() {
            return;
        }
        let mut guard = self.index.lock();
        let Some(index) = guard.as_mut() else {
            return; // loads from the store, which now holds these writes
        };
        for mutation in mutations {
            let key = mutation.key();
            let newest = if ts <= index.horizon {
                None
            } else if let Some(slot) = index.newest.get_mut(key) {
                *slot = (*slot).max(ts);
                Some(*slot)
            } else {
                index.newest.insert(key.to_vec(), ts);
                Some(ts)
            };
            if key.first() == Some(&keys::LOCK) {
                match mutation {
                    Mutation::Put { .. } => {
                        index.locked.insert(key.to_vec());
                    }
                    // The lock is gone only if this delete is the key's newest version.
                    Mutation::Delete { .. } if newest == Some(ts) => {
                        index.locked.remove(key);
                    }
                    Mutation::Delete { .. } => {}
                }
            }
        }
        if index.newest.len() > self.capacity {
            index.shrink();
        }
    }

    fn with_index<E: MvccEngine, T>(
        &self,
        engine: &E,
        answer: impl FnOnce(&Index) -> Option<T>,
    ) -> Result<Option<T>, TxnError> {
        if self.capacity == 0 {
            return Ok(None);
        }
        let mut guard = self.index.lock();
        if guard.is_none() {
            *guard = Some(Index::load(engine)?);
        }
        Ok(guard.as_ref().and_then(answer))
    }
}

impl Index {
    /// Reads the index's starting point from the store (see the module documentation).
    fn load<E: MvccEngine>(engine: &E) -> Result<Index, TxnError> {
        let horizon = engine.last_commit_ts()?;
        let mut locked = HashSet::default();
        let mut range = keys::whole(keys::LOCK);
        loop {
            let page = engine.scan_at(&range, LOAD_PAGE, LATEST)?;
            let full = page.len() == LOAD_PAGE;
            let last = page.last().map(|pair| pair.key.clone());
            locked.extend(page.into_iter().map(|pair| pair.key));
            match last {
                Some(mut next) if full => {
                    next.push(0);
                    range.start = next;
                }
                _ => break,
            }
        }
        Ok(Index {
            horizon,
            newest: HashMap::default(),
            locked,
        })
    }

    /// Raises the horizon to the median ts held and drops the entries at or below it.
    fn shrink(&mut self) {
        let mut stamps: Vec<Timestamp> = self.newest.values().copied().collect();
        let middle = stamps.len() / 2;
        let (_, median, _) = stamps.select_nth_unstable(middle);
        self.horizon = self.horizon.max(*median);
        let horizon = self.horizon;
        self.newest.retain(|_, ts| *ts > horizon);
    }
}

#[cfg(test)]
mod tests {
    use elastickv_engine_mem::MemEngine;

    use super::*;

    fn put(key: &[u8]) -> Mutation {
        Mutation::put(key.to_vec(), b"v".to_vec())
    }

    fn del(key: &[u8]) -> Mutation {
        Mutation::delete(key.to_vec())
    }

    #[test]
    fn answers_from_what_it_recorded_above_the_horizon() {
        let engine = MemEngine::new();
        engine.put_at(b"dold", b"v", 10, 0).expect("put");
        let recent = RecentWrites::new(16);
        // Loads: horizon 10, nothing recent.
        assert_eq!(
            recent.newer_version(&engine, b"dold", 10).unwrap(),
            Some(None)
        );
        // Below the horizon the engine must be asked.
        assert_eq!(recent.newer_version(&engine, b"dold", 9).unwrap(), None);
        recent.record(&[put(b"da")], 20);
        assert_eq!(
            recent.newer_version(&engine, b"da", 19).unwrap(),
            Some(Some(20))
        );
        assert_eq!(
            recent.newer_version(&engine, b"da", 20).unwrap(),
            Some(None)
        );
        // An older write does not lower the newest ts.
        recent.record(&[put(b"da")], 15);
        assert_eq!(
            recent.newer_version(&engine, b"da", 19).unwrap(),
            Some(Some(20))
        );
    }

    #[test]
    fn a_lock_stays_known_until_a_delete_is_its_newest_version() {
        let engine = MemEngine::new();
        engine.put_at(b"lheld", b"lock", 5, 0).expect("put");
        engine.put_at(b"lgone", b"lock", 5, 0).expect("put");
        engine.delete_at(b"lgone", 6).expect("delete");
        let recent = RecentWrites::new(16);
        assert_eq!(recent.may_be_locked(&engine, b"lheld").unwrap(), None);
        assert_eq!(
            recent.may_be_locked(&engine, b"lgone").unwrap(),
            Some(false)
        );
        recent.record(&[put(b"lnew")], 10);
        assert_eq!(recent.may_be_locked(&engine, b"lnew").unwrap(), None);
        // A delete below a newer version leaves the key locked as far as it knows.
        recent.record(&[put(b"lnew")], 12);
        recent.record(&[del(b"lnew")], 11);
        assert_eq!(recent.may_be_locked(&engine, b"lnew").unwrap(), None);
        recent.record(&[del(b"lnew")], 12);
        assert_eq!(recent.may_be_locked(&engine, b"lnew").unwrap(), Some(false));
        // At or below the horizon nothing says the delete is the newest version.
        recent.record(&[del(b"lheld")], 5);
        assert_eq!(recent.may_be_locked(&engine, b"lheld").unwrap(), None);
    }

    #[test]
    fn past_capacity_the_horizon_rises_and_old_keys_go_to_the_engine() {
        let engine = MemEngine::new();
        let recent = RecentWrites::new(4);
        assert_eq!(recent.newer_version(&engine, b"d0", 0).unwrap(), Some(None));
        for ts in 1..=5u64 {
            recent.record(&[put(format!("d{ts}").as_bytes())], ts);
        }
        // Five entries over a capacity of four: the median (3) is the new horizon.
        assert_eq!(recent.newer_version(&engine, b"d1", 2).unwrap(), None);
        assert_eq!(recent.newer_version(&engine, b"d1", 3).unwrap(), Some(None));
        assert_eq!(
            recent.newer_version(&engine, b"d5", 3).unwrap(),
            Some(Some(5))
        );
        assert_eq!(
            recent.newer_version(&engine, b"d4", 3).unwrap(),
            Some(Some(4))
        );
    }

    #[test]
    fn forgotten_or_off_it_asks_the_engine() {
        let engine = MemEngine::new();
        let recent = RecentWrites::new(16);
        assert_eq!(recent.newer_version(&engine, b"da", 0).unwrap(), Some(None));
        recent.record(&[put(b"da")], 7);
        recent.forget();
        // Not loaded: a record is dropped, and the next question loads from the store
        // (whose last_commit_ts, 0 here, becomes the horizon).
        recent.record(&[put(b"db")], 8);
        assert_eq!(recent.newer_version(&engine, b"da", 0).unwrap(), Some(None));
        let off = RecentWrites::new(0);
        assert_eq!(off.newer_version(&engine, b"da", 0).unwrap(), None);
        assert_eq!(off.may_be_locked(&engine, b"la").unwrap(), None);
    }
}
