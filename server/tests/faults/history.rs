//! Histories: what each client invoked, when, and how it ended.

use std::time::Instant;

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// It took effect (and a read's result is known).
    Ok,
    /// It certainly did not take effect.
    Fail,
    /// Unknown: it may or may not have taken effect (a timeout, a lost connection).
    Info,
}

/// One operation of one client process: the invocation and completion instants are
/// nanoseconds since the start of the run, on one clock. An `Info` operation never
/// completes (`complete == u64::MAX`): it may take effect at any later time.
#[derive(Debug, Clone)]
pub struct Op<F> {
    pub process: usize,
    pub invoke: u64,
    pub complete: u64,
    pub outcome: Outcome,
    pub f: F,
}

impl<F> Op<F> {
    /// A finished operation; an `Info` outcome is moved to "never completed".
    pub fn new(process: usize, invoke: u64, complete: u64, outcome: Outcome, f: F) -> Self {
        let complete = if outcome == Outcome::Info {
            u64::MAX
        } else {
            complete
        };
        Op {
            process,
            invoke,
            complete,
            outcome,
            f,
        }
    }
}

/// The run's clock.
#[derive(Debug, Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    pub fn start() -> Clock {
        Clock(Instant::now())
    }

    /// Nanoseconds since the start.
    pub fn now(&self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
}

/// Operations by outcome.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub ok: usize,
    pub fail: usize,
    pub info: usize,
}

impl Counts {
    pub fn of<F>(ops: &[Op<F>]) -> Counts {
        let mut c = Counts::default();
        for op in ops {
            match op.outcome {
                Outcome::Ok => c.ok += 1,
                Outcome::Fail => c.fail += 1,
                Outcome::Info => c.info += 1,
            }
        }
        c
    }

    pub fn total(&self) -> usize {
        self.ok + self.fail + self.info
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ops ({} ok, {} fail, {} unknown)",
            self.total(),
            self.ok,
            self.fail,
            self.info
        )
    }
}
