//! [`Runtime`]: openraft's Tokio runtime, except that RPC timeouts have a floor.
//!
//! openraft 0.9 bounds every AppendEntries it sends (log replication, heartbeats, and
//! the leadership confirmation of a read barrier) by one heartbeat interval, whatever
//! the network layer asks for. A follower answers an AppendEntries only after its log
//! write is synced, and on a busy disk a sync takes longer than a 100 ms heartbeat: the
//! leader then counts the call as failed, sends the same entries again (which the
//! follower syncs again), and a read barrier fails for want of a quorum, while nothing
//! is wrong. So every timeout openraft sets through its runtime is raised to at least
//! [`rpc_wait_floor`], which the groups of this process set from their configuration:
//! `min(rpc_timeout, election_timeout_min / 2)`. Half the election timeout keeps a
//! follower from starting an election while the leader waits for its answer (in 0.9 a
//! replication stream sends no heartbeat while a call is outstanding).
//!
//! The floor is per process: with groups of different settings, the smallest wins.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use openraft::{AsyncRuntime, OptionalSend, TokioRuntime};

/// The floor in milliseconds; 0 until a group sets it.
static RPC_WAIT_FLOOR_MS: AtomicU64 = AtomicU64::new(0);

/// The smallest timeout openraft may put on an RPC in this process.
pub fn rpc_wait_floor() -> Duration {
    Duration::from_millis(RPC_WAIT_FLOOR_MS.load(Ordering::Relaxed))
}

/// Lowers the process's floor to `floor` (or sets it, the first time).
pub(crate) fn set_rpc_wait_floor(floor: Duration) {
    let ms = u64::try_from(floor.as_millis()).unwrap_or(u64::MAX).max(1);
    let _ = RPC_WAIT_FLOOR_MS.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |current| {
        Some(if current == 0 { ms } else { current.min(ms) })
    });
}

/// openraft's async runtime for every elastickv group (see the module documentation).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Runtime;

impl AsyncRuntime for Runtime {
    type JoinError = <TokioRuntime as AsyncRuntime>::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = <TokioRuntime as AsyncRuntime>::JoinHandle<T>;
    type Sleep = <TokioRuntime as AsyncRuntime>::Sleep;
    type Instant = <TokioRuntime as AsyncRuntime>::Instant;
    type TimeoutError = <TokioRuntime as AsyncRuntime>::TimeoutError;
    type Timeout<R, T: Future<Output = R> + OptionalSend> =
        <TokioRuntime as AsyncRuntime>::Timeout<R, T>;
    type ThreadLocalRng = <TokioRuntime as AsyncRuntime>::ThreadLocalRng;
    type OneshotSender<T: OptionalSend> = <TokioRuntime as AsyncRuntime>::OneshotSender<T>;
    type OneshotReceiverError = <TokioRuntime as AsyncRuntime>::OneshotReceiverError;
    type OneshotReceiver<T: OptionalSend> = <TokioRuntime as AsyncRuntime>::OneshotReceiver<T>;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        TokioRuntime::spawn(future)
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        TokioRuntime::sleep(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        TokioRuntime::sleep_until(deadline)
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(
        duration: Duration,
        future: F,
    ) -> Self::Timeout<R, F> {
        TokioRuntime::timeout(duration.max(rpc_wait_floor()), future)
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(
        deadline: Self::Instant,
        future: F,
    ) -> Self::Timeout<R, F> {
        TokioRuntime::timeout_at(deadline, future)
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        TokioRuntime::is_panic(join_error)
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        TokioRuntime::thread_rng()
    }

    fn oneshot<T>() -> (Self::OneshotSender<T>, Self::OneshotReceiver<T>)
    where
        T: OptionalSend,
    {
        TokioRuntime::oneshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn short_timeouts_are_raised_to_the_floor_and_the_smallest_floor_wins() {
        // Other tests of this binary may set the process's floor too, so this one only
        // relies on what any later setting keeps: the floor never rises.
        set_rpc_wait_floor(Duration::from_millis(400));
        let floor = rpc_wait_floor();
        assert!(floor > Duration::ZERO && floor <= Duration::from_millis(400));
        set_rpc_wait_floor(Duration::from_millis(900));
        assert!(
            rpc_wait_floor() <= floor,
            "a larger floor must not replace a smaller one"
        );
        // A 1 ns timeout on a future that needs half the floor: the floor lets it finish.
        let floor = rpc_wait_floor();
        let slow = async {
            tokio::time::sleep(floor / 2).await;
            7
        };
        assert_eq!(
            Runtime::timeout(Duration::from_nanos(1), slow).await.ok(),
            Some(7)
        );
        // Above the floor, the timeout given applies as is.
        tokio::time::pause();
        let started = tokio::time::Instant::now();
        let never = std::future::pending::<()>();
        assert!(Runtime::timeout(Duration::from_secs(30), never)
            .await
            .is_err());
        assert!(started.elapsed() >= Duration::from_secs(30));
    }
}
