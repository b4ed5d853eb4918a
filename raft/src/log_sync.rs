//! Group commit for the log: one synced write makes many appends durable.
//!
//! openraft 0.9 calls `append` once per client write and calls it again as soon as the
//! previous call returned, learning about durability later through a callback. So an
//! append only parks its encoded entries in [`PendingLog`] (where log readers see them
//! at once) and queues its callback here. The group's sync thread repeatedly takes
//! every queued callback and every parked entry, writes all those entries in one synced
//! write (to the log files, or to the engine), and only then reports the callbacks
//! flushed. While one sync runs, the next batch accumulates: concurrent proposals share
//! syncs, and no entry is reported flushed before it is on stable storage.
//!
//! A thread of its own rather than a Tokio task handing each write to the blocking
//! pool: the write blocks anyway, and each hand-off to the pool and back cost two
//! thread wake-ups per sync (see `docs/benchmarks.md`).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use elastickv_engine_api::{Durability, EngineError, MvccEngine, RawOp};
use openraft::storage::IOFlushed;
use parking_lot::Mutex;
use std::sync::mpsc;
use tokio::sync::oneshot;

use crate::layout::Layout;
use crate::log_file::LogFiles;
use crate::log_store::{Entries, LogCounters};
use crate::TypeConfig;

/// Entries appended but not yet written to the log: index -> encoded entry.
pub(crate) type PendingLog = Arc<Mutex<BTreeMap<u64, Arc<[u8]>>>>;

/// Something waiting for the next sync.
enum SyncWaiter {
    /// An append's completion callback.
    Append(IOFlushed<TypeConfig>),
    /// A caller that needs every earlier append durable before it proceeds.
    Barrier(oneshot::Sender<Result<(), String>>),
}

/// The handle appends use to queue their callbacks.
#[derive(Clone)]
pub(crate) struct LogSyncer {
    tx: mpsc::Sender<SyncWaiter>,
}

impl std::fmt::Debug for LogSyncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogSyncer")
    }
}

impl LogSyncer {
    /// Starts the sync thread of one group's log. The thread holds the engine weakly, so
    /// it never keeps a closed group's engine open; it ends when every handle is
    /// dropped.
    pub(crate) fn start<E: MvccEngine>(
        engine: &Arc<E>,
        layout: &Layout,
        entries: &Entries,
        pending: PendingLog,
        counters: Arc<LogCounters>,
    ) -> Self {
        let (tx, rx) = mpsc::channel();
        let task = SyncTask {
            engine: Arc::downgrade(engine),
            files: match entries {
                Entries::Engine => None,
                Entries::Files(files) => Some(Arc::downgrade(files)),
            },
            layout: layout.clone(),
            pending,
            counters,
        };
        let spawned = std::thread::Builder::new()
            .name("ekv-log-sync".to_string())
            .stack_size(256 * 1024)
            .spawn(move || task.run(rx));
        if let Err(e) = spawned {
            // Without its thread every append fails (its callback reports the error).
            tracing::error!(error = %e, "could not start a log sync thread");
        }
        LogSyncer { tx }
    }

    /// Reports `callback` once every entry parked before this call is durable.
    pub(crate) fn flushed_later(&self, callback: IOFlushed<TypeConfig>) {
        if let Err(mpsc::SendError(SyncWaiter::Append(callback))) =
            self.tx.send(SyncWaiter::Append(callback))
        {
            callback.io_completed(Err(std::io::Error::other("log sync thread stopped")));
        }
    }

    /// Waits until every entry parked before this call is durable.
    pub(crate) async fn barrier(&self) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(SyncWaiter::Barrier(tx))
            .map_err(|_| "log sync thread stopped".to_string())?;
        rx.await
            .map_err(|_| "log sync thread stopped".to_string())?
    }
}

struct SyncTask<E> {
    engine: Weak<E>,
    /// The log files, when the entries are kept there.
    files: Option<Weak<dyn LogFiles>>,
    layout: Layout,
    pending: PendingLog,
    counters: Arc<LogCounters>,
}

impl<E: MvccEngine> SyncTask<E> {
    fn run(self, rx: mpsc::Receiver<SyncWaiter>) {
        while let Ok(first) = rx.recv() {
            let mut waiters = vec![first];
            while let Ok(more) = rx.try_recv() {
                waiters.push(more);
            }
            // Every waiter's entries were parked before it was queued, so they are in
            // this batch (or were written by an earlier, already synced one).
            let batch: Vec<(u64, Arc<[u8]>)> = self
                .pending
                .lock()
                .iter()
                .map(|(index, bytes)| (*index, Arc::clone(bytes)))
                .collect();
            let result = if batch.is_empty() {
                Ok(())
            } else {
                self.write(&batch)
            };
            if result.is_ok() {
                let mut pending = self.pending.lock();
                for (index, bytes) in &batch {
                    if pending.get(index).is_some_and(|b| Arc::ptr_eq(b, bytes)) {
                        pending.remove(index);
                    }
                }
            }
            for waiter in waiters {
                match waiter {
                    SyncWaiter::Append(callback) => {
                        callback.io_completed(result.clone().map_err(std::io::Error::other))
                    }
                    SyncWaiter::Barrier(tx) => {
                        // The waiter may have given up; nothing to report then.
                        let _ = tx.send(result.clone());
                    }
                }
            }
        }
    }

    fn write(&self, batch: &[(u64, Arc<[u8]>)]) -> Result<(), String> {
        // Held (also with the log in files) until the write is done: stopping a group
        // waits for its engine to be released, so no write of a stopped group can
        // overlap the reopened group's.
        let Some(engine) = self.engine.upgrade() else {
            return Err("engine closed".to_string());
        };
        match &self.files {
            Some(files) => {
                let Some(files) = files.upgrade() else {
                    return Err("log closed".to_string());
                };
                files.append(batch).map_err(EngineError::Io)
            }
            None => {
                let ops: Vec<RawOp> = batch
                    .iter()
                    .map(|(index, bytes)| RawOp::put(self.layout.log_key(*index), bytes.to_vec()))
                    .collect();
                engine.raw_write(&ops, Durability::Sync)
            }
        }
        .map_err(|e| e.to_string())?;
        self.counters.append_syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
