//! The one error type shared by every engine.

use crate::Timestamp;

/// Every failure an engine can report. Callers match on the variant, never on the text.
///
/// The variants carry the key, limit or timestamp involved so that a message shown to a
/// person names what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// `apply_mutations` (or a write with a conflict check) found a version of `key`
    /// newer than the transaction's `start_ts`. Nothing was written.
    #[error(
        "write conflict on key {}: a version newer than start_ts {start_ts} exists",
        crate::display_key(key)
    )]
    WriteConflict {
        /// The first conflicting key, in the order the caller gave them.
        key: Vec<u8>,
        /// The `start_ts` the check was made against.
        start_ts: Timestamp,
    },
    /// A read asked for a timestamp that compaction has already discarded.
    #[error("read at ts {read_ts} is below the retention watermark {min_retained}")]
    ReadTsCompacted {
        /// The timestamp of the refused read.
        read_ts: Timestamp,
        /// The oldest timestamp still readable.
        min_retained: Timestamp,
    },
    /// A key was empty where a key is required.
    #[error("empty key: {context}")]
    EmptyKey {
        /// What the key was for (for example "mutation 3").
        context: &'static str,
    },
    /// A key is longer than this engine accepts.
    #[error("key of {size} bytes exceeds the limit of {limit} bytes")]
    KeyTooLarge {
        /// The key's length.
        size: usize,
        /// The engine's `max_key_size`.
        limit: usize,
    },
    /// A value is longer than this engine accepts.
    #[error("value of {size} bytes exceeds the limit of {limit} bytes")]
    ValueTooLarge {
        /// The value's length.
        size: usize,
        /// The engine's `max_value_size`.
        limit: usize,
    },
    /// A batch holds more entries than this engine accepts in one atomic write.
    #[error("batch of {size} entries exceeds the limit of {limit} entries")]
    BatchTooLarge {
        /// Entries in the refused batch.
        size: usize,
        /// The engine's `max_batch_entries`.
        limit: usize,
    },
    /// An argument is outside its domain (for example a commit timestamp of 0).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Stored or streamed data failed a check: bad magic, checksum, truncation, bad
    /// ordering, or an undecodable record.
    #[error("corrupted data: {0}")]
    Corrupted(String),
    /// The data directory belongs to another engine or to an incompatible format version.
    #[error("incompatible store: {0}")]
    Incompatible(String),
    /// An I/O error from the operating system or the backend's file layer.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The engine was closed or its backend became unusable.
    #[error("engine closed")]
    Closed,
    /// Any other backend failure, with the backend's own message.
    #[error("{engine} backend error: {message}")]
    Backend {
        /// The engine's name (for example "redb").
        engine: &'static str,
        /// The backend's description of the failure.
        message: String,
    },
}

impl EngineError {
    /// Builds a [`EngineError::Backend`] from any displayable backend error.
    pub fn backend(engine: &'static str, error: impl std::fmt::Display) -> Self {
        EngineError::Backend {
            engine,
            message: error.to_string(),
        }
    }

    /// Builds a [`EngineError::Corrupted`] with the given description.
    pub fn corrupted(what: impl Into<String>) -> Self {
        EngineError::Corrupted(what.into())
    }
}

/// The result type of every engine operation.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
