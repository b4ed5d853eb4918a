//! [`OrderedMvcc`]: the MVCC engine over any [`OrderedStore`].

use std::collections::HashSet;
use std::io::{Read, Write};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard};

use super::{apply_raw_op, Direction, OrderedRead, OrderedStore, OrderedWrite, Table, TableOp};
use crate::encoding::{
    decode_user_key, decode_value, encode_key_successor, encode_live_value, encode_user_key,
    encode_value, encode_version_key, max_user_key_for, split_version_key,
};
use crate::stream::{SnapshotReader, SnapshotWriter};
use crate::{
    check_read_ts, CompactionScope, CompactionStats, Durability, EngineError, EngineSnapshot,
    KeyRange, KvPair, Limits, MvccEngine, RawKeyspace, RawOp, RestoreStats, Result,
    RetentionController, SnapshotStats, Timestamp, Version, VersionKind, WriteBatch,
};

pub(super) const META_FORMAT: &[u8] = b"format";
pub(super) const META_LAST_COMMIT: &[u8] = b"last_commit_ts";
pub(super) const META_MIN_RETAINED: &[u8] = b"min_retained_ts";

/// The on-disk format version of the layout this module writes. A store written by a
/// newer format is refused at open.
pub const ORDERED_FORMAT_VERSION: u32 = 1;

/// How many versions a scan skips one by one before it seeks past them instead.
const SKIP_BEFORE_SEEK: usize = 8;

/// The MVCC engine over an [`OrderedStore`]: implements [`MvccEngine`] once for every
/// byte-ordered backend.
#[derive(Debug)]
pub struct OrderedMvcc<S: OrderedStore> {
    pub(super) store: S,
    pub(super) limits: Limits,
    /// Cached copies of the persisted counters; only changed by the holder of the
    /// store's write transaction, after its commit.
    pub(super) last_commit_ts: AtomicU64,
    pub(super) min_retained: AtomicU64,
    pub(super) compaction_batch: usize,
    /// Held shared by every writer from `begin_write` until its cached counters are
    /// updated, and exclusively by a restore until it has published its counters, so
    /// that a restore never interleaves with another writer's commit and counter update.
    pub(super) restore_gate: RwLock<()>,
}

impl<S: OrderedStore> OrderedMvcc<S> {
    /// Opens the engine over `store`: checks (or, for an empty store, writes) the
    /// format marker, and loads `last_commit_ts` and the watermark.
    ///
    /// Fails with [`EngineError::Incompatible`] if the store was written by another
    /// engine or by a newer format version.
    pub fn open(store: S) -> Result<Self> {
        let marker = format!("{}:{}", store.name(), ORDERED_FORMAT_VERSION).into_bytes();
        let view = store.read()?;
        let existing = view.get(Table::Meta, META_FORMAT)?;
        let last_commit_ts = read_u64(&view, META_LAST_COMMIT)?;
        let min_retained = read_u64(&view, META_MIN_RETAINED)?;
        drop(view);
        match existing {
            Some(found) if found == marker => {}
            Some(found) => {
                let found = String::from_utf8_lossy(&found).into_owned();
                let (engine, version) = found.rsplit_once(':').unwrap_or((&found, "?"));
                return Err(EngineError::Incompatible(if engine != store.name() {
                    format!(
                        "the store was written by the {engine} engine, not {}",
                        store.name()
                    )
                } else {
                    format!(
                        "the store has format version {version}; this build reads version {ORDERED_FORMAT_VERSION}"
                    )
                }));
            }
            None => {
                let mut txn = store.begin_write()?;
                txn.put(Table::Meta, META_FORMAT, &marker)?;
                txn.commit(Durability::Sync)?;
            }
        }
        let max_key =
            max_user_key_for(store.max_stored_key_size()).min(Limits::DEFAULT.max_key_size);
        let limits = Limits {
            max_key_size: max_key,
            max_value_size: (store.max_stored_value_size().saturating_sub(9))
                .min(Limits::DEFAULT.max_value_size),
            max_batch_entries: Limits::DEFAULT.max_batch_entries,
        };
        Ok(OrderedMvcc {
            store,
            limits,
            last_commit_ts: AtomicU64::new(last_commit_ts),
            min_retained: AtomicU64::new(min_retained),
            compaction_batch: 4096,
            restore_gate: RwLock::new(()),
        })
    }

