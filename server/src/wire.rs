//! The encoding of results that travel between nodes inside `Internal` replies: the
//! outcome of a forwarded command or read. The txn crate's error and output types are
//! mirrored by serde types and encoded with bincode; an engine error that has no exact
//! mirror travels as its message.

use elastickv_engine_api::{EngineError, KvPair, Timestamp};
use elastickv_txn::{
    CommandOutput, LockInfo, LockKind, PointRead, ScanRead, ShardError, TxnError, TxnStatus,
};
use serde::{Deserialize, Serialize};

/// A lock, as [`LockInfo`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireLock {
    key: Vec<u8>,
    primary: Vec<u8>,
    start_ts: Timestamp,
    lock_expiry: Timestamp,
    kind: u8,
    txn_size: u64,
}

impl From<&LockInfo> for WireLock {
    fn from(l: &LockInfo) -> Self {
        WireLock {
            key: l.key.clone(),
            primary: l.primary.clone(),
            start_ts: l.start_ts,
            lock_expiry: l.lock_expiry,
            kind: match l.kind {
                LockKind::Put => 1,
                LockKind::Delete => 2,
                LockKind::LockOnly => 3,
            },
            txn_size: l.txn_size,
        }
    }
}

impl From<WireLock> for LockInfo {
    fn from(l: WireLock) -> Self {
        LockInfo {
            key: l.key,
            primary: l.primary,
            start_ts: l.start_ts,
            lock_expiry: l.lock_expiry,
            kind: match l.kind {
                1 => LockKind::Put,
                2 => LockKind::Delete,
                _ => LockKind::LockOnly,
            },
            txn_size: l.txn_size,
        }
    }
}

/// An engine error.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum WireEngineError {
    /// [`EngineError::ReadTsCompacted`].
    ReadTsCompacted {
        /// The refused read timestamp.
        read_ts: Timestamp,
        /// The watermark.
        min_retained: Timestamp,
    },
    /// [`EngineError::KeyTooLarge`].
    KeyTooLarge(u64, u64),
    /// [`EngineError::ValueTooLarge`].
    ValueTooLarge(u64, u64),
    /// [`EngineError::BatchTooLarge`].
    BatchTooLarge(u64, u64),
    /// [`EngineError::InvalidArgument`].
    InvalidArgument(String),
    /// Any other engine error, by its message.
    Other(String),
}

fn usize_of(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

impl From<&EngineError> for WireEngineError {
    fn from(e: &EngineError) -> Self {
        match e {
            EngineError::ReadTsCompacted {
                read_ts,
                min_retained,
            } => WireEngineError::ReadTsCompacted {
                read_ts: *read_ts,
                min_retained: *min_retained,
            },
            EngineError::KeyTooLarge { size, limit } => {
                WireEngineError::KeyTooLarge(*size as u64, *limit as u64)
            }
            EngineError::ValueTooLarge { size, limit } => {
                WireEngineError::ValueTooLarge(*size as u64, *limit as u64)
            }
            EngineError::BatchTooLarge { size, limit } => {
                WireEngineError::BatchTooLarge(*size as u64, *limit as u64)
            }
            EngineError::InvalidArgument(m) => WireEngineError::InvalidArgument(m.clone()),
            other => WireEngineError::Other(other.to_string()),
        }
    }
}

impl From<WireEngineError> for EngineError {
    fn from(e: WireEngineError) -> Self {
        match e {
            WireEngineError::ReadTsCompacted {
                read_ts,
                min_retained,
            } => EngineError::ReadTsCompacted {
                read_ts,
                min_retained,
            },
            WireEngineError::KeyTooLarge(size, limit) => EngineError::KeyTooLarge {
                size: usize_of(size),
                limit: usize_of(limit),
            },
            WireEngineError::ValueTooLarge(size, limit) => EngineError::ValueTooLarge {
                size: usize_of(size),
                limit: usize_of(limit),
            },
            WireEngineError::BatchTooLarge(size, limit) => EngineError::BatchTooLarge {
                size: usize_of(size),
                limit: usize_of(limit),
            },
            WireEngineError::InvalidArgument(m) => EngineError::InvalidArgument(m),
            WireEngineError::Other(message) => EngineError::Backend {
                engine: "remote",
                message,
            },
        }
    }
}

/// A [`TxnError`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum WireTxnError {
    Locked(WireLock),
    WriteConflict {
        key: Vec<u8>,
        start_ts: Timestamp,
        conflict_ts: Timestamp,
    },
    AlreadyCommitted {
        start_ts: Timestamp,
        commit_ts: Timestamp,
    },
    AlreadyRolledBack {
        start_ts: Timestamp,
    },
    LockNotFound {
        key: Vec<u8>,
        start_ts: Timestamp,
    },
    StartTsTooOld {
        start_ts: Timestamp,
        fence: Timestamp,
    },
    InvalidCommand(String),
    KeyTooLarge(u64, u64),
    ValueTooLarge(u64, u64),
    Decode(String),
    Engine(WireEngineError),
}

