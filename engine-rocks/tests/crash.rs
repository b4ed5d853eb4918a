//! Crash safety under `kill -9`: a child process writes synced and buffered batches and
//! is killed at random moments; every acknowledged synced write must survive, and what
//! survives of the buffered ones is a prefix.

mod harness;

use elastickv_engine_api::testkit::crash::{self, CrashConfig};
use harness::Rocks;

#[test]
fn acknowledged_writes_survive_kill_9() {
    crash::run(
        &Rocks,
        "acknowledged_writes_survive_kill_9",
        CrashConfig::default(),
    );
}
