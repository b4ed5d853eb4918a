//! The whole conformance kit against the in-memory engine.

use std::path::Path;

use elastickv_engine_api::testkit::Harness;
use elastickv_engine_api::Result;
use elastickv_engine_mem::MemEngine;

/// Opens a fresh [`MemEngine`]; it keeps nothing on disk, so the reopen cases are skipped.
struct MemHarness;

impl Harness for MemHarness {
    type Engine = MemEngine;

    fn open(&self, _dir: &Path) -> Result<MemEngine> {
        Ok(MemEngine::new())
    }

    fn persistent(&self) -> bool {
        false
    }
}

elastickv_engine_api::conformance_tests!(MemHarness);
