//! The binary's global flags: `--worker-threads` (or `ELASTICKV_WORKER_THREADS`) and
//! `--apply-threads` (or `ELASTICKV_APPLY_THREADS`) take a thread count from 1 to 1024
//! and refuse anything else before doing anything, with a message that names the flag.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_elastickv");

fn run(args: &[&str], env: Option<&str>) -> (bool, String, String) {
    run_with(args, "ELASTICKV_WORKER_THREADS", env)
}

/// Runs the binary with `var` set to `env` (and the other thread variable unset).
fn run_with(args: &[&str], var: &str, env: Option<&str>) -> (bool, String, String) {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_remove("ELASTICKV_WORKER_THREADS")
        .env_remove("ELASTICKV_APPLY_THREADS");
    if let Some(value) = env {
        command.env(var, value);
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

#[test]
fn apply_threads_in_range_are_taken_and_others_refused() {
    for args in [
        &["--apply-threads", "1", "engines"][..],
        &["engines", "--apply-threads", "1024"][..],
    ] {
        let (ok, stdout, stderr) = run_with(args, "ELASTICKV_APPLY_THREADS", None);
        assert!(ok, "{args:?}: {stderr}");
        assert!(stdout.lines().any(|l| l == "mem"), "{args:?}: {stdout}");
    }
    let (ok, _, stderr) = run_with(&["engines"], "ELASTICKV_APPLY_THREADS", Some("2"));
    assert!(ok, "{stderr}");
    for (args, env) in [
        (&["--apply-threads", "0", "engines"][..], None),
        (&["--apply-threads", "1025", "engines"][..], None),
        (&["engines"][..], Some("none")),
    ] {
        let (ok, stdout, stderr) = run_with(args, "ELASTICKV_APPLY_THREADS", env);
        assert!(!ok, "{args:?} {env:?} was taken: {stdout}");
        assert!(
            stderr.contains("--apply-threads"),
            "{args:?} {env:?}: the error names the flag: {stderr}"
        );
    }
}
