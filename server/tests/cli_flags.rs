//! The binary's global flags: `--worker-threads` (or `ELASTICKV_WORKER_THREADS`) takes
//! a thread count from 1 to 1024 and refuses anything else before doing anything, with
//! a message that names the flag.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_elastickv");

fn run(args: &[&str], env: Option<&str>) -> (bool, String, String) {
    let mut command = Command::new(BIN);
    command.args(args).env_remove("ELASTICKV_WORKER_THREADS");
    if let Some(value) = env {
        command.env("ELASTICKV_WORKER_THREADS", value);
    }
    let output = command.output().expect("run elastickv");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn worker_threads_in_range_are_taken() {
    for args in [
        &["--worker-threads", "1", "engines"][..],
        &["engines", "--worker-threads", "1024"][..],
    ] {
        let (ok, stdout, stderr) = run(args, None);
        assert!(ok, "{args:?}: {stderr}");
        assert!(stdout.lines().any(|l| l == "mem"), "{args:?}: {stdout}");
    }
    let (ok, stdout, stderr) = run(&["engines"], Some("2"));
    assert!(ok, "{stderr}");
    assert!(stdout.lines().any(|l| l == "mem"), "{stdout}");
}

#[test]
fn worker_threads_out_of_range_are_refused() {
    for (args, env) in [
        (&["--worker-threads", "0", "engines"][..], None),
        (&["--worker-threads", "1025", "engines"][..], None),
        (&["--worker-threads", "many", "engines"][..], None),
        (&["engines"][..], Some("0")),
    ] {
        let (ok, stdout, stderr) = run(args, env);
        assert!(!ok, "{args:?} {env:?} was taken: {stdout}");
        assert!(stdout.is_empty(), "{args:?} {env:?}: {stdout}");
        assert!(
            stderr.contains("--worker-threads"),
            "{args:?} {env:?}: the error names the flag: {stderr}"
        );
    }
}
