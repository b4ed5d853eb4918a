//! The in-process cluster used by the replication tests, generic over the engine.
#![allow(dead_code)]

pub mod kv;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use elastickv_engine_api::{EngineError, EngineSnapshot, MvccEngine};
use elastickv_raft::{
    Group, GroupConfig, GroupStatus, InProcessNetwork, LogStorage, NodeId, RaftError, RaftNode,
    Role, SnapshotTransfer, DEFAULT_GROUP,
};
use tempfile::TempDir;

pub use kv::KvApplier;

/// How long any single wait in a test may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(30);

/// An engine the suite runs on.
pub trait EngineKind: Send + Sync + 'static {
    /// The engine type.
    type Engine: MvccEngine;
    /// Whether the engine keeps its data on disk across reopen.
    const PERSISTENT: bool;
    /// Opens (or creates) an engine in `dir`.
    fn open(dir: &Path) -> Result<Self::Engine, EngineError>;
}

pub type TestNode<K> = RaftNode<<K as EngineKind>::Engine, KvApplier>;
pub type TestGroup<K> = Group<<K as EngineKind>::Engine, KvApplier>;

/// Short timeouts so that elections and fail-overs are quick in tests.
pub fn test_config() -> GroupConfig {
    GroupConfig {
        heartbeat_interval: Duration::from_millis(50),
        election_timeout_min: Duration::from_millis(300),
        election_timeout_max: Duration::from_millis(600),
        rpc_timeout: Duration::from_millis(500),
        propose_timeout: Duration::from_secs(10),
        read_timeout: Duration::from_secs(5),
        membership_timeout: Duration::from_secs(60),
        snapshot_transfer: SnapshotTransfer {
            chunk_size: 16 * 1024,
            ..SnapshotTransfer::default()
        },
        ..GroupConfig::default()
    }
}

/// A cluster of in-process nodes hosting the default group.
pub struct Cluster<K: EngineKind> {
    pub net: Arc<InProcessNetwork>,
    root: TempDir,
    pub config: GroupConfig,
    nodes: BTreeMap<NodeId, Arc<TestNode<K>>>,
    /// Engines kept across restarts when they are not persistent.
    kept: BTreeMap<NodeId, Arc<K::Engine>>,
}

impl<K: EngineKind> Cluster<K> {
    /// Starts nodes `1..=n` and initializes the default group with all of them.
    pub async fn start(n: u64, config: GroupConfig) -> Self {
        let mut cluster = Cluster {
            net: InProcessNetwork::new(),
            root: tempfile::tempdir().expect("temp dir"),
            config,
            nodes: BTreeMap::new(),
            kept: BTreeMap::new(),
        };
        for id in 1..=n {
            cluster.start_node(id).await;
        }
        let members: BTreeMap<NodeId, String> =
            (1..=n).map(|id| (id, format!("node-{id}"))).collect();
        cluster
            .group(1)
            .initialize(members)
            .await
            .expect("initialize");
        cluster.leader().await;
        cluster
    }

    /// Starts (or restarts) node `id` and opens the default group on it.
    pub async fn start_node(&mut self, id: NodeId) {
        let node = Arc::new(TestNode::<K>::new(
            id,
            self.root.path().join(format!("node-{id}")),
            self.net.transport(id),
        ));
        let mut config = self.config.clone();
        if !K::PERSISTENT {
            // As the server runs the in-memory engine: the log lives and dies with it.
            config.log_storage = LogStorage::Engine;
        }
        if K::PERSISTENT {
            node.open_group(DEFAULT_GROUP, config, K::open, |_| KvApplier)
                .await
                .expect("open group");
        } else {
            let engine = match self.kept.get(&id) {
                Some(engine) => Arc::clone(engine),
                None => {
                    let dir = node.group_dir(DEFAULT_GROUP).join("engine");
                    let engine = Arc::new(K::open(&dir).expect("open engine"));
                    self.kept.insert(id, Arc::clone(&engine));
                    engine
                }
            };
            node.start_group(DEFAULT_GROUP, engine, Arc::new(KvApplier), config)
                .await
                .expect("start group");
        }
        self.net.register(id, &node);
        self.nodes.insert(id, node);
    }

    /// Stops node `id` (all its groups); its data stays on disk.
    pub async fn stop_node(&mut self, id: NodeId) {
        self.net.unregister(id);
        if let Some(node) = self.nodes.remove(&id) {
            node.shutdown().await.expect("shutdown");
        }
    }

    /// Stops and restarts node `id` over its persisted (or kept) state.
    pub async fn restart_node(&mut self, id: NodeId) {
        self.stop_node(id).await;
        self.start_node(id).await;
    }

    pub fn node_ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    /// Node `id` (to send it raw RPCs or find its directories).
    pub fn node(&self, id: NodeId) -> Arc<TestNode<K>> {
        Arc::clone(
            self.nodes
                .get(&id)
                .unwrap_or_else(|| panic!("node {id} is not running")),
        )
    }

