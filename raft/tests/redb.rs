//! The replication suite on the redb engine.

mod harness;
#[macro_use]
mod scenarios;

use std::path::Path;

use elastickv_engine_api::EngineError;
use elastickv_engine_redb::{open_redb, RedbEngine, RedbOptions};
use harness::EngineKind;

struct Redb;

impl EngineKind for Redb {
    type Engine = RedbEngine;
    const PERSISTENT: bool = true;
    fn open(dir: &Path) -> Result<RedbEngine, EngineError> {
        open_redb(
            dir,
            RedbOptions {
                cache_size: 16 * 1024 * 1024,
                ..RedbOptions::default()
            },
        )
    }
}

scenarios!(Redb);
