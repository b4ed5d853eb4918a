//! The Raft log store over any engine: the entries in the node's shared log
//! ([`crate::shared_log`], the default), the group's own files ([`crate::log_file`]) or
//! the engine's raw keyspace ([`LogStorage::Engine`]); the vote and the purge marker
//! always in the raw keyspace.
//!
//! Durability: an append parks its entries and is reported flushed to openraft only
//! after a later synced write of them (the group commit of [`crate::log_sync`]: one
//! sync covers every append queued while the previous sync ran). A vote is written
//! synced before `save_vote` returns. A truncation first waits for queued appends to be
//! durable, then is synced. The committed id is not stored (see `save_committed`). A
//! purge is buffered in the raw keyspace, and synced before any log file is removed.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use elastickv_engine_api::{Durability, EngineError, MvccEngine, RawOp};
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, LogState, RaftLogReader};
use serde::de::DeserializeOwned;

use crate::layout::{decode, encode, Layout, Slot};
use crate::log_file::{FileLog, LogFiles};
use crate::log_sync::{LogSyncer, PendingLog};
use crate::shared_log::SharedLog;
use crate::types::StorageError;
use crate::{Entry, GroupId, LogId, LogStorage, TypeConfig, Vote};

/// Most entries read in one scan when openraft asks for an unbounded range.
const READ_BATCH: usize = 4096;

/// Counters of the log store, shared with the group's status.
#[derive(Debug, Default)]
pub(crate) struct LogCounters {
    /// Synced writes made for appends (group commits).
    pub(crate) append_syncs: AtomicU64,
    /// Entries appended.
    pub(crate) appended_entries: AtomicU64,
    /// Index of the last committed entry openraft reported (0 = none).
    pub(crate) committed_index: AtomicU64,
}

/// Where the entries are: see [`LogStorage`].
#[derive(Debug, Clone)]
pub(crate) enum Entries {
    /// The engine's raw keyspace, under the group's log keys.
    Engine,
    /// Segment files: the group's own, or the node's shared log.
    Files(Arc<dyn LogFiles>),
}

/// The log store of one group over engine `E`.
#[derive(Debug)]
pub struct LogStore<E> {
    engine: Arc<E>,
    layout: Layout,
    counters: Arc<LogCounters>,
    pending: PendingLog,
    syncer: LogSyncer,
    entries: Entries,
}

impl<E> Clone for LogStore<E> {
    fn clone(&self) -> Self {
        LogStore {
            engine: Arc::clone(&self.engine),
            layout: self.layout.clone(),
            counters: Arc::clone(&self.counters),
            pending: Arc::clone(&self.pending),
            syncer: self.syncer.clone(),
            entries: self.entries.clone(),
        }
    }
}

fn io_error(e: std::io::Error) -> EngineError {
    EngineError::Io(e)
}

pub(crate) fn storage_error(
    subject: ErrorSubject<TypeConfig>,
    verb: ErrorVerb,
    e: impl ToString,
) -> StorageError {
    std::io::Error::other(format!("failed to {verb} {subject:?}: {}", e.to_string()))
}

/// Runs blocking engine work off the async threads.
pub(crate) async fn blocking<T, F>(work: F) -> Result<T, EngineError>
where
    F: FnOnce() -> Result<T, EngineError> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(e) => Err(EngineError::Io(std::io::Error::other(format!(
            "engine task failed: {e}"
        )))),
    }
}

impl<E: MvccEngine> LogStore<E> {
    /// Opens the log store of `group`, keeping the entries as `storage` says: the
    /// group's own files in `log_dir`, the node's `shared` log, or the engine.
    ///
    /// Entries the group kept elsewhere before (an older version's log in the engine's
    /// raw keyspace, its own files in `log_dir`, or its part of the `shared` log after a
    /// change of `storage`) are moved in first: written and synced where they now
    /// belong, then removed from where they were.
    pub(crate) async fn open(
        engine: Arc<E>,
        group: GroupId,
        counters: Arc<LogCounters>,
        storage: LogStorage,
        log_dir: &Path,
        shared: Option<Arc<SharedLog>>,
    ) -> Result<Self, EngineError> {
        let layout = Layout::new(group);
        let entries = {
            let engine = Arc::clone(&engine);
            let layout = layout.clone();
            let dir = log_dir.to_path_buf();
            blocking(move || open_entries(engine.as_ref(), &layout, group, storage, &dir, shared))
                .await?
        };
        let pending = PendingLog::default();
        let syncer = LogSyncer::start(
            &engine,
            &layout,
            &entries,
            Arc::clone(&pending),
            Arc::clone(&counters),
        );
        Ok(LogStore {
            engine,
            layout,
            counters,
            pending,
            syncer,
            entries,
        })
    }