    /// Overrides the limits (each must be at or below what the backend can store).
    pub fn with_limits(mut self, limits: Limits) -> Result<Self> {
        if limits.max_key_size > self.limits.max_key_size
            || limits.max_value_size > self.store.max_stored_value_size().saturating_sub(9)
        {
            return Err(EngineError::InvalidArgument(format!(
                "limits {limits:?} exceed what the {} backend can store",
                self.store.name()
            )));
        }
        self.limits = limits;
        Ok(self)
    }

    /// Sets how many versions one compaction batch examines (at least 1). Smaller
    /// batches hold the write transaction for less time.
    pub fn with_compaction_batch(mut self, versions: usize) -> Self {
        self.compaction_batch = versions.max(1);
        self
    }

    /// The backend store, for backend-specific operations and raw benchmarks.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Enters the gate as an ordinary writer (see `restore_gate`). The gate guards no
    /// data, so a poisoned gate is still usable.
    pub(super) fn writer_gate(&self) -> RwLockReadGuard<'_, ()> {
        self.restore_gate
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens a read view and then checks the watermark (in that order, so that a
    /// compaction that raised the watermark after the check cannot have removed
    /// anything this view sees).
    fn read_view(&self, ts: Timestamp) -> Result<S::Read<'_>> {
        let view = self.store.read()?;
        check_read_ts(ts, self.min_retained.load(Ordering::SeqCst))?;
        Ok(view)
    }

    fn check_range(&self, range: &KeyRange) -> Result<()> {
        self.limits.check_key_size(&range.start)?;
        if let Some(end) = &range.end {
            self.limits.check_key_size(end)?;
        }
        Ok(())
    }

    fn forward_scan(
        &self,
        view: &S::Read<'_>,
        range: &KeyRange,
        limit: usize,
        ts: Timestamp,
    ) -> Result<Vec<KvPair>> {
        let upper = range.end.as_deref().map(encode_user_key);
        let upper_bound = match &upper {
            Some(u) => Bound::Excluded(u.as_slice()),
            None => Bound::Unbounded,
        };
        let mut out = Vec::new();
        let mut lower = encode_user_key(&range.start);
        let mut current: Vec<u8> = Vec::new();
        let mut done_with_current = false;
        let mut skipped = 0usize;
        loop {
            let mut resume: Option<Vec<u8>> = None;
            view.scan(
                Table::Versions,
                Bound::Included(&lower),
                upper_bound,
                Direction::Forward,
                &mut |key, value| {
                    let (prefix, vts) = split_version_key(key)?;
                    if prefix != current.as_slice() {
                        current.clear();
                        current.extend_from_slice(prefix);
                        done_with_current = false;
                        skipped = 0;
                    }
                    if done_with_current || vts > ts {
                        skipped += 1;
                        if skipped > SKIP_BEFORE_SEEK {
                            resume = Some(if done_with_current {
                                successor_of_prefix(prefix)
                            } else {
                                version_key_of_prefix(prefix, ts)
                            });
                            return Ok(false);
                        }
                        return Ok(true);
                    }
                    done_with_current = true;
                    if let Some(visible) = decode_value(value)?.visible_at(ts) {
                        out.push(KvPair {
                            key: decode_user_key(prefix)?,
                            value: visible.to_vec(),
                        });
                        if out.len() >= limit {
                            return Ok(false);
                        }
                    }
                    Ok(true)
                },
            )?;
            match resume {
                Some(next) if out.len() < limit => {
                    lower = next;
                    skipped = 0;
                }
                _ => return Ok(out),
            }
        }
    }

