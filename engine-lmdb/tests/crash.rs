//! Crash safety under `kill -9`: a child process writes synced and buffered batches and
//! is killed at random moments; every acknowledged synced write must survive.

use std::path::Path;

use elastickv_engine_api::testkit::crash::{self, CrashConfig};
use elastickv_engine_api::testkit::Harness;
use elastickv_engine_api::Result;
use elastickv_engine_lmdb::{open_lmdb, LmdbEngine, LmdbOptions};

struct Lmdb {
    initial_map_size: usize,
}

impl Harness for Lmdb {
    type Engine = LmdbEngine;

    fn open(&self, dir: &Path) -> Result<LmdbEngine> {
        let options = LmdbOptions {
            initial_map_size: self.initial_map_size,
            ..LmdbOptions::default()
        };
        open_lmdb(dir, options)
    }

    fn persistent(&self) -> bool {
        true
    }
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let harness = Lmdb {
        initial_map_size: LmdbOptions::default().initial_map_size,
    };
    crash::run(
        &harness,
        "acknowledged_writes_survive_kill_9",
        CrashConfig::default(),
    );
}

/// The same with a map that starts tiny, so that the child is often killed while it
/// aborts, grows the map and replays a write.
#[test]
fn acknowledged_writes_survive_kill_9_while_the_map_grows() {
    let harness = Lmdb {
        initial_map_size: 64 * 1024,
    };
    crash::run(
        &harness,
        "acknowledged_writes_survive_kill_9_while_the_map_grows",
        CrashConfig::default(),
    );
}