    fn read_slot<T: DeserializeOwned>(&self, slot: Slot) -> Result<Option<T>, StorageError> {
        let subject = || ErrorSubject::Store;
        match self.engine.raw_get(&self.layout.slot(slot)) {
            Ok(None) => Ok(None),
            Ok(Some(bytes)) => decode(&bytes)
                .map(Some)
                .map_err(|e| storage_error(subject(), ErrorVerb::Read, e)),
            Err(e) => Err(storage_error(subject(), ErrorVerb::Read, e)),
        }
    }

    async fn write(&self, ops: Vec<RawOp>, durability: Durability) -> Result<(), EngineError> {
        let engine = Arc::clone(&self.engine);
        blocking(move || engine.raw_write(&ops, durability)).await
    }

    fn decode_entry(bytes: &[u8]) -> Result<Entry, StorageError> {
        decode(bytes).map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Read, e))
    }

    fn last_entry_id(&self) -> Result<Option<LogId>, StorageError> {
        let parked = self.pending.lock().values().next_back().cloned();
        if let Some(bytes) = parked {
            return Ok(Some(Self::decode_entry(&bytes)?.log_id()));
        }
        let read_error = |e: EngineError| storage_error(ErrorSubject::Logs, ErrorVerb::Read, e);
        let last = match &self.entries {
            Entries::Engine => self
                .engine
                .raw_reverse_scan(&self.layout.log_range(0, None), 1)
                .map_err(read_error)?
                .pop()
                .map(|pair| pair.value),
            Entries::Files(files) => match files.bounds() {
                None => None,
                Some((_, last)) => files
                    .read(last, last + 1, 1)
                    .map_err(|e| read_error(io_error(e)))?
                    .pop(),
            },
        };
        match last {
            None => Ok(None),
            Some(bytes) => Ok(Some(Self::decode_entry(&bytes)?.log_id())),
        }
    }

    /// The stored (not parked) entries from `start` up to `end` (exclusive), at most
    /// `limit`.
    fn read_stored(
        &self,
        start: u64,
        end: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, StorageError> {
        let read_error = |e: EngineError| storage_error(ErrorSubject::Logs, ErrorVerb::Read, e);
        match &self.entries {
            Entries::Engine => Ok(self
                .engine
                .raw_scan(&self.layout.log_range(start, end), limit)
                .map_err(read_error)?
                .into_iter()
                .map(|p| p.value)
                .collect()),
            Entries::Files(files) => files
                .read(start, end.unwrap_or(u64::MAX), limit)
                .map_err(|e| read_error(io_error(e))),
        }
    }

    /// Reads the entries with index in `[start, end)`.
    fn read_entries(&self, start: u64, end: Option<u64>) -> Result<Vec<Entry>, StorageError> {
        let range = self.layout.log_range(start, end);
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let limit = match end {
            Some(end) => usize::try_from(end - start).unwrap_or(usize::MAX),
            None => READ_BATCH,
        };
        // Parked entries (not yet written) take precedence over what the engine holds.
        let parked: Vec<(u64, Arc<[u8]>)> = self
            .pending
            .lock()
            .range(start..end.unwrap_or(u64::MAX))
            .map(|(index, bytes)| (*index, Arc::clone(bytes)))
            .collect();
        let scan_end = parked.first().map(|(index, _)| *index).or(end);
        let mut found: Vec<Vec<u8>> = Vec::new();
        if scan_end.is_none_or(|e| e > start) {
            let scan_limit = match scan_end {
                Some(e) => usize::try_from(e - start).unwrap_or(usize::MAX).min(limit),
                None => limit,
            };
            found.extend(self.read_stored(start, scan_end, scan_limit)?);
        }
        found.extend(parked.into_iter().map(|(_, bytes)| bytes.to_vec()));
        let mut entries = Vec::with_capacity(found.len());
        let mut next: Option<u64> = None;
        for bytes in found {
            let entry = Self::decode_entry(&bytes)?;
            let index = entry.index();
            // A hole means a concurrent purge; return the contiguous part only.
            if next.is_some_and(|n| n != index) {
                break;
            }
            next = Some(index + 1);
            entries.push(entry);
            if entries.len() >= limit {
                break;
            }
        }
        Ok(entries)
    }
}

