//! One node of a cluster: its Raft groups (one engine each), the cached route table,
//! the timestamp oracle (served by the default group's leader), and calls to a group's
//! leader, locally or forwarded over gRPC.
//!
//! [`Cluster`] implements the transaction layer's [`ShardClient`] and
//! [`TimestampSource`], so the `txn` coordinator, lock resolver and GC run on any node.
//!
//! Forwarding (CLUSTER.md 3): a call for a group whose leader is elsewhere goes to that
//! leader through `Internal`; the receiver serves it only if it leads the group (it never
//! forwards again, so forwarding cannot loop). The sender makes up to
//! `forward_attempts` attempts, each bounded by `forward_timeout`, re-resolving the
//! leader between them with a doubling backoff; it fails at once with Unavailable when no
//! leader is known after the last attempt. Only calls that are safe to repeat are retried
//! after an uncertain failure: every command but `OnePhase` is idempotent (a repeat of a
//! prewrite, commit, rollback or raw batch at the same timestamps changes nothing), so a
//! `OnePhase` whose outcome is unknown is reported as such instead.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use elastickv_engine_api::{EngineError, KeyRange, KvPair, MvccEngine, Timestamp};
use elastickv_raft::{
    GroupConfig, GroupStatus, LogStorage, NodeId, RaftCeilingStore, RaftError, RaftNode, Role,
    TxnApplier, DEFAULT_GROUP,
};
use elastickv_txn::ts::SystemClock;
use elastickv_txn::tso::{TimestampOracle, TimestampSource, TsoConfig, TsoError};
use elastickv_txn::{
    Command, CommandOutput, GroupId, LockInfo, PointRead, ScanRead, ShardClient, ShardError,
    TxnStateMachine,
};
use parking_lot::Mutex;
use tokio::sync::{oneshot, Notify};

use crate::metrics::NodeCounters;
use crate::pb::cluster::{ApplyRequest, GetTimestampRequest, ReadRequest};
use crate::peers::{GrpcTransport, Peers};
use crate::routes::{Routes, ROUTES_META_KEY};
use crate::wire::{self, WireOutput, WireRead, WireShardError};

/// The group of keys routed before the route table was known (no such group exists).
const UNROUTED: GroupId = GroupId::MAX;

/// The Raft node type of a server.
pub type Node<E> = RaftNode<E, TxnApplier<E>>;

/// How a node is set up.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// This node's id (non-zero, unique in the cluster).
    pub node_id: NodeId,
    /// The address other nodes and clients reach this node at (`host:port`).
    pub advertise: String,
    /// The local IP of outgoing connections to other nodes (`None`: the OS chooses).
    pub peer_source_ip: Option<std::net::IpAddr>,
    /// Where the node keeps its groups (`<data_dir>/group-<id>/`).
    pub data_dir: PathBuf,
    /// The Raft groups of the cluster; the first is the default group (id 0).
    pub groups: Vec<GroupId>,
    /// Where the initial ranges split (one fewer than groups).
    pub split_keys: Vec<Vec<u8>>,
    /// The voters that form the cluster when it is first started (id -> address). The
    /// node with the smallest id initializes the groups; empty on a node that joins.
    pub initial_members: BTreeMap<NodeId, String>,
    /// Raft timing and batching.
    pub raft: GroupConfig,
    /// Raft messages on one stream per peer (else one unary call each).
    pub raft_stream: bool,
    /// Attempts of a call to a group's leader.
    pub forward_attempts: u32,
    /// Timeout of one forwarded call.
    pub forward_timeout: Duration,
    /// The first pause between attempts (doubled each time).
    pub forward_backoff: Duration,
    /// The name of the storage engine (for status output).
    pub engine_name: String,
}

/// A call to a group's leader.
#[derive(Debug, Clone)]
pub enum Op {
    /// Replicate and apply an encoded command.
    Apply {
        /// The command's encoding.
        command: Vec<u8>,
        /// For `OnePhase`: its commit_ts (checked against served reads; not repeatable).
        one_phase_commit_ts: Option<Timestamp>,
    },
    /// A lock-aware point read at a transaction's timestamp.
    Point {
        /// The key.
        key: Vec<u8>,
        /// The read timestamp.
        ts: Timestamp,
    },
    /// A lock-aware scan at a transaction's timestamp.
    Scan {
        /// The range.
        range: KeyRange,
        /// Most pairs.
        limit: usize,
        /// The read timestamp.
        ts: Timestamp,
    },
    /// The locks in a range.
    Locks {
        /// The range.
        range: KeyRange,
        /// Most locks.
        limit: usize,
    },
    /// A raw (non-transactional) point read of committed data; `ts == 0`: the latest.
    RawGet {
        /// The key.
        key: Vec<u8>,
        /// The read timestamp.
        ts: Timestamp,
    },
    /// A raw scan of committed data; `ts == 0`: the latest.
    RawScan {
        /// The range.
        range: KeyRange,
        /// Most pairs.
        limit: usize,
        /// The read timestamp.
        ts: Timestamp,
        /// Descending order.
        reverse: bool,
    },
    /// The newest version timestamp of a key.
    LatestTs {
        /// The key.
        key: Vec<u8>,
    },
}

impl Op {
    fn kind(&self) -> u32 {
        match self {
            Op::Apply { .. } => 0,
            Op::Point { .. } => 1,
            Op::Scan { .. } => 2,
            Op::Locks { .. } => 3,
            Op::RawGet { .. } => 4,
            Op::RawScan { .. } => 5,
            Op::LatestTs { .. } => 6,
        }
    }

    /// Whether a repeat after an unknown outcome is harmless.
    fn repeatable(&self) -> bool {
        !matches!(
            self,
            Op::Apply {
                one_phase_commit_ts: Some(_),
                ..
            }
        )
    }

