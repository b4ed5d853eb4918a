//! # elastickv-engine-api: the storage-engine contract
//!
//! Every elastickv storage backend implements [`MvccEngine`] (which includes
//! [`RetentionController`] and [`RawKeyspace`]); the transaction and Raft layers are
//! written against this trait only. The rules below are normative: the conformance kit
//! (feature `testkit`, module `testkit`) checks each of them.
//!
//! ## Data model
//!
//! A store maps a user key (non-empty bytes) to versions `{ ts, Value(bytes) |
//! Tombstone, expire_at }` ([`Version`]). At most one version exists per (key, ts):
//! writing the same key at the same ts replaces it, so re-applying a log entry is
//! harmless. [`Timestamp`]s are `u64`; commit timestamps are in `1..u64::MAX`.
//!
//! ## Visibility
//!
//! A read of `k` at `ts` takes the newest version with `version.ts <= ts`; it sees
//! nothing if there is none, if it is a tombstone, or if `expire_at != 0 &&
//! expire_at <= ts` (expiry is judged against the read timestamp, never a clock, and an
//! expired newest version hides the key: no fall-back to older versions).
//!
//! ## Retention
//!
//! Reads below the watermark fail with [`EngineError::ReadTsCompacted`] (see
//! [`check_read_ts`]). The watermark is persistent and monotonic; compaction raises it.
//!
//! ## Writes
//!
//! [`MvccEngine::write`] applies a [`WriteBatch`] atomically: validation first, the
//! optional write-conflict check (a version newer than `start_ts` on any mutated or
//! read-set key), the mutations at `commit_ts`, raw keyspace operations, and
//! `last_commit_ts` — together, with the requested [`Durability`], or not at all.
//!
//! ## Two ways to add an engine
//!
//! * Implement [`MvccEngine`] directly (as `elastickv-engine-mem` does), or
//! * implement the much smaller [`ordered::OrderedStore`] for a byte-ordered,
//!   transactional backend and wrap it in [`ordered::OrderedMvcc`], which provides the
//!   whole MVCC layer with the shared [`encoding`] and [`stream`] format (as the redb,
//!   LMDB and RocksDB engines do).
//!
//! Either way, run the conformance kit from your tests (see `docs/engine-integration.md`).
#![deny(missing_docs)]

mod engine;
mod error;
mod limits;
mod range;
mod version;
mod write;

pub mod data_dir;
pub mod encoding;
pub mod ordered;
pub mod stream;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use engine::{
    check_read_ts, CompactionScope, CompactionStats, EngineSnapshot, MvccEngine, RawKeyspace,
    RestoreStats, RetentionController, SnapshotStats,
};
pub use error::{EngineError, Result};
pub use limits::Limits;
pub use range::{prefix_successor, KeyRange};
pub use version::{hides_from, is_visible, KvPair, Version, VersionKind};
pub use write::{Durability, Mutation, RawOp, WriteBatch};

/// A timestamp: hybrid-logical in practice (see the `txn` crate), opaque here.
/// `0` and `u64::MAX` are never commit timestamps; reads at either skip the
/// retention check.
pub type Timestamp = u64;

/// Renders a key for error messages: printable ASCII as is, other bytes escaped.
pub fn display_key(key: &[u8]) -> String {
    const MAX_SHOWN: usize = 64;
    let shown = &key[..key.len().min(MAX_SHOWN)];
    let mut out: String = shown.escape_ascii().to_string();
    if key.len() > MAX_SHOWN {
        out.push_str(&format!("... ({} bytes)", key.len()));
    }
    format!("\"{out}\"")
}