    fn reverse_scan(
        &self,
        view: &S::Read<'_>,
        range: &KeyRange,
        limit: usize,
        ts: Timestamp,
    ) -> Result<Vec<KvPair>> {
        let lower = encode_user_key(&range.start);
        let upper = range.end.as_deref().map(encode_user_key);
        let upper_bound = match &upper {
            Some(u) => Bound::Excluded(u.as_slice()),
            None => Bound::Unbounded,
        };
        let mut out = Vec::new();
        // Going backwards, a key's versions arrive oldest first: the newest version at
        // or below `ts` is the last one seen before the key changes or a newer one
        // appears. Keep it as the candidate and emit it when the key is left.
        let mut current: Vec<u8> = Vec::new();
        let mut candidate: Option<Vec<u8>> = None;
        let emit = |prefix: &[u8], candidate: &mut Option<Vec<u8>>, out: &mut Vec<KvPair>| {
            if let Some(value) = candidate.take() {
                if let Some(visible) = decode_value(&value)?.visible_at(ts) {
                    out.push(KvPair {
                        key: decode_user_key(prefix)?,
                        value: visible.to_vec(),
                    });
                }
            }
            Ok::<_, EngineError>(out.len() >= limit)
        };
        let mut full = false;
        view.scan(
            Table::Versions,
            Bound::Included(&lower),
            upper_bound,
            Direction::Reverse,
            &mut |key, value| {
                let (prefix, vts) = split_version_key(key)?;
                if prefix != current.as_slice() {
                    if emit(&current, &mut candidate, &mut out)? {
                        full = true;
                        return Ok(false);
                    }
                    current.clear();
                    current.extend_from_slice(prefix);
                }
                if vts <= ts {
                    let slot = candidate.get_or_insert_with(Vec::new);
                    slot.clear();
                    slot.extend_from_slice(value);
                }
                Ok(true)
            },
        )?;
        if !full {
            emit(&current, &mut candidate, &mut out)?;
        }
        Ok(out)
    }

    /// The ts of `key`'s newest version as seen by `view`, without validation.
    pub(super) fn newest_ts_in<R: OrderedRead>(view: &R, key: &[u8]) -> Result<Option<Timestamp>> {
        let lower = encode_user_key(key);
        let upper = encode_key_successor(key);
        let mut found = None;
        view.scan(
            Table::Versions,
            Bound::Included(&lower),
            Bound::Excluded(&upper),
            Direction::Forward,
            &mut |k, _| {
                found = Some(split_version_key(k)?.1);
                Ok(false)
            },
        )?;
        Ok(found)
    }

    /// The encoded value of `key`'s newest version at or below `ts`, as seen by `view`.
    fn version_at<R: OrderedRead>(view: &R, key: &[u8], ts: Timestamp) -> Result<Option<Vec<u8>>> {
        let lower = encode_version_key(key, ts);
        let upper = encode_key_successor(key);
        let mut found = None;
        view.scan(
            Table::Versions,
            Bound::Included(&lower),
            Bound::Excluded(&upper),
            Direction::Forward,
            &mut |_, v| {
                found = Some(v.to_vec());
                Ok(false)
            },
        )?;
        Ok(found)
    }

    /// Fails with `WriteConflict` when the batch asks for a conflict check and one of its
    /// keys has a version newer than its start timestamp in `txn`.
    fn check_conflicts(txn: &S::Write<'_>, batch: &WriteBatch<'_>) -> Result<()> {
        let Some(start_ts) = batch.conflict_start_ts else {
            return Ok(());
        };
        let keys = batch
            .mutations
            .iter()
            .map(|m| m.key())
            .chain(batch.read_set.iter().map(Vec::as_slice));
        for key in keys {
            if Self::newest_ts_in(txn, key)?.is_some_and(|ts| ts > start_ts) {
                return Err(EngineError::WriteConflict {
                    key: key.to_vec(),
                    start_ts,
                });
            }
        }
        Ok(())
    }

