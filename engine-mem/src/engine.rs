//! [`MemEngine`]: the engine contract over one published, immutable state.

use std::io::Read;
use std::ops::Bound;
use std::sync::Arc;

use elastickv_engine_api::stream::SnapshotReader;
use elastickv_engine_api::{
    check_read_ts, CompactionScope, CompactionStats, Durability, EngineError, KeyRange, KvPair,
    Limits, Mutation, MvccEngine, RawKeyspace, RawOp, RestoreStats, Result, RetentionController,
    Timestamp, WriteBatch,
};
use parking_lot::{Mutex, MutexGuard, RwLock};

use crate::history::{Compacted, KeyHistory, MemVersion};
use crate::snapshot::MemSnapshot;
use crate::{Key, State};

/// How many keys one compaction batch examines while holding the writer lock.
const COMPACTION_BATCH: usize = 1024;

/// The in-memory engine (see the crate documentation for its design).
pub struct MemEngine {
    /// The published state. The lock is held only to clone or replace the `Arc`.
    current: RwLock<Arc<State>>,
    /// Serializes writers: whoever holds it derives and publishes the next state.
    writer: Mutex<()>,
    limits: Limits,
}

impl std::fmt::Debug for MemEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.current();
        f.debug_struct("MemEngine")
            .field("keys", &state.data.len())
            .field("raw_keys", &state.raw.len())
            .field("last_commit_ts", &state.last_commit_ts)
            .field("min_retained_ts", &state.min_retained)
            .finish()
    }
}

impl Default for MemEngine {
    fn default() -> Self {
        MemEngine::new()
    }
}

impl MemEngine {
    /// An empty engine with the default [`Limits`].
    pub fn new() -> Self {
        MemEngine::with_limits(Limits::DEFAULT)
    }

    /// An empty engine that accepts at most `limits`.
    pub fn with_limits(limits: Limits) -> Self {
        MemEngine {
            current: RwLock::new(Arc::new(State::default())),
            writer: Mutex::new(()),
            limits,
        }
    }

    /// The published state, to read without any lock.
    fn current(&self) -> Arc<State> {
        self.current.read().clone()
    }

    /// Takes the writer lock; the state read after this is the latest until released.
    fn lock_writer(&self) -> MutexGuard<'_, ()> {
        self.writer.lock()
    }

    /// Makes `next` the published state. Call only while holding the writer lock.
    fn publish(&self, next: State) {
        *self.current.write() = Arc::new(next);
    }

    fn check_range(&self, range: &KeyRange) -> Result<()> {
        self.limits.check_key_size(&range.start)?;
        if let Some(end) = &range.end {
            self.limits.check_key_size(end)?;
        }
        Ok(())
    }

    fn scan(
        &self,
        range: &KeyRange,
        limit: usize,
        ts: Timestamp,
        reverse: bool,
    ) -> Result<Vec<KvPair>> {
        self.check_range(range)?;
        let state = self.current();
        check_read_ts(ts, state.min_retained)?;
        if limit == 0 || range.is_empty() {
            return Ok(Vec::new());
        }
        let in_range = state.data.range::<_, [u8]>(range.bounds());
        let visible = |(key, history): (&Key, &KeyHistory)| {
            history.visible_at(ts).map(|value| KvPair {
                key: key.to_vec(),
                value: value.to_vec(),
            })
        };
        // The iterator is lazy: hidden keys are skipped and the walk stops at the limit.
        Ok(if reverse {
            in_range.rev().filter_map(visible).take(limit).collect()
        } else {
            in_range.filter_map(visible).take(limit).collect()
        })
    }

    fn raw_range(&self, range: &KeyRange, limit: usize, reverse: bool) -> Result<Vec<KvPair>> {
        self.check_range(range)?;
        if limit == 0 || range.is_empty() {
            return Ok(Vec::new());
        }
        let state = self.current();
        let in_range = state.raw.range::<_, [u8]>(range.bounds());
        let pair = |(key, value): (&Key, &Arc<[u8]>)| KvPair {
            key: key.to_vec(),
            value: value.to_vec(),
        };
        Ok(if reverse {
            in_range.rev().take(limit).map(pair).collect()
        } else {
            in_range.take(limit).map(pair).collect()
        })
    }

    /// Compacts one batch of keys starting after `after`; returns the last key examined,
    /// or `None` when the end was reached.
    fn compact_batch(
        &self,
        min_ts: Timestamp,
        scope: &CompactionScope,
        after: Option<Key>,
        stats: &mut CompactionStats,
    ) -> Option<Key> {
        let _writer = self.lock_writer();
        let state = self.current();
        // A restore in between replaced the data and lowered the watermark: what this
        // compaction would remove may be readable again, so it stops.
        if state.min_retained < min_ts {
            return None;
        }
        let lower = match &after {
            Some(key) => Bound::Excluded(&key[..]),
            None => Bound::Unbounded,
        };
        let mut changes: Vec<(Key, Option<KeyHistory>)> = Vec::new();
        let mut last = None;
        let mut examined = 0;
        for (key, history) in state.data.range::<_, [u8]>((lower, Bound::Unbounded)) {
            if examined == COMPACTION_BATCH {
                break;
            }
            examined += 1;
            last = Some(key.clone());
            if !scope.includes(key) {
                continue;
            }
            stats.keys_examined += 1;
            if let Compacted::Shrunk(rest, removed) = history.compacted(min_ts) {
                stats.versions_removed += removed as u64;
                stats.keys_removed += u64::from(rest.is_none());
                changes.push((key.clone(), rest));
            }
        }
        if !changes.is_empty() {
            let mut next = (*state).clone();
            for (key, rest) in changes {
                match rest {
                    Some(history) => {
                        next.data.insert(key, history);
                    }
                    None => {
                        next.data.remove(&key[..]);
                    }
                }
            }
            self.publish(next);
        }
        if examined < COMPACTION_BATCH {
            None
        } else {
            last
        }
    }
}

