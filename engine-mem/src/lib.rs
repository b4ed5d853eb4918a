//! # elastickv-engine-mem: the in-memory reference engine
//!
//! [`MemEngine`] implements [`MvccEngine`](elastickv_engine_api::MvccEngine) directly,
//! without the shared [`ordered`](elastickv_engine_api::ordered) layer, so it is an
//! independent second implementation of the contract: the behaviour the other engines
//! are compared with, and the skeleton to copy when a new engine does not fit the
//! ordered-store mould.
//!
//! ## How it is built (what a newcomer copies)
//!
//! * **State.** Everything lives in one immutable `State` value: a persistent ordered
//!   map (`imbl::OrdMap`) from key to that key's versions (newest first), the raw
//!   keyspace as a second map, `last_commit_ts` and the watermark.
//! * **Reads** clone the current `Arc<State>` (a reference-count increment under a
//!   read lock that is never held while reading) and then run with no lock at all, so
//!   readers never block each other or writers, and every read or scan sees exactly
//!   one state. A point read is one map lookup plus a binary search in the key's
//!   versions; a scan walks the map range and stops at the limit.
//! * **Writes** take the single writer lock, validate with the shared
//!   [`Limits`](elastickv_engine_api::Limits), run the conflict check against the
//!   current state, derive the next state (the persistent map shares every untouched
//!   node, so this costs O(log n) per changed key) and publish it. Check and publish
//!   happen under the same lock: there is no window between them.
//! * **Snapshots** are the current `Arc<State>`: O(1) to take, immutable, streamed
//!   later in the portable format while writers go on.
//! * **Compaction** publishes the new watermark first, then rewrites keys in bounded
//!   batches, releasing the writer lock between batches.
//! * **Restore** builds the new map from the stream without holding any lock and then
//!   swaps it in, together with the raw operations, in one publish.
//!
//! Nothing is persisted: durability options are accepted and have no effect, and a new
//! `MemEngine` is always empty.
//!
//! ```
//! use elastickv_engine_api::{CompactionScope, EngineError, MvccEngine};
//! use elastickv_engine_mem::MemEngine;
//!
//! let engine = MemEngine::new();
//! engine.put_at(b"k", b"v10", 10, 0)?;
//! engine.put_at(b"k", b"v20", 20, 0)?;
//! assert_eq!(engine.get_at(b"k", 15)?, Some(b"v10".to_vec()));
//! engine.compact(20, &CompactionScope::All)?;
//! assert!(matches!(engine.get_at(b"k", 15), Err(EngineError::ReadTsCompacted { .. })));
//! # Ok::<(), EngineError>(())
//! ```
#![deny(missing_docs)]

mod engine;
mod history;
mod snapshot;

pub use engine::MemEngine;
pub use snapshot::MemSnapshot;

use std::sync::Arc;

use elastickv_engine_api::Timestamp;
use history::KeyHistory;

/// Keys are shared, so copying a map node never copies key bytes.
type Key = Arc<[u8]>;

/// One immutable state of the engine. Cloning it is O(1): both maps are persistent.
#[derive(Debug, Clone, Default)]
struct State {
    data: imbl::OrdMap<Key, KeyHistory>,
    raw: imbl::OrdMap<Key, Arc<[u8]>>,
    last_commit_ts: Timestamp,
    min_retained: Timestamp,
}
