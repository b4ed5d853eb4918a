//! What a write carries: mutations, raw-keyspace operations, durability.

use crate::{KeyRange, Timestamp};

/// One change to the MVCC keyspace, applied at the batch's commit timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation {
    /// Write a live value (optionally with a TTL: `expire_at == 0` means none).
    Put {
        /// The user key (non-empty).
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
        /// The read timestamp from which the value is expired; `0` for no TTL.
        expire_at: Timestamp,
    },
    /// Write a tombstone.
    Delete {
        /// The user key (non-empty).
        key: Vec<u8>,
    },
}

impl Mutation {
    /// A put without TTL.
    pub fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        Mutation::Put {
            key: key.into(),
            value: value.into(),
            expire_at: 0,
        }
    }

    /// A delete.
    pub fn delete(key: impl Into<Vec<u8>>) -> Self {
        Mutation::Delete { key: key.into() }
    }

    /// The key this mutation changes.
    pub fn key(&self) -> &[u8] {
        match self {
            Mutation::Put { key, .. } | Mutation::Delete { key } => key,
        }
    }
}

/// One change to the raw ordered keyspace (ENGINE.md section 8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawOp {
    /// Set `key` to `value`.
    Put {
        /// The raw key (non-empty).
        key: Vec<u8>,
        /// The raw value.
        value: Vec<u8>,
    },
    /// Remove `key` if present.
    Delete {
        /// The raw key.
        key: Vec<u8>,
    },
    /// Remove every key in the range (an empty or inverted range removes nothing).
    DeleteRange {
        /// The keys to remove.
        range: KeyRange,
    },
}

impl RawOp {
    /// A raw put.
    pub fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        RawOp::Put {
            key: key.into(),
            value: value.into(),
        }
    }

    /// A raw delete.
    pub fn delete(key: impl Into<Vec<u8>>) -> Self {
        RawOp::Delete { key: key.into() }
    }
}

/// How durable a write must be when the call returns (ENGINE.md section 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Durability {
    /// On stable storage when the call returns.
    #[default]
    Sync,
    /// May be lost in a crash, but only as a suffix: after a crash the store holds a
    /// prefix of the writes made, never a later write without an earlier one.
    Buffered,
}

/// One atomic write: MVCC mutations at `commit_ts`, an optional conflict check, and raw
/// keyspace operations (for example the Raft state machine's applied log id), all
/// applied together or not at all.
///
/// Construct with [`WriteBatch::new`] and the `with_*` methods:
///
/// ```
/// use elastickv_engine_api::{Durability, Mutation, RawOp, WriteBatch};
/// let muts = [Mutation::put("k", "v")];
/// let raw = [RawOp::put("applied", 7u64.to_be_bytes())];
/// let batch = WriteBatch::new(&muts, 20)
///     .with_conflict_check(10)
///     .with_raw(&raw)
///     .with_durability(Durability::Buffered);
/// assert_eq!(batch.commit_ts, 20);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct WriteBatch<'a> {
    /// The MVCC changes, each written at `commit_ts`; for duplicate keys the last wins.
    pub mutations: &'a [Mutation],
    /// The timestamp of every version this batch writes. Must be non-zero when
    /// `mutations` is non-empty.
    pub commit_ts: Timestamp,
    /// `Some(start_ts)`: fail with `WriteConflict` (writing nothing) if any mutated key,
    /// or any key of `read_set`, has a version with `ts > start_ts`. `None`: no check.
    pub conflict_start_ts: Option<Timestamp>,
    /// Keys checked for conflicts like the mutated keys but not written (the read set
    /// of a serializable transaction). Ignored without `conflict_start_ts`.
    pub read_set: &'a [Vec<u8>],
    /// Raw keyspace changes applied in the same atomic write, after the mutations.
    pub raw: &'a [RawOp],
    /// Whether the write is synced before the call returns.
    pub durability: Durability,
}

impl<'a> WriteBatch<'a> {
    /// A synced batch of `mutations` at `commit_ts`, without conflict check or raw ops.
    pub fn new(mutations: &'a [Mutation], commit_ts: Timestamp) -> Self {
        WriteBatch {
            mutations,
            commit_ts,
            conflict_start_ts: None,
            read_set: &[],
            raw: &[],
            durability: Durability::Sync,
        }
    }

    /// A synced batch of raw operations only.
    pub fn raw_only(raw: &'a [RawOp]) -> Self {
        WriteBatch {
            raw,
            ..WriteBatch::new(&[], 0)
        }
    }

    /// Adds the write-conflict check against `start_ts`.
    pub fn with_conflict_check(mut self, start_ts: Timestamp) -> Self {
        self.conflict_start_ts = Some(start_ts);
        self
    }

    /// Adds keys to conflict-check without writing them.
    pub fn with_read_set(mut self, read_set: &'a [Vec<u8>]) -> Self {
        self.read_set = read_set;
        self
    }

    /// Adds raw keyspace operations to the same atomic write.
    pub fn with_raw(mut self, raw: &'a [RawOp]) -> Self {
        self.raw = raw;
        self
    }

    /// Sets the durability.
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }
}