impl<E: MvccEngine> RaftLogReader<TypeConfig> for LogStore<E> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(i) => Some(i.saturating_add(1)),
            Bound::Excluded(i) => Some(*i),
            Bound::Unbounded => None,
        };
        self.read_entries(start, end)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.read_slot(Slot::Vote)
    }
}

impl<E: MvccEngine> RaftLogStorage<TypeConfig> for LogStore<E> {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.read_slot(Slot::Purged)?;
        let last_log_id = self.last_entry_id()?.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        let value =
            encode(vote).map_err(|e| storage_error(ErrorSubject::Vote, ErrorVerb::Write, e))?;
        let op = RawOp::put(self.layout.slot(Slot::Vote), value);
        self.write(vec![op], Durability::Sync)
            .await
            .map_err(|e| storage_error(ErrorSubject::Vote, ErrorVerb::Write, e))
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Only counted, not stored: openraft uses a stored committed id to re-apply
        // committed entries at start-up, and ours are re-applied from the log anyway
        // (the apply state says what was applied; the leader says what is committed).
        // Writing it cost an engine write and a blocking-pool round trip per commit.
        if let Some(committed) = committed {
            self.counters
                .committed_index
                .fetch_max(committed.index, Ordering::Relaxed);
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        // Written by versions before 2026-11-30 only; never ahead of what is committed.
        let committed: Option<LogId> = self.read_slot(Slot::Committed)?;
        if let Some(id) = committed {
            self.counters
                .committed_index
                .fetch_max(id.index, Ordering::Relaxed);
        }
        Ok(committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut parked = Vec::new();
        for entry in entries {
            let log_id = entry.log_id();
            let bytes = encode(&entry)
                .map_err(|e| storage_error(ErrorSubject::Log(log_id), ErrorVerb::Write, e))?;
            parked.push((log_id.index, Arc::<[u8]>::from(bytes)));
        }
        let count = parked.len() as u64;
        self.pending.lock().extend(parked);
        self.counters
            .appended_entries
            .fetch_add(count, Ordering::Relaxed);
        // Readable now; reported flushed after the next group commit.
        self.syncer.flushed_later(callback);
        Ok(())
    }

    async fn truncate_after(&mut self, last_kept: Option<LogId>) -> Result<(), StorageError> {
        // Entries from `from` on go.
        let from = last_kept.map_or(0, |id| id.index + 1);
        // Appends queued earlier are reported before the entries they hold are removed.
        self.syncer
            .barrier()
            .await
            .map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
        self.pending.lock().split_off(&from);
        let result = match &self.entries {
            Entries::Engine => {
                let op = RawOp::DeleteRange {
                    range: self.layout.log_range(from, None),
                };
                self.write(vec![op], Durability::Sync).await
            }
            Entries::Files(files) => {
                let files = Arc::clone(files);
                blocking(move || files.truncate(from).map_err(io_error)).await
            }
        };
        result.map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let value =
            encode(&log_id).map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
        let marker = RawOp::put(self.layout.slot(Slot::Purged), value);
        let result = match &self.entries {
            Entries::Engine => {
                let ops = vec![
                    marker,
                    RawOp::DeleteRange {
                        range: self
                            .layout
                            .log_range(0, Some(log_id.index.saturating_add(1))),
                    },
                ];
                self.write(ops, Durability::Buffered).await
            }
            Entries::Files(files) => {
                // The marker is durable before any segment goes: a crash in between
                // leaves segments that opening drops again, never a log that starts
                // after its purge point.
                let engine = Arc::clone(&self.engine);
                let files = Arc::clone(files);
                blocking(move || {
                    engine.raw_write(&[marker], Durability::Sync)?;
                    files.purge(log_id.index).map_err(io_error)
                })
                .await
            }
        };
        result.map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }
}

fn read_purged<E: MvccEngine>(engine: &E, layout: &Layout) -> Result<Option<u64>, EngineError> {
    match engine.raw_get(&layout.slot(Slot::Purged))? {
        None => Ok(None),
        Some(bytes) => decode::<LogId>(&bytes)
            .map(|p| Some(p.index))
            .map_err(|e| EngineError::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, e))),
    }
}