    fn to_read_request(&self, group: GroupId) -> ReadRequest {
        let mut request = ReadRequest {
            group_id: group,
            kind: self.kind(),
            ..ReadRequest::default()
        };
        let set_range = |r: &mut ReadRequest, range: &KeyRange| {
            r.key = range.start.clone();
            r.end = range.end.clone().unwrap_or_default();
        };
        match self {
            Op::Apply { .. } => {}
            Op::Point { key, ts } | Op::RawGet { key, ts } => {
                request.key = key.clone();
                request.read_ts = *ts;
            }
            Op::Scan { range, limit, ts } => {
                set_range(&mut request, range);
                request.limit = *limit as u64;
                request.read_ts = *ts;
            }
            Op::Locks { range, limit } => {
                set_range(&mut request, range);
                request.limit = *limit as u64;
            }
            Op::RawScan {
                range,
                limit,
                ts,
                reverse,
            } => {
                set_range(&mut request, range);
                request.limit = *limit as u64;
                request.read_ts = *ts;
                request.reverse = *reverse;
            }
            Op::LatestTs { key } => request.key = key.clone(),
        }
        request
    }

    /// The operation a forwarded read request asks for.
    pub fn from_read_request(r: ReadRequest) -> Result<Op, String> {
        let range = KeyRange {
            start: r.key.clone(),
            end: (!r.end.is_empty()).then(|| r.end.clone()),
        };
        let limit = usize::try_from(r.limit).unwrap_or(usize::MAX);
        Ok(match r.kind {
            1 => Op::Point {
                key: r.key,
                ts: r.read_ts,
            },
            2 => Op::Scan {
                range,
                limit,
                ts: r.read_ts,
            },
            3 => Op::Locks { range, limit },
            4 => Op::RawGet {
                key: r.key,
                ts: r.read_ts,
            },
            5 => Op::RawScan {
                range,
                limit,
                ts: r.read_ts,
                reverse: r.reverse,
            },
            6 => Op::LatestTs { key: r.key },
            other => return Err(format!("unknown read kind {other}")),
        })
    }
}

/// What a call produced, with the Raft index it was applied at or read at.
#[derive(Debug)]
pub struct Reply<T> {
    /// The log index of the applied entry, or the read index of a read.
    pub index: u64,
    /// The result.
    pub value: T,
}

/// Keeps `OnePhase` commits and transactional reads of one group apart (the rule of
/// [`ShardClient`]): the highest read timestamp served, and the one-phase commits in
/// flight, which reads at or above their commit_ts wait for.
#[derive(Debug, Default)]
struct ReadGuard {
    state: Mutex<GuardState>,
    changed: Notify,
}

#[derive(Debug, Default)]
struct GuardState {
    /// The leader term the floor was taken in.
    term: u64,
    max_read_ts: Timestamp,
    inflight: BTreeMap<Timestamp, usize>,
}

/// A one-phase commit in flight; dropping it wakes waiting readers.
struct InFlight {
    guard: Arc<ReadGuard>,
    commit_ts: Timestamp,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        {
            let mut state = self.guard.state.lock();
            if let Some(n) = state.inflight.get_mut(&self.commit_ts) {
                *n -= 1;
                if *n == 0 {
                    state.inflight.remove(&self.commit_ts);
                }
            }
        }
        self.guard.changed.notify_waiters();
    }
}

impl ReadGuard {
    /// Records a read at `ts`, then waits for one-phase commits at or below it.
    async fn read(&self, ts: Timestamp) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = self.state.lock();
                state.max_read_ts = state.max_read_ts.max(ts);
                if state.inflight.range(..=ts).next().is_none() {
                    return;
                }
            }
            notified.await;
        }
    }
}

/// The oracle of the current leadership of the default group.
struct LeaderOracle<E: MvccEngine> {
    term: u64,
    oracle: Arc<TimestampOracle<RaftCeilingStore<E>>>,
}

/// One node.
pub struct Cluster<E: MvccEngine> {
    config: ClusterConfig,
    node: Arc<Node<E>>,
    peers: Arc<Peers>,
    routes: parking_lot::RwLock<Option<Arc<Routes>>>,
    guards: Mutex<HashMap<GroupId, Arc<ReadGuard>>>,
    oracle: tokio::sync::Mutex<Option<LeaderOracle<E>>>,
    /// Timestamp requests waiting for the next call to the oracle.
    tso_queue: Mutex<TsoQueue>,
    /// This node, for the task that drives `tso_queue`.
    me: std::sync::Weak<Cluster<E>>,
    /// Timestamp requests made here, and the oracle calls they became.
    tso_requests: AtomicU64,
    tso_calls: AtomicU64,
    /// The default group's term and the instant until which this node's leadership of
    /// it is known (see [`Cluster::local_timestamp`]).
    tso_lease: Mutex<Option<(u64, Instant)>>,
    /// Quorum rounds the oracle made to confirm its leadership.
    tso_leadership_checks: AtomicU64,
}

/// A request for `count` timestamps and where its first goes.
type TsoWaiter = (u32, oneshot::Sender<Result<Timestamp, TsoError>>);

/// Concurrent timestamp requests, coalesced: while one call to the oracle is in
/// flight, new requests wait for the next call, which asks for all of theirs at once
/// and splits the range it gets back. A request is never served by a call that
/// started before it arrived, so every timestamp is still fresh (greater than any
/// handed out before the request was made).
#[derive(Default)]
struct TsoQueue {
    running: bool,
    next: Vec<TsoWaiter>,
}

/// The most timestamps one oracle call asks for (what `Internal.Timestamp` accepts).
const TSO_MAX_COUNT: u32 = 1_000_000;