impl From<&TxnError> for WireTxnError {
    fn from(e: &TxnError) -> Self {
        match e {
            TxnError::Locked(l) => WireTxnError::Locked(l.as_ref().into()),
            TxnError::WriteConflict {
                key,
                start_ts,
                conflict_ts,
            } => WireTxnError::WriteConflict {
                key: key.clone(),
                start_ts: *start_ts,
                conflict_ts: *conflict_ts,
            },
            TxnError::AlreadyCommitted {
                start_ts,
                commit_ts,
            } => WireTxnError::AlreadyCommitted {
                start_ts: *start_ts,
                commit_ts: *commit_ts,
            },
            TxnError::AlreadyRolledBack { start_ts } => WireTxnError::AlreadyRolledBack {
                start_ts: *start_ts,
            },
            TxnError::LockNotFound { key, start_ts } => WireTxnError::LockNotFound {
                key: key.clone(),
                start_ts: *start_ts,
            },
            TxnError::StartTsTooOld { start_ts, fence } => WireTxnError::StartTsTooOld {
                start_ts: *start_ts,
                fence: *fence,
            },
            TxnError::InvalidCommand(m) => WireTxnError::InvalidCommand(m.clone()),
            TxnError::KeyTooLarge { size, limit } => {
                WireTxnError::KeyTooLarge(*size as u64, *limit as u64)
            }
            TxnError::ValueTooLarge { size, limit } => {
                WireTxnError::ValueTooLarge(*size as u64, *limit as u64)
            }
            TxnError::Decode(m) => WireTxnError::Decode(m.clone()),
            TxnError::Engine(e) => WireTxnError::Engine(e.into()),
        }
    }
}

impl From<WireTxnError> for TxnError {
    fn from(e: WireTxnError) -> Self {
        match e {
            WireTxnError::Locked(l) => TxnError::Locked(Box::new(l.into())),
            WireTxnError::WriteConflict {
                key,
                start_ts,
                conflict_ts,
            } => TxnError::WriteConflict {
                key,
                start_ts,
                conflict_ts,
            },
            WireTxnError::AlreadyCommitted {
                start_ts,
                commit_ts,
            } => TxnError::AlreadyCommitted {
                start_ts,
                commit_ts,
            },
            WireTxnError::AlreadyRolledBack { start_ts } => {
                TxnError::AlreadyRolledBack { start_ts }
            }
            WireTxnError::LockNotFound { key, start_ts } => {
                TxnError::LockNotFound { key, start_ts }
            }
            WireTxnError::StartTsTooOld { start_ts, fence } => {
                TxnError::StartTsTooOld { start_ts, fence }
            }
            WireTxnError::InvalidCommand(m) => TxnError::InvalidCommand(m),
            WireTxnError::KeyTooLarge(size, limit) => TxnError::KeyTooLarge {
                size: usize_of(size),
                limit: usize_of(limit),
            },
            WireTxnError::ValueTooLarge(size, limit) => TxnError::ValueTooLarge {
                size: usize_of(size),
                limit: usize_of(limit),
            },
            WireTxnError::Decode(m) => TxnError::Decode(m),
            WireTxnError::Engine(e) => TxnError::Engine(e.into()),
        }
    }
}

