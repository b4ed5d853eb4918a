//! # elastickv-engine-lmdb: the LMDB storage engine
//!
//! [`LmdbEngine`] is the shared MVCC layer of `elastickv-engine-api`
//! ([`OrderedMvcc`]) over [`LmdbStore`], which keeps the engine's tables as named
//! databases of one LMDB environment (through `heed`) in the data directory. Every MVCC
//! rule (key encoding, validation, conflict checks, compaction, the snapshot stream)
//! comes from `engine-api`; this crate only maps the storage primitive onto LMDB and
//! handles what is LMDB's own: the memory map, which grows as the data does, and the
//! single writer.
//!
//! ```
//! use elastickv_engine_api::MvccEngine;
//! use elastickv_engine_lmdb::{open_lmdb, LmdbOptions};
//!
//! # fn main() -> elastickv_engine_api::Result<()> {
//! let dir = tempfile::tempdir()?;
//! let engine = open_lmdb(dir.path(), LmdbOptions::default())?;
//! engine.put_at(b"k", b"v", 10, 0)?;
//! assert_eq!(engine.get_at(b"k", 10)?, Some(b"v".to_vec()));
//! # Ok(()) }
//! ```
//!
//! ## Durability
//!
//! LMDB's `MDB_NOSYNC` and `MDB_MAPASYNC` modes can corrupt the environment on a power
//! loss, so buffered writes do not use them. The environment runs with
//! `MDB_NOMETASYNC`, which LMDB documents as "maintains database integrity, but a
//! system crash may undo the last committed transaction" (`lmdb.h`,
//! `mdb_env_open`):
//!
//! * [`Durability::Buffered`](elastickv_engine_api::Durability::Buffered): one
//!   `fdatasync` of the data pages per commit; the meta page that makes the commit
//!   current is flushed with the next commit or sync. A system crash may undo the last
//!   buffered commit(s), as a suffix; the store is never corrupted.
//! * [`Durability::Sync`](elastickv_engine_api::Durability::Sync): the commit, then
//!   `mdb_env_sync(force)`, two `fdatasync`s in all, which is exactly what LMDB does
//!   for a commit without any no-sync flag.
//!
//! So a buffered write costs one flush instead of two: cheaper, but not free.
//!
//! See `docs/engines/lmdb.md` for limits, layout and tuning.
#![deny(missing_docs)]

mod error;
mod map;
mod open;
mod read;
mod restore;
mod store;
mod write;

use std::path::Path;
use std::time::Duration;

use elastickv_engine_api::ordered::OrderedMvcc;
use elastickv_engine_api::Result;

pub use read::LmdbRead;
pub use store::LmdbStore;
pub use write::LmdbWrite;

/// The LMDB engine: the shared MVCC layer over an [`LmdbStore`].
pub type LmdbEngine = OrderedMvcc<LmdbStore>;

/// LMDB's data file inside the data directory (next to its `lock.mdb`).
pub const DATA_FILE: &str = "data.mdb";

/// Tuning knobs of the LMDB engine. `LmdbOptions::default()` suits most uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LmdbOptions {
    /// The memory map's size when the environment is opened, in bytes (rounded up to
    /// 64 KiB). It reserves address space only: the file grows with the data. The map
    /// doubles when more than half of it is used, and whenever a write finds it full.
    pub initial_map_size: usize,
    /// The map never grows beyond this many bytes; a write that needs more fails.
    pub max_map_size: usize,
    /// How long a writer that filled the map waits for open snapshots and reads to end
    /// so that the map can be remapped larger (LMDB requires no open transaction for
    /// that). Past it the write fails instead of waiting forever.
    pub grow_wait: Duration,
    /// Reader slots in LMDB's lock file: the most read views and snapshots open at once.
    pub max_readers: u32,
    /// How many versions one compaction batch examines (one write transaction per
    /// batch). Smaller batches hold the single writer for less time.
    pub compaction_batch: usize,
}

impl Default for LmdbOptions {
    fn default() -> Self {
        LmdbOptions {
            initial_map_size: 256 * 1024 * 1024,
            max_map_size: if cfg!(target_pointer_width = "64") {
                1 << 40
            } else {
                1 << 30
            },
            grow_wait: Duration::from_secs(60),
            max_readers: 1024,
            compaction_batch: 4096,
        }
    }
}

/// Opens (or creates) the LMDB engine stored in `dir`.
///
/// A missing or empty directory is initialised; a directory holding [`DATA_FILE`] is
/// opened and continues where it left off. Fails with [`EngineError::Incompatible`]
/// when the directory holds something else (another engine's files, or anything
/// without [`DATA_FILE`]), an LMDB environment elastickv did not create, a store
/// written by another engine, or a newer format version.
pub fn open_lmdb(dir: &Path, options: LmdbOptions) -> Result<LmdbEngine> {
    let store = LmdbStore::open(dir, &options)?;
    Ok(OrderedMvcc::open(store)?.with_compaction_batch(options.compaction_batch))
}

/// The subdirectory in which a new environment is built before its data file is moved
/// into the data directory, so that a crash while creating it never leaves a
/// half-initialised `data.mdb`.
const CREATING_DIR: &str = "elastickv-lmdb.creating";

/// LMDB's lock file, which may outlive a crash: not a sign of foreign content.
const LOCK_FILE: &str = "lock.mdb";

/// Claims `dir` for LMDB (see [`elastickv_engine_api::data_dir::claim_directory`]).
fn claim_directory(dir: &Path, data_file: &str) -> Result<bool> {
    elastickv_engine_api::data_dir::claim_directory(
        dir,
        "LMDB",
        data_file,
        &[CREATING_DIR, LOCK_FILE],
    )
}