impl<E: MvccEngine> std::fmt::Debug for Cluster<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.config.node_id)
            .field("advertise", &self.config.advertise)
            .finish()
    }
}

fn raft_unavailable(e: &RaftError) -> ShardError {
    ShardError::Unavailable(e.to_string())
}

impl<E: MvccEngine> Cluster<E> {
    /// Opens every group of `config` (creating or reopening its engine with
    /// `open_engine`). Serve the node's `Internal` service, then call
    /// [`Cluster::bootstrap`].
    pub async fn open(
        config: ClusterConfig,
        open_engine: impl Fn(&std::path::Path) -> Result<E, EngineError>,
    ) -> Result<Arc<Self>, RaftError> {
        if config.node_id == 0 {
            return Err(RaftError::Config("the node id must not be 0".into()));
        }
        if config.groups.first() != Some(&DEFAULT_GROUP) {
            return Err(RaftError::Config(
                "the first group must be the default group 0".into(),
            ));
        }
        Routes::initial(&config.groups, &config.split_keys).map_err(RaftError::Config)?;
        let peers = Arc::new(Peers::from_ip(config.peer_source_ip));
        let transport = Arc::new(if config.raft_stream {
            GrpcTransport::new(Arc::clone(&peers))
        } else {
            GrpcTransport::unary(Arc::clone(&peers))
        });
        let node = Arc::new(Node::new(
            config.node_id,
            config.data_dir.clone(),
            transport,
        ));
        let mut raft = config.raft.clone();
        if config.engine_name == "mem" {
            // The in-memory engine forgets everything on restart: so must its log.
            raft.log_storage = LogStorage::Engine;
        }
        for &group in &config.groups {
            node.open_group(group, raft.clone(), &open_engine, |engine| {
                TxnApplier::new(Arc::clone(engine))
            })
            .await?;
        }
        let cluster = Arc::new_cyclic(|me| Cluster {
            config,
            node,
            peers,
            routes: parking_lot::RwLock::new(None),
            guards: Mutex::new(HashMap::new()),
            oracle: tokio::sync::Mutex::new(None),
            tso_queue: Mutex::new(TsoQueue::default()),
            me: me.clone(),
            tso_requests: AtomicU64::new(0),
            tso_calls: AtomicU64::new(0),
            tso_lease: Mutex::new(None),
            tso_leadership_checks: AtomicU64::new(0),
        });
        cluster.refresh_routes();
        Ok(cluster)
    }

    /// When the timestamp oracle's leadership lease on this node runs out (`None`: it
    /// holds none); past it, the next oracle call confirms leadership with a quorum.
    pub fn tso_lease_until(&self) -> Option<Instant> {
        self.tso_lease.lock().map(|(_, until)| until)
    }

    /// The counters this layer keeps (for the metrics page).
    pub fn counters(&self) -> NodeCounters {
        NodeCounters {
            tso_requests: self.tso_requests.load(Ordering::Relaxed),
            tso_calls: self.tso_calls.load(Ordering::Relaxed),
            tso_leadership_checks: self.tso_leadership_checks.load(Ordering::Relaxed),
            shared_log_syncs: self.node.shared_log().map_or(0, |log| log.syncs()),
        }
    }

    /// The node's configuration.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// The Raft node (to answer Raft RPCs and for status).
    pub fn node(&self) -> &Arc<Node<E>> {
        &self.node
    }

    /// Connections to other nodes.
    pub fn peers(&self) -> &Arc<Peers> {
        &self.peers
    }

    /// Forms the cluster on first start: the initial member with the smallest id
    /// initializes every group (harmless when already done), then the first route
    /// table is written once the default group has a leader. Other nodes do nothing.
    pub async fn bootstrap(self: &Arc<Self>) -> Result<(), RaftError> {
        let Some((&first, _)) = self.config.initial_members.iter().next() else {
            return Ok(());
        };
        if first != self.config.node_id {
            return Ok(());
        }
        for &group in &self.config.groups {
            let g = self
                .node
                .group(group)
                .ok_or(RaftError::NoSuchGroup(group))?;
            g.initialize(self.config.initial_members.clone()).await?;
        }
        Ok(())
    }

