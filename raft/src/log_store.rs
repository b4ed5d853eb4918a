//! The Raft log store over any engine: the entries in their own files
//! ([`crate::log_file`], the default) or in the engine's raw keyspace
//! ([`LogStorage::Engine`]); the vote, the committed id and the purge marker always in
//! the raw keyspace.
//!
//! Durability: an append parks its entries and is reported flushed to openraft only
//! after a later synced write of them (the group commit of [`crate::log_sync`]: one
//! sync covers every append queued while the previous sync ran). A vote is written
//! synced before `save_vote` returns. A truncation first waits for queued appends to be
//! durable, then is synced. The committed id is buffered (losing it in a crash only
//! means re-doing work); a purge is buffered in the raw keyspace, and synced before any
//! log file is removed.

// openraft's storage traits fix the error type (`StorageError`, a large enum); the
// helpers here return it unchanged rather than boxing and unboxing it.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use elastickv_engine_api::{Durability, EngineError, MvccEngine, RawOp};
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, LogState, RaftLogId, RaftLogReader};
use serde::de::DeserializeOwned;

use crate::layout::{decode, encode, Layout, Slot};
use crate::log_file::FileLog;
use crate::log_sync::{LogSyncer, PendingLog};
use crate::{Entry, GroupId, LogId, LogStorage, StorageError, TypeConfig, Vote};

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
    /// Segment files.
    Files(Arc<FileLog>),
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
    subject: ErrorSubject<u64>,
    verb: ErrorVerb,
    e: impl ToString,
) -> StorageError {
    let e = std::io::Error::other(e.to_string());
    StorageError::from_io_error(subject, verb, e)
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
    /// Opens the log store of `group`, keeping the entries as `storage` says (files in
    /// `log_dir`), and starts its group-commit task (call inside a Tokio runtime).
    ///
    /// With [`LogStorage::Files`], entries an older version left in the engine's raw
    /// keyspace are moved into the files first (synced, then deleted from the engine).
    pub(crate) async fn open(
        engine: Arc<E>,
        group: GroupId,
        counters: Arc<LogCounters>,
        storage: LogStorage,
        log_dir: &Path,
    ) -> Result<Self, EngineError> {
        let layout = Layout::new(group);
        let entries = match storage {
            LogStorage::Engine => Entries::Engine,
            LogStorage::Files => {
                let engine = Arc::clone(&engine);
                let layout = layout.clone();
                let dir = log_dir.to_path_buf();
                Entries::Files(blocking(move || open_files(engine.as_ref(), &layout, &dir)).await?)
            }
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
            return Ok(Some(*Self::decode_entry(&bytes)?.get_log_id()));
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
            Some(bytes) => Ok(Some(*Self::decode_entry(&bytes)?.get_log_id())),
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
            let index = entry.get_log_id().index;
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

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.read_slot(Slot::Vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let Some(committed) = committed else {
            return Ok(());
        };
        self.counters
            .committed_index
            .fetch_max(committed.index, Ordering::Relaxed);
        let value = encode(&committed)
            .map_err(|e| storage_error(ErrorSubject::Store, ErrorVerb::Write, e))?;
        let op = RawOp::put(self.layout.slot(Slot::Committed), value);
        self.write(vec![op], Durability::Buffered)
            .await
            .map_err(|e| storage_error(ErrorSubject::Store, ErrorVerb::Write, e))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
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
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut parked = Vec::new();
        for entry in entries {
            let log_id = *entry.get_log_id();
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

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        // Appends queued earlier are reported before the entries they hold are removed.
        self.syncer
            .barrier()
            .await
            .map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
        self.pending.lock().split_off(&log_id.index);
        let result = match &self.entries {
            Entries::Engine => {
                let op = RawOp::DeleteRange {
                    range: self.layout.log_range(log_id.index, None),
                };
                self.write(vec![op], Durability::Sync).await
            }
            Entries::Files(files) => {
                let files = Arc::clone(files);
                blocking(move || files.truncate(log_id.index).map_err(io_error)).await
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

/// Opens the log files in `dir` (dropping what the purge marker covers) and moves into
/// them any entries an older version kept in the engine's raw keyspace.
fn open_files<E: MvccEngine>(
    engine: &E,
    layout: &Layout,
    dir: &Path,
) -> Result<Arc<FileLog>, EngineError> {
    let purged: Option<LogId> = match engine.raw_get(&layout.slot(Slot::Purged))? {
        None => None,
        Some(bytes) => Some(decode(&bytes).map_err(|e| {
            EngineError::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        })?),
    };
    let files = FileLog::open(dir, purged.map(|p| p.index)).map_err(io_error)?;
    let in_engine = layout.log_range(0, None);
    let mut moved = 0u64;
    loop {
        let from = files.bounds().map_or(0, |(_, last)| last + 1);
        let pairs = engine.raw_scan(&layout.log_range(from, None), READ_BATCH)?;
        if pairs.is_empty() {
            break;
        }
        let mut batch = Vec::with_capacity(pairs.len());
        for pair in pairs {
            let index = LogStore::<E>::decode_entry(&pair.value)
                .map_err(|e| EngineError::Io(std::io::Error::other(e.to_string())))?
                .get_log_id()
                .index;
            batch.push((index, Arc::<[u8]>::from(pair.value)));
        }
        moved += batch.len() as u64;
        files.append(&batch).map_err(io_error)?;
    }
    if !engine.raw_scan(&in_engine, 1)?.is_empty() {
        engine.raw_write(&[RawOp::DeleteRange { range: in_engine }], Durability::Sync)?;
        tracing::info!(
            entries = moved,
            dir = %dir.display(),
            "moved the raft log from the engine into its own files"
        );
    }
    Ok(Arc::new(files))
}

#[cfg(test)]
mod tests {
    use elastickv_engine_api::RawKeyspace;
    use elastickv_engine_redb::{open_redb, RedbOptions};
    use openraft::{CommittedLeaderId, EntryPayload};

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
}