    /// Commits a transaction of [`MvccEngine::write_group`], raising `last_commit_ts` to
    /// `highest` with it.
    fn commit_group(
        &self,
        mut txn: S::Write<'_>,
        highest: Option<Timestamp>,
        durability: Durability,
    ) -> Result<()> {
        let raised = match highest {
            Some(ts) => self.raise_last_commit(&mut txn, ts)?,
            None => None,
        };
        txn.commit(durability)?;
        if let Some(ts) = raised {
            self.last_commit_ts.fetch_max(ts, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Puts the batch's versions and raw operations into `txn` (validated already).
    fn put_batch(txn: &mut S::Write<'_>, batch: &WriteBatch<'_>) -> Result<()> {
        for mutation in batch.mutations {
            let (key, value) = match mutation {
                crate::Mutation::Put {
                    key,
                    value,
                    expire_at,
                } => (key, encode_live_value(value, *expire_at)),
                crate::Mutation::Delete { key } => (key, encode_value(&VersionKind::Tombstone, 0)),
            };
            txn.put(
                Table::Versions,
                &encode_version_key(key, batch.commit_ts),
                &value,
            )?;
        }
        for op in batch.raw {
            apply_raw_op(txn, Table::Raw, op)?;
        }
        Ok(())
    }

    /// Writes `last_commit_ts` through `txn` if `commit_ts` raises it; returns the new
    /// value to publish after the commit.
    pub(super) fn raise_last_commit(
        &self,
        txn: &mut S::Write<'_>,
        commit_ts: Timestamp,
    ) -> Result<Option<Timestamp>> {
        if commit_ts > self.last_commit_ts.load(Ordering::SeqCst) {
            txn.put(Table::Meta, META_LAST_COMMIT, &commit_ts.to_be_bytes())?;
            return Ok(Some(commit_ts));
        }
        Ok(None)
    }
}

fn successor_of_prefix(prefix: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + 9);
    out.extend_from_slice(prefix);
    out.extend_from_slice(&[0xff; 9]);
    out
}

fn version_key_of_prefix(prefix: &[u8], ts: Timestamp) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + 8);
    out.extend_from_slice(prefix);
    out.extend_from_slice(&(u64::MAX - ts).to_be_bytes());
    out
}

pub(super) fn read_u64<R: OrderedRead>(view: &R, key: &[u8]) -> Result<u64> {
    match view.get(Table::Meta, key)? {
        None => Ok(0),
        Some(bytes) => {
            let arr: [u8; 8] = bytes.as_slice().try_into().map_err(|_| {
                EngineError::corrupted(format!(
                    "metadata {} has {} bytes, expected 8",
                    String::from_utf8_lossy(key),
                    bytes.len()
                ))
            })?;
            Ok(u64::from_be_bytes(arr))
        }
    }
}

impl<S: OrderedStore> RetentionController for OrderedMvcc<S> {
    fn min_retained_ts(&self) -> Result<Timestamp> {
        Ok(self.min_retained.load(Ordering::SeqCst))
    }

    fn set_min_retained_ts(&self, ts: Timestamp) -> Result<()> {
        let _gate = self.writer_gate();
        let mut txn = self.store.begin_write()?;
        if ts <= self.min_retained.load(Ordering::SeqCst) {
            return Ok(());
        }
        txn.put(Table::Meta, META_MIN_RETAINED, &ts.to_be_bytes())?;
        txn.commit(Durability::Sync)?;
        self.min_retained.fetch_max(ts, Ordering::SeqCst);
        Ok(())
    }
}

impl<S: OrderedStore> RawKeyspace for OrderedMvcc<S> {
    fn raw_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.limits.check_key(key, "raw key")?;
        self.store.read()?.get(Table::Raw, key)
    }

    fn raw_scan(&self, range: &KeyRange, limit: usize) -> Result<Vec<KvPair>> {
        raw_scan(self, range, limit, Direction::Forward)
    }

    fn raw_reverse_scan(&self, range: &KeyRange, limit: usize) -> Result<Vec<KvPair>> {
        raw_scan(self, range, limit, Direction::Reverse)
    }

    fn raw_write(&self, ops: &[RawOp], durability: Durability) -> Result<()> {
        self.write(&WriteBatch::raw_only(ops).with_durability(durability))
    }
}

