//! The engine traits: [`MvccEngine`] (with [`RetentionController`] and [`RawKeyspace`])
//! and [`EngineSnapshot`].

use std::io::{Read, Write};

use crate::{
    Durability, EngineError, KeyRange, KvPair, Limits, Mutation, RawOp, Result, Timestamp, Version,
    WriteBatch,
};

/// The retention watermark (ENGINE.md section 3): the oldest timestamp still readable.
pub trait RetentionController {
    /// The current watermark; `0` means nothing was ever compacted.
    ///
    /// A read at `ts` fails with [`EngineError::ReadTsCompacted`] when
    /// `min_retained != 0 && ts != 0 && ts != u64::MAX && ts < min_retained`.
    fn min_retained_ts(&self) -> Result<Timestamp>;

    /// Raises the watermark to `ts`, durably. Setting a value at or below the current
    /// watermark is a no-op. The watermark survives restart.
    fn set_min_retained_ts(&self, ts: Timestamp) -> Result<()>;
}

/// The raw ordered keyspace (ENGINE.md section 8): plain bytes to bytes, byte-ordered,
/// separate from the MVCC data. The Raft log, vote and apply state live here.
///
/// Raw keys must be non-empty and obey the engine's [`Limits`]. Raw operations can also
/// be made atomically with MVCC mutations through [`WriteBatch::with_raw`].
pub trait RawKeyspace {
    /// The value of `key`, if present.
    fn raw_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Up to `limit` pairs with keys in `range`, ascending. `limit == 0` returns nothing.
    fn raw_scan(&self, range: &KeyRange, limit: usize) -> Result<Vec<KvPair>>;

    /// Up to `limit` pairs with keys in `range`, descending (largest first).
    fn raw_reverse_scan(&self, range: &KeyRange, limit: usize) -> Result<Vec<KvPair>>;

    /// Applies `ops` in order, atomically, with the given durability.
    fn raw_write(&self, ops: &[RawOp], durability: Durability) -> Result<()>;
}

/// Which keys a compaction may touch. The engine does not know the transaction layer's
/// key layout; the caller says which ranges hold data to collect.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CompactionScope {
    /// Every key.
    #[default]
    All,
    /// Only keys inside one of these ranges.
    Only(Vec<KeyRange>),
    /// Every key except those inside one of these ranges.
    AllExcept(Vec<KeyRange>),
}

impl CompactionScope {
    /// True when compaction may remove versions of `key`.
    pub fn includes(&self, key: &[u8]) -> bool {
        match self {
            CompactionScope::All => true,
            CompactionScope::Only(ranges) => ranges.iter().any(|r| r.contains(key)),
            CompactionScope::AllExcept(ranges) => !ranges.iter().any(|r| r.contains(key)),
        }
    }
}

/// What a compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CompactionStats {
    /// Distinct keys examined.
    pub keys_examined: u64,
    /// Versions removed.
    pub versions_removed: u64,
    /// Keys that no longer have any version.
    pub keys_removed: u64,
}

/// What a restore loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RestoreStats {
    /// Distinct keys restored.
    pub keys: u64,
    /// Versions restored.
    pub versions: u64,
    /// Stream bytes read.
    pub bytes: u64,
}

/// What a snapshot stream held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SnapshotStats {
    /// Distinct keys written.
    pub keys: u64,
    /// Versions written.
    pub versions: u64,
    /// Stream bytes written.
    pub bytes: u64,
}

