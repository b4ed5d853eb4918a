//! Crash safety under `kill -9`: a child process writes synced and buffered batches and
//! is killed at random moments; every acknowledged synced write must survive.

use std::path::Path;

use elastickv_engine_api::testkit::crash::{self, CrashConfig};
use elastickv_engine_api::testkit::Harness;
use elastickv_engine_api::Result;
use elastickv_engine_redb::{open_redb, RedbEngine, RedbOptions};

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

#[test]
fn acknowledged_writes_survive_kill_9() {
    crash::run(
        &Redb,
        "acknowledged_writes_survive_kill_9",
        CrashConfig::default(),
    );
}

/// With quick repair, recovery loads the saved allocator state instead of walking the
/// file: a different recovery path that must be just as safe.
#[test]
fn acknowledged_writes_survive_kill_9_with_quick_repair() {
    struct QuickRepair;
    impl Harness for QuickRepair {
        type Engine = RedbEngine;
        fn open(&self, dir: &Path) -> Result<RedbEngine> {
            let options = RedbOptions {
                quick_repair: true,
                ..RedbOptions::default()
            };
            open_redb(dir, options)
        }
        fn persistent(&self) -> bool {
            true
        }
    }
    crash::run(
        &QuickRepair,
        "acknowledged_writes_survive_kill_9_with_quick_repair",
        CrashConfig::default(),
    );
}
