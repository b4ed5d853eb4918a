//! The child process: the writer loop, the lines it prints, and how the parent reads
//! them.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::ExitStatus;
use std::sync::mpsc;

use super::workload::{compact_after, Step};
use crate::testkit::Harness;
use crate::{MvccEngine, Timestamp};

/// Prefix of every line the child prints for the parent.
const MARK: &str = "EKV-CRASH";

/// The child: opens the store and writes the workload, one acknowledgement per write.
pub(super) fn write_until_killed<H: Harness>(harness: &H, dir: &Path, max_acks: u64) {
    let engine = harness
        .open(dir)
        .unwrap_or_else(|e| panic!("crash child: opening {} failed: {e}", dir.display()));
    let start = engine
        .last_commit_ts()
        .unwrap_or_else(|e| panic!("crash child: last_commit_ts failed: {e}"));
    tell_parent(&format!("START {start}"));
    for ts in (start + 1..).take(usize::try_from(max_acks).unwrap_or(usize::MAX)) {
        let step = Step::at(ts);
        step.apply(&engine, ts);
        let kind = if step.is_durable() {
            "sync"
        } else {
            "buffered"
        };
        tell_parent(&format!("ACK {ts} {kind}"));
        if let Some(min_ts) = compact_after(&engine, ts) {
            tell_parent(&format!("COMPACTED {min_ts}"));
        }
    }
    tell_parent("DONE");
}

fn tell_parent(line: &str) {
    let mut out = std::io::stdout().lock();
    // The parent sees the line as soon as it is written; if the pipe is gone the
    // parent is too, and the child will be killed anyway.
    let _ = writeln!(out, "{MARK} {line}");
    let _ = out.flush();
}

/// What the child reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Report {
    Start(Timestamp),
    Ack { ts: Timestamp, durable: bool },
    Compacted(Timestamp),
    Done,
}

fn parse_report(line: &str) -> Option<Report> {
    // libtest may print "test name ... " on the same line before the child's output.
    let rest = &line[line.find(MARK)? + MARK.len()..];
    let mut words = rest.split_whitespace();
    let number = |w: Option<&str>| w.and_then(|w| w.parse::<u64>().ok());
    match words.next()? {
        "START" => number(words.next()).map(Report::Start),
        "ACK" => {
            let ts = number(words.next())?;
            Some(Report::Ack {
                ts,
                durable: words.next()? == "sync",
            })
        }
        "COMPACTED" => number(words.next()).map(Report::Compacted),
        "DONE" => Some(Report::Done),
        _ => None,
    }
}

#[cfg(unix)]
pub(super) fn was_killed(status: &ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(9)
}

#[cfg(not(unix))]
pub(super) fn was_killed(status: &ExitStatus) -> bool {
    // `Child::kill` uses TerminateProcess, which makes the exit code 1.
    status.code() == Some(1)
}

/// Forwards the child's report lines over a channel, so the parent can wait for them
/// with a timeout. The channel closes when the child closes its stdout.
pub(super) fn forward_reports(stdout: Option<std::process::ChildStdout>) -> mpsc::Receiver<Report> {
    let (send, receive) = mpsc::channel();
    if let Some(stdout) = stdout {
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(report) = parse_report(&line) {
                    if send.send(report).is_err() {
                        break;
                    }
                }
            }
        });
    }
    receive
}

/// Collects the last few KiB of the child's stderr, for failure messages.
pub(super) fn collect_tail(
    stderr: Option<std::process::ChildStderr>,
) -> std::thread::JoinHandle<String> {
    const KEEP: usize = 8 * 1024;
    std::thread::spawn(move || {
        let mut tail: Vec<u8> = Vec::new();
        if let Some(mut stderr) = stderr {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > 2 * KEEP {
                    tail.drain(..tail.len() - KEEP);
                }
            }
        }
        let start = tail.len().saturating_sub(KEEP);
        String::from_utf8_lossy(&tail[start..]).into_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_found_even_after_libtest_output() {
        assert_eq!(
            parse_report("test crash ... EKV-CRASH START 12"),
            Some(Report::Start(12))
        );
        assert_eq!(
            parse_report("EKV-CRASH ACK 7 buffered"),
            Some(Report::Ack {
                ts: 7,
                durable: false
            })
        );
        assert_eq!(
            parse_report("EKV-CRASH ACK 7 sync"),
            Some(Report::Ack {
                ts: 7,
                durable: true
            })
        );
        assert_eq!(
            parse_report("EKV-CRASH COMPACTED 24"),
            Some(Report::Compacted(24))
        );
        assert_eq!(parse_report("running 1 test"), None);
        assert_eq!(parse_report("EKV-CRASH ACK"), None);
    }
}