fn entry_index<E: MvccEngine>(bytes: &[u8]) -> Result<u64, EngineError> {
    LogStore::<E>::decode_entry(bytes)
        .map(|entry| entry.index())
        .map_err(|e| EngineError::Io(std::io::Error::other(e.to_string())))
}

/// An encoded entry and its index.
type Indexed = (u64, Arc<[u8]>);

/// Where a group's entries may be kept (see [`LogStorage`]).
enum Place {
    Engine,
    Own(Arc<dyn LogFiles>),
    Shared(Arc<dyn LogFiles>),
}

impl Place {
    /// Entries from `from` on, at most [`READ_BATCH`].
    fn read<E: MvccEngine>(
        &self,
        engine: &E,
        layout: &Layout,
        from: u64,
    ) -> Result<Vec<Indexed>, EngineError> {
        let raw = match self {
            Place::Engine => engine
                .raw_scan(&layout.log_range(from, None), READ_BATCH)?
                .into_iter()
                .map(|pair| pair.value)
                .collect(),
            Place::Own(files) | Place::Shared(files) => {
                files.read(from, u64::MAX, READ_BATCH).map_err(io_error)?
            }
        };
        raw.into_iter()
            .map(|bytes| Ok((entry_index::<E>(&bytes)?, Arc::<[u8]>::from(bytes))))
            .collect()
    }

    fn is_empty<E: MvccEngine>(&self, engine: &E, layout: &Layout) -> Result<bool, EngineError> {
        Ok(match self {
            Place::Engine => engine.raw_scan(&layout.log_range(0, None), 1)?.is_empty(),
            Place::Own(files) | Place::Shared(files) => files.bounds().is_none(),
        })
    }

    /// Appends `batch` durably; the first batch of a move replaces what is there.
    fn write<E: MvccEngine>(
        &self,
        engine: &E,
        layout: &Layout,
        batch: Vec<Indexed>,
        first: bool,
    ) -> Result<(), EngineError> {
        match self {
            Place::Engine => {
                let mut ops = Vec::with_capacity(batch.len() + 1);
                if first {
                    ops.push(RawOp::DeleteRange {
                        range: layout.log_range(0, None),
                    });
                }
                ops.extend(
                    batch
                        .iter()
                        .map(|(index, bytes)| RawOp::put(layout.log_key(*index), bytes.to_vec())),
                );
                engine.raw_write(&ops, Durability::Sync)
            }
            Place::Own(files) | Place::Shared(files) => {
                if first {
                    files.truncate(0).map_err(io_error)?;
                }
                files.append(&batch).map_err(io_error)
            }
        }
    }

    /// Removes every entry, durably and at once (a crash never leaves part of them).
    fn clear<E: MvccEngine>(
        &self,
        engine: &E,
        layout: &Layout,
        dir: &Path,
    ) -> Result<(), EngineError> {
        match self {
            Place::Engine => engine.raw_write(
                &[RawOp::DeleteRange {
                    range: layout.log_range(0, None),
                }],
                Durability::Sync,
            ),
            // Renamed away first: removing the files one by one could leave part of them.
            Place::Own(_) => {
                let moved = moved_dir(dir);
                std::fs::rename(dir, &moved).map_err(io_error)?;
                if let Some(parent) = dir.parent() {
                    std::fs::File::open(parent)
                        .and_then(|d| d.sync_all())
                        .map_err(io_error)?;
                }
                std::fs::remove_dir_all(&moved).map_err(io_error)
            }
            Place::Shared(files) => files.truncate(0).map_err(io_error),
        }
    }
}

