//! The reference model: the contract written as plainly as possible, with no concern for
//! speed. One mutex around ordinary `BTreeMap`s; a snapshot is a full copy.
//!
//! The differential test runs the same operations against the engine under test and
//! this model and compares every result. The model is itself an [`MvccEngine`], so the
//! snapshot cases also stream from the engine into the model and back, proving that the
//! engine reads and writes the portable format like any other engine.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::sync::{Mutex, MutexGuard};

use crate::stream::SnapshotReader;
use crate::{
    check_read_ts, CompactionScope, CompactionStats, Durability, EngineError, EngineSnapshot,
    KeyRange, KvPair, Limits, Mutation, MvccEngine, RawKeyspace, RawOp, RestoreStats, Result,
    RetentionController, Timestamp, Version, VersionKind, WriteBatch,
};

/// One key's versions by timestamp.
type History = BTreeMap<Timestamp, Version>;

#[derive(Debug, Clone, Default)]
struct ModelState {
    keys: BTreeMap<Vec<u8>, History>,
    last_commit_ts: Timestamp,
    min_retained: Timestamp,
    raw: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl ModelState {
    fn visible(&self, key: &[u8], ts: Timestamp) -> Option<&[u8]> {
        let (_, version) = self.keys.get(key)?.range(..=ts).next_back()?;
        version.visible_value(ts)
    }

    fn apply_raw(&mut self, op: &RawOp) {
        match op {
            RawOp::Put { key, value } => {
                self.raw.insert(key.clone(), value.clone());
            }
            RawOp::Delete { key } => {
                self.raw.remove(key);
            }
            RawOp::DeleteRange { range } => self.raw.retain(|key, _| !range.contains(key)),
        }
    }
}

/// The reference model of the contract (see the module docs).
#[derive(Debug)]
pub struct ModelEngine {
    limits: Limits,
    state: Mutex<ModelState>,
}

impl Default for ModelEngine {
    fn default() -> Self {
        ModelEngine::new()
    }
}

impl ModelEngine {
    /// An empty model with the default limits.
    pub fn new() -> Self {
        ModelEngine::with_limits(Limits::DEFAULT)
    }

