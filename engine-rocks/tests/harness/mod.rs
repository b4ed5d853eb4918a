//! The harness every test of this crate opens the engine through.

use std::path::Path;

use elastickv_engine_api::testkit::Harness;
use elastickv_engine_api::Result;
use elastickv_engine_rocks::{open_rocks, RocksEngine, RocksOptions};

/// Opens the RocksDB engine with small memory settings, so that tests running in
/// parallel do not each reserve the default caches.
pub struct Rocks;

impl Harness for Rocks {
    type Engine = RocksEngine;

    fn open(&self, dir: &Path) -> Result<RocksEngine> {
        open_rocks(dir, test_options())
    }

    fn persistent(&self) -> bool {
        true
    }
}

/// Options for tests: small caches and memtables.
pub fn test_options() -> RocksOptions {
    RocksOptions {
        block_cache_bytes: 8 * 1024 * 1024,
        write_buffer_bytes: 4 * 1024 * 1024,
        ..RocksOptions::default()
    }
}