/// Where a group's own log files go once their entries were moved elsewhere.
fn moved_dir(dir: &Path) -> std::path::PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(".moved");
    dir.with_file_name(name)
}

/// Opens the group's entries where `storage` keeps them, after moving in the entries
/// kept in another place (the group's own files, the shared log or the engine, looked
/// at in that order; a move interrupted by a crash is simply redone, since the source is
/// only cleared, at once, after the target is durable).
fn open_entries<E: MvccEngine>(
    engine: &E,
    layout: &Layout,
    group: GroupId,
    storage: LogStorage,
    dir: &Path,
    shared: Option<Arc<SharedLog>>,
) -> Result<Entries, EngineError> {
    let purged = read_purged(engine, layout)?;
    let moved = moved_dir(dir);
    if moved.is_dir() {
        std::fs::remove_dir_all(&moved).map_err(io_error)?;
    }
    let own = if storage == LogStorage::Files || dir.is_dir() {
        Some(Place::Own(Arc::new(
            FileLog::open(dir, purged).map_err(io_error)?,
        )))
    } else {
        None
    };
    let shared = match shared {
        Some(shared) => Some(Place::Shared(Arc::new(
            shared.attach(group, purged).map_err(io_error)?,
        ))),
        None if storage == LogStorage::Shared => {
            return Err(EngineError::Io(std::io::Error::other(format!(
                "group {group} keeps its log in the node's shared log, but none was given"
            ))))
        }
        None => None,
    };
    let (target, others): (Place, Vec<Place>) = match storage {
        LogStorage::Files => (
            own.expect("opened for LogStorage::Files"),
            shared.into_iter().chain([Place::Engine]).collect(),
        ),
        LogStorage::Shared => (
            shared.expect("checked above"),
            own.into_iter().chain([Place::Engine]).collect(),
        ),
        LogStorage::Engine => (Place::Engine, own.into_iter().chain(shared).collect()),
    };
    let mut source = None;
    for place in &others {
        if !place.is_empty(engine, layout)? {
            source = Some(place);
            break;
        }
    }
    if let Some(source) = source {
        let mut from = purged.map_or(0, |p| p + 1);
        let mut moved = 0u64;
        loop {
            let batch = source.read(engine, layout, from)?;
            let Some(&(last, _)) = batch.last() else {
                break;
            };
            let first = moved == 0;
            moved += batch.len() as u64;
            target.write(engine, layout, batch, first)?;
            from = last + 1;
        }
        tracing::info!(group, entries = moved, to = ?storage, "moved the raft log to where it is kept now");
    }
    for place in &others {
        if !place.is_empty(engine, layout)? {
            place.clear(engine, layout, dir)?;
        } else if matches!(place, Place::Own(_)) {
            std::fs::remove_dir_all(dir).map_err(io_error)?;
        }
    }
    Ok(match target {
        Place::Engine => Entries::Engine,
        Place::Own(files) | Place::Shared(files) => Entries::Files(files),
    })
}

#[cfg(test)]
mod tests {
    use crate::shared_log::SharedLog;
    use crate::types::LeaderId as CommittedLeaderId;
    use elastickv_engine_api::RawKeyspace;
    use elastickv_engine_redb::{open_redb, RedbOptions};
    use openraft::vote::RaftLeaderId;
    use openraft::EntryPayload;

    use super::*;

