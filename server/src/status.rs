//! How failures become gRPC statuses: a code a client can branch on and a message a
//! person can act on.
//!
//! | failure | code |
//! |---|---|
//! | bad input (sizes, limits, malformed requests) | InvalidArgument |
//! | read below the retention watermark, start_ts below the GC fence | FailedPrecondition |
//! | write conflict, rolled-back or already-committed transaction | Aborted |
//! | key locked by a pending transaction | Aborted (retryable) |
//! | no leader, node unreachable, TSO unavailable | Unavailable |
//! | outcome unknown (timeout after proposing) | Unknown |
//! | corrupted or incompatible data, internal faults | Internal |

use elastickv_engine_api::{display_key, EngineError};
use elastickv_txn::tso::TsoError;
use elastickv_txn::{ShardError, TransactionError, TxnError};
use tonic::{Code, Status};

/// The status for an engine error.
pub fn engine(e: &EngineError) -> Status {
    let code = match e {
        EngineError::ReadTsCompacted { .. } => Code::FailedPrecondition,
        EngineError::EmptyKey { .. }
        | EngineError::KeyTooLarge { .. }
        | EngineError::ValueTooLarge { .. }
        | EngineError::BatchTooLarge { .. }
        | EngineError::InvalidArgument(_) => Code::InvalidArgument,
        EngineError::WriteConflict { .. } => Code::Aborted,
        EngineError::Closed => Code::Unavailable,
        _ => Code::Internal,
    };
    Status::new(code, e.to_string())
}

/// The status for an error of the state machine.
pub fn txn(e: &TxnError) -> Status {
    match e {
        TxnError::Engine(e) => engine(e),
        TxnError::Locked(lock) => Status::aborted(format!(
            "key {} is locked by transaction {} (primary {}); retry later",
            display_key(&lock.key),
            lock.start_ts,
            display_key(&lock.primary)
        )),
        TxnError::WriteConflict { .. }
        | TxnError::AlreadyCommitted { .. }
        | TxnError::AlreadyRolledBack { .. }
        | TxnError::LockNotFound { .. } => Status::aborted(e.to_string()),
        TxnError::StartTsTooOld { .. } => Status::failed_precondition(e.to_string()),
        TxnError::InvalidCommand(_)
        | TxnError::KeyTooLarge { .. }
        | TxnError::ValueTooLarge { .. } => Status::invalid_argument(e.to_string()),
        TxnError::Decode(_) => Status::internal(e.to_string()),
    }
}

/// The status for a failed request to a group.
pub fn shard(e: &ShardError) -> Status {
    match e {
        ShardError::Rejected(t) => txn(t),
        ShardError::Unavailable(m) => Status::unavailable(m.clone()),
        ShardError::Ambiguous(m) => Status::unknown(format!(
            "the outcome is unknown (the write may or may not have been applied): {m}"
        )),
        ShardError::CommitTsTooOld { .. } => Status::aborted(format!("{e}; retry")),
    }
}

/// The status for a failed transaction.
pub fn transaction(e: &TransactionError) -> Status {
    match e {
        TransactionError::Locked(_)
        | TransactionError::Conflict(_)
        | TransactionError::Aborted(_) => Status::aborted(e.to_string()),
        TransactionError::Undetermined { .. } => Status::unknown(e.to_string()),
        TransactionError::Rejected(t) => txn(t),
        TransactionError::Unavailable(m) => Status::unavailable(m.clone()),
        TransactionError::Tso(t) => tso(t),
        TransactionError::Finished => Status::failed_precondition(e.to_string()),
    }
}

/// The status for a timestamp oracle failure.
pub fn tso(e: &TsoError) -> Status {
    match e {
        TsoError::Store(m) => Status::unavailable(format!("timestamp oracle unavailable: {m}")),
        TsoError::Exhausted => Status::internal(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_table() {
        let compacted = EngineError::ReadTsCompacted {
            read_ts: 1,
            min_retained: 2,
        };
        assert_eq!(engine(&compacted).code(), Code::FailedPrecondition);
        assert_eq!(
            txn(&TxnError::KeyTooLarge { size: 2, limit: 1 }).code(),
            Code::InvalidArgument
        );
        assert_eq!(
            shard(&ShardError::Rejected(TxnError::WriteConflict {
                key: b"k".to_vec(),
                start_ts: 1,
                conflict_ts: 2
            }))
            .code(),
            Code::Aborted
        );
        assert_eq!(
            shard(&ShardError::Unavailable("x".into())).code(),
            Code::Unavailable
        );
        assert_eq!(
            shard(&ShardError::Ambiguous("x".into())).code(),
            Code::Unknown
        );
        assert_eq!(
            transaction(&TransactionError::Tso(TsoError::Store("down".into()))).code(),
            Code::Unavailable
        );
    }
}
