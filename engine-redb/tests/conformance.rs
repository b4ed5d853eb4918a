//! The engine-api conformance kit, run against the redb engine.

use std::path::Path;

use elastickv_engine_api::testkit::Harness;
use elastickv_engine_api::Result;
use elastickv_engine_redb::{open_redb, RedbEngine, RedbOptions};

/// Opens the redb engine in the kit's directories.
struct Redb;

impl Harness for Redb {
    type Engine = RedbEngine;

    fn open(&self, dir: &Path) -> Result<RedbEngine> {
        open_redb(dir, RedbOptions::default())
    }

    fn persistent(&self) -> bool {
        true
    }
}

elastickv_engine_api::conformance_tests!(Redb);