/// A [`ShardError`], plus "not the leader" which the receiving node reports when it
/// cannot serve the request itself (the sender then re-resolves the leader).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum WireShardError {
    Rejected(WireTxnError),
    Unavailable(String),
    Ambiguous(String),
    CommitTsTooOld {
        commit_ts: Timestamp,
        max_read_ts: Timestamp,
    },
}

impl From<&ShardError> for WireShardError {
    fn from(e: &ShardError) -> Self {
        match e {
            ShardError::Rejected(t) => WireShardError::Rejected(t.into()),
            ShardError::Unavailable(m) => WireShardError::Unavailable(m.clone()),
            ShardError::Ambiguous(m) => WireShardError::Ambiguous(m.clone()),
            ShardError::CommitTsTooOld {
                commit_ts,
                max_read_ts,
            } => WireShardError::CommitTsTooOld {
                commit_ts: *commit_ts,
                max_read_ts: *max_read_ts,
            },
        }
    }
}

impl From<WireShardError> for ShardError {
    fn from(e: WireShardError) -> Self {
        match e {
            WireShardError::Rejected(t) => ShardError::Rejected(t.into()),
            WireShardError::Unavailable(m) => ShardError::Unavailable(m),
            WireShardError::Ambiguous(m) => ShardError::Ambiguous(m),
            WireShardError::CommitTsTooOld {
                commit_ts,
                max_read_ts,
            } => ShardError::CommitTsTooOld {
                commit_ts,
                max_read_ts,
            },
        }
    }
}

/// A [`CommandOutput`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum WireOutput {
    Raw(Vec<Option<WireTxnError>>),
    Applied,
    Committed(Timestamp),
    RolledBack,
    Pending(Timestamp),
    Purged {
        purged: u64,
        next_cursor: Option<Vec<u8>>,
    },
}

impl From<&CommandOutput> for WireOutput {
    fn from(o: &CommandOutput) -> Self {
        match o {
            CommandOutput::Raw(results) => WireOutput::Raw(
                results
                    .iter()
                    .map(|r| r.as_ref().err().map(WireTxnError::from))
                    .collect(),
            ),
            CommandOutput::Applied => WireOutput::Applied,
            CommandOutput::Status(TxnStatus::Committed(ts)) => WireOutput::Committed(*ts),
            CommandOutput::Status(TxnStatus::RolledBack) => WireOutput::RolledBack,
            CommandOutput::Status(TxnStatus::Pending { lock_expiry }) => {
                WireOutput::Pending(*lock_expiry)
            }
            CommandOutput::Purged {
                purged,
                next_cursor,
            } => WireOutput::Purged {
                purged: *purged,
                next_cursor: next_cursor.clone(),
            },
        }
    }
}

impl From<WireOutput> for CommandOutput {
    fn from(o: WireOutput) -> Self {
        match o {
            WireOutput::Raw(results) => CommandOutput::Raw(
                results
                    .into_iter()
                    .map(|r| match r {
                        None => Ok(()),
                        Some(e) => Err(e.into()),
                    })
                    .collect(),
            ),
            WireOutput::Applied => CommandOutput::Applied,
            WireOutput::Committed(ts) => CommandOutput::Status(TxnStatus::Committed(ts)),
            WireOutput::RolledBack => CommandOutput::Status(TxnStatus::RolledBack),
            WireOutput::Pending(lock_expiry) => {
                CommandOutput::Status(TxnStatus::Pending { lock_expiry })
            }
            WireOutput::Purged {
                purged,
                next_cursor,
            } => CommandOutput::Purged {
                purged,
                next_cursor,
            },
        }
    }
}

