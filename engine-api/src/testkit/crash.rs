//! Crash safety under `kill -9` (ENGINE.md section 9), shared by every persistent
//! engine.
//!
//! A test calls [`run`] with its own name:
//!
//! ```ignore
//! use elastickv_engine_api::testkit::crash::{self, CrashConfig};
//!
//! #[test]
//! fn acknowledged_writes_survive_kill_9() {
//!     crash::run(&MyHarness, "acknowledged_writes_survive_kill_9", CrashConfig::default());
//! }
//! ```
//!
//! In the test process (the parent), `run` creates a data directory and, for each
//! round, starts the same test binary again running only that test, with the directory
//! in the `EKV_CRASH_CHILD` environment variable. In the child, the same `run` call
//! opens the engine there and writes a deterministic workload (multi-key batches with
//! raw-keyspace operations, deletes, TTLs, `expire_at`, periodic compactions; most
//! batches synced, some buffered), continuing from the reopened store's
//! `last_commit_ts`, and prints one line per acknowledged write. The parent reads those
//! lines and kills the child with SIGKILL at a moment drawn from the seed (before it
//! opens the store, right after, or after a number of acknowledgements), then reopens
//! the store itself and checks that:
//!
//! * every synced acknowledged write, and every write before it, is present with its
//!   exact value, and the store holds exactly the first `last_commit_ts` steps of the
//!   workload (buffered writes may be lost, but only as a suffix);
//! * no batch is half-applied (the keys of a batch, and its raw-keyspace marker, move
//!   together);
//! * `last_commit_ts` covers the highest synced acknowledgement, and neither it nor the
//!   retention watermark ever goes backwards across rounds;
//! * the read invariants hold: scans agree with point reads and `exists_at`, and reverse
//!   scans are forward scans reversed, at several read timestamps.
//!
//! A failure names the round, the seed (rerun with `EKV_CRASH_SEED=<seed>`), what was
//! lost or wrong, and the child's stderr. Every round is bounded: the child stops after
//! `max_acks_per_round` writes and is killed after at most [`ROUND_TIMEOUT`].

mod child;
mod verify;
mod workload;

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::Harness;
use crate::{MvccEngine, RetentionController, Timestamp};
use child::{collect_tail, forward_reports, was_killed, write_until_killed, Report};
use workload::Model;

/// The environment variable that makes `run` act as the child; holds the data directory.
const CHILD_ENV: &str = "EKV_CRASH_CHILD";
/// The test name the child was started for (checked against `run`'s argument).
const TEST_ENV: &str = "EKV_CRASH_TEST";
/// How many writes the child makes before it stops on its own.
const ACKS_ENV: &str = "EKV_CRASH_MAX_ACKS";
/// Overrides the seed of [`CrashConfig::default`], to replay a failing run.
pub const SEED_ENV: &str = "EKV_CRASH_SEED";
/// The longest a child may run before the parent kills it regardless.
pub const ROUND_TIMEOUT: Duration = Duration::from_secs(10);

/// How the crash test runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashConfig {
    /// Kill-and-recover rounds; each reopens the store the previous one left.
    pub rounds: usize,
    /// The most writes a child makes in one round (it is usually killed earlier).
    pub max_acks_per_round: u64,
    /// Seeds the kill moments. The workload itself is deterministic.
    pub seed: u64,
}

impl Default for CrashConfig {
    /// Four rounds of at most 150 writes; the seed comes from `EKV_CRASH_SEED` when set,
    /// otherwise from the clock (and is printed in every failure).
    fn default() -> Self {
        let seed = std::env::var(SEED_ENV)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0x5eed, |d| d.as_nanos() as u64)
            });
        CrashConfig {
            rounds: 4,
            max_acks_per_round: 150,
            seed,
        }
    }
}