fn raw_scan<S: OrderedStore>(
    engine: &OrderedMvcc<S>,
    range: &KeyRange,
    limit: usize,
    direction: Direction,
) -> Result<Vec<KvPair>> {
    engine.check_range(range)?;
    let mut out = Vec::new();
    if limit == 0 || range.is_empty() {
        return Ok(out);
    }
    let (lower, upper) = range.bounds();
    engine
        .store
        .read()?
        .scan(Table::Raw, lower, upper, direction, &mut |k, v| {
            out.push(KvPair {
                key: k.to_vec(),
                value: v.to_vec(),
            });
            Ok(out.len() < limit)
        })?;
    Ok(out)
}

impl<S: OrderedStore> MvccEngine for OrderedMvcc<S> {
    type Snapshot = OrderedSnapshot<S::Snapshot>;

    fn name(&self) -> &'static str {
        self.store.name()
    }

    fn limits(&self) -> Limits {
        self.limits
    }

    fn get_at(&self, key: &[u8], ts: Timestamp) -> Result<Option<Vec<u8>>> {
        self.limits.check_key(key, "read key")?;
        let view = self.read_view(ts)?;
        let lower = encode_version_key(key, ts);
        let upper = encode_key_successor(key);
        let mut found = None;
        view.scan(
            Table::Versions,
            Bound::Included(&lower),
            Bound::Excluded(&upper),
            Direction::Forward,
            &mut |_, value| {
                found = decode_value(value)?.visible_at(ts).map(<[u8]>::to_vec);
                Ok(false)
            },
        )?;
        Ok(found)
    }

    fn scan_at(&self, range: &KeyRange, limit: usize, ts: Timestamp) -> Result<Vec<KvPair>> {
        self.check_range(range)?;
        if limit == 0 || range.is_empty() {
            return Ok(Vec::new());
        }
        let view = self.read_view(ts)?;
        self.forward_scan(&view, range, limit, ts)
    }

    fn reverse_scan_at(
        &self,
        range: &KeyRange,
        limit: usize,
        ts: Timestamp,
    ) -> Result<Vec<KvPair>> {
        self.check_range(range)?;
        if limit == 0 || range.is_empty() {
            return Ok(Vec::new());
        }
        let view = self.read_view(ts)?;
        self.reverse_scan(&view, range, limit, ts)
    }

    fn latest_commit_ts(&self, key: &[u8]) -> Result<Option<Timestamp>> {
        self.limits.check_key(key, "key")?;
        Self::newest_ts_in(&self.store.read()?, key)
    }

    fn last_commit_ts(&self) -> Result<Timestamp> {
        Ok(self.last_commit_ts.load(Ordering::SeqCst))
    }

    fn write(&self, batch: &WriteBatch<'_>) -> Result<()> {
        self.limits.check_batch(batch)?;
        let _gate = self.writer_gate();
        let mut txn = self.store.begin_write()?;
        Self::check_conflicts(&txn, batch)?;
        Self::put_batch(&mut txn, batch)?;
        let raised = if batch.mutations.is_empty() {
            None
        } else {
            self.raise_last_commit(&mut txn, batch.commit_ts)?
        };
        txn.commit(batch.durability)?;
        if let Some(ts) = raised {
            self.last_commit_ts.fetch_max(ts, Ordering::SeqCst);
        }
        Ok(())
    }

    fn write_group(&self, batches: &[WriteBatch<'_>]) -> Result<Vec<Result<()>>> {
        if batches.len() < 2 {
            return Ok(batches.iter().map(|batch| self.write(batch)).collect());
        }
        // One durability for every commit of the group: the strongest asked for.
        let durability = if batches.iter().any(|b| b.durability == Durability::Sync) {
            Durability::Sync
        } else {
            Durability::Buffered
        };
        let gate = self.writer_gate();
        let mut txn = self.store.begin_write()?;
        // The batches in `txn`, from `first` on; the keys they write; their highest ts.
        let mut first = 0;
        let mut written: HashSet<&[u8]> = HashSet::new();
        let mut highest = None::<Timestamp>;
        let mut outcomes = Vec::with_capacity(batches.len());
        for (index, batch) in batches.iter().enumerate() {
            // Refusals are decided before the batch writes anything, so refusing one
            // leaves the transaction as the earlier batches made it.
            if let Err(refusal) = self.limits.check_batch(batch) {
                outcomes.push(Err(refusal));
                continue;
            }
            // Not every store's write transaction reads its own writes (RocksDB's does
            // not): a check of a key an earlier batch of this transaction wrote first
            // commits what is there, so that the check sees it.
            let checks_written = batch.conflict_start_ts.is_some()
                && batch
                    .mutations
                    .iter()
                    .map(|m| m.key())
                    .chain(batch.read_set.iter().map(Vec::as_slice))
                    .any(|key| written.contains(key));
            if checks_written {
                self.commit_group(txn, highest, durability)?;
                txn = self.store.begin_write()?;
                first = index;
                written.clear();
                highest = None;
            }
            let failed = match Self::check_conflicts(&txn, batch) {
                Ok(()) => Self::put_batch(&mut txn, batch).is_err(),
                Err(conflict @ EngineError::WriteConflict { .. }) => {
                    outcomes.push(Err(conflict));
                    continue;
                }
                Err(_) => true,
            };
            if failed {
                // A read or write failed, and this batch may be half in the transaction:
                // drop the transaction (nothing of it was written) and write its batches
                // one at a time, so each error lands on its own batch.
                drop(txn);
                drop(gate);
                outcomes.truncate(first);
                outcomes.extend(batches[first..].iter().map(|batch| self.write(batch)));
                return Ok(outcomes);
            }
            written.extend(batch.mutations.iter().map(|m| m.key()));
            if !batch.mutations.is_empty() {
                highest = highest.max(Some(batch.commit_ts));
            }
            outcomes.push(Ok(()));
        }
        self.commit_group(txn, highest, durability)?;
        Ok(outcomes)
    }

    fn expire_at(&self, key: &[u8], expire_at: Timestamp, commit_ts: Timestamp) -> Result<bool> {
        self.limits.check_key(key, "key")?;
        if commit_ts == 0 || commit_ts == u64::MAX {
            return Err(EngineError::InvalidArgument(format!(
                "commit_ts {commit_ts} is reserved"
            )));
        }
        let _gate = self.writer_gate();
        let mut txn = self.store.begin_write()?;
        let Some(stored) = Self::version_at(&txn, key, commit_ts)? else {
            return Ok(false);
        };
        let Some(value) = decode_value(&stored)?
            .visible_at(commit_ts)
            .map(<[u8]>::to_vec)
        else {
            return Ok(false);
        };
        txn.put(
            Table::Versions,
            &encode_version_key(key, commit_ts),
            &encode_live_value(&value, expire_at),
        )?;
        let raised = self.raise_last_commit(&mut txn, commit_ts)?;
        txn.commit(Durability::Sync)?;
        if let Some(ts) = raised {
            self.last_commit_ts.fetch_max(ts, Ordering::SeqCst);
        }
        Ok(true)
    }

    fn compact(&self, min_ts: Timestamp, scope: &CompactionScope) -> Result<CompactionStats> {
        self.compact_versions(min_ts, scope)
    }

    fn snapshot(&self) -> Result<Self::Snapshot> {
        let snap = self.store.snapshot()?;
        let last_commit_ts = read_u64(&snap, META_LAST_COMMIT)?;
        let min_retained_ts = read_u64(&snap, META_MIN_RETAINED)?;
        Ok(OrderedSnapshot {
            snap,
            last_commit_ts,
            min_retained_ts,
        })
    }

    fn restore_with(&self, reader: &mut dyn Read, raw: &[RawOp]) -> Result<RestoreStats> {
        self.limits.check_raw_ops(raw)?;
        let mut stream = SnapshotReader::new(reader, self.limits)?;
        let header = stream.header();
        let mut finish = vec![
            TableOp {
                table: Table::Meta,
                op: RawOp::put(META_LAST_COMMIT, header.last_commit_ts.to_be_bytes()),
            },
            TableOp {
                table: Table::Meta,
                op: RawOp::put(META_MIN_RETAINED, header.min_retained_ts.to_be_bytes()),
            },
        ];
        finish.extend(raw.iter().map(|op| TableOp {
            table: Table::Raw,
            op: op.clone(),
        }));
        let mut key_buf = Vec::new();
        let _exclusive = self
            .restore_gate
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        self.store.replace_versions(
            &mut |sink| {
                while let Some((key, version)) = stream.next_version()? {
                    key_buf.clear();
                    crate::encoding::encode_user_key_into(key, &mut key_buf);
                    key_buf.extend_from_slice(&(u64::MAX - version.ts).to_be_bytes());
                    let value = match version.value {
                        Some(v) => encode_live_value(v, version.expire_at),
                        None => encode_value(&VersionKind::Tombstone, 0),
                    };
                    sink(&key_buf, &value)?;
                }
                Ok(())
            },
            &finish,
        )?;
        // Restore replaces the content, so both counters may move either way.
        self.last_commit_ts
            .store(header.last_commit_ts, Ordering::SeqCst);
        self.min_retained
            .store(header.min_retained_ts, Ordering::SeqCst);
        let (keys, versions) = stream.counts();
        Ok(RestoreStats {
            keys,
            versions,
            bytes: stream.bytes_read(),
        })
    }
}

