//! The Raft log store, written once over any engine's raw keyspace.
//!
//! Durability: an append writes its entries in one buffered engine write and is
//! reported flushed to openraft only after a later synced write (the group commit of
//! [`crate::log_sync`]: one sync covers every append queued while the previous sync
//! ran). A vote is written synced before `save_vote` returns. A truncation first waits
//! for queued appends to be durable, then is synced. The committed id and purges are
//! buffered (losing them in a crash only means re-doing work).

// openraft's storage traits fix the error type (`StorageError`, a large enum); the
// helpers here return it unchanged rather than boxing and unboxing it.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use elastickv_engine_api::{Durability, EngineError, MvccEngine, RawOp};
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, LogState, RaftLogId, RaftLogReader};
use serde::de::DeserializeOwned;

use crate::layout::{decode, encode, Layout, Slot};
use crate::log_sync::{LogSyncer, PendingLog};
use crate::{Entry, GroupId, LogId, StorageError, TypeConfig, Vote};

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

/// The log store of one group over engine `E`.
#[derive(Debug)]
pub struct LogStore<E> {
    engine: Arc<E>,
    layout: Layout,
    counters: Arc<LogCounters>,
    pending: PendingLog,
    syncer: LogSyncer,
}

impl<E> Clone for LogStore<E> {
    fn clone(&self) -> Self {
        LogStore {
            engine: Arc::clone(&self.engine),
            layout: self.layout.clone(),
            counters: Arc::clone(&self.counters),
            pending: Arc::clone(&self.pending),
            syncer: self.syncer.clone(),
        }
    }
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
    /// The log store of `group`; starts its group-commit task (call inside a Tokio
    /// runtime).
    pub(crate) fn new(engine: Arc<E>, group: GroupId, counters: Arc<LogCounters>) -> Self {
        let layout = Layout::new(group);
        let pending = PendingLog::default();
        let syncer = LogSyncer::start(
            &engine,
            &layout,
            Arc::clone(&pending),
            Arc::clone(&counters),
        );
        LogStore {
            engine,
            layout,
            counters,
            pending,
            syncer,
        }
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
        let pairs = self
            .engine
            .raw_reverse_scan(&self.layout.log_range(0, None), 1)
            .map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Read, e))?;
        match pairs.first() {
            None => Ok(None),
            Some(pair) => Ok(Some(*Self::decode_entry(&pair.value)?.get_log_id())),
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
            let pairs = self
                .engine
                .raw_scan(&self.layout.log_range(start, scan_end), scan_limit)
                .map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Read, e))?;
            found.extend(pairs.into_iter().map(|p| p.value));
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
        let op = RawOp::DeleteRange {
            range: self.layout.log_range(log_id.index, None),
        };
        self.write(vec![op], Durability::Sync)
            .await
            .map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let value =
            encode(&log_id).map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
        let ops = vec![
            RawOp::put(self.layout.slot(Slot::Purged), value),
            RawOp::DeleteRange {
                range: self
                    .layout
                    .log_range(0, Some(log_id.index.saturating_add(1))),
            },
        ];
        self.write(ops, Durability::Buffered)
            .await
            .map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }
}
