//! The replication suite on the LMDB engine.

mod harness;
#[macro_use]
mod scenarios;

use std::path::Path;

use elastickv_engine_api::EngineError;
use elastickv_engine_lmdb::{open_lmdb, LmdbEngine, LmdbOptions};
use harness::EngineKind;

struct Lmdb;

impl EngineKind for Lmdb {
    type Engine = LmdbEngine;
    const PERSISTENT: bool = true;
    fn open(dir: &Path) -> Result<LmdbEngine, EngineError> {
        open_lmdb(dir, LmdbOptions::default())
    }
}

scenarios!(Lmdb);