fn apply_raw(raw: &mut imbl::OrdMap<Key, Arc<[u8]>>, op: &RawOp) {
    match op {
        RawOp::Put { key, value } => {
            raw.insert(Key::from(&key[..]), Arc::from(&value[..]));
        }
        RawOp::Delete { key } => {
            raw.remove(&key[..]);
        }
        RawOp::DeleteRange { range } => {
            if range.is_empty() {
                return;
            }
            let doomed: Vec<Key> = raw
                .range::<_, [u8]>(range.bounds())
                .map(|(key, _)| key.clone())
                .collect();
            for key in doomed {
                raw.remove(&key[..]);
            }
        }
    }
}

fn mutation_version(mutation: &Mutation, commit_ts: Timestamp) -> MemVersion {
    match mutation {
        Mutation::Put {
            value, expire_at, ..
        } => MemVersion {
            ts: commit_ts,
            value: Some(Arc::from(&value[..])),
            expire_at: *expire_at,
        },
        Mutation::Delete { .. } => MemVersion {
            ts: commit_ts,
            value: None,
            expire_at: 0,
        },
    }
}

/// Adds `version` to `key`'s history in `data`.
fn insert_version(data: &mut imbl::OrdMap<Key, KeyHistory>, key: &[u8], version: MemVersion) {
    let history = match data.get(key) {
        Some(history) => history.with(version),
        None => KeyHistory::single(version),
    };
    data.insert(Key::from(key), history);
}

impl RetentionController for MemEngine {
    fn min_retained_ts(&self) -> Result<Timestamp> {
        Ok(self.current().min_retained)
    }

    fn set_min_retained_ts(&self, ts: Timestamp) -> Result<()> {
        let _writer = self.lock_writer();
        let state = self.current();
        if ts > state.min_retained {
            let mut next = (*state).clone();
            next.min_retained = ts;
            self.publish(next);
        }
        Ok(())
    }
}

impl RawKeyspace for MemEngine {
    fn raw_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.limits.check_key(key, "raw key")?;
        Ok(self.current().raw.get(key).map(|v| v.to_vec()))
    }

    fn raw_scan(&self, range: &KeyRange, limit: usize) -> Result<Vec<KvPair>> {
        self.raw_range(range, limit, false)
    }

    fn raw_reverse_scan(&self, range: &KeyRange, limit: usize) -> Result<Vec<KvPair>> {
        self.raw_range(range, limit, true)
    }

    fn raw_write(&self, ops: &[RawOp], durability: Durability) -> Result<()> {
        self.write(&WriteBatch::raw_only(ops).with_durability(durability))
    }
}

impl MvccEngine for MemEngine {
    type Snapshot = MemSnapshot;

