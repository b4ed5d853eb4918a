//! [`Group`]: one Raft group on one node, behind a small API (propose, read barrier,
//! membership, status, shutdown).

use std::collections::{BTreeMap, BTreeSet};
use std::marker::PhantomData;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use elastickv_engine_api::MvccEngine;
use openraft::async_runtime::WatchReceiver;
use openraft::error::{ClientWriteError, InitializeError, RaftError as OpenraftError};
use openraft::metrics::WaitError;
use openraft::{BasicNode, Raft, RaftMetrics, ServerState};

use crate::applier::Applier;
use crate::layout::Layout;
use crate::log_store::{LogCounters, LogStore};
use crate::network::{
    decode, encode, NetworkFactory, RemoteFailure, SnapshotChunk, SnapshotChunkReply,
};
use crate::propose::{BatchLimits, ProposalBatcher, ProposeFailure};
use crate::read::ReadBatcher;
use crate::shared_log::SharedLog;
use crate::snapshot::SnapshotStore;
use crate::snapshot_receive::SnapshotReceiver;
use crate::state_machine::StateMachine;
use crate::transport::{RpcKind, Transport};
use crate::types::Snapshot;
use crate::{GroupConfig, GroupId, NodeId, RaftError, Result, TypeConfig};

/// A node's role in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The leader: accepts proposals and serves linearizable reads.
    Leader,
    /// A voting follower.
    Follower,
    /// Campaigning for leadership.
    Candidate,
    /// A non-voting member that receives the log.
    Learner,
    /// Stopped.
    Shutdown,
}

/// A point-in-time view of a group on one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupStatus {
    /// The group.
    pub group: GroupId,
    /// This node.
    pub node: NodeId,
    /// This node's role.
    pub role: Role,
    /// The leader this node knows of.
    pub leader: Option<NodeId>,
    /// The current term.
    pub term: u64,
    /// Index of the last entry in the local log (0 when empty).
    pub last_log_index: u64,
    /// Highest committed index this node has learned (0 when none).
    pub committed_index: u64,
    /// Index of the last entry applied to the local engine (0 when none).
    pub applied_index: u64,
    /// Index covered by the latest local snapshot (0 when none).
    pub snapshot_index: u64,
    /// Index up to which the local log was purged (0 when none).
    pub purged_index: u64,
    /// The voting members.
    pub voters: BTreeSet<NodeId>,
    /// The non-voting members.
    pub learners: BTreeSet<NodeId>,
    /// The address of every member (voters and learners), as given when it was added.
    pub addresses: BTreeMap<NodeId, String>,
    /// Synced log writes made for appends since start.
    pub log_syncs: u64,
    /// Entries appended to the local log since start.
    pub appended_entries: u64,
}

/// The outcome of a proposal: where it landed and what applying it returned.
#[derive(Debug)]
pub struct Proposed<R> {
    /// The entry's log index.
    pub index: u64,
    /// The applier's response.
    pub response: R,
}

/// One Raft group on this node, over engine `E` with applier `A`.
pub struct Group<E: MvccEngine, A: Applier<E>> {
    id: GroupId,
    node: NodeId,
    raft: Raft<TypeConfig, StateMachine<E, A>>,
    engine: Arc<E>,
    receiver: Arc<SnapshotReceiver<E>>,
    counters: Arc<LogCounters>,
    reads: Arc<ReadBatcher>,
    proposals: Arc<ProposalBatcher>,
    config: GroupConfig,
    /// A replica that restarts with a vote refuses to vote before this instant (see
    /// [`Group::leader_lease`]); `None` for one that started without a vote.
    votes_from: Option<std::time::Instant>,
    _applier: PhantomData<fn() -> A>,
}

impl<E: MvccEngine, A: Applier<E>> std::fmt::Debug for Group<E, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("id", &self.id)
            .field("node", &self.node)
            .field("engine", &self.engine.name())
            .finish()
    }
}

fn stopped(group: GroupId, fatal: impl std::fmt::Display) -> RaftError {
    RaftError::Stopped {
        group,
        message: fatal.to_string(),
    }
}

