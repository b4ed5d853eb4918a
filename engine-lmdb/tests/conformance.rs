//! The engine-api conformance kit, run against the LMDB engine.

use std::path::Path;

use elastickv_engine_api::testkit::Harness;
use elastickv_engine_api::Result;
use elastickv_engine_lmdb::{open_lmdb, LmdbEngine, LmdbOptions};

/// Opens the LMDB engine in the kit's directories.
struct Lmdb;

impl Harness for Lmdb {
    type Engine = LmdbEngine;

    fn open(&self, dir: &Path) -> Result<LmdbEngine> {
        open_lmdb(dir, LmdbOptions::default())
    }

    fn persistent(&self) -> bool {
        true
    }
}

elastickv_engine_api::conformance_tests!(Lmdb);
