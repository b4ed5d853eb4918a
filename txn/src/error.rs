//! The typed errors of the state machine and of local reads.

use elastickv_engine_api::{display_key, EngineError, Timestamp};

use crate::lock::LockInfo;

/// Why a command was refused or a read could not be served. Deterministic variants
/// (everything but [`TxnError::Engine`]) are the same on every replica.
#[derive(Debug, thiserror::Error)]
pub enum TxnError {
    /// Another transaction holds a lock on the key; retry after it is resolved.
    #[error("key {} is locked by transaction {} (primary {})", display_key(&.0.key), .0.start_ts, display_key(&.0.primary))]
    Locked(Box<LockInfo>),
    /// A version newer than the transaction's start_ts exists (or another transaction
    /// touched the key's lock after it started): the transaction must re-run its reads.
    #[error(
        "write conflict on key {}: a version at {conflict_ts} is newer than start_ts {start_ts}",
        display_key(key)
    )]
    WriteConflict {
        /// The conflicting user key.
        key: Vec<u8>,
        /// The transaction's start_ts.
        start_ts: Timestamp,
        /// The newer version's timestamp.
        conflict_ts: Timestamp,
    },
    /// The transaction already committed; it cannot be rolled back or re-committed at
    /// another timestamp.
    #[error("transaction {start_ts} already committed at {commit_ts}")]
    AlreadyCommitted {
        /// The transaction's start_ts.
        start_ts: Timestamp,
        /// Its commit timestamp.
        commit_ts: Timestamp,
    },
    /// The transaction was rolled back; it can never commit.
    #[error("transaction {start_ts} was rolled back")]
    AlreadyRolledBack {
        /// The transaction's start_ts.
        start_ts: Timestamp,
    },
    /// Commit of a primary whose lock is missing and that has no commit record: the
    /// prewrite never happened here (or was lost), so the transaction cannot commit.
    #[error("no lock of transaction {start_ts} on primary {}", display_key(key))]
    LockNotFound {
        /// The primary key.
        key: Vec<u8>,
        /// The transaction's start_ts.
        start_ts: Timestamp,
    },
    /// The start_ts is below the GC fence: records it may depend on were collected.
    #[error("start_ts {start_ts} is below the GC fence {fence}")]
    StartTsTooOld {
        /// The refused start_ts.
        start_ts: Timestamp,
        /// The fence.
        fence: Timestamp,
    },
    /// The command is malformed (empty keys, bad timestamps, duplicates, ...).
    #[error("invalid command: {0}")]
    InvalidCommand(String),
    /// A user key is longer than the engine allows once prefixed.
    #[error("key of {size} bytes exceeds the limit of {limit} bytes")]
    KeyTooLarge {
        /// The key's length.
        size: usize,
        /// The limit for user keys.
        limit: usize,
    },
    /// A value is longer than the engine allows.
    #[error("value of {size} bytes exceeds the limit of {limit} bytes")]
    ValueTooLarge {
        /// The value's length.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Bytes could not be decoded (a command, a lock or a record).
    #[error("cannot decode {0}")]
    Decode(String),
    /// The engine failed (I/O, compacted read timestamp, ...).
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl TxnError {
    /// True when re-running the transaction (new start_ts, reads re-done) may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            TxnError::Locked(_) | TxnError::WriteConflict { .. } | TxnError::StartTsTooOld { .. }
        )
    }
}