/// Runs the crash test for the engine `harness` opens. `test_name` is the full name of
/// the calling `#[test]` function as the test binary lists it (`--list`), for example
/// `crash_safety` or `module::crash_safety`. See the module documentation.
///
/// Panics, describing exactly what was lost or wrong, when the engine fails a check.
pub fn run<H: Harness>(harness: &H, test_name: &str, config: CrashConfig) {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        let started_for = std::env::var(TEST_ENV).unwrap_or_default();
        assert_eq!(
            started_for, test_name,
            "crash child started for test `{started_for}` but running `{test_name}`"
        );
        let max_acks = std::env::var(ACKS_ENV)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(config.max_acks_per_round);
        write_until_killed(harness, Path::new(&dir), max_acks);
        return;
    }
    assert!(
        harness.persistent(),
        "crash::run needs a persistent engine: nothing survives a restart of this one"
    );
    let dir = tempfile::Builder::new()
        .prefix("ekv-crash-")
        .tempdir()
        .expect("crash test: cannot create a temporary directory");
    let mut parent = Parent {
        harness,
        dir: dir.path(),
        test_name,
        config,
        rng: config.seed,
        last_commit: 0,
        watermark: 0,
    };
    let failure =
        (1..=config.rounds).find_map(|round| parent.round(round).err().map(|r| (round, r)));
    if let Some((round, report)) = failure {
        let kept = dir.keep();
        panic!(
            "crash test `{test_name}` failed in round {round} of {} (seed {}; rerun with \
             {SEED_ENV}={}; data kept in {}):\n{report}",
            config.rounds,
            config.seed,
            config.seed,
            kept.display()
        );
    }
}

/// When the parent kills the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KillPlan {
    /// At once, possibly before or while the child opens (and recovers) the store.
    Immediately,
    /// Right after the child reports that the store is open.
    AfterOpen,
    /// After this many acknowledged writes, plus a random delay of a few microseconds
    /// that moves the kill around inside the next write.
    AfterAcks(u64, Duration),
}

/// What one round observed.
#[derive(Debug, Default)]
struct Observed {
    start: Option<Timestamp>,
    acks: u64,
    last_ack: Option<Timestamp>,
    last_durable_ack: Option<Timestamp>,
    last_compaction: Option<Timestamp>,
    done: bool,
}

struct Parent<'a, H> {
    harness: &'a H,
    dir: &'a Path,
    test_name: &'a str,
    config: CrashConfig,
    rng: u64,
    /// `last_commit_ts` and the watermark found after the previous round.
    last_commit: Timestamp,
    watermark: Timestamp,
}