/// What [`Group::leadership`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leadership {
    /// This node's role.
    pub role: Role,
    /// The current term.
    pub term: u64,
    /// The leader this node knows of, and its address when the membership has it.
    pub leader: Option<(NodeId, Option<String>)>,
}

fn role_of(state: ServerState) -> Role {
    match state {
        ServerState::Leader => Role::Leader,
        ServerState::Follower => Role::Follower,
        ServerState::Candidate => Role::Candidate,
        ServerState::Learner => Role::Learner,
        ServerState::Shutdown => Role::Shutdown,
    }
}

impl<E: MvccEngine, A: Applier<E>> Group<E, A> {
    /// Starts group `id` on node `node` over `engine`, keeping its log in the node's
    /// `shared_log` (with [`crate::LogStorage::Shared`], which needs it) or its own files
    /// in `<dir>/log` (with [`crate::LogStorage::Files`]), and snapshot files in
    /// `<dir>/snapshots`. The group rejoins its cluster from its persisted state; a new
    /// group waits for [`Group::initialize`] (on one node) or to be added by a leader.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        node: NodeId,
        id: GroupId,
        engine: Arc<E>,
        applier: Arc<A>,
        dir: &Path,
        shared_log: Option<Arc<SharedLog>>,
        transport: Arc<dyn Transport>,
        config: GroupConfig,
    ) -> Result<Self> {
        let raft_config = Arc::new(config.to_openraft(id)?);
        let layout = Layout::new(id);
        let counters = Arc::new(LogCounters::default());
        let mut log = LogStore::open(
            Arc::clone(&engine),
            id,
            Arc::clone(&counters),
            config.log_storage,
            &dir.join("log"),
            shared_log,
        )
        .await?;
        // A replica that voted before (a restart) does not vote again for a lease: see
        // `Group::leader_lease`.
        let had_vote = openraft::storage::RaftLogReader::read_vote(&mut log)
            .await
            .map_err(|e| stopped(id, e))?
            .is_some();
        let votes_from = had_vote.then(|| std::time::Instant::now() + config.election_timeout_max);
        // The last entry this replica holds as it starts: see `ReadBatcher::new`.
        let last_log_at_start = openraft::storage::RaftLogStorage::get_log_state(&mut log)
            .await
            .map_err(|e| stopped(id, e))?
            .last_log_id
            .map_or(0, |l| l.index);
        let snapshots = Arc::new(SnapshotStore::open(
            &dir.join("snapshots"),
            Arc::clone(&engine),
            layout.clone(),
        )?);
        // An entry a crash left partly applied is finished from the log as the state
        // machine opens.
        let partial_entry = match StateMachine::<E, A>::partly_applied(&engine, &layout)? {
            Some(index) => {
                openraft::storage::RaftLogReader::try_get_log_entries(&mut log, index..index + 1)
                    .await
                    .map_err(|e| stopped(id, e))?
                    .pop()
            }
            None => None,
        };
        let receiver = Arc::new(SnapshotReceiver::new(Arc::clone(&snapshots)));
        let state_machine = StateMachine::open(
            Arc::clone(&engine),
            applier,
            layout,
            snapshots,
            partial_entry,
        )?;
        let network = NetworkFactory {
            node,
            group: id,
            transport,
            snapshots: config.snapshot_transfer,
            rpc_timeout: config.rpc_timeout,
        };
        let raft = Raft::new(node, raft_config, network, log, state_machine)
            .await
            .map_err(|e| stopped(id, e))?;
        Ok(Group {
            id,
            node,
            raft,
            engine,
            receiver,
            counters,
            reads: Arc::new(ReadBatcher::new(
                id,
                node,
                config.read_timeout,
                last_log_at_start,
            )),
            proposals: Arc::new(ProposalBatcher::new(BatchLimits {
                max_commands: config.max_batch_commands,
                max_bytes: config.max_batch_bytes,
                pipeline: config.proposal_pipeline,
            })),
            config,
            votes_from,
            _applier: PhantomData,
        })
    }

    /// How long after a quorum acknowledged this node's leadership (counted from
    /// before the acknowledged messages were sent) no other leader can be elected: a
    /// follower that heard from its leader refuses votes for the longest election
    /// timeout (openraft's leader lease), and a replica that restarts refuses votes for
    /// as long after it starts, having forgotten when it last heard from its leader.
    /// A quorum confirmed at `t` leaves no room for another leader before `t` plus this,
    /// provided the nodes' clocks run at about the same rate.
    pub fn leader_lease(&self) -> Duration {
        self.config.election_timeout_max
    }

    /// The group's id.
    pub fn id(&self) -> GroupId {
        self.id
    }

    /// This node's id.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// The engine holding this replica's state. Read it after [`Group::read_barrier`]
    /// for linearizable reads; never write it directly.
    pub fn engine(&self) -> &Arc<E> {
        &self.engine
    }

    /// Makes a new group with these voting members (node id -> address). Call it on one
    /// node only. Calling it again (for example after a restart with the same flags) is
    /// harmless: a group that is already initialized is left as it is.
    pub async fn initialize(&self, members: BTreeMap<NodeId, String>) -> Result<()> {
        let members: BTreeMap<NodeId, BasicNode> = members
            .into_iter()
            .map(|(id, addr)| (id, BasicNode::new(addr)))
            .collect();
        match self.raft.initialize(members).await {
            Ok(()) => Ok(()),
            Err(OpenraftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
            Err(OpenraftError::APIError(e)) => Err(RaftError::Membership {
                group: self.id,
                message: e.to_string(),
            }),
            Err(OpenraftError::Fatal(f)) => Err(stopped(self.id, f)),
        }
    }

    fn write_error(&self, e: OpenraftError<TypeConfig, ClientWriteError<TypeConfig>>) -> RaftError {
        match e {
            // A discarded entry's fate is unknown, as a leader change always left it.
            OpenraftError::APIError(
                ClientWriteError::ForwardToLeader(f) | ClientWriteError::LogEntryDiscarded(f),
            ) => RaftError::NotLeader {
                group: self.id,
                node: self.node,
                leader: f.leader_id,
            },
            OpenraftError::APIError(ClientWriteError::PreconditionFailed(p)) => {
                RaftError::Internal {
                    group: self.id,
                    message: p.to_string(),
                }
            }
            OpenraftError::APIError(ClientWriteError::ChangeMembershipError(m)) => {
                RaftError::Membership {
                    group: self.id,
                    message: m.to_string(),
                }
            }
            OpenraftError::Fatal(f) => stopped(self.id, f),
        }
    }

    fn timeout(&self, what: &'static str, after: Duration) -> RaftError {
        RaftError::Timeout {
            group: self.id,
            what,
            after,
        }
    }

    /// Replicates `command`, waits until it is committed and applied here, and returns
    /// the applier's response. Concurrent proposals share log entries (and so log
    /// syncs); each is still applied on its own, in order. Fails with [`RaftError::NotLeader`] on a non-leader, and
    /// with [`RaftError::Timeout`] when it takes longer than the configured
    /// `propose_timeout` (the command may still be applied later).
    pub async fn propose(&self, command: Vec<u8>) -> Result<Proposed<A::Response>> {
        let rx = self.proposals.submit(&self.raft, command);
        let outcome = match tokio::time::timeout(self.config.propose_timeout, rx).await {
            Err(_) => return Err(self.timeout("proposal", self.config.propose_timeout)),
            Ok(Err(_)) => {
                return Err(RaftError::Stopped {
                    group: self.id,
                    message: "proposal abandoned".into(),
                })
            }
            Ok(Ok(outcome)) => outcome,
        };
        let group = self.id;
        let (index, reply) = outcome.map_err(|failure| match failure {
            ProposeFailure::NotLeader(leader) => RaftError::NotLeader {
                group,
                node: self.node,
                leader,
            },
            ProposeFailure::Membership(message) => RaftError::Membership { group, message },
            ProposeFailure::Stopped(message) => RaftError::Stopped { group, message },
            ProposeFailure::Internal(message) => RaftError::Internal { group, message },
        })?;
        let reply = reply
            .downcast::<A::Response>()
            .map_err(|_| RaftError::Internal {
                group,
                message: format!("entry {index} produced a reply of another type"),
            })?;
        let response = Arc::try_unwrap(reply).map_err(|_| RaftError::Internal {
            group,
            message: format!("the reply of entry {index} is shared"),
        })?;
        Ok(Proposed { index, response })
    }

    /// The linearizable read barrier: returns once this node, as the confirmed leader,
    /// has applied every entry committed before the call. A read of [`Group::engine`]
    /// made after it returns sees every write acknowledged before the call.
    /// Concurrent barriers share ReadIndex rounds.
    pub async fn read_barrier(&self) -> Result<u64> {
        self.reads.barrier(&self.raft).await
    }

    async fn membership_call<T>(
        &self,
        call: impl std::future::Future<
            Output = std::result::Result<
                T,
                OpenraftError<TypeConfig, ClientWriteError<TypeConfig>>,
            >,
        >,
    ) -> Result<T> {
        match tokio::time::timeout(self.config.membership_timeout, call).await {
            Err(_) => Err(self.timeout("membership change", self.config.membership_timeout)),
            Ok(Err(e)) => Err(self.write_error(e)),
            Ok(Ok(value)) => Ok(value),
        }
    }

    /// Adds `node` (reachable at `addr`) as a learner and waits until it has caught up
    /// with the leader's log (from the log or from a snapshot). Leader only.
    pub async fn add_learner(&self, node: NodeId, addr: &str) -> Result<()> {
        let call = self.raft.add_learner(node, BasicNode::new(addr), true);
        self.membership_call(call).await.map(|_| ())
    }

    /// Makes exactly `voters` the voting members (through joint consensus); nodes that
    /// are dropped leave the group. Every voter must already be a member (add learners
    /// first). Leader only.
    pub async fn change_voters(&self, voters: BTreeSet<NodeId>) -> Result<()> {
        let call = self.raft.change_membership(voters, false);
        self.membership_call(call).await.map(|_| ())
    }

    /// Promotes the learner `node` to a voter. Leader only.
    pub async fn promote(&self, node: NodeId) -> Result<()> {
        let mut voters = self.status().voters;
        voters.insert(node);
        self.change_voters(voters).await
    }

    /// Whether this node leads the group in `term` now, as Raft's own state says (not
    /// the published status, which trails it a little): a vote this node granted to
    /// another candidate shows here at once.
    pub async fn leads_in_term(&self, term: u64) -> Result<bool> {
        self.raft
            .with_raft_state(move |state| {
                state.server_state == ServerState::Leader
                    && state.vote_ref().leader_id().term == term
            })
            .await
            .map_err(|e| stopped(self.id, e))
    }

    /// This node's role in the group and the current term: what [`Group::status`] says
    /// of them, without copying the rest (for checks made on every request).
    pub fn role_and_term(&self) -> (Role, u64) {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        (role_of(m.state), m.current_term)
    }

    /// The role, the term, and the leader this node knows of with its address (if the
    /// membership names it): what [`Group::status`] says of them, copying nothing else.
    pub fn leadership(&self) -> Leadership {
        let metrics = self.raft.metrics();
        let m = metrics.borrow_watched();
        let leader = m.current_leader.map(|id| {
            let addr = m
                .membership_config
                .membership()
                .get_node(&id)
                .map(|node| node.addr.clone());
            (id, addr)
        });
        Leadership {
            role: role_of(m.state),
            term: m.current_term,
            leader,
        }
    }

    /// The group's state on this node.
    pub fn status(&self) -> GroupStatus {
        let metrics = self.raft.metrics().borrow_watched().clone();
        self.status_from(&metrics)
    }

    fn status_from(&self, m: &RaftMetrics<TypeConfig>) -> GroupStatus {
        let membership = m.membership_config.membership();
        GroupStatus {
            group: self.id,
            node: self.node,
            role: role_of(m.state),
            leader: m.current_leader,
            term: m.current_term,
            last_log_index: m.last_log_index.unwrap_or(0),
            committed_index: self.counters.committed_index.load(Ordering::Relaxed),
            applied_index: m.last_applied.map(|id| id.index).unwrap_or(0),
            snapshot_index: m.snapshot.map(|id| id.index).unwrap_or(0),
            purged_index: m.purged.map(|id| id.index).unwrap_or(0),
            voters: membership.voter_ids().collect(),
            learners: membership.learner_ids().collect(),
            addresses: membership
                .nodes()
                .map(|(id, node)| (*id, node.addr.clone()))
                .collect(),
            log_syncs: self.counters.append_syncs.load(Ordering::Relaxed),
            appended_entries: self.counters.appended_entries.load(Ordering::Relaxed),
        }
    }

    /// Waits until `condition` holds for this group's status, re-checking whenever
    /// openraft's metrics change (role, leader, term, log, applied, snapshot, purge,
    /// membership). Fails with [`RaftError::Timeout`] after `timeout`.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        what: &'static str,
        condition: impl Fn(&GroupStatus) -> bool + Send + Sync,
    ) -> Result<GroupStatus> {
        let waited = self
            .raft
            .wait(Some(timeout))
            .metrics(|m| condition(&self.status_from(m)), what)
            .await;
        match waited {
            Ok(m) => Ok(self.status_from(&m)),
            Err(WaitError::Timeout(..)) => Err(self.timeout(what, timeout)),
            Err(WaitError::ShuttingDown) => Err(RaftError::Stopped {
                group: self.id,
                message: "shutting down".into(),
            }),
        }
    }

    /// Asks for a snapshot now (it is built in the background).
    pub async fn trigger_snapshot(&self) -> Result<()> {
        self.raft
            .trigger()
            .snapshot()
            .await
            .map_err(|f| stopped(self.id, f))
    }

    /// Asks this node to campaign for leadership now.
    pub async fn trigger_election(&self) -> Result<()> {
        self.raft
            .trigger()
            .elect(false)
            .await
            .map_err(|f| stopped(self.id, f))
    }

    /// Hands the leadership of the group to the voter `to`, waiting at most `timeout`.
    /// Leader only: fails with [`RaftError::NotLeader`] on another node, and with it too
    /// (naming the new leader) when a third node wins the election; with
    /// [`RaftError::NotAVoter`] when `to` is not a voter. `to` being this node is done
    /// at once.
    ///
    /// First waits until `to` has acknowledged a message sent after the call and holds
    /// the whole log as it was at the call, so that a node that is down or far behind is
    /// refused (with [`RaftError::Timeout`]) before anything changes. Then the leader
    /// stops taking writes (they are answered `NotLeader` naming `to`), tells every voter
    /// to give up its lease, and `to` campaigns once its log holds the leader's last
    /// entry; returns when this node has seen `to` lead a later term.
    pub async fn transfer_leader(&self, to: NodeId, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        let status = self.status();
        if status.role != Role::Leader {
            return Err(RaftError::NotLeader {
                group: self.id,
                node: self.node,
                leader: status.leader,
            });
        }
        if to == self.node {
            return Ok(());
        }
        if !status.voters.contains(&to) {
            return Err(RaftError::NotAVoter {
                group: self.id,
                node: to,
            });
        }
        let term = status.term;
        let log_end = status.last_log_index;
        let acked_before = {
            let metrics = self.raft.metrics();
            let m = metrics.borrow_watched();
            m.heartbeat.as_ref().and_then(|h| h.get(&to).cloned())
        };
        let ready = self
            .raft
            .wait(Some(
                deadline.saturating_duration_since(tokio::time::Instant::now()),
            ))
            .metrics(
                |m| {
                    if m.current_term != term || m.state != ServerState::Leader {
                        return true;
                    }
                    let acked = m.heartbeat.as_ref().and_then(|h| h.get(&to).cloned());
                    let matched = m
                        .replication
                        .as_ref()
                        .and_then(|r| r.get(&to).cloned())
                        .flatten()
                        .map(|id| id.index);
                    acked.is_some() && acked != acked_before && matched >= Some(log_end)
                },
                "the new leader to catch up",
            )
            .await;
        let ready = match ready {
            Ok(m) => m,
            Err(WaitError::Timeout(..)) => {
                return Err(self.timeout("the new leader catching up", timeout))
            }
            Err(WaitError::ShuttingDown) => return Err(stopped(self.id, "shutting down")),
        };
        if ready.current_term != term || ready.state != ServerState::Leader {
            return Err(RaftError::NotLeader {
                group: self.id,
                node: self.node,
                leader: ready.current_leader,
            });
        }
        self.raft
            .trigger()
            .transfer_leader(to)
            .await
            .map_err(|f| stopped(self.id, f))?;
        let done = self
            .raft
            .wait(Some(
                deadline.saturating_duration_since(tokio::time::Instant::now()),
            ))
            .metrics(
                |m| m.current_term > term && m.current_leader.is_some(),
                "a new leader",
            )
            .await;
        match done {
            Ok(m) if m.current_leader == Some(to) => Ok(()),
            Ok(m) => Err(RaftError::NotLeader {
                group: self.id,
                node: self.node,
                leader: m.current_leader,
            }),
            Err(WaitError::Timeout(..)) => Err(self.timeout("the leadership transfer", timeout)),
            Err(WaitError::ShuttingDown) => Err(stopped(self.id, "shutting down")),
        }
    }

    /// Stops the group. The engine stays open until every handle to it is dropped.
    pub async fn shutdown(&self) -> Result<()> {
        self.raft.shutdown().await.map_err(|e| RaftError::Stopped {
            group: self.id,
            message: e.to_string(),
        })
    }

    /// Answers one Raft RPC addressed to this group with an encoded reply.
    pub(crate) async fn handle_rpc(&self, kind: RpcKind, body: &[u8]) -> Vec<u8> {
        let raft_failure = |e: &dyn std::fmt::Display| RemoteFailure::Raft(e.to_string());
        match kind {
            RpcKind::AppendEntries => {
                let reply = match decode(body) {
                    Ok(request) => self
                        .raft
                        .append_entries(request)
                        .await
                        .map_err(|e| raft_failure(&e)),
                    Err(e) => Err(e),
                };
                encode(&reply)
            }
            RpcKind::Vote => {
                if self
                    .votes_from
                    .is_some_and(|from| std::time::Instant::now() < from)
                {
                    // Restarted: this replica may have acknowledged a leader's lease it
                    // no longer remembers (see `leader_lease`).
                    return encode(&Err::<(), _>(RemoteFailure::Raft(
                        "restarted less than a leader lease ago: not voting yet".into(),
                    )));
                }
                let reply = match decode(body) {
                    Ok(request) => self.raft.vote(request).await.map_err(|e| raft_failure(&e)),
                    Err(e) => Err(e),
                };
                encode(&reply)
            }
            RpcKind::InstallSnapshot => {
                let reply = match decode::<SnapshotChunk>(body) {
                    // Runs to the end even when the caller stops waiting (a sender whose
                    // replication restarted drops its call; over gRPC that drops this
                    // handler too): a chunk cut off between writing its bytes and
                    // counting them would leave the file and the count disagreeing.
                    Ok(chunk) => match tokio::spawn(Self::receive_chunk(
                        self.raft.clone(),
                        Arc::clone(&self.receiver),
                        chunk,
                    ))
                    .await
                    {
                        Ok(result) => result,
                        Err(e) => Err(RemoteFailure::Raft(format!(
                            "snapshot chunk task failed: {e}"
                        ))),
                    },
                    Err(e) => Err(e),
                };
                encode(&reply)
            }
            RpcKind::TransferLeader => {
                let reply = match decode(body) {
                    Ok(request) => self
                        .raft
                        .handle_transfer_leader(request)
                        .await
                        .map_err(|e| raft_failure(&e)),
                    Err(e) => Err(e),
                };
                encode(&reply)
            }
        }
    }

    /// Takes one snapshot chunk; installs the snapshot when it was the last.
    async fn receive_chunk(
        raft: Raft<TypeConfig, StateMachine<E, A>>,
        receiver: Arc<SnapshotReceiver<E>>,
        chunk: SnapshotChunk,
    ) -> std::result::Result<SnapshotChunkReply, RemoteFailure> {
        let (my_vote, committed) = {
            let metrics = raft.metrics();
            let m = metrics.borrow_watched();
            (m.vote, m.local_committed)
        };
        // A chunk from a leader this replica no longer follows is answered with the
        // newer vote, which ends that transfer.
        if chunk.vote < my_vote {
            return Ok(SnapshotChunkReply { vote: my_vote });
        }
        let vote = chunk.vote;
        let Some((meta, file)) = receiver.receive(chunk).await? else {
            return Ok(SnapshotChunkReply { vote: my_vote });
        };
        // openraft panics on a snapshot no correct leader can send; refuse it instead.
        if let Some(last) = meta.last_log_id {
            if last.leader_id > *vote.leader_id() {
                return Err(RemoteFailure::Raft(format!(
                    "snapshot up to {last} is beyond its sender's leadership {vote}"
                )));
            }
            if let Some(committed) = committed {
                if last > committed && last.index <= committed.index {
                    return Err(RemoteFailure::Raft(format!(
                        "snapshot up to {last} contradicts the committed {committed}"
                    )));
                }
            }
        }
        let snapshot = Snapshot {
            meta,
            snapshot: file,
        };
        match raft.install_full_snapshot(vote, snapshot).await {
            Ok(response) => Ok(SnapshotChunkReply {
                vote: response.vote,
            }),
            Err(e) => Err(RemoteFailure::Raft(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use elastickv_engine_mem::MemEngine;
    use openraft::raft::{VoteRequest, VoteResponse};

    use super::*;
    use crate::inproc::InProcessNetwork;
    use crate::{LogStorage, RaftNode, TxnApplier, Vote};

    type Reply = std::result::Result<VoteResponse<TypeConfig>, RemoteFailure>;

    async fn vote(group: &Group<MemEngine, TxnApplier<MemEngine>>, term: u64) -> Reply {
        let request = VoteRequest::<TypeConfig>::new(Vote::new(term, 2), None);
        let reply = group.handle_rpc(RpcKind::Vote, &encode(&request)).await;
        decode::<Reply>(&reply).expect("a reply")
    }

    /// A replica that restarts with a vote (it may have acknowledged a leader's lease
    /// it no longer remembers) refuses to vote for a lease after it starts; a replica
    /// that never voted votes at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_restarted_replica_does_not_vote_for_a_lease() {
        let dir = tempfile::tempdir().expect("temp dir");
        let net = InProcessNetwork::new();
        let config = GroupConfig {
            heartbeat_interval: Duration::from_millis(50),
            election_timeout_min: Duration::from_millis(300),
            election_timeout_max: Duration::from_millis(600),
            log_storage: LogStorage::Engine,
            ..GroupConfig::default()
        };
        let engine = Arc::new(MemEngine::new());
        let start = || async {
            let node = Arc::new(RaftNode::new(1, dir.path(), net.transport(1)));
            let applier = Arc::new(TxnApplier::new(Arc::clone(&engine)));
            let group = node
                .start_group(0, Arc::clone(&engine), applier, config.clone())
                .await
                .expect("start the group");
            (node, group)
        };
        let (node, group) = start().await;
        let fresh = vote(&group, 5).await.expect("a fresh replica answers");
        assert!(fresh.vote_granted, "{fresh:?}");
        node.shutdown().await.expect("shutdown");

        let (node, group) = start().await;
        assert_eq!(group.leader_lease(), config.election_timeout_max);
        let refused = vote(&group, 6).await;
        match &refused {
            Err(RemoteFailure::Raft(message)) => {
                assert!(message.contains("not voting"), "{message}");
            }
            other => panic!("a restarted replica voted: {other:?}"),
        }
        // The hold ends at the instant the replica set for itself at start.
        let hold_ends = group
            .votes_from
            .expect("a restarted replica holds its vote");
        tokio::time::sleep_until(hold_ends.into()).await;
        let later = vote(&group, 7).await.expect("it answers after the lease");
        assert!(later.vote_granted, "{later:?}");
        node.shutdown().await.expect("shutdown");
    }
}