/// The answer to a forwarded read.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum WireRead {
    /// A point read: the value, or the lock that blocks it.
    Point(Option<Vec<u8>>),
    PointLocked(WireLock),
    /// A scan: pairs and blocking locks.
    Scan {
        pairs: Vec<(Vec<u8>, Vec<u8>)>,
        locks: Vec<WireLock>,
    },
    /// Locks of a lock scan.
    Locks(Vec<WireLock>),
    /// A latest-commit-timestamp answer.
    Latest(Option<Timestamp>),
}

impl From<&PointRead> for WireRead {
    fn from(r: &PointRead) -> Self {
        match r {
            PointRead::Value(v) => WireRead::Point(v.clone()),
            PointRead::Locked(l) => WireRead::PointLocked(l.into()),
        }
    }
}

impl From<&ScanRead> for WireRead {
    fn from(r: &ScanRead) -> Self {
        WireRead::Scan {
            pairs: r
                .pairs
                .iter()
                .map(|p| (p.key.clone(), p.value.clone()))
                .collect(),
            locks: r.locks.iter().map(WireLock::from).collect(),
        }
    }
}

/// Converts scan pairs from their wire form.
pub fn pairs_from_wire(pairs: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<KvPair> {
    pairs
        .into_iter()
        .map(|(key, value)| KvPair { key, value })
        .collect()
}

/// Encodes a forwarded result.
pub fn encode<T: Serialize>(value: &Result<T, WireShardError>) -> Vec<u8> {
    // Encoding plain enums of integers, strings and byte vectors into a Vec cannot fail.
    bincode::serialize(value).unwrap_or_default()
}

/// Decodes a forwarded result; a reply that cannot be decoded is reported as a failure
/// whose outcome is unknown (a version mismatch between nodes, for example).
pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, ShardError> {
    match bincode::deserialize::<Result<T, WireShardError>>(bytes) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(e.into()),
        Err(e) => Err(ShardError::Ambiguous(format!(
            "cannot decode a forwarded reply: {e}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_survive_the_round_trip_with_their_meaning() {
        let lock = LockInfo {
            key: b"k".to_vec(),
            primary: b"p".to_vec(),
            start_ts: 5,
            lock_expiry: 9,
            kind: LockKind::Delete,
            txn_size: 3,
        };
        let errors = vec![
            ShardError::Rejected(TxnError::Locked(Box::new(lock.clone()))),
            ShardError::Rejected(TxnError::WriteConflict {
                key: b"k".to_vec(),
                start_ts: 1,
                conflict_ts: 2,
            }),
            ShardError::Rejected(TxnError::Engine(EngineError::ReadTsCompacted {
                read_ts: 3,
                min_retained: 4,
            })),
            ShardError::Unavailable("no leader".into()),
            ShardError::CommitTsTooOld {
                commit_ts: 7,
                max_read_ts: 8,
            },
        ];
        for e in errors {
            let bytes = encode::<()>(&Err((&e).into()));
            let back = decode::<()>(&bytes).unwrap_err();
            assert_eq!(back.to_string(), e.to_string());
        }
        let bytes = encode(&Ok(WireRead::from(&PointRead::Locked(lock.clone()))));
        match decode::<WireRead>(&bytes).unwrap() {
            WireRead::PointLocked(l) => assert_eq!(LockInfo::from(l), lock),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn outputs_survive_the_round_trip() {
        let output = CommandOutput::Raw(vec![
            Ok(()),
            Err(TxnError::KeyTooLarge { size: 9, limit: 4 }),
        ]);
        let bytes = encode(&Ok(WireOutput::from(&output)));
        let back: CommandOutput = decode::<WireOutput>(&bytes).unwrap().into();
        assert_eq!(format!("{back:?}"), format!("{output:?}"));
    }

    #[test]
    fn garbage_is_an_ambiguous_failure_not_a_panic() {
        let e = decode::<WireOutput>(&[0xff, 0x01]).unwrap_err();
        assert!(matches!(e, ShardError::Ambiguous(_)), "{e}");
    }
}
