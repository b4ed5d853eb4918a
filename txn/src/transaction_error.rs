//! What a client of the coordinator sees when a transaction cannot proceed.

use elastickv_engine_api::Timestamp;

use crate::error::TxnError;
use crate::lock::LockInfo;
use crate::shard_client::ShardError;
use crate::tso::TsoError;

/// A transaction-level failure. [`TransactionError::is_retryable`] tells whether running
/// the whole transaction again (new start_ts, reads re-done) may succeed.
#[derive(Debug, thiserror::Error)]
pub enum TransactionError {
    /// A key is locked by a transaction that is still running.
    #[error("key is locked by transaction {} (primary {:?})", .0.start_ts, .0.primary)]
    Locked(Box<LockInfo>),
    /// Another transaction wrote a key this one wrote (or, when serializable, read)
    /// after this one started. Nothing of this transaction was committed.
    #[error("transaction aborted by a conflict: {0}")]
    Conflict(TxnError),
    /// The transaction was rolled back (for example by a lock resolver after its locks
    /// expired). Nothing of it was committed.
    #[error("transaction aborted: {0}")]
    Aborted(String),
    /// The commit outcome could not be determined (the primary's group did not answer).
    /// The transaction may have committed; its status is settled by lock resolution.
    #[error("commit outcome of transaction {start_ts} is unknown: {reason}")]
    Undetermined {
        /// The transaction's start_ts (its identity, with the primary key).
        start_ts: Timestamp,
        /// The last error seen.
        reason: String,
    },
    /// A shard refused the request for a reason that retrying will not fix.
    #[error("refused: {0}")]
    Rejected(TxnError),
    /// A shard could not be reached. Nothing was committed.
    #[error("shard unavailable: {0}")]
    Unavailable(String),
    /// No timestamp could be obtained.
    #[error(transparent)]
    Tso(#[from] TsoError),
    /// The transaction already committed or rolled back.
    #[error("transaction already finished")]
    Finished,
}

impl TransactionError {
    /// True when running the transaction again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            TransactionError::Locked(_)
                | TransactionError::Conflict(_)
                | TransactionError::Aborted(_)
                | TransactionError::Unavailable(_)
                | TransactionError::Tso(_)
        )
    }
}

impl From<ShardError> for TransactionError {
    fn from(e: ShardError) -> Self {
        match e {
            ShardError::Rejected(TxnError::Locked(lock)) => TransactionError::Locked(lock),
            ShardError::Rejected(e) if e.is_retryable() => TransactionError::Conflict(e),
            ShardError::Rejected(e @ TxnError::AlreadyRolledBack { .. }) => {
                TransactionError::Aborted(e.to_string())
            }
            ShardError::Rejected(e) => TransactionError::Rejected(e),
            ShardError::Unavailable(m) | ShardError::Ambiguous(m) => {
                TransactionError::Unavailable(m)
            }
            e @ ShardError::CommitTsTooOld { .. } => TransactionError::Unavailable(e.to_string()),
        }
    }
}
