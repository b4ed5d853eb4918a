//! The thread a group's state machine applies on.
//!
//! openraft's state-machine task hands each batch of committed entries to
//! `StateMachine::apply`, which blocks on the engine. Handed to Tokio's blocking pool,
//! each batch woke whichever pool thread was idle, often a different one from the last,
//! so the engine's write path ran with a cold cache and an allocator heap that had not
//! seen its buffers (the allocator's search for a free page alone was 4% of a
//! follower's CPU at 256 clients). Batches are applied one at a time and in order
//! anyway, so each group has one thread of its own for them, which ends when the state
//! machine is dropped. Batches small enough that the hand-off would cost more than the
//! work are applied on the calling task instead ([`ApplyThread::run_here`], chosen by
//! the state machine), with the same outcomes.
//!
//! [`set_apply_threads`] replaces the thread per group with a pool shared by every
//! group of the process, each group on one of its threads (in turn as they open), so
//! that a group's batches still run one at a time and in order. Several groups' batches
//! then take turns on a thread instead of each waking its own: with three nodes of three
//! groups sharing two cores, one thread per node spent about a fifth less CPU per put
//! (`docs/benchmarks.md`).

use std::num::NonZeroUsize;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, OnceLock};

use elastickv_engine_api::EngineError;
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// A thread running the jobs given to [`ApplyThread::run`], one at a time, in order.
pub(crate) struct ApplyThread {
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for ApplyThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApplyThread")
    }
}

impl ApplyThread {
    /// Starts the thread, named `name`. If it cannot start, every job fails (with
    /// the reason logged once here).
    pub(crate) fn start(name: String) -> Self {
        let (jobs, queue) = mpsc::channel::<Job>();
        let spawned = std::thread::Builder::new().name(name).spawn(move || {
            while let Ok(job) = queue.recv() {
                job();
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start a state-machine thread");
        }
        ApplyThread { jobs }
    }

    /// Runs `work` on the thread and waits for its result. A panic in `work` is an
    /// error, as it was from the blocking pool, and the thread goes on.
    pub(crate) async fn run<T, F>(&self, work: F) -> Result<T, EngineError>
    where
        F: FnOnce() -> Result<T, EngineError> + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let outcome = catch_unwind(AssertUnwindSafe(work));
            // The caller may have gone (its task was dropped): nothing to report then.
            let _ = tx.send(outcome);
        });
        self.jobs.send(job).map_err(|_| stopped())?;
        match rx.await {
            Ok(outcome) => settle(outcome),
            Err(_) => Err(stopped()),
        }
    }

    /// Runs `work` on the calling thread instead, with the outcome [`ApplyThread::run`]
    /// would give (a panic is an error): for work shorter than the two thread
    /// hand-offs it saves.
    pub(crate) fn run_here<T, F>(&self, work: F) -> Result<T, EngineError>
    where
        F: FnOnce() -> Result<T, EngineError>,
    {
        settle(catch_unwind(AssertUnwindSafe(work)))
    }
}

/// The process-wide pool, when [`set_apply_threads`] asked for one.
static POOL_SIZE: OnceLock<NonZeroUsize> = OnceLock::new();
static POOL: OnceLock<Vec<Arc<ApplyThread>>> = OnceLock::new();
/// The pool thread the next group gets.
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Makes every group of this process apply on a pool of `threads` threads shared by
/// all of them, instead of a thread per group (the default). Call it before any group
/// starts; it can be set once. The pool's threads live as long as the process.
///
/// # Errors
///
/// The pool size was set already: the error is the size it has.
pub fn set_apply_threads(threads: NonZeroUsize) -> Result<(), NonZeroUsize> {
    POOL_SIZE
        .set(threads)
        .map_err(|rejected| POOL_SIZE.get().copied().unwrap_or(rejected))
}

/// The thread a new state machine applies on: one of the pool's if there is a pool,
/// else a thread of its own, which ends when the state machine is dropped.
pub(crate) fn for_state_machine() -> Arc<ApplyThread> {
    match POOL_SIZE.get() {
        Some(size) => {
            let pool = POOL.get_or_init(|| {
                (0..size.get())
                    .map(|_| Arc::new(ApplyThread::start("ekv-apply".to_string())))
                    .collect()
            });
            Arc::clone(&pool[NEXT.fetch_add(1, Ordering::Relaxed) % pool.len()])
        }
        None => Arc::new(ApplyThread::start("ekv-apply".to_string())),
    }
}

fn stopped() -> EngineError {
    EngineError::Io(std::io::Error::other("state-machine thread stopped"))
}

/// A job's result, with a panic turned into an error.
fn settle<T>(outcome: std::thread::Result<Result<T, EngineError>>) -> Result<T, EngineError> {
    match outcome {
        Ok(result) => result,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_string());
            Err(EngineError::Io(std::io::Error::other(format!(
                "engine task failed: {what}"
            ))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_in_order_on_one_thread_and_a_panic_is_an_error() {
        let thread = ApplyThread::start("test-apply".to_string());
        let mut seen = Vec::new();
        for i in 0..5u32 {
            let (n, name) = thread
                .run(move || Ok((i, std::thread::current().name().map(str::to_string))))
                .await
                .expect("job");
            seen.push(n);
            assert_eq!(name.as_deref(), Some("test-apply"));
        }
        assert_eq!(seen, vec![0, 1, 2, 3, 4]);
        let e = thread
            .run(|| -> Result<(), EngineError> { panic!("boom") })
            .await
            .unwrap_err();
        assert!(e.to_string().contains("boom"), "{e}");
        let after = thread.run(|| Ok(7)).await.expect("the thread goes on");
        assert_eq!(after, 7);
        let refused = thread
            .run(|| -> Result<(), EngineError> { Err(EngineError::Corrupted("bad".into())) })
            .await
            .unwrap_err();
        assert!(matches!(refused, EngineError::Corrupted(_)), "{refused}");
        // The same outcomes on the calling thread.
        let here = std::thread::current().id();
        let ran_on = thread
            .run_here(|| Ok(std::thread::current().id()))
            .expect("job");
        assert_eq!(ran_on, here);
        let e = thread
            .run_here(|| -> Result<(), EngineError> { panic!("bang") })
            .unwrap_err();
        assert!(e.to_string().contains("bang"), "{e}");
        let refused = thread
            .run_here(|| -> Result<(), EngineError> { Err(EngineError::Corrupted("bad".into())) })
            .unwrap_err();
        assert!(matches!(refused, EngineError::Corrupted(_)), "{refused}");
    }
}
