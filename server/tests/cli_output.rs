//! The CLI's output into a pipe that is already closed (`elastickv engines | head -0`,
//! `elastickv scan | head` once `head` has had enough): the command ends quietly and
//! successfully, as Unix tools do, instead of panicking with a backtrace. A node that
//! cannot be reached is one line of error.

use std::io::Read;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_elastickv");

#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let mut child = Command::new(BIN)
        .arg("engines")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start elastickv engines");
    // Close the reading end before the command gets to write (it has to start first).
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    let status = child.wait().expect("wait");
    assert!(status.success(), "exit status {status}, stderr: {stderr}");
    assert!(stderr.is_empty(), "stderr: {stderr}");
}

#[test]
fn output_into_an_open_pipe_is_complete() {
    let output = Command::new(BIN).arg("engines").output().expect("run");
    assert!(output.status.success());
    let listed = String::from_utf8(output.stdout).expect("utf-8");
    let engines: Vec<&str> = listed.lines().collect();
    assert!(engines.contains(&"mem"), "{engines:?}");
    assert!(engines.contains(&"redb"), "{engines:?}");
}

/// A node that cannot be reached: one line naming the address and why, and a failure
/// status (not a debug dump of a gRPC status).
#[test]
fn an_unreachable_node_is_a_one_line_error() {
    // A port nothing listens on: bound, then let go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let output = Command::new(BIN)
        .args(["get", "k", "--addr", &addr])
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!("error: cannot connect to {addr}: ")),
        "{stderr}"
    );
    assert!(!stderr.contains("metadata"), "{stderr}");
}
