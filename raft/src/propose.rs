//! Proposal batching: the group commit of the leader.
//!
//! openraft 0.9 writes each client request to the log as its own append and waits for
//! that append to be durable before it looks at the next request, so one proposal per
//! entry would cost one log sync per proposal on the leader. Instead, proposals that
//! arrive while earlier ones are being replicated wait in a queue and go out together
//! as one entry (a [`CommandBatch`]): one log write and one sync for all of them, each
//! command still applied in order and answered separately. At most
//! `proposal_pipeline` entries are in flight at once; a lone proposal is sent at once.

use std::any::Any;
use std::sync::Arc;

use openraft::async_runtime::WatchReceiver;
use openraft::error::{ClientWriteError, ForwardReason, RaftError as OpenraftError};
use openraft::raft::ClientWriteResponse;
use openraft::storage::RaftStateMachine;
use openraft::Raft;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::{CommandBatch, NodeId, TypeConfig};

/// The longest a batch refused for an expired leader lease waits for the lease to
/// change (a new leader's lease starts with its first quorum acknowledgement, one
/// heartbeat round trip after its election) before it is offered again anyway.
const LEASE_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// What one proposer gets back: the entry's index and its command's result.
pub(crate) type Outcome = Result<(u64, Arc<dyn Any + Send + Sync>), ProposeFailure>;

/// Why a batch was not applied; handed to every proposer in it.
#[derive(Debug, Clone)]
pub(crate) enum ProposeFailure {
    NotLeader(Option<NodeId>),
    Membership(String),
    Stopped(String),
    Internal(String),
}

struct Queued {
    command: Vec<u8>,
    reply: oneshot::Sender<Outcome>,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<Queued>,
    in_flight: usize,
}

/// Limits of one batch and of the pipeline.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchLimits {
    pub(crate) max_commands: usize,
    pub(crate) max_bytes: usize,
    pub(crate) pipeline: usize,
}

/// Batches the proposals of one group.
pub(crate) struct ProposalBatcher {
    limits: BatchLimits,
    queue: Mutex<Queue>,
}

impl ProposalBatcher {
    pub(crate) fn new(limits: BatchLimits) -> Self {
        ProposalBatcher {
            limits,
            queue: Mutex::new(Queue::default()),
        }
    }

    /// Queues `command`; the returned receiver yields its outcome.
    pub(crate) fn submit<SM: RaftStateMachine<TypeConfig>>(
        self: &Arc<Self>,
        raft: &Raft<TypeConfig, SM>,
        command: Vec<u8>,
    ) -> oneshot::Receiver<Outcome> {
        let (tx, rx) = oneshot::channel();
        let start_driver = {
            let mut queue = self.queue.lock();
            queue.waiting.push(Queued { command, reply: tx });
            if queue.in_flight < self.limits.pipeline.max(1) {
                queue.in_flight += 1;
                true
            } else {
                false
            }
        };
        if start_driver {
            let me = Arc::clone(self);
            let raft = raft.clone();
            tokio::spawn(async move { me.drive(raft).await });
        }
        rx
    }

    /// Takes the next batch, or retires this driver when nothing waits.
    fn next_batch(&self) -> Option<Vec<Queued>> {
        let mut queue = self.queue.lock();
        if queue.waiting.is_empty() {
            queue.in_flight -= 1;
            return None;
        }
        let mut bytes = 0;
        let mut take = 0;
        for queued in &queue.waiting {
            if take > 0
                && (take >= self.limits.max_commands
                    || bytes + queued.command.len() > self.limits.max_bytes)
            {
                break;
            }
            bytes += queued.command.len();
            take += 1;
        }
        Some(queue.waiting.drain(..take).collect())
    }

    /// Writes one batch. A leader that has not yet heard from a quorum in this term
    /// (just elected), or not for a lease (cut off), refuses writes with
    /// `LeaseExpired`: the batch is offered again until the lease holds, or until every
    /// proposer of the batch has stopped waiting (each has its own timeout).
    async fn write<SM: RaftStateMachine<TypeConfig>>(
        raft: &Raft<TypeConfig, SM>,
        commands: Vec<Vec<u8>>,
        replies: &[oneshot::Sender<Outcome>],
    ) -> Result<
        ClientWriteResponse<TypeConfig>,
        OpenraftError<TypeConfig, ClientWriteError<TypeConfig>>,
    > {
        loop {
            let result = raft.client_write(CommandBatch(commands.clone())).await;
            match &result {
                Err(OpenraftError::APIError(ClientWriteError::ForwardToLeader(f)))
                    if f.reason == ForwardReason::LeaseExpired
                        && !replies.iter().all(|r| r.is_closed()) =>
                {
                    // Offered again once a quorum acknowledgement is recorded (or
                    // leadership changes), not after a fixed pause.
                    let (acked, term) = {
                        let metrics = raft.metrics();
                        let m = metrics.borrow_watched();
                        (m.last_quorum_acked, m.current_term)
                    };
                    let _ = raft
                        .wait(Some(LEASE_WAIT))
                        .metrics(
                            move |m| m.last_quorum_acked != acked || m.current_term != term,
                            "a leader lease",
                        )
                        .await;
                }
                _ => return result,
            }
        }
    }

    async fn drive<SM: RaftStateMachine<TypeConfig>>(&self, raft: Raft<TypeConfig, SM>) {
        while let Some(batch) = self.next_batch() {
            let (commands, replies): (Vec<_>, Vec<_>) =
                batch.into_iter().map(|q| (q.command, q.reply)).unzip();
            let count = commands.len();
            match Self::write(&raft, commands, &replies).await {
                Ok(response) => {
                    let index = response.log_id.index;
                    let results = response.data.0;
                    if results.len() != count {
                        let failure = ProposeFailure::Internal(format!(
                            "entry {index} returned {} results for {count} commands",
                            results.len()
                        ));
                        for reply in replies {
                            let _ = reply.send(Err(failure.clone()));
                        }
                        continue;
                    }
                    for (reply, result) in replies.into_iter().zip(results) {
                        // A proposer that timed out has dropped its receiver.
                        let _ = reply.send(Ok((index, result)));
                    }
                }
                Err(e) => {
                    let failure = match e {
                        // A discarded entry's fate is unknown, as a leader change
                        // always left it: the proposer learns who leads now.
                        OpenraftError::APIError(
                            ClientWriteError::ForwardToLeader(f)
                            | ClientWriteError::LogEntryDiscarded(f),
                        ) => ProposeFailure::NotLeader(f.leader_id),
                        OpenraftError::APIError(ClientWriteError::PreconditionFailed(p)) => {
                            ProposeFailure::Internal(p.to_string())
                        }
                        OpenraftError::APIError(ClientWriteError::ChangeMembershipError(m)) => {
                            ProposeFailure::Membership(m.to_string())
                        }
                        OpenraftError::Fatal(f) => ProposeFailure::Stopped(f.to_string()),
                    };
                    for reply in replies {
                        let _ = reply.send(Err(failure.clone()));
                    }
                }
            }
        }
    }
}
