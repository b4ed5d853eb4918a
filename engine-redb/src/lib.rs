//! # elastickv-engine-redb: the redb storage engine
//!
//! [`RedbEngine`] is the shared MVCC layer of `elastickv-engine-api`
//! ([`OrderedMvcc`]) over [`RedbStore`], which keeps the engine's three tables
//! (`versions`, `meta`, `raw`) in one redb database file, `elastickv.redb`, inside the
//! data directory. Every MVCC rule (key encoding, validation, conflict checks,
//! compaction, the snapshot stream) comes from `engine-api`; this crate only maps
//! the storage primitive onto redb.
//!
//! ```
//! use elastickv_engine_api::{MvccEngine, RawKeyspace};
//! use elastickv_engine_redb::{open_redb, RedbOptions};
//!
//! # fn main() -> elastickv_engine_api::Result<()> {
//! let dir = tempfile::tempdir()?;
//! let engine = open_redb(dir.path(), RedbOptions::default())?;
//! engine.put_at(b"k", b"v", 10, 0)?;
//! assert_eq!(engine.get_at(b"k", 10)?, Some(b"v".to_vec()));
//! # Ok(()) }
//! ```
//!
//! ## Durability
//!
//! * [`Durability::Sync`](elastickv_engine_api::Durability::Sync) commits with redb's
//!   `Durability::Immediate`: the commit is fsynced before the call returns.
//! * [`Durability::Buffered`](elastickv_engine_api::Durability::Buffered) commits with
//!   redb's `Durability::None`: the commit is visible at once but stays in this
//!   process's memory until the next synced commit (or a clean close). redb documents
//!   that after a crash "the database is still guaranteed to be consistent, and will
//!   return to either the last non-durable commit or the last full commit" (redb
//!   `docs/design.md`, "Non-durable commits"), so a crash keeps a prefix of the
//!   commits and never corrupts the file.
//!
//! See `docs/engines/redb.md` for limits, layout and tuning.
#![deny(missing_docs)]

mod error;
mod store;

use std::path::Path;

use elastickv_engine_api::ordered::OrderedMvcc;
use elastickv_engine_api::Result;

pub use store::{RedbRead, RedbStore, RedbWrite};

/// The redb engine: the shared MVCC layer over a [`RedbStore`].
pub type RedbEngine = OrderedMvcc<RedbStore>;

/// The name of the database file inside the data directory.
pub const DATA_FILE: &str = "elastickv.redb";

/// Tuning knobs of the redb engine. `RedbOptions::default()` suits most uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedbOptions {
    /// The most memory redb's page cache may use, in bytes (redb's own default is
    /// 1 GiB). The cache fills lazily, so a small store uses little of it.
    pub cache_size: usize,
    /// redb's "quick repair": each synced commit also saves the allocator state, so
    /// reopening after a crash takes no full-file repair walk. Commits are slower;
    /// recovery is almost instant. Off by default, as in redb.
    pub quick_repair: bool,
    /// How many versions one compaction batch examines (one write transaction per
    /// batch). Smaller batches hold the single writer for less time.
    pub compaction_batch: usize,
}

impl Default for RedbOptions {
    fn default() -> Self {
        RedbOptions {
            cache_size: 1024 * 1024 * 1024,
            quick_repair: false,
            compaction_batch: 4096,
        }
    }
}

/// Opens (or creates) the redb engine stored in `dir`.
///
/// A missing or empty directory is initialised; a directory holding
/// [`DATA_FILE`] is opened and continues where it left off. Fails with
/// [`EngineError::Incompatible`] when the directory holds something else (another
/// engine's files, or anything without [`DATA_FILE`]), when the file was written by
/// another engine, or by a newer format version.
pub fn open_redb(dir: &Path, options: RedbOptions) -> Result<RedbEngine> {
    let store = RedbStore::open(dir, &options)?;
    Ok(OrderedMvcc::open(store)?.with_compaction_batch(options.compaction_batch))
}

/// The name under which a new database file is built before it is renamed to
/// [`DATA_FILE`], so that a crash while creating it never leaves a half-written file
/// under the real name.
const CREATING_FILE: &str = "elastickv.redb.creating";

/// Claims `dir` for redb (see [`elastickv_engine_api::data_dir::claim_directory`]).
fn claim_directory(dir: &Path, data_file: &str) -> Result<bool> {
    elastickv_engine_api::data_dir::claim_directory(dir, "redb", data_file, &[CREATING_FILE])
}
