//! Maps heed's and LMDB's errors onto the shared [`EngineError`] kinds, in one place.

use elastickv_engine_api::EngineError;
use heed::MdbError;

/// The engine name used in errors and in the format marker.
pub(crate) const ENGINE: &str = "lmdb";

/// True for LMDB's "map full" error, which the write path handles by growing the map.
pub(crate) fn is_map_full(err: &heed::Error) -> bool {
    matches!(err, heed::Error::Mdb(MdbError::MapFull))
}

/// Converts a heed error into the matching [`EngineError`] kind.
pub(crate) fn from_heed(err: heed::Error) -> EngineError {
    match err {
        heed::Error::Io(e) => EngineError::Io(e),
        heed::Error::Mdb(MdbError::Corrupted | MdbError::PageNotFound) => {
            EngineError::Corrupted(format!("lmdb: {err}"))
        }
        heed::Error::Mdb(
            MdbError::Invalid | MdbError::VersionMismatch | MdbError::Incompatible,
        ) => EngineError::Incompatible(format!("lmdb: {err}")),
        heed::Error::Mdb(MdbError::Panic) => EngineError::Closed,
        other => EngineError::backend(ENGINE, other),
    }
}
