//! # elastickv-engine-rocks: the RocksDB storage engine
//!
//! [`RocksEngine`] is the shared MVCC layer of `elastickv-engine-api`
//! ([`OrderedMvcc`]) over [`RocksStore`], which keeps the engine's three tables in
//! column families of one RocksDB database, so that one RocksDB write batch covers MVCC
//! data, MVCC metadata and the raw (Raft) keyspace atomically. Every MVCC rule (key
//! encoding, validation, conflict checks, compaction, the snapshot stream) comes from
//! `engine-api`; this crate only maps the storage primitive onto RocksDB.
//!
//! ```
//! use elastickv_engine_api::MvccEngine;
//! use elastickv_engine_rocks::{open_rocks, RocksOptions};
//!
//! # fn main() -> elastickv_engine_api::Result<()> {
//! let dir = tempfile::tempdir()?;
//! let engine = open_rocks(dir.path(), RocksOptions::default())?;
//! engine.put_at(b"k", b"v", 10, 0)?;
//! assert_eq!(engine.get_at(b"k", 10)?, Some(b"v".to_vec()));
//! # Ok(()) }
//! ```
//!
//! ## Durability
//!
//! * [`Durability::Sync`](elastickv_engine_api::Durability::Sync) writes the batch with
//!   RocksDB's `WriteOptions::sync = true`: the write-ahead log is fsynced before the
//!   call returns.
//! * [`Durability::Buffered`](elastickv_engine_api::Durability::Buffered) writes the
//!   batch to the WAL without fsync. A killed process loses nothing (the record is in
//!   the OS page cache); a power loss may lose a suffix of such writes. The database is
//!   opened with point-in-time WAL recovery, which replays the log up to the first
//!   incomplete record and stops, so what survives is always a prefix of the writes.
//!
//! ## Snapshots and restore
//!
//! [`MvccEngine::snapshot`](elastickv_engine_api::MvccEngine::snapshot) holds a RocksDB
//! snapshot ([`RocksSnapshot`]) that streams later while writers continue. A restore
//! writes the new versions into a fresh column family generation and switches to it
//! atomically; see [`RocksStore`].
//!
//! See `docs/engines/rocksdb.md` for limits, the on-disk layout and tuning.
#![deny(missing_docs)]

mod error;
mod layout;
mod options;
mod snapshot;
mod store;
mod view;

use std::path::Path;

use elastickv_engine_api::ordered::OrderedMvcc;
use elastickv_engine_api::Result;

pub use layout::{LAYOUT_FILE, LAYOUT_VERSION};
pub use options::{Compression, RocksOptions};
pub use snapshot::RocksSnapshot;
pub use store::{RocksStore, MAX_STORED_KEY_SIZE, MAX_STORED_VALUE_SIZE};
pub use view::{RocksRead, RocksWrite};

/// The engine's name, as reported by `MvccEngine::name` and written into the store's
/// format marker.
pub const ENGINE_NAME: &str = "rocks";

/// The RocksDB engine: the shared MVCC layer over a [`RocksStore`].
pub type RocksEngine = OrderedMvcc<RocksStore>;

/// Opens (or creates) the RocksDB engine stored in `dir`.
///
/// A missing or empty directory is initialised; a directory created by this engine is
/// opened and continues where it left off (a restore interrupted by a crash is cleaned
/// up). Fails with [`EngineError::Incompatible`](elastickv_engine_api::EngineError::Incompatible)
/// when the directory holds anything else (another engine's files, a RocksDB database
/// not created by this engine, unrelated files), or a newer layout or format version;
/// with [`EngineError::Io`](elastickv_engine_api::EngineError::Io) when another process
/// has it open.
pub fn open_rocks(dir: &Path, options: RocksOptions) -> Result<RocksEngine> {
    let store = RocksStore::open(dir, &options)?;
    Ok(OrderedMvcc::open(store)?.with_compaction_batch(options.compaction_batch))
}