    /// Writes the first route table if the default group has none (retrying until
    /// the group has a leader). Safe to run on several nodes at once: the table is
    /// written with a check that none exists (a repeat finds one and stops).
    pub async fn ensure_routes(self: &Arc<Self>) -> Result<(), String> {
        let initial = Routes::initial(&self.config.groups, &self.config.split_keys)?;
        for attempt in 0..600u32 {
            match self.read_meta_linearizable(ROUTES_META_KEY).await {
                Ok(Some(bytes)) => {
                    self.install_routes(Routes::decode(&bytes)?);
                    return Ok(());
                }
                Ok(None) => {
                    let ts = self
                        .timestamp()
                        .await
                        .map_err(|e| format!("no timestamp for the route table: {e}"))?;
                    let command = Command::MetaPut {
                        ts,
                        key: ROUTES_META_KEY.to_vec(),
                        value: Some(initial.encode()),
                    };
                    if self.apply_indexed(DEFAULT_GROUP, &command).await.is_ok() {
                        self.install_routes(initial);
                        return Ok(());
                    }
                }
                Err(e) if attempt % 50 == 49 => {
                    tracing::info!(error = %e, "waiting for the default group to write the route table");
                }
                Err(_) => {}
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err("the default group did not accept the route table".into())
    }

    async fn read_meta_linearizable(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ShardError> {
        let group = self
            .node
            .group(DEFAULT_GROUP)
            .ok_or_else(|| ShardError::Unavailable("no default group".into()))?;
        if group.status().role == Role::Leader {
            group
                .read_barrier()
                .await
                .map_err(|e| raft_unavailable(&e))?;
        } else {
            // Follower: wait until the local replica applied what the leader had
            // committed when asked (through a forwarded read of any key).
            let reply = self
                .call(
                    DEFAULT_GROUP,
                    Op::LatestTs {
                        key: b"\0route-probe".to_vec(),
                    },
                )
                .await?;
            group
                .wait_for(self.config.forward_timeout, "route table catch-up", |s| {
                    s.applied_index >= reply.index
                })
                .await
                .map_err(|e| raft_unavailable(&e))?;
        }
        TxnStateMachine::new(Arc::clone(group.engine()))
            .meta(key)
            .map_err(ShardError::Rejected)
    }

    fn install_routes(&self, routes: Routes) {
        let mut current = self.routes.write();
        if current.as_ref().is_none_or(|c| c.version < routes.version) {
            *current = Some(Arc::new(routes));
        }
    }

    /// Reloads the route table from this node's replica of the default group.
    pub fn refresh_routes(&self) {
        let Some(group) = self.node.group(DEFAULT_GROUP) else {
            return;
        };
        let machine = TxnStateMachine::new(Arc::clone(group.engine()));
        match machine.meta(ROUTES_META_KEY) {
            Ok(Some(bytes)) => match Routes::decode(&bytes) {
                Ok(routes) => self.install_routes(routes),
                Err(e) => tracing::error!(error = %e, "cannot decode the stored route table"),
            },
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read the route table"),
        }
    }

    /// The cached route table.
    pub fn routes(&self) -> Result<Arc<Routes>, ShardError> {
        if let Some(routes) = self.routes.read().as_ref() {
            return Ok(Arc::clone(routes));
        }
        self.refresh_routes();
        self.routes.read().as_ref().map(Arc::clone).ok_or_else(|| {
            ShardError::Unavailable(
                "the route table is not known yet (the cluster is still forming)".into(),
            )
        })
    }

    /// Splits the range holding `split_key` (both halves stay in their group).
    pub async fn split_range(self: &Arc<Self>, split_key: &[u8]) -> Result<Arc<Routes>, String> {
        let current = self
            .read_meta_linearizable(ROUTES_META_KEY)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the route table is not written yet")?;
        let current = Routes::decode(&current)?;
        let next = current.split(split_key)?;
        let ts = self.timestamp().await.map_err(|e| e.to_string())?;
        self.apply_indexed(
            DEFAULT_GROUP,
            &Command::MetaPut {
                ts,
                key: ROUTES_META_KEY.to_vec(),
                value: Some(next.encode()),
            },
        )
        .await
        .map_err(|e| e.to_string())?;
        self.install_routes(next);
        self.routes().map_err(|e| e.to_string())
    }

    /// The status of every group hosted here.
    pub fn group_statuses(&self) -> Vec<GroupStatus> {
        self.node
            .group_ids()
            .into_iter()
            .filter_map(|g| self.node.group(g).map(|g| g.status()))
            .collect()
    }

    /// The known members of the cluster (from the default group's membership).
    pub fn members(&self) -> BTreeMap<NodeId, String> {
        self.node
            .group(DEFAULT_GROUP)
            .map(|g| g.status().addresses)
            .unwrap_or_default()
    }

    fn guard(&self, group: GroupId) -> Arc<ReadGuard> {
        Arc::clone(self.guards.lock().entry(group).or_default())
    }

    /// Where the leader of `group` is: here, elsewhere, or unknown.
    fn locate(&self, group: GroupId) -> Result<Location<E>, ShardError> {
        if group == UNROUTED {
            return Err(self.routes().err().unwrap_or_else(|| {
                ShardError::Unavailable("the route table changed; retry".into())
            }));
        }
        let g = self.node.group(group).ok_or_else(|| {
            ShardError::Unavailable(format!("group {group} is not hosted on this node"))
        })?;
        let leadership = g.leadership();
        if leadership.role == Role::Leader {
            return Ok(Location::Local(g, leadership.term));
        }
        match leadership.leader {
            Some((leader, Some(addr))) if leader != self.config.node_id => {
                Ok(Location::Remote(leader, addr))
            }
            _ => Ok(Location::Unknown),
        }
    }

    /// The leader of `key`'s group when that is another node with a known address:
    /// a single-key request is best served whole there. `None` when this node leads
    /// the group, or no leader is known (the request is then served here, forwarding
    /// its parts with retries).
    pub fn remote_leader_of(&self, key: &[u8]) -> Option<(NodeId, String)> {
        match self.locate(ShardClient::route_key(self, key)) {
            Ok(Location::Remote(leader, addr)) => Some((leader, addr)),
            _ => None,
        }
    }

    /// Waits (at most one forwarding timeout) until `group` has a leader again, before
    /// the next attempt of a call.
    async fn await_leader(&self, group: GroupId) {
        if let Some(g) = self.node.group(group) {
            let _ = g
                .wait_for(self.config.forward_timeout, "a leader", |s| {
                    s.leader.is_some()
                })
                .await;
        }
    }

    /// Runs `op` on the leader of `group` (here or forwarded), with bounded retries.
    pub async fn call(&self, group: GroupId, op: Op) -> Result<Reply<CallResult>, ShardError> {
        let attempts = self.config.forward_attempts.max(1);
        let mut last = ShardError::Unavailable(format!("group {group} has no known leader"));
        for attempt in 0..attempts {
            if attempt > 0 {
                let pause = self.config.forward_backoff * 2u32.saturating_pow(attempt - 1);
                tokio::time::sleep(pause).await;
            }
            let outcome = match self.locate(group)? {
                Location::Local(g, term) => self.serve_local(&g, term, &op).await,
                Location::Remote(leader, addr) => self.forward(group, leader, &addr, &op).await,
                Location::Unknown => {
                    self.await_leader(group).await;
                    last = ShardError::Unavailable(format!(
                        "group {group} has no leader (an election may be in progress); retry"
                    ));
                    continue;
                }
            };
            match outcome {
                Err(ShardError::Unavailable(m)) => last = ShardError::Unavailable(m),
                Err(ShardError::Ambiguous(m)) if op.repeatable() => {
                    last = ShardError::Ambiguous(m);
                }
                other => return other,
            }
        }
        Err(last)
    }

    async fn forward(
        &self,
        group: GroupId,
        leader: NodeId,
        addr: &str,
        op: &Op,
    ) -> Result<Reply<CallResult>, ShardError> {
        let mut client = self.peers.internal(addr).map_err(ShardError::Unavailable)?;
        let timeout = self.config.forward_timeout;
        let bytes = match op {
            Op::Apply { command, .. } => {
                let request = ApplyRequest {
                    group_id: group,
                    command: command.clone(),
                    hops: 1,
                };
                match tokio::time::timeout(timeout, client.apply(request)).await {
                    Ok(Ok(reply)) => reply.into_inner().result,
                    Ok(Err(status)) => return Err(forward_failure(leader, &status, true)),
                    Err(_) => {
                        return Err(ShardError::Ambiguous(format!(
                        "no answer from leader node {leader} of group {group} within {timeout:?}"
                    )))
                    }
                }
            }
            _ => {
                let mut request = op.to_read_request(group);
                request.hops = 1;
                match tokio::time::timeout(timeout, client.read(request)).await {
                    Ok(Ok(reply)) => reply.into_inner().result,
                    Ok(Err(status)) => return Err(forward_failure(leader, &status, false)),
                    Err(_) => {
                        return Err(ShardError::Unavailable(format!(
                        "no answer from leader node {leader} of group {group} within {timeout:?}"
                    )))
                    }
                }
            }
        };
        let (index, result): (u64, WireCall) = wire::decode(&bytes)?;
        Ok(Reply {
            index,
            value: result.into(),
        })
    }

    /// Serves `op` for `group` only if this node leads it (the receiving end of
    /// forwarding), encoding the outcome for the reply.
    pub async fn serve_forwarded(&self, group: GroupId, op: Op) -> Vec<u8> {
        let outcome = match self.locate(group) {
            Ok(Location::Local(g, term)) => self.serve_local(&g, term, &op).await,
            Ok(_) => Err(ShardError::Unavailable(format!(
                "node {} is not the leader of group {group}",
                self.config.node_id
            ))),
            Err(e) => Err(e),
        };
        let outcome = outcome.map(|r| (r.index, WireCall::from(&r.value)));
        wire::encode(&outcome.map_err(|e| WireShardError::from(&e)))
    }

    async fn serve_local(
        &self,
        g: &Arc<elastickv_raft::Group<E, TxnApplier<E>>>,
        term: u64,
        op: &Op,
    ) -> Result<Reply<CallResult>, ShardError> {
        let machine = || TxnStateMachine::new(Arc::clone(g.engine()));
        match op {
            Op::Apply {
                command,
                one_phase_commit_ts,
            } => {
                let inflight = match one_phase_commit_ts {
                    Some(commit_ts) => Some(self.begin_one_phase(g.id(), term, *commit_ts).await?),
                    None => None,
                };
                match g.propose(command.clone()).await {
                    Ok(proposed) => Ok(Reply {
                        index: proposed.index,
                        value: CallResult::Output(proposed.response.map_err(ShardError::Rejected)?),
                    }),
                    Err(e @ RaftError::NotLeader { .. }) if op.repeatable() => {
                        Err(raft_unavailable(&e))
                    }
                    Err(e @ (RaftError::NoSuchGroup(_) | RaftError::Stopped { .. })) => {
                        Err(raft_unavailable(&e))
                    }
                    Err(e) => {
                        if let Some(inflight) = inflight {
                            hold_until_settled(Arc::clone(g), inflight);
                        }
                        Err(ShardError::Ambiguous(e.to_string()))
                    }
                }
            }
            Op::Point { key, ts } => {
                self.guard(g.id()).read(*ts).await;
                let index = g.read_barrier().await.map_err(|e| raft_unavailable(&e))?;
                let read = machine().read_point(key, *ts)?;
                Ok(Reply {
                    index,
                    value: CallResult::Point(read),
                })
            }
            Op::Scan { range, limit, ts } => {
                self.guard(g.id()).read(*ts).await;
                let index = g.read_barrier().await.map_err(|e| raft_unavailable(&e))?;
                let read = machine().read_scan(range, *limit, *ts)?;
                Ok(Reply {
                    index,
                    value: CallResult::Scan(read),
                })
            }
            Op::Locks { range, limit } => {
                let index = g.read_barrier().await.map_err(|e| raft_unavailable(&e))?;
                let locks = machine().scan_locks(range, *limit)?;
                Ok(Reply {
                    index,
                    value: CallResult::Locks(locks),
                })
            }
            Op::RawGet { key, ts } => {
                let index = g.read_barrier().await.map_err(|e| raft_unavailable(&e))?;
                let read_ts = if *ts == 0 { Timestamp::MAX } else { *ts };
                let value = machine().read_ignoring_locks(key, read_ts)?;
                Ok(Reply {
                    index,
                    value: CallResult::Point(PointRead::Value(value)),
                })
            }
            Op::RawScan {
                range,
                limit,
                ts,
                reverse,
            } => {
                let index = g.read_barrier().await.map_err(|e| raft_unavailable(&e))?;
                let read_ts = if *ts == 0 { Timestamp::MAX } else { *ts };
                let pairs = machine().read_scan_ignoring_locks(range, *limit, read_ts, *reverse)?;
                Ok(Reply {
                    index,
                    value: CallResult::Scan(ScanRead {
                        pairs,
                        locks: Vec::new(),
                    }),
                })
            }
            Op::LatestTs { key } => {
                let index = g.read_barrier().await.map_err(|e| raft_unavailable(&e))?;
                let ts = machine().latest_commit_ts(key)?;
                Ok(Reply {
                    index,
                    value: CallResult::Latest(ts),
                })
            }
        }
    }

    /// Admits a one-phase commit at `commit_ts` on a group this node leads in `term`,
    /// or refuses it when a read at or above it was served. In a new term the floor
    /// starts at a fresh oracle timestamp: every read served by an earlier leader used
    /// a timestamp the oracle had handed out before.
    async fn begin_one_phase(
        &self,
        group: GroupId,
        term: u64,
        commit_ts: Timestamp,
    ) -> Result<InFlight, ShardError> {
        let guard = self.guard(group);
        let needs_floor = guard.state.lock().term != term;
        let floor = if needs_floor {
            Some(
                self.timestamp()
                    .await
                    .map_err(|e| ShardError::Unavailable(e.to_string()))?,
            )
        } else {
            None
        };
        let mut state = guard.state.lock();
        if let Some(floor) = floor {
            if state.term != term {
                state.max_read_ts = state.max_read_ts.max(floor);
                state.term = term;
            }
        }
        if commit_ts <= state.max_read_ts {
            return Err(ShardError::CommitTsTooOld {
                commit_ts,
                max_read_ts: state.max_read_ts,
            });
        }
        *state.inflight.entry(commit_ts).or_default() += 1;
        drop(state);
        Ok(InFlight { guard, commit_ts })
    }

    /// A timestamp from this node's oracle, if it leads the default group (the
    /// receiving end of `Internal.Timestamp`).
    pub async fn local_timestamp(&self, count: u32) -> Result<Timestamp, TsoError> {
        let group = self
            .node
            .group(DEFAULT_GROUP)
            .ok_or_else(|| TsoError::Store("no default group on this node".into()))?;
        let (role, term) = group.role_and_term();
        if role != Role::Leader {
            return Err(TsoError::Store(format!(
                "node {} does not lead the default group",
                self.config.node_id
            )));
        }
        let oracle = {
            let mut current = self.oracle.lock().await;
            match current.as_ref() {
                Some(o) if o.term == term => Arc::clone(&o.oracle),
                _ => {
                    let store = Arc::new(RaftCeilingStore::new(Arc::clone(&group)));
                    let oracle = Arc::new(
                        TimestampOracle::start(store, Arc::new(SystemClock), TsoConfig::default())
                            .await?,
                    );
                    *current = Some(LeaderOracle {
                        term,
                        oracle: Arc::clone(&oracle),
                    });
                    oracle
                }
            }
        };
        let ts = oracle.reserve(count).await?;
        // A leader that was deposed without hearing of it yet (paused, cut off) still
        // holds a window of timestamps in memory, below those its successor hands out:
        // a read at one would miss writes acknowledged since. So this node must know it
        // still leads after the timestamps were taken: then no successor can have
        // handed out any before the request arrived (found by the fault harness,
        // `server/tests/faults.rs`). It knows while its lease holds: a quorum confirmed
        // its leadership at `t` (a read barrier started at `t`), and no other leader can
        // be elected before `t + leader_lease` (`Group::leader_lease`); half of that is
        // used, a margin for clock rates and delays. Past it, a barrier confirms again
        // and renews the lease: one quorum round per half lease, not one per call.
        let now = Instant::now();
        let leased =
            matches!(*self.tso_lease.lock(), Some((held, until)) if held == term && now < until);
        if !leased {
            let asked = Instant::now();
            self.tso_leadership_checks.fetch_add(1, Ordering::Relaxed);
            group
                .read_barrier()
                .await
                .map_err(|e| TsoError::Store(format!("leadership not confirmed: {e}")))?;
            *self.tso_lease.lock() = Some((term, asked + group.leader_lease() / 2));
        }
        // Only timestamps handed out while still leading in the same term count. Raft's
        // own state, not the published status: had this node granted another candidate
        // its vote (which the lease does not cover), it would show here already.
        let leads = group
            .leads_in_term(term)
            .await
            .map_err(|e| TsoError::Store(format!("leadership not confirmed: {e}")))?;
        if !leads {
            return Err(TsoError::Store("leadership changed while serving".into()));
        }
        Ok(ts)
    }

    /// `count` consecutive timestamps (at most 1,000,000; 0 counts as 1) from the
    /// cluster's oracle, here or forwarded; returns the first. Concurrent requests share
    /// one oracle call (see [`TsoQueue`]).
    pub async fn timestamps(&self, count: u32) -> Result<Timestamp, TsoError> {
        let count = count.clamp(1, TSO_MAX_COUNT);
        self.tso_requests.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let start_driver = {
            let mut queue = self.tso_queue.lock();
            queue.next.push((count, tx));
            !std::mem::replace(&mut queue.running, true)
        };
        if start_driver {
            let Some(me) = self.me.upgrade() else {
                return Err(TsoError::Store("the node is shutting down".into()));
            };
            // A task of its own: the driver must outlive any one caller, which may be
            // cancelled (a client that hangs up) while others wait for its call.
            tokio::spawn(async move { me.drive_timestamps().await });
        }
        rx.await
            .unwrap_or_else(|_| Err(TsoError::Store("timestamp request abandoned".into())))
    }

    /// Serves `tso_queue` until it is empty: each round takes every waiting request
    /// (up to [`TSO_MAX_COUNT`] timestamps in all) and makes one oracle call for them.
    async fn drive_timestamps(&self) {
        loop {
            let batch = {
                let mut queue = self.tso_queue.lock();
                if queue.next.is_empty() {
                    queue.running = false;
                    return;
                }
                let mut total = 0u32;
                let split = queue
                    .next
                    .iter()
                    .position(|(count, _)| {
                        total += *count;
                        total > TSO_MAX_COUNT
                    })
                    .unwrap_or(queue.next.len())
                    .max(1);
                let rest = queue.next.split_off(split);
                std::mem::replace(&mut queue.next, rest)
            };
            let total: u32 = batch.iter().map(|(count, _)| count).sum();
            self.tso_calls.fetch_add(1, Ordering::Relaxed);
            let outcome = self.call_oracle(total).await;
            let mut next = outcome.as_ref().copied().unwrap_or_default();
            for (count, tx) in batch {
                // A caller that gave up has dropped its receiver; nothing to do.
                let _ = tx.send(outcome.clone().map(|_| next));
                next += u64::from(count);
            }
        }
    }

    /// One call to the oracle for `count` timestamps: here if this node leads the
    /// default group, else forwarded to its leader (retried while it moves).
    async fn call_oracle(&self, count: u32) -> Result<Timestamp, TsoError> {
        let attempts = self.config.forward_attempts.max(1) + 2;
        let mut last = TsoError::Store("the default group has no leader".into());
        for attempt in 0..attempts {
            if attempt > 0 {
                tokio::time::sleep(self.config.forward_backoff * 2u32.saturating_pow(attempt - 1))
                    .await;
            }
            let location = self
                .locate(DEFAULT_GROUP)
                .map_err(|e| TsoError::Store(e.to_string()))?;
            match location {
                Location::Local(..) => match self.local_timestamp(count).await {
                    Ok(ts) => return Ok(ts),
                    Err(e) => last = e,
                },
                Location::Remote(leader, addr) => {
                    let mut client = match self.peers.internal(&addr) {
                        Ok(c) => c,
                        Err(e) => {
                            last = TsoError::Store(e);
                            continue;
                        }
                    };
                    let call = client.timestamp(GetTimestampRequest { count });
                    match tokio::time::timeout(self.config.forward_timeout, call).await {
                        Ok(Ok(reply)) => return Ok(reply.into_inner().timestamp),
                        Ok(Err(status)) => {
                            last = TsoError::Store(format!(
                                "leader node {leader}: {}",
                                status.message()
                            ));
                        }
                        Err(_) => last = TsoError::Store(format!("leader node {leader} timed out")),
                    }
                }
                Location::Unknown => self.await_leader(DEFAULT_GROUP).await,
            }
        }
        Err(last)
    }

    /// Stops every group.
    pub async fn shutdown(&self) -> Result<(), RaftError> {
        self.node.shutdown().await
    }
}

/// A one-phase commit whose outcome is unknown may still be applied: readers at or
/// above its commit_ts keep waiting until everything this leader had in its log is
/// applied, the term changes (a new leader's read barrier covers the old log), or a
/// minute has passed.
fn hold_until_settled<E: MvccEngine>(
    g: Arc<elastickv_raft::Group<E, TxnApplier<E>>>,
    inflight: InFlight,
) {
    let at_failure = g.status();
    tokio::spawn(async move {
        let _ = g
            .wait_for(
                Duration::from_secs(60),
                "an ambiguous commit to settle",
                |s| s.term != at_failure.term || s.applied_index >= at_failure.last_log_index,
            )
            .await;
        drop(inflight);
    });
}

enum Location<E: MvccEngine> {
    Local(Arc<elastickv_raft::Group<E, TxnApplier<E>>>, u64),
    Remote(NodeId, String),
    Unknown,
}

fn forward_failure(leader: NodeId, status: &tonic::Status, apply: bool) -> ShardError {
    let message = format!("forwarding to node {leader}: {}", status.message());
    // A call that failed before reaching the leader's handler was not applied; any
    // other failure of a write leaves its outcome unknown.
    if !apply || status.code() == tonic::Code::Unavailable {
        ShardError::Unavailable(message)
    } else {
        ShardError::Ambiguous(message)
    }
}

/// The result of a call to a group's leader.
#[derive(Debug)]
pub enum CallResult {
    /// A command's output.
    Output(CommandOutput),
    /// A point read.
    Point(PointRead),
    /// A scan.
    Scan(ScanRead),
    /// A lock scan.
    Locks(Vec<LockInfo>),
    /// A latest commit timestamp.
    Latest(Option<Timestamp>),
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
enum WireCall {
    Output(WireOutput),
    Read(WireRead),
}

impl From<&CallResult> for WireCall {
    fn from(r: &CallResult) -> Self {
        match r {
            CallResult::Output(o) => WireCall::Output(o.into()),
            CallResult::Point(p) => WireCall::Read(p.into()),
            CallResult::Scan(s) => WireCall::Read(s.into()),
            CallResult::Locks(l) => {
                WireCall::Read(WireRead::Locks(l.iter().map(Into::into).collect()))
            }
            CallResult::Latest(ts) => WireCall::Read(WireRead::Latest(*ts)),
        }
    }
}

impl From<WireCall> for CallResult {
    fn from(w: WireCall) -> Self {
        match w {
            WireCall::Output(o) => CallResult::Output(o.into()),
            WireCall::Read(WireRead::Point(v)) => CallResult::Point(PointRead::Value(v)),
            WireCall::Read(WireRead::PointLocked(l)) => {
                CallResult::Point(PointRead::Locked(l.into()))
            }
            WireCall::Read(WireRead::Scan { pairs, locks }) => CallResult::Scan(ScanRead {
                pairs: wire::pairs_from_wire(pairs),
                locks: locks.into_iter().map(Into::into).collect(),
            }),
            WireCall::Read(WireRead::Locks(l)) => {
                CallResult::Locks(l.into_iter().map(Into::into).collect())
            }
            WireCall::Read(WireRead::Latest(ts)) => CallResult::Latest(ts),
        }
    }
}

fn unexpected(what: &str, got: &CallResult) -> ShardError {
    ShardError::Ambiguous(format!("unexpected reply to {what}: {got:?}"))
}

impl<E: MvccEngine> Cluster<E> {
    /// Applies `command` on `group`'s leader, with the log index it was applied at.
    pub async fn apply_indexed(
        &self,
        group: GroupId,
        command: &Command,
    ) -> Result<Reply<CommandOutput>, ShardError> {
        let one_phase_commit_ts = match command {
            Command::OnePhase { commit_ts, .. } => Some(*commit_ts),
            _ => None,
        };
        let op = Op::Apply {
            command: command.encode(),
            one_phase_commit_ts,
        };
        let reply = self.call(group, op).await?;
        match reply.value {
            CallResult::Output(output) => Ok(Reply {
                index: reply.index,
                value: output,
            }),
            other => Err(unexpected("a command", &other)),
        }
    }

    /// A raw read of committed data (`ts == 0`: the latest, linearizable).
    pub async fn raw_get(
        &self,
        key: &[u8],
        ts: Timestamp,
    ) -> Result<Reply<Option<Vec<u8>>>, ShardError> {
        let group = self.routes()?.route_of(key).group;
        let reply = self
            .call(
                group,
                Op::RawGet {
                    key: key.to_vec(),
                    ts,
                },
            )
            .await?;
        match reply.value {
            CallResult::Point(PointRead::Value(v)) => Ok(Reply {
                index: reply.index,
                value: v,
            }),
            other => Err(unexpected("a raw read", &other)),
        }
    }

    /// The newest version timestamp of `key`.
    pub async fn raw_latest_ts(&self, key: &[u8]) -> Result<Option<Timestamp>, ShardError> {
        let group = self.routes()?.route_of(key).group;
        match self
            .call(group, Op::LatestTs { key: key.to_vec() })
            .await?
            .value
        {
            CallResult::Latest(ts) => Ok(ts),
            other => Err(unexpected("a latest-timestamp read", &other)),
        }
    }

    /// A raw scan across groups, in key order (descending when `reverse`).
    pub async fn raw_scan(
        &self,
        range: &KeyRange,
        limit: usize,
        ts: Timestamp,
        reverse: bool,
    ) -> Result<Vec<KvPair>, ShardError> {
        let mut parts = self.routes()?.route_range(range);
        if reverse {
            parts.reverse();
        }
        let mut out = Vec::new();
        for (group, part) in parts {
            if out.len() >= limit {
                break;
            }
            let op = Op::RawScan {
                range: part,
                limit: limit - out.len(),
                ts,
                reverse,
            };
            match self.call(group, op).await?.value {
                CallResult::Scan(read) => out.extend(read.pairs),
                other => return Err(unexpected("a raw scan", &other)),
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl<E: MvccEngine> ShardClient for Cluster<E> {
    fn route_key(&self, key: &[u8]) -> GroupId {
        match self.routes() {
            Ok(routes) => routes.route_of(key).group,
            // Before the table is known no key has a group: calls to this one fail with
            // "the route table is not known yet" instead of reaching a wrong group.
            Err(_) => UNROUTED,
        }
    }

    fn route_range(&self, range: &KeyRange) -> Vec<(GroupId, KeyRange)> {
        match self.routes() {
            Ok(routes) => routes.route_range(range),
            Err(_) => vec![(UNROUTED, range.clone())],
        }
    }

    fn groups(&self) -> Vec<GroupId> {
        match self.routes() {
            Ok(routes) => routes.groups(),
            Err(_) => self.config.groups.clone(),
        }
    }

    async fn apply(&self, group: GroupId, command: Command) -> Result<CommandOutput, ShardError> {
        self.routes()?;
        Ok(self.apply_indexed(group, &command).await?.value)
    }

    async fn read_point(
        &self,
        group: GroupId,
        key: Vec<u8>,
        read_ts: Timestamp,
    ) -> Result<PointRead, ShardError> {
        match self
            .call(group, Op::Point { key, ts: read_ts })
            .await?
            .value
        {
            CallResult::Point(read) => Ok(read),
            other => Err(unexpected("a point read", &other)),
        }
    }

    async fn read_scan(
        &self,
        group: GroupId,
        range: KeyRange,
        limit: usize,
        read_ts: Timestamp,
    ) -> Result<ScanRead, ShardError> {
        let op = Op::Scan {
            range,
            limit,
            ts: read_ts,
        };
        match self.call(group, op).await?.value {
            CallResult::Scan(read) => Ok(read),
            other => Err(unexpected("a scan", &other)),
        }
    }

    async fn scan_locks(
        &self,
        group: GroupId,
        range: KeyRange,
        limit: usize,
    ) -> Result<Vec<LockInfo>, ShardError> {
        match self.call(group, Op::Locks { range, limit }).await?.value {
            CallResult::Locks(locks) => Ok(locks),
            other => Err(unexpected("a lock scan", &other)),
        }
    }
}

#[async_trait]
impl<E: MvccEngine> TimestampSource for Cluster<E> {
    async fn timestamps(&self, count: u32) -> Result<Timestamp, TsoError> {
        Cluster::timestamps(self, count).await
    }
}
