//! Mapping of RocksDB errors onto the shared [`EngineError`] kinds.

use elastickv_engine_api::EngineError;
use rocksdb::ErrorKind;

use crate::ENGINE_NAME;

/// Converts a RocksDB error, keeping its kind where the contract has one: corruption
/// stays [`EngineError::Corrupted`], I/O failures (including a directory locked by
/// another process) become [`EngineError::Io`], a database being shut down is
/// [`EngineError::Closed`], and everything else is [`EngineError::Backend`].
pub(crate) fn from_rocks(error: rocksdb::Error) -> EngineError {
    match error.kind() {
        ErrorKind::Corruption => EngineError::corrupted(format!("rocksdb: {error}")),
        ErrorKind::IOError => EngineError::Io(std::io::Error::other(error.into_string())),
        ErrorKind::ShutdownInProgress => EngineError::Closed,
        _ => EngineError::backend(ENGINE_NAME, error),
    }
}
