//! Starting an `elastickv` process for the process-level tests (`tests/common` and the
//! fault harness share it).

use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Starts the crate's `elastickv` binary with `args`, appending its log (stderr) to
/// `log`.
pub fn spawn_elastickv(args: &[String], log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    Command::new(env!("CARGO_BIN_EXE_elastickv"))
        .args(args)
        .env("RUST_LOG", "info,openraft=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start elastickv")
}