    fn name(&self) -> &'static str {
        "mem"
    }

    fn limits(&self) -> Limits {
        self.limits
    }

    fn get_at(&self, key: &[u8], ts: Timestamp) -> Result<Option<Vec<u8>>> {
        self.limits.check_key(key, "read key")?;
        let state = self.current();
        check_read_ts(ts, state.min_retained)?;
        Ok(state
            .data
            .get(key)
            .and_then(|history| history.visible_at(ts))
            .map(<[u8]>::to_vec))
    }

    fn exists_at(&self, key: &[u8], ts: Timestamp) -> Result<bool> {
        self.limits.check_key(key, "read key")?;
        let state = self.current();
        check_read_ts(ts, state.min_retained)?;
        Ok(state
            .data
            .get(key)
            .is_some_and(|history| history.visible_at(ts).is_some()))
    }

    fn scan_at(&self, range: &KeyRange, limit: usize, ts: Timestamp) -> Result<Vec<KvPair>> {
        self.scan(range, limit, ts, false)
    }

    fn reverse_scan_at(
        &self,
        range: &KeyRange,
        limit: usize,
        ts: Timestamp,
    ) -> Result<Vec<KvPair>> {
        self.scan(range, limit, ts, true)
    }

    fn latest_commit_ts(&self, key: &[u8]) -> Result<Option<Timestamp>> {
        self.limits.check_key(key, "key")?;
        Ok(self.current().data.get(key).and_then(KeyHistory::newest_ts))
    }

    fn last_commit_ts(&self) -> Result<Timestamp> {
        Ok(self.current().last_commit_ts)
    }

    fn write(&self, batch: &WriteBatch<'_>) -> Result<()> {
        self.limits.check_batch(batch)?;
        let _writer = self.lock_writer();
        let state = self.current();
        if let Some(start_ts) = batch.conflict_start_ts {
            let keys = batch
                .mutations
                .iter()
                .map(Mutation::key)
                .chain(batch.read_set.iter().map(Vec::as_slice));
            for key in keys {
                let newest = state.data.get(key).and_then(KeyHistory::newest_ts);
                if newest.is_some_and(|ts| ts > start_ts) {
                    return Err(EngineError::WriteConflict {
                        key: key.to_vec(),
                        start_ts,
                    });
                }
            }
        }
        if batch.mutations.is_empty() && batch.raw.is_empty() {
            return Ok(());
        }
        let mut next = (*state).clone();
        // In order, so that for duplicate keys the last mutation wins.
        for mutation in batch.mutations {
            let version = mutation_version(mutation, batch.commit_ts);
            insert_version(&mut next.data, mutation.key(), version);
        }
        for op in batch.raw {
            apply_raw(&mut next.raw, op);
        }
        if !batch.mutations.is_empty() {
            next.last_commit_ts = next.last_commit_ts.max(batch.commit_ts);
        }
        self.publish(next);
        Ok(())
    }

    fn expire_at(&self, key: &[u8], expire_at: Timestamp, commit_ts: Timestamp) -> Result<bool> {
        self.limits.check_key(key, "key")?;
        if commit_ts == 0 || commit_ts == u64::MAX {
            return Err(EngineError::InvalidArgument(format!(
                "commit_ts {commit_ts} is reserved"
            )));
        }
        let _writer = self.lock_writer();
        let state = self.current();
        let Some(history) = state.data.get(key) else {
            return Ok(false);
        };
        let Some(value) = history.visible_at(commit_ts) else {
            return Ok(false);
        };
        let version = MemVersion {
            ts: commit_ts,
            value: Some(Arc::from(value)),
            expire_at,
        };
        let mut next = (*state).clone();
        insert_version(&mut next.data, key, version);
        next.last_commit_ts = next.last_commit_ts.max(commit_ts);
        self.publish(next);
        Ok(true)
    }

    fn compact(&self, min_ts: Timestamp, scope: &CompactionScope) -> Result<CompactionStats> {
        // The watermark goes first: readers at or above it never need what is removed.
        self.set_min_retained_ts(min_ts)?;
        let mut stats = CompactionStats::default();
        let mut after = None;
        loop {
            match self.compact_batch(min_ts, scope, after, &mut stats) {
                Some(last) => after = Some(last),
                None => return Ok(stats),
            }
        }
    }

    fn snapshot(&self) -> Result<MemSnapshot> {
        Ok(MemSnapshot::new(self.current()))
    }

    fn restore_with(&self, reader: &mut dyn Read, raw: &[RawOp]) -> Result<RestoreStats> {
        self.limits.check_raw_ops(raw)?;
        let mut stream = SnapshotReader::new(reader, self.limits)?;
        // Build the new map without any lock; a bad stream leaves the engine untouched.
        let mut data: imbl::OrdMap<Key, KeyHistory> = imbl::OrdMap::new();
        let mut key: Option<Key> = None;
        let mut versions: Vec<MemVersion> = Vec::new();
        while let Some((k, v)) = stream.next_version()? {
            if key.as_deref() != Some(k) {
                if let Some(done) = key.take() {
                    data.insert(done, KeyHistory::from_sorted(std::mem::take(&mut versions)));
                }
                key = Some(Key::from(k));
            }
            versions.push(MemVersion {
                ts: v.ts,
                value: v.value.map(Arc::from),
                expire_at: v.expire_at,
            });
        }
        if let Some(done) = key {
            data.insert(done, KeyHistory::from_sorted(versions));
        }
        let header = stream.header();
        let (keys, version_count) = stream.counts();
        let _writer = self.lock_writer();
        let mut next = (*self.current()).clone();
        next.data = data;
        next.last_commit_ts = header.last_commit_ts;
        next.min_retained = header.min_retained_ts;
        for op in raw {
            apply_raw(&mut next.raw, op);
        }
        self.publish(next);
        Ok(RestoreStats {
            keys,
            versions: version_count,
            bytes: stream.bytes_read(),
        })
    }
}
