//! Snapshots: built from the engine's point-in-time image in the portable stream
//! format, kept as one file per group, installed with `restore_with`.
//!
//! The snapshot in force ("current") is recorded in the raw keyspace (its metadata and
//! file name) so it survives restart and can be sent to lagging followers at any time;
//! older snapshot files and unfinished temporary files are removed.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use elastickv_engine_api::{Durability, EngineError, EngineSnapshot, MvccEngine, RawOp};
use openraft::{ErrorSubject, ErrorVerb, RaftSnapshotBuilder};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::layout::{decode, encode, Layout, Slot};
use crate::log_store::{blocking, storage_error};
use crate::snapshot_file::SnapshotFile;
use crate::types::{Snapshot, StorageError};
use crate::{SnapshotMeta, TypeConfig};

/// Buffer size of snapshot file reads and writes.
pub(crate) const FILE_BUFFER: usize = 1024 * 1024;

/// The record of the current snapshot, stored in the raw keyspace.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    file: String,
}

/// The snapshot files of one group: `<group dir>/snapshots/`.
#[derive(Debug)]
pub(crate) struct SnapshotStore<E> {
    dir: PathBuf,
    engine: Arc<E>,
    layout: Layout,
    current: Mutex<Option<StoredSnapshot>>,
    seq: AtomicU64,
    nonce: u64,
}

fn engine_error(e: impl ToString) -> EngineError {
    EngineError::InvalidArgument(e.to_string())
}

impl<E: MvccEngine> SnapshotStore<E> {
    /// Opens the snapshot directory, loads the current snapshot's record and removes
    /// files that are not the current snapshot (leftovers of a crash).
    pub(crate) fn open(dir: &Path, engine: Arc<E>, layout: Layout) -> Result<Self, EngineError> {
        std::fs::create_dir_all(dir)?;
        let mut current: Option<StoredSnapshot> =
            match engine.raw_get(&layout.slot(Slot::Snapshot))? {
                Some(bytes) => Some(decode(&bytes).map_err(EngineError::corrupted)?),
                None => None,
            };
        if let Some(stored) = &current {
            if !dir.join(&stored.file).is_file() {
                tracing::warn!(file = %stored.file, "current snapshot file is missing; a new one will be built");
                current = None;
            }
        }
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let keep = current.as_ref().is_some_and(|c| c.file == name);
            if !keep && entry.file_type()?.is_file() {
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(SnapshotStore {
            dir: dir.to_path_buf(),
            engine,
            layout,
            current: Mutex::new(current),
            seq: AtomicU64::new(0),
            nonce: rand::random::<u64>(),
        })
    }

    /// A fresh file name in the snapshot directory.
    pub(crate) fn temp_path(&self, kind: &str) -> PathBuf {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        self.dir
            .join(format!("{kind}-{:016x}-{seq}.part", self.nonce))
    }

    /// Makes the complete, synced file at `temp` the current snapshot (blocking), unless
    /// a newer snapshot is already current; removes the previous file.
    pub(crate) fn make_current(&self, meta: &SnapshotMeta, temp: &Path) -> Result<(), EngineError> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let index = meta.last_log_id.map(|id| id.index).unwrap_or(0);
        let file = format!("snap-{index:020}-{:016x}-{seq}.snap", self.nonce);
        let path = self.dir.join(&file);
        let mut current = self.current.lock();
        if let Some(existing) = current.as_ref() {
            if existing.meta.last_log_id > meta.last_log_id {
                std::fs::remove_file(temp)?;
                return Ok(());
            }
        }
        std::fs::rename(temp, &path)?;
        std::fs::File::open(&self.dir)?.sync_all()?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            file,
        };
        let value = encode(&stored).map_err(engine_error)?;
        self.engine.raw_write(
            &[RawOp::put(self.layout.slot(Slot::Snapshot), value)],
            Durability::Sync,
        )?;
        let new_file = stored.file.clone();
        if let Some(old) = current.replace(stored) {
            if old.file != new_file {
                // Open readers keep their handle; the name goes now.
                if let Err(e) = std::fs::remove_file(self.dir.join(&old.file)) {
                    tracing::warn!(file = %old.file, error = %e, "could not remove an old snapshot");
                }
            }
        }
        Ok(())
    }

    /// The current snapshot, opened for reading.
    pub(crate) async fn current(&self) -> Result<Option<Snapshot>, StorageError> {
        let stored = self.current.lock().clone();
        let Some(stored) = stored else {
            return Ok(None);
        };
        let file = SnapshotFile::open(&self.dir.join(&stored.file))
            .await
            .map_err(|e| {
                storage_error(
                    ErrorSubject::Snapshot(Some(stored.meta.signature())),
                    ErrorVerb::Read,
                    e,
                )
            })?;
        Ok(Some(Snapshot {
            meta: stored.meta,
            snapshot: file,
        }))
    }
}

/// An engine image with the metadata it corresponds to, or why taking it failed.
pub(crate) type Capture<S> = Result<(S, SnapshotMeta), String>;

/// Streams a captured engine image into a snapshot file, off the apply path.
#[derive(Debug)]
pub struct SnapshotBuilder<E: MvccEngine> {
    pub(crate) store: Arc<SnapshotStore<E>>,
    /// The image and the metadata it corresponds to, taken on the apply path so that
    /// they match; or why taking it failed.
    /// (A mutex only because the builder must be `Sync`; it is used by one task.)
    pub(crate) capture: Mutex<Option<Capture<E::Snapshot>>>,
}

impl<E: MvccEngine> RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder<E> {
    type SnapshotData = SnapshotFile;

    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let failed = |e: String| storage_error(ErrorSubject::Snapshot(None), ErrorVerb::Write, e);
        let capture = self.capture.lock().take();
        let (image, meta) = match capture {
            Some(Ok(capture)) => capture,
            Some(Err(e)) => return Err(failed(e)),
            None => return Err(failed("snapshot builder used twice".to_string())),
        };
        let store = Arc::clone(&self.store);
        let written_meta = meta.clone();
        blocking(move || {
            let temp = store.temp_path("build");
            let file = std::fs::File::create(&temp)?;
            let mut out = BufWriter::with_capacity(FILE_BUFFER, file);
            image.write_to(&mut out)?;
            out.flush()?;
            let file = out
                .into_inner()
                .map_err(|e| EngineError::Io(e.into_error()))?;
            file.sync_all()?;
            drop(file);
            store.make_current(&written_meta, &temp)
        })
        .await
        .map_err(|e| failed(e.to_string()))?;
        tracing::info!(meta = %meta, "built snapshot");
        match self.store.current().await? {
            Some(snapshot) => Ok(snapshot),
            None => Err(failed("snapshot vanished after it was built".to_string())),
        }
    }
}