    pub fn group(&self, id: NodeId) -> Arc<TestGroup<K>> {
        self.nodes
            .get(&id)
            .and_then(|n| n.group(DEFAULT_GROUP))
            .unwrap_or_else(|| panic!("node {id} does not run the default group"))
    }

    /// Waits until one of the running nodes is leader with a term every running voter
    /// agrees on, and returns it.
    pub async fn leader(&self) -> NodeId {
        self.leader_among(&self.node_ids()).await
    }

    /// Waits until one of `nodes` is leader and the others of `nodes` follow it.
    pub async fn leader_among(&self, nodes: &[NodeId]) -> NodeId {
        let allowed: BTreeSet<NodeId> = nodes.iter().copied().collect();
        let first = self.group(nodes[0]);
        for _ in 0..50 {
            let status = first
                .wait_for(WAIT, "a leader among the given nodes", |s| {
                    s.leader.is_some_and(|l| allowed.contains(&l))
                })
                .await
                .expect("leader elected");
            let leader = status.leader.expect("leader");
            let confirmed = self
                .group(leader)
                .wait_for(WAIT, "the leader to know it leads", |s| {
                    s.role == Role::Leader || s.term > status.term
                })
                .await
                .expect("leader status");
            if confirmed.role == Role::Leader && confirmed.term == status.term {
                let mut all_agree = true;
                for id in nodes {
                    let seen = self
                        .group(*id)
                        .wait_for(WAIT, "every node to see the leader", |s| {
                            s.term >= status.term && s.leader.is_some()
                        })
                        .await
                        .expect("follower status");
                    all_agree &= seen.term == status.term && seen.leader == Some(leader);
                }
                if all_agree {
                    return leader;
                }
            }
        }
        panic!("leadership among {nodes:?} never settled")
    }

    /// Proposes `command` on the leader among `nodes`, following leader changes (bounded
    /// attempts). Returns the log index.
    pub async fn propose_among(&self, nodes: &[NodeId], command: Vec<u8>) -> u64 {
        for _ in 0..20 {
            let leader = self.leader_among(nodes).await;
            match self.group(leader).propose(command.clone()).await {
                Ok(p) => {
                    p.response.expect("command accepted");
                    return p.index;
                }
                Err(RaftError::NotLeader { .. }) => continue,
                Err(e) => panic!("proposal failed: {e}"),
            }
        }
        panic!("no stable leader to propose to")
    }

    pub async fn put(&self, key: &str, value: &str) -> u64 {
        self.propose_among(&self.node_ids(), kv::put(key.as_bytes(), value.as_bytes()))
            .await
    }

    /// Waits until node `id` has applied `index`.
    pub async fn wait_applied(&self, id: NodeId, index: u64) -> GroupStatus {
        self.group(id)
            .wait_for(WAIT, "apply", |s| s.applied_index >= index)
            .await
            .unwrap_or_else(|e| panic!("node {id} did not apply {index}: {e}"))
    }

    /// The latest value of `key` in node `id`'s engine (no barrier).
    pub fn local_value(&self, id: NodeId, key: &str) -> Option<String> {
        self.group(id)
            .engine()
            .get_at(key.as_bytes(), u64::MAX)
            .expect("engine read")
            .map(|v| String::from_utf8(v).expect("utf8"))
    }

    /// A linearizable read on the leader among `nodes`.
    pub async fn read_among(&self, nodes: &[NodeId], key: &str) -> Option<String> {
        for _ in 0..20 {
            let leader = self.leader_among(nodes).await;
            match self.group(leader).read_barrier().await {
                Ok(_) => return self.local_value(leader, key),
                Err(RaftError::NotLeader { .. }) => continue,
                Err(e) => panic!("read barrier failed: {e}"),
            }
        }
        panic!("no stable leader to read from")
    }

    /// Node `id`'s MVCC content as a portable snapshot stream.
    pub fn image(&self, id: NodeId) -> Vec<u8> {
        let mut out = Vec::new();
        let snapshot = self.group(id).engine().snapshot().expect("engine snapshot");
        snapshot.write_to(&mut out).expect("stream");
        out
    }

    /// Waits until every running node applied `index`, then checks that all engines hold
    /// byte-identical images.
    pub async fn assert_identical(&self, index: u64) {
        let ids = self.node_ids();
        for id in &ids {
            self.wait_applied(*id, index).await;
        }
        let reference = self.image(ids[0]);
        for id in &ids[1..] {
            assert!(
                self.image(*id) == reference,
                "node {id} differs from node {}",
                ids[0]
            );
        }
    }

    /// Stops every node.
    pub async fn shutdown(mut self) {
        for id in self.node_ids() {
            self.stop_node(id).await;
        }
    }
}