impl<H: Harness> Parent<'_, H> {
    fn next_random(&mut self) -> u64 {
        // splitmix64
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn plan(&mut self) -> KillPlan {
        match self.next_random() % 20 {
            0..=2 => KillPlan::Immediately,
            3 | 4 => KillPlan::AfterOpen,
            _ => {
                let acks = 1 + self.next_random() % self.config.max_acks_per_round.max(1);
                KillPlan::AfterAcks(acks, Duration::from_micros(self.next_random() % 2000))
            }
        }
    }

    fn round(&mut self, round: usize) -> Result<(), String> {
        let plan = self.plan();
        let (observed, status, stderr) = self.crash_child(plan)?;
        let context = format!(
            "kill plan {plan:?}; the child reported {} acknowledged writes (last {:?}, last synced \
             {:?}), started at last_commit_ts {:?}, exit status {status}",
            observed.acks, observed.last_ack, observed.last_durable_ack, observed.start
        );
        let with_stderr = |report: String| format!("{report}\n{context}\nchild stderr:\n{stderr}");
        if let Some(start) = observed.start {
            if start != self.last_commit {
                return Err(with_stderr(format!(
                    "the child reopened the store at last_commit_ts {start}, but the previous \
                     round ended at {}",
                    self.last_commit
                )));
            }
        }
        let exited_by_itself = !was_killed(&status);
        if exited_by_itself && !(status.success() && observed.done) {
            return Err(with_stderr(
                if observed.start.is_none() && status.success() {
                    format!(
                        "the child ran no test named `{}`: pass the test's full name as \
                     `--list` prints it",
                        self.test_name
                    )
                } else {
                    "the child failed on its own (before it was killed)".to_string()
                },
            ));
        }
        self.check_recovered(&observed).map_err(with_stderr)?;
        println!(
            "crash round {round}/{}: {context}; recovered last_commit_ts {}",
            self.config.rounds, self.last_commit
        );
        Ok(())
    }

    /// Starts the child, kills it according to `plan`, and returns what it reported,
    /// its exit status and the tail of its stderr.
    fn crash_child(&mut self, plan: KillPlan) -> Result<(Observed, ExitStatus, String), String> {
        let exe =
            std::env::current_exe().map_err(|e| format!("cannot find the test binary: {e}"))?;
        let mut child = Command::new(exe)
            .args([
                "--exact",
                self.test_name,
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CHILD_ENV, self.dir)
            .env(TEST_ENV, self.test_name)
            .env(ACKS_ENV, self.config.max_acks_per_round.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the child test process: {e}"))?;
        let stderr = collect_tail(child.stderr.take());
        let reports = forward_reports(child.stdout.take());
        let mut observed = Observed::default();
        if plan != KillPlan::Immediately {
            Self::follow(&reports, plan, &mut observed);
        }
        // SIGKILL on Unix. An error means the child already exited, which `wait` reports.
        let _ = child.kill();
        let status = child
            .wait()
            .map_err(|e| format!("cannot wait for the child: {e}"))?;
        // Lines still buffered in the pipe when the child died are acknowledgements too.
        while let Ok(report) = reports.recv() {
            record(&mut observed, report);
        }
        let stderr = stderr.join().unwrap_or_default();
        Ok((observed, status, stderr))
    }

    /// Reads the child's reports until the kill moment, the child's exit (its stdout
    /// closes), or the timeout.
    fn follow(reports: &mpsc::Receiver<Report>, plan: KillPlan, observed: &mut Observed) {
        let deadline = Instant::now() + ROUND_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(report) = reports.recv_timeout(left) else {
                return;
            };
            record(observed, report);
            match (plan, report) {
                (KillPlan::AfterOpen, Report::Start(_)) => return,
                (KillPlan::AfterAcks(n, delay), Report::Ack { .. }) if observed.acks >= n => {
                    std::thread::sleep(delay);
                    return;
                }
                _ => {}
            }
        }
    }

    /// Reopens the store and checks it against what the child acknowledged.
    fn check_recovered(&mut self, observed: &Observed) -> Result<(), String> {
        let engine = self
            .harness
            .open(self.dir)
            .map_err(|e| format!("reopening the store after the crash failed: {e}"))?;
        let last = engine
            .last_commit_ts()
            .map_err(|e| format!("last_commit_ts failed: {e}"))?;
        let watermark = engine
            .min_retained_ts()
            .map_err(|e| format!("min_retained_ts failed: {e}"))?;
        let mut problems = Vec::new();
        let required = observed.last_durable_ack.unwrap_or(0).max(self.last_commit);
        if last < required {
            problems.push(format!(
                "last_commit_ts is {last} but the write at {required} was acknowledged as synced \
                 (or seen after the previous round): steps {}..={required} are lost",
                last + 1
            ));
        }
        let issued = observed.last_ack.unwrap_or(self.last_commit) + 1;
        if last > issued {
            problems.push(format!(
                "last_commit_ts is {last} but the child never wrote past {issued}"
            ));
        }
        if watermark < self.watermark || watermark < observed.last_compaction.unwrap_or(0) {
            problems.push(format!(
                "the retention watermark went backwards: {watermark}, after {} before the crash \
                 and a completed compaction to {:?}",
                self.watermark, observed.last_compaction
            ));
        }
        if watermark > last.max(self.last_commit) {
            problems.push(format!(
                "the watermark {watermark} is above last_commit_ts {last}"
            ));
        }
        if problems.is_empty() {
            let model = Model::replay(last);
            let span = last.saturating_sub(watermark.max(1)) + 1;
            let extra = watermark.max(1) + self.next_random() % span;
            problems = verify::verify(&engine, &model, last, watermark, extra);
        }
        drop(engine);
        if !problems.is_empty() {
            return Err(format!(
                "after recovery (last_commit_ts {last}, watermark {watermark}):\n  - {}",
                problems.join("\n  - ")
            ));
        }
        self.last_commit = last;
        self.watermark = watermark;
        Ok(())
    }
}

fn record(observed: &mut Observed, report: Report) {
    match report {
        Report::Start(ts) => observed.start = Some(ts),
        Report::Ack { ts, durable } => {
            observed.acks += 1;
            observed.last_ack = Some(ts);
            if durable {
                observed.last_durable_ack = Some(ts);
            }
        }
        Report::Compacted(ts) => observed.last_compaction = Some(ts),
        Report::Done => observed.done = true,
    }
}