/// The point-in-time image of an [`OrderedMvcc`] engine: the backend's native snapshot
/// plus the counters it held.
#[derive(Debug)]
pub struct OrderedSnapshot<T> {
    snap: T,
    last_commit_ts: Timestamp,
    min_retained_ts: Timestamp,
}

/// Receives each stored version of a snapshot: user key, ts, decoded value.
type StoredVersionVisitor<'v> =
    dyn FnMut(&[u8], Timestamp, crate::encoding::StoredValue<'_>) -> Result<bool> + 'v;

impl<T: OrderedRead> OrderedSnapshot<T> {
    fn scan_versions(&self, visit: &mut StoredVersionVisitor<'_>) -> Result<()> {
        let mut prefix_buf: Vec<u8> = Vec::new();
        let mut key_buf: Vec<u8> = Vec::new();
        self.snap.scan(
            Table::Versions,
            Bound::Unbounded,
            Bound::Unbounded,
            Direction::Forward,
            &mut |k, v| {
                let (prefix, ts) = split_version_key(k)?;
                if prefix != prefix_buf.as_slice() {
                    key_buf = decode_user_key(prefix)?;
                    prefix_buf.clear();
                    prefix_buf.extend_from_slice(prefix);
                }
                visit(&key_buf, ts, decode_value(v)?)
            },
        )
    }
}

impl<T: OrderedRead + Send + 'static> EngineSnapshot for OrderedSnapshot<T> {
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
        self.scan_versions(&mut |key, ts, stored| {
            let version = Version {
                ts,
                kind: stored.to_kind(),
                expire_at: stored.expire_at,
            };
            visit(key, &version)
        })
    }

    fn write_to(&self, out: &mut dyn Write) -> Result<SnapshotStats> {
        let mut writer = SnapshotWriter::new(out, self.last_commit_ts, self.min_retained_ts)?;
        self.scan_versions(&mut |key, ts, stored| {
            writer.push_parts(key, ts, stored.value, stored.expire_at)?;
            Ok(true)
        })?;
        writer.finish()
    }
}
