//! [`Runtime`]: openraft's Tokio runtime, except that RPC timeouts have a floor.
//!
//! openraft bounds the heartbeats it sends (which also confirm leadership for a read
//! barrier) by one heartbeat interval, whatever the network layer asks for. On a busy
//! machine a follower's answer can take longer than a 100 ms heartbeat: the leader
//! then counts the call as failed and a read barrier fails for want of a quorum,
//! while nothing is wrong. So every timeout openraft sets through its runtime is raised to at least
//! [`rpc_wait_floor`], which the groups of this process set from their configuration:
//! `min(rpc_timeout, election_timeout_min / 2)`. Half the election timeout keeps a
//! follower from starting an election while the leader waits for its answer.
//!
//! The floor is per process: with groups of different settings, the smallest wins.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use openraft::{AsyncRuntime, OptionalSend};

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

/// openraft's async runtime for every elastickv group (see the module documentation):
/// Tokio, with the floor on timeouts.
#[derive(Debug)]
pub struct Runtime(Tokio);

#[allow(deprecated)] // openraft re-exports its Tokio runtime under a deprecated path
type Tokio = openraft::impls::TokioRuntime;

impl AsyncRuntime for Runtime {
    type JoinError = <Tokio as AsyncRuntime>::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = <Tokio as AsyncRuntime>::JoinHandle<T>;
    type Sleep = <Tokio as AsyncRuntime>::Sleep;
    type Instant = <Tokio as AsyncRuntime>::Instant;
    type TimeoutError = <Tokio as AsyncRuntime>::TimeoutError;
    type Timeout<R, T: Future<Output = R> + OptionalSend> = <Tokio as AsyncRuntime>::Timeout<R, T>;
    type ThreadLocalRng = <Tokio as AsyncRuntime>::ThreadLocalRng;
    type Mpsc = <Tokio as AsyncRuntime>::Mpsc;
    type Watch = <Tokio as AsyncRuntime>::Watch;
    type Oneshot = <Tokio as AsyncRuntime>::Oneshot;
    type Mutex<T: OptionalSend + 'static> = <Tokio as AsyncRuntime>::Mutex<T>;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        Tokio::spawn(future)
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        Tokio::sleep(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        Tokio::sleep_until(deadline)
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(
        duration: Duration,
        future: F,
    ) -> Self::Timeout<R, F> {
        Tokio::timeout(duration.max(rpc_wait_floor()), future)
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(
        deadline: Self::Instant,
        future: F,
    ) -> Self::Timeout<R, F> {
        Tokio::timeout_at(deadline, future)
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        Tokio::is_panic(join_error)
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        Tokio::thread_rng()
    }

    fn new(threads: usize) -> Self {
        Runtime(Tokio::new(threads))
    }

    fn block_on<F, T>(&mut self, future: F) -> T
    where
        F: Future<Output = T>,
    {
        self.0.block_on(future)
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
