//! The replication suite on the RocksDB engine (feature `rocks-tests`).

mod harness;
#[macro_use]
mod scenarios;

use std::path::Path;

use elastickv_engine_api::EngineError;
use elastickv_engine_rocks::{open_rocks, RocksEngine, RocksOptions};
use harness::EngineKind;

struct Rocks;

impl EngineKind for Rocks {
    type Engine = RocksEngine;
    const PERSISTENT: bool = true;
    fn open(dir: &Path) -> Result<RocksEngine, EngineError> {
        open_rocks(
            dir,
            RocksOptions {
                block_cache_bytes: 8 << 20,
                write_buffer_bytes: 8 << 20,
                ..RocksOptions::default()
            },
        )
    }
}

scenarios!(Rocks);
