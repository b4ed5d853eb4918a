//! The linearizable read barrier (ReadIndex), shared by concurrent readers.
//!
//! A round asks openraft for the read index (`get_read_log_id`: the leader confirms
//! with a quorum that it is still the leader and returns the commit point), then waits
//! until the local state machine has applied up to it. A read may join a round only if
//! the round starts after the read arrived: reads that arrive while a round is in
//! flight wait for the next one, which then serves all of them at once. So a burst of
//! N concurrent reads costs about two rounds, not N, and no read is answered with a
//! read index older than its own arrival (never a bare "am I leader" check).

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{CheckIsLeaderError, RaftError as OpenraftError};
use openraft::metrics::WaitError;
use openraft::Raft;
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
    waiting: Mutex<Waiting>,
}

impl ReadBatcher {
    pub(crate) fn new(group: GroupId, node: NodeId, timeout: Duration) -> Self {
        ReadBatcher {
            group,
            node,
            timeout,
            waiting: Mutex::new(Waiting::default()),
        }
    }

    /// Waits until a ReadIndex round that started after this call has confirmed
    /// leadership and the local state machine applied up to the read index; returns
    /// that index.
    pub(crate) async fn barrier(
        self: &Arc<Self>,
        raft: &Raft<TypeConfig>,
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

    async fn drive(&self, raft: Raft<TypeConfig>) {
        loop {
            let batch = {
                let mut waiting = self.waiting.lock();
                if waiting.next_round.is_empty() {
                    waiting.running = false;
                    return;
                }
                std::mem::take(&mut waiting.next_round)
            };
            let outcome = match tokio::time::timeout(self.timeout, round(&raft, self.timeout)).await
            {
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

async fn round(raft: &Raft<TypeConfig>, timeout: Duration) -> Result<u64, RoundFailure> {
    let (read_log_id, _) = raft.get_read_log_id().await.map_err(|e| match e {
        OpenraftError::APIError(CheckIsLeaderError::ForwardToLeader(f)) => {
            RoundFailure::NotLeader(f.leader_id)
        }
        OpenraftError::APIError(CheckIsLeaderError::QuorumNotEnough(q)) => {
            RoundFailure::NoQuorum(q.to_string())
        }
        OpenraftError::Fatal(f) => RoundFailure::Stopped(f.to_string()),
    })?;
    let Some(read_log_id) = read_log_id else {
        return Ok(0);
    };
    raft.wait(Some(timeout))
        .applied_index_at_least(Some(read_log_id.index), "read barrier")
        .await
        .map_err(|e| match e {
            WaitError::Timeout(..) => RoundFailure::Timeout,
            WaitError::ShuttingDown => RoundFailure::Stopped("shutting down".into()),
        })?;
    Ok(read_log_id.index)
}
