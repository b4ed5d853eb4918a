//! The linearizable read barrier (ReadIndex), shared by concurrent readers.
//!
//! A round asks openraft for the read index (`get_read_log_id`: the leader confirms
//! with a quorum that it is still the leader and returns the commit point), then waits
//! until the local state machine has applied up to it. A read may join a round only if
//! the round starts after the read arrived: reads that arrive while a round is in
//! flight wait for the next one, which then serves all of them at once. So a burst of
//! N concurrent reads costs about two rounds, not N, and no read is answered with a
//! read index older than its own arrival (never a bare "am I leader" check).
//!
//! A leader that restarts keeps its leadership in openraft 0.9 (same term, no
//! election), and then its read index is the larger of the term's first entry and the
//! commit index it persisted, which is saved with buffered durability and may be older
//! than entries it acknowledged before the crash (a kill -9 on redb loses it). So the
//! read index also covers the replica's log as it stood at start-up (bounded by the
//! current log, should a new leader have truncated it): every write acknowledged before
//! a crash is in that log, and a read waits until it is applied again. Found by the
//! fault harness (`server/tests/faults.rs`): a bank read saw half of a transfer right
//! after its leader restarted.

use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::error::{LinearizableReadError, RaftError as OpenraftError};
use openraft::metrics::WaitError;
use openraft::storage::RaftStateMachine;
use openraft::{Raft, ReadPolicy};
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::{GroupId, NodeId, RaftError, TypeConfig};

/// A failure of one round, handed to every read in it.
#[derive(Debug, Clone)]
enum RoundFailure {
    NotLeader(Option<NodeId>),
    NoQuorum(String),
    Timeout,
    Stopped(String),
}

#[derive(Default)]
struct Waiting {
    running: bool,
    next_round: Vec<oneshot::Sender<Result<u64, RoundFailure>>>,
}

/// Batches read barriers of one group.
pub(crate) struct ReadBatcher {
    group: GroupId,
    node: NodeId,
    timeout: Duration,
    /// The index of the last log entry this replica held when it started.
    last_log_at_start: u64,
    waiting: Mutex<Waiting>,
}

impl ReadBatcher {
    /// `last_log_at_start`: the last log index the replica held when the group started
    /// (see the module documentation).
    pub(crate) fn new(
        group: GroupId,
        node: NodeId,
        timeout: Duration,
        last_log_at_start: u64,
    ) -> Self {
        ReadBatcher {
            group,
            node,
            timeout,
            last_log_at_start,
            waiting: Mutex::new(Waiting::default()),
        }
    }

    /// Waits until a ReadIndex round that started after this call has confirmed
    /// leadership and the local state machine applied up to the read index; returns
    /// that index.
    pub(crate) async fn barrier<SM: RaftStateMachine<TypeConfig>>(
        self: &Arc<Self>,
        raft: &Raft<TypeConfig, SM>,
    ) -> Result<u64, RaftError> {
        let (tx, rx) = oneshot::channel();
        let start_driver = {
            let mut waiting = self.waiting.lock();
            waiting.next_round.push(tx);
            !std::mem::replace(&mut waiting.running, true)
        };
        if start_driver {
            let me = Arc::clone(self);
            let raft = raft.clone();
            tokio::spawn(async move { me.drive(raft).await });
        }
        let outcome = match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(RoundFailure::Stopped("read barrier abandoned".into())),
            Err(_) => Err(RoundFailure::Timeout),
        };
        outcome.map_err(|failure| self.error(failure))
    }

    fn error(&self, failure: RoundFailure) -> RaftError {
        let group = self.group;
        match failure {
            RoundFailure::NotLeader(leader) => RaftError::NotLeader {
                group,
                node: self.node,
                leader,
            },
            RoundFailure::NoQuorum(message) => RaftError::NoQuorum { group, message },
            RoundFailure::Timeout => RaftError::Timeout {
                group,
                what: "read barrier",
                after: self.timeout,
            },
            RoundFailure::Stopped(message) => RaftError::Stopped { group, message },
        }
    }

    async fn drive<SM: RaftStateMachine<TypeConfig>>(&self, raft: Raft<TypeConfig, SM>) {
        loop {
            let batch = {
                let mut waiting = self.waiting.lock();
                if waiting.next_round.is_empty() {
                    waiting.running = false;
                    return;
                }
                std::mem::take(&mut waiting.next_round)
            };
            let round = round(&raft, self.timeout, self.last_log_at_start);
            let outcome = match tokio::time::timeout(self.timeout, round).await {
                Ok(outcome) => outcome,
                Err(_) => Err(RoundFailure::Timeout),
            };
            for tx in batch {
                // A reader that gave up has dropped its receiver; nothing to do.
                let _ = tx.send(outcome.clone());
            }
        }
    }
}

/// The index a read must wait for: openraft's read index, raised to the log held at
/// start-up (never beyond the current log).
fn read_index(openraft_index: Option<u64>, last_log_at_start: u64, last_log_now: u64) -> u64 {
    openraft_index
        .unwrap_or(0)
        .max(last_log_at_start.min(last_log_now))
}

async fn round<SM: RaftStateMachine<TypeConfig>>(
    raft: &Raft<TypeConfig, SM>,
    timeout: Duration,
    last_log_at_start: u64,
) -> Result<u64, RoundFailure> {
    let (read_log_id, _) =
        raft.get_read_log_id(ReadPolicy::ReadIndex)
            .await
            .map_err(|e| match e {
                OpenraftError::APIError(LinearizableReadError::ForwardToLeader(f)) => {
                    RoundFailure::NotLeader(f.leader_id)
                }
                OpenraftError::APIError(LinearizableReadError::QuorumNotEnough(q)) => {
                    RoundFailure::NoQuorum(q.to_string())
                }
                OpenraftError::Fatal(f) => RoundFailure::Stopped(f.to_string()),
            })?;
    let last_log_now = raft.metrics().borrow_watched().last_log_index.unwrap_or(0);
    let index = read_index(Some(read_log_id.index()), last_log_at_start, last_log_now);
    if index == 0 {
        return Ok(0);
    }
    raft.wait(Some(timeout))
        .applied_index_at_least(Some(index), "read barrier")
        .await
        .map_err(|e| match e {
            WaitError::Timeout(..) => RoundFailure::Timeout,
            WaitError::ShuttingDown => RoundFailure::Stopped("shutting down".into()),
        })?;
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::read_index;

    #[test]
    fn the_read_index_covers_the_log_held_at_start_up() {
        // A restored leader whose persisted commit index (5) lags its log (9 at start).
        assert_eq!(read_index(Some(5), 9, 12), 9);
        // Once openraft's read index passed the start-up log, it alone decides.
        assert_eq!(read_index(Some(15), 9, 16), 15);
        // A log truncated below its start-up length by a new leader: the current log.
        assert_eq!(read_index(Some(3), 9, 6), 6);
        // An empty log.
        assert_eq!(read_index(None, 0, 0), 0);
    }
}
