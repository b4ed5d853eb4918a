//! Maps redb's errors onto the shared [`EngineError`] kinds, in one place.

use elastickv_engine_api::EngineError;

/// The engine name used in errors and in the format marker.
pub(crate) const ENGINE: &str = "redb";

/// Converts any redb error into the matching [`EngineError`] kind.
pub(crate) fn from_redb(err: impl Into<redb::Error>) -> EngineError {
    match err.into() {
        redb::Error::Io(e) => EngineError::Io(e),
        redb::Error::Corrupted(what) => EngineError::Corrupted(format!("redb: {what}")),
        redb::Error::UpgradeRequired(version) => EngineError::Incompatible(format!(
            "the redb file uses file format {version}, which this build of redb does not open"
        )),
        redb::Error::DatabaseClosed => EngineError::Closed,
        other => EngineError::backend(ENGINE, other),
    }
}