    fn entry(index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(2, 1), index),
            payload: EntryPayload::Blank,
        }
    }

    #[tokio::test]
    async fn a_log_kept_in_the_engine_moves_into_files_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine =
            Arc::new(open_redb(&dir.path().join("engine"), RedbOptions::default()).expect("open"));
        let layout = Layout::new(4);
        // As an older version left it: entries 5..=9 in the raw keyspace, purged to 4.
        let mut ops = vec![RawOp::put(
            layout.slot(Slot::Purged),
            encode(&LogId::new(CommittedLeaderId::new(1, 1), 4)).expect("encode"),
        )];
        ops.extend(
            (5..=9).map(|i| RawOp::put(layout.log_key(i), encode(&entry(i)).expect("encode"))),
        );
        engine.raw_write(&ops, Durability::Sync).expect("write");
        let log_dir = dir.path().join("log");
        for _ in 0..2 {
            let mut log = LogStore::open(
                Arc::clone(&engine),
                4,
                Arc::new(LogCounters::default()),
                LogStorage::Files,
                &log_dir,
                None,
            )
            .await
            .expect("open");
            let state = log.get_log_state().await.expect("state");
            assert_eq!(state.last_purged_log_id.map(|l| l.index), Some(4));
            assert_eq!(state.last_log_id, Some(entry(9).log_id));
            let read = log.try_get_log_entries(0..20).await.expect("read");
            assert_eq!(read, (5..=9).map(entry).collect::<Vec<_>>());
            assert!(
                engine
                    .raw_scan(&layout.log_range(0, None), 1)
                    .expect("scan")
                    .is_empty(),
                "the engine no longer holds log entries"
            );
        }
        assert!(log_dir.join("00000000000000000005.seg").exists());
    }

    #[tokio::test]
    async fn a_log_moves_when_its_storage_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine =
            Arc::new(open_redb(&dir.path().join("engine"), RedbOptions::default()).expect("open"));
        let layout = Layout::new(4);
        let own_dir = dir.path().join("log");
        let shared_dir = dir.path().join("shared");
        let open = |storage: LogStorage| {
            let engine = Arc::clone(&engine);
            let own_dir = own_dir.clone();
            let shared = SharedLog::open(&shared_dir).expect("shared log");
            async move {
                LogStore::open(
                    engine,
                    4,
                    Arc::new(LogCounters::default()),
                    storage,
                    &own_dir,
                    Some(shared),
                )
                .await
                .expect("open")
            }
        };
        // As an older version left it: entries 4..=9 in the raw keyspace, purged to 3.
        let mut ops = vec![RawOp::put(
            layout.slot(Slot::Purged),
            encode(&entry(3).log_id).expect("encode"),
        )];
        ops.extend(
            (4..=9).map(|i| RawOp::put(layout.log_key(i), encode(&entry(i)).expect("encode"))),
        );
        engine.raw_write(&ops, Durability::Sync).expect("write");
        let mut log = open(LogStorage::Engine).await;
        let order = [
            LogStorage::Files,
            LogStorage::Shared,
            LogStorage::Engine,
            LogStorage::Shared,
            LogStorage::Files,
            LogStorage::Files,
        ];
        for (step, storage) in order.into_iter().enumerate() {
            drop(log);
            log = open(storage).await;
            let state = log.get_log_state().await.expect("state");
            assert_eq!(
                state.last_purged_log_id,
                Some(entry(3).log_id),
                "step {step}"
            );
            assert_eq!(
                state.last_log_id,
                Some(entry(9).log_id),
                "step {step}: {storage:?}"
            );
            let read = log.try_get_log_entries(0..20).await.expect("read");
            assert_eq!(
                read,
                (4..=9).map(entry).collect::<Vec<_>>(),
                "step {step}: {storage:?}"
            );
            let in_engine = !engine
                .raw_scan(&layout.log_range(0, None), 1)
                .expect("scan")
                .is_empty();
            assert_eq!(in_engine, storage == LogStorage::Engine, "step {step}");
            assert_eq!(
                own_dir.is_dir(),
                storage == LogStorage::Files,
                "step {step}"
            );
            let shared = SharedLog::open(&shared_dir)
                .expect("shared log")
                .attach(4, Some(3))
                .expect("attach");
            assert_eq!(
                shared.bounds().is_some(),
                storage == LogStorage::Shared,
                "step {step}"
            );
        }
    }
}