    /// An empty model that enforces `limits` (use the engine's, so both refuse the same
    /// inputs).
    pub fn with_limits(limits: Limits) -> Self {
        ModelEngine {
            limits,
            state: Mutex::new(ModelState::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, ModelState> {
        // A panicking case may poison the lock; the state is still the last one written.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The anchors that `compact(min_ts, scope)` may either keep or remove: for each key
    /// in scope, its newest version at or below `min_ts` when that version hides the
    /// key from every read at or above `min_ts` (ENGINE.md section 6).
    pub fn optional_anchors(
        &self,
        min_ts: Timestamp,
        scope: &CompactionScope,
    ) -> BTreeSet<(Vec<u8>, Timestamp)> {
        let state = self.state();
        let mut out = BTreeSet::new();
        for (key, history) in &state.keys {
            if !scope.includes(key) {
                continue;
            }
            if let Some((ts, anchor)) = history.range(..=min_ts).next_back() {
                if crate::hides_from(&anchor.kind, anchor.expire_at, min_ts) {
                    out.insert((key.clone(), *ts));
                }
            }
        }
        out
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
        let state = self.state();
        check_read_ts(ts, state.min_retained)?;
        if limit == 0 || range.is_empty() {
            return Ok(Vec::new());
        }
        let in_range = state.keys.range::<[u8], _>(range.bounds());
        let visible = |(key, _): (&Vec<u8>, &History)| {
            state.visible(key, ts).map(|value| KvPair {
                key: key.clone(),
                value: value.to_vec(),
            })
        };
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
        let state = self.state();
        let in_range = state.raw.range::<[u8], _>(range.bounds());
        let pair = |(k, v): (&Vec<u8>, &Vec<u8>)| KvPair {
            key: k.clone(),
            value: v.clone(),
        };
        Ok(if reverse {
            in_range.rev().take(limit).map(pair).collect()
        } else {
            in_range.take(limit).map(pair).collect()
        })
    }
}

impl RetentionController for ModelEngine {
    fn min_retained_ts(&self) -> Result<Timestamp> {
        Ok(self.state().min_retained)
    }

    fn set_min_retained_ts(&self, ts: Timestamp) -> Result<()> {
        let mut state = self.state();
        state.min_retained = state.min_retained.max(ts);
        Ok(())
    }
}

impl RawKeyspace for ModelEngine {
    fn raw_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.limits.check_key(key, "raw key")?;
        Ok(self.state().raw.get(key).cloned())
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

/// A full copy of the model's content, taken under its lock.
#[derive(Debug, Clone)]
pub struct ModelSnapshot {
    versions: Vec<(Vec<u8>, Version)>,
    last_commit_ts: Timestamp,
    min_retained_ts: Timestamp,
}

impl EngineSnapshot for ModelSnapshot {
    fn last_commit_ts(&self) -> Timestamp {
        self.last_commit_ts
    }

    fn min_retained_ts(&self) -> Timestamp {
        self.min_retained_ts
    }

    fn for_each_version(
        &self,
        visit: &mut dyn FnMut(&[u8], &Version) -> Result<bool>,
    ) -> Result<()> {
        for (key, version) in &self.versions {
            if !visit(key, version)? {
                break;
            }
        }
        Ok(())
    }
}

impl MvccEngine for ModelEngine {
    type Snapshot = ModelSnapshot;

    fn name(&self) -> &'static str {
        "model"
    }

    fn limits(&self) -> Limits {
        self.limits
    }

    fn get_at(&self, key: &[u8], ts: Timestamp) -> Result<Option<Vec<u8>>> {
        self.limits.check_key(key, "read key")?;
        let state = self.state();
        check_read_ts(ts, state.min_retained)?;
        Ok(state.visible(key, ts).map(<[u8]>::to_vec))
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
        let state = self.state();
        Ok(state
            .keys
            .get(key)
            .and_then(|h| h.keys().next_back().copied()))
    }

    fn last_commit_ts(&self) -> Result<Timestamp> {
        Ok(self.state().last_commit_ts)
    }

    fn write(&self, batch: &WriteBatch<'_>) -> Result<()> {
        self.limits.check_batch(batch)?;
        let mut state = self.state();
        if let Some(start_ts) = batch.conflict_start_ts {
            let keys = batch
                .mutations
                .iter()
                .map(Mutation::key)
                .chain(batch.read_set.iter().map(Vec::as_slice));
            for key in keys {
                let newest = state.keys.get(key).and_then(|h| h.keys().next_back());
                if newest.is_some_and(|ts| *ts > start_ts) {
                    return Err(EngineError::WriteConflict {
                        key: key.to_vec(),
                        start_ts,
                    });
                }
            }
        }
        for mutation in batch.mutations {
            let version = match mutation {
                Mutation::Put {
                    value, expire_at, ..
                } => Version {
                    ts: batch.commit_ts,
                    kind: VersionKind::Value(value.clone()),
                    expire_at: *expire_at,
                },
                Mutation::Delete { .. } => Version::tombstone(batch.commit_ts),
            };
            state
                .keys
                .entry(mutation.key().to_vec())
                .or_default()
                .insert(batch.commit_ts, version);
        }
        for op in batch.raw {
            state.apply_raw(op);
        }
        if !batch.mutations.is_empty() {
            state.last_commit_ts = state.last_commit_ts.max(batch.commit_ts);
        }
        Ok(())
    }

    fn expire_at(&self, key: &[u8], expire_at: Timestamp, commit_ts: Timestamp) -> Result<bool> {
        self.limits.check_key(key, "key")?;
        if commit_ts == 0 || commit_ts == u64::MAX {
            return Err(EngineError::InvalidArgument(format!(
                "commit_ts {commit_ts} is reserved"
            )));
        }
        let mut state = self.state();
        let Some(value) = state.visible(key, commit_ts).map(<[u8]>::to_vec) else {
            return Ok(false);
        };
        let version = Version {
            ts: commit_ts,
            kind: VersionKind::Value(value),
            expire_at,
        };
        state
            .keys
            .entry(key.to_vec())
            .or_default()
            .insert(commit_ts, version);
        state.last_commit_ts = state.last_commit_ts.max(commit_ts);
        Ok(true)
    }

    fn compact(&self, min_ts: Timestamp, scope: &CompactionScope) -> Result<CompactionStats> {
        let mut state = self.state();
        state.min_retained = state.min_retained.max(min_ts);
        let mut stats = CompactionStats::default();
        for (key, history) in state.keys.iter_mut() {
            if !scope.includes(key) {
                continue;
            }
            stats.keys_examined += 1;
            let before = history.len();
            let Some(anchor_ts) = history.range(..=min_ts).next_back().map(|(ts, _)| *ts) else {
                continue;
            };
            let mut kept = history.split_off(&anchor_ts);
            let hiding = kept
                .get(&anchor_ts)
                .is_some_and(|a| crate::hides_from(&a.kind, a.expire_at, min_ts));
            if hiding {
                kept.remove(&anchor_ts);
            }
            *history = kept;
            stats.versions_removed += (before - history.len()) as u64;
            if history.is_empty() {
                stats.keys_removed += 1;
            }
        }
        state.keys.retain(|_, history| !history.is_empty());
        Ok(stats)
    }

    fn snapshot(&self) -> Result<ModelSnapshot> {
        let state = self.state();
        let versions = state
            .keys
            .iter()
            .flat_map(|(key, history)| history.values().rev().map(|v| (key.clone(), v.clone())))
            .collect();
        Ok(ModelSnapshot {
            versions,
            last_commit_ts: state.last_commit_ts,
            min_retained_ts: state.min_retained,
        })
    }

    fn restore_with(&self, reader: &mut dyn Read, raw: &[RawOp]) -> Result<RestoreStats> {
        self.limits.check_raw_ops(raw)?;
        let mut stream = SnapshotReader::new(reader, self.limits)?;
        let mut keys: BTreeMap<Vec<u8>, History> = BTreeMap::new();
        while let Some((key, version)) = stream.next_version()? {
            let version = version.to_version();
            match keys.get_mut(key) {
                Some(history) => {
                    history.insert(version.ts, version);
                }
                None => {
                    keys.insert(key.to_vec(), BTreeMap::from([(version.ts, version)]));
                }
            }
        }
        let header = stream.header();
        let (key_count, versions) = stream.counts();
        let mut state = self.state();
        state.keys = keys;
        state.last_commit_ts = header.last_commit_ts;
        state.min_retained = header.min_retained_ts;
        for op in raw {
            state.apply_raw(op);
        }
        Ok(RestoreStats {
            keys: key_count,
            versions,
            bytes: stream.bytes_read(),
        })
    }
}