/// A consistent point-in-time image of an engine's MVCC data, cheap to take and
/// streamable later while writers continue (ENGINE.md section 7).
pub trait EngineSnapshot: Send + 'static {
    /// `last_commit_ts` of the store when the snapshot was taken.
    fn last_commit_ts(&self) -> Timestamp;

    /// The retention watermark when the snapshot was taken.
    fn min_retained_ts(&self) -> Timestamp;

    /// Visits every version in the image, keys ascending and, within a key, timestamps
    /// descending. The visitor returns `false` to stop early.
    fn for_each_version(
        &self,
        visit: &mut dyn FnMut(&[u8], &Version) -> Result<bool>,
    ) -> Result<()>;

    /// Streams the image in the portable format (see [`crate::stream`]). Memory use is
    /// bounded by one key's versions, whatever the store's size.
    fn write_to(&self, out: &mut dyn Write) -> Result<SnapshotStats> {
        let mut writer =
            crate::stream::SnapshotWriter::new(out, self.last_commit_ts(), self.min_retained_ts())?;
        self.for_each_version(&mut |key, version| {
            writer.push(key, version)?;
            Ok(true)
        })?;
        writer.finish()
    }
}

/// An MVCC key-value engine: the contract every storage backend implements
/// (ENGINE.md). See the crate documentation for the rules every method follows.
///
/// All methods take `&self`: engines are shared between threads. Readers never block
/// each other and see one consistent state per call; writers are serialized where the
/// backend requires it. Every method that can fail returns [`EngineError`].
pub trait MvccEngine: RetentionController + RawKeyspace + Send + Sync + 'static {
    /// The engine's point-in-time image.
    type Snapshot: EngineSnapshot;

    /// A short, stable name ("mem", "redb", "lmdb", "rocks", ...), used in errors,
    /// metrics and data-directory markers.
    fn name(&self) -> &'static str;

    /// The sizes this engine accepts.
    fn limits(&self) -> Limits;

    /// The value of `key` visible at `ts` (ENGINE.md section 2), or `None`.
    ///
    /// Fails with [`EngineError::ReadTsCompacted`] below the retention watermark and
    /// [`EngineError::EmptyKey`] / [`EngineError::KeyTooLarge`] for a bad key.
    fn get_at(&self, key: &[u8], ts: Timestamp) -> Result<Option<Vec<u8>>>;

    /// Whether `key` has a visible value at `ts`; the same rule and errors as `get_at`.
    fn exists_at(&self, key: &[u8], ts: Timestamp) -> Result<bool> {
        Ok(self.get_at(key, ts)?.is_some())
    }

    /// Up to `limit` visible pairs with keys in `range`, ascending, one per key, read
    /// from one consistent state. Hidden keys do not count toward the limit;
    /// `limit == 0` and empty or inverted ranges return nothing.
    fn scan_at(&self, range: &KeyRange, limit: usize, ts: Timestamp) -> Result<Vec<KvPair>>;

    /// Like `scan_at` over the same key set, but descending: the largest keys first.
    fn reverse_scan_at(&self, range: &KeyRange, limit: usize, ts: Timestamp)
        -> Result<Vec<KvPair>>;

    /// The timestamp of the newest version of `key` of any kind (tombstones and expired
    /// values count), or `None`. Not subject to the retention watermark.
    fn latest_commit_ts(&self, key: &[u8]) -> Result<Option<Timestamp>>;

    /// The highest commit timestamp ever written to this store (0 for a new store).
    /// Monotonic and persistent.
    fn last_commit_ts(&self) -> Result<Timestamp>;

    /// Applies a [`WriteBatch`] atomically: validation of every entry first, then the
    /// conflict check (if requested), then every mutation at `commit_ts`, the raw
    /// operations, and `last_commit_ts = max(last_commit_ts, commit_ts)`, all in one
    /// atomic write with the batch's durability. On any error nothing is written.
    /// Check and write are atomic with respect to every other writer.
    fn write(&self, batch: &WriteBatch<'_>) -> Result<()>;

    /// Applies `batches` in order with the outcome of calling [`write`](Self::write) on
    /// each in turn: each is validated and conflict-checked on its own (against the
    /// store as the earlier batches of the group left it), and a refused batch writes
    /// nothing and has its error in its slot, while the others go on. The engine may
    /// commit the accepted batches together, in one atomic write with the strongest
    /// durability among them: that is the point (a Raft group applies many commands at
    /// once, and one commit costs far less than one per command).
    ///
    /// `Err` is a failure of the call as a whole (I/O, a closed engine), after which any
    /// prefix of the batches may have been written. The default calls `write` once per
    /// batch and reports every error, failures included, in its slot; callers therefore
    /// look for failures in the slots as well.
    fn write_group(&self, batches: &[WriteBatch<'_>]) -> Result<Vec<Result<()>>> {
        Ok(batches.iter().map(|batch| self.write(batch)).collect())
    }

    /// Writes a live value at `commit_ts` (synced, no conflict check).
    fn put_at(
        &self,
        key: &[u8],
        value: &[u8],
        commit_ts: Timestamp,
        expire_at: Timestamp,
    ) -> Result<()> {
        let mutation = [Mutation::Put {
            key: key.to_vec(),
            value: value.to_vec(),
            expire_at,
        }];
        self.write(&WriteBatch::new(&mutation, commit_ts))
    }

    /// Writes a tombstone at `commit_ts` (synced, no conflict check).
    fn delete_at(&self, key: &[u8], commit_ts: Timestamp) -> Result<()> {
        let mutation = [Mutation::Delete { key: key.to_vec() }];
        self.write(&WriteBatch::new(&mutation, commit_ts))
    }

    /// Re-writes the value visible at `commit_ts` as a new version at `commit_ts` with
    /// TTL `expire_at` (`0` clears it), atomically. Returns `false`, writing nothing,
    /// when no value is visible at `commit_ts`.
    fn expire_at(&self, key: &[u8], expire_at: Timestamp, commit_ts: Timestamp) -> Result<bool>;

    /// The transactional primitive (ENGINE.md section 5): fails with
    /// [`EngineError::WriteConflict`] naming the first mutated key that has a version
    /// newer than `start_ts`; otherwise writes every mutation at `commit_ts`. Synced.
    fn apply_mutations(
        &self,
        mutations: &[Mutation],
        start_ts: Timestamp,
        commit_ts: Timestamp,
    ) -> Result<()> {
        self.write(&WriteBatch::new(mutations, commit_ts).with_conflict_check(start_ts))
    }

    /// MVCC garbage collection (ENGINE.md section 6). For every key in `scope`, keeps
    /// the versions with `ts > min_ts` and the newest version with `ts <= min_ts` (the
    /// anchor); removes older ones, and removes the anchor too when it hides the key
    /// from every read at or above `min_ts` (a tombstone, or expired at `min_ts`).
    ///
    /// The watermark is raised to `min_ts` durably before anything is removed, so an
    /// interrupted compaction never changes a read at or above the watermark. Works in
    /// bounded batches so readers and writers are not blocked for the whole run.
    fn compact(&self, min_ts: Timestamp, scope: &CompactionScope) -> Result<CompactionStats>;

    /// Takes a point-in-time image of the MVCC data. Cheap: no copy of the data.
    fn snapshot(&self) -> Result<Self::Snapshot>;

    /// Replaces the whole MVCC content (data, `last_commit_ts`, watermark) with the
    /// stream read from `reader`, and applies `raw` in the same atomic step (for example
    /// the Raft state machine's applied log id). The raw keyspace is otherwise kept.
    ///
    /// A corrupt, truncated or over-limit stream fails with [`EngineError::Corrupted`]
    /// (or the limit's error) and leaves the previous content intact. Memory use is
    /// bounded, independent of the stream's size.
    fn restore_with(&self, reader: &mut dyn Read, raw: &[RawOp]) -> Result<RestoreStats>;

    /// [`MvccEngine::restore_with`] without raw operations.
    fn restore(&self, reader: &mut dyn Read) -> Result<RestoreStats> {
        self.restore_with(reader, &[])
    }
}

/// Fails with [`EngineError::ReadTsCompacted`] when a read at `ts` is below the
/// watermark `min_retained` (ENGINE.md section 3).
pub fn check_read_ts(ts: Timestamp, min_retained: Timestamp) -> Result<()> {
    if min_retained != 0 && ts != 0 && ts != u64::MAX && ts < min_retained {
        return Err(EngineError::ReadTsCompacted {
            read_ts: ts,
            min_retained,
        });
    }
    Ok(())
}
