//! `txn`'s state machine replicated by Raft, and the timestamp oracle's ceiling kept in
//! the default group across a leader change.

use std::collections::BTreeMap;
use std::sync::Arc;

use elastickv_engine_api::{Mutation, MvccEngine};
use elastickv_engine_mem::MemEngine;
use elastickv_raft::{
    GroupConfig, InProcessNetwork, NodeId, RaftCeilingStore, RaftNode, Role, SnapshotTransfer,
    TxnApplier, DEFAULT_GROUP,
};
use elastickv_txn::ts::ManualClock;
use elastickv_txn::tso::{TimestampOracle, TsoConfig};
use elastickv_txn::{Command, CommandOutput, PointRead, TxnError, TxnStateMachine};
use std::time::Duration;

type Node = RaftNode<MemEngine, TxnApplier<MemEngine>>;

const WAIT: Duration = Duration::from_secs(30);

fn config() -> GroupConfig {
    GroupConfig {
        heartbeat_interval: Duration::from_millis(50),
        election_timeout_min: Duration::from_millis(300),
        election_timeout_max: Duration::from_millis(600),
        rpc_timeout: Duration::from_millis(500),
        snapshot_transfer: SnapshotTransfer::default(),
        ..GroupConfig::default()
    }
}

async fn start_cluster(
    net: &Arc<InProcessNetwork>,
    dir: &std::path::Path,
) -> BTreeMap<NodeId, Arc<Node>> {
    let mut nodes = BTreeMap::new();
    for id in 1..=3 {
        let node = Arc::new(Node::new(
            id,
            dir.join(format!("node-{id}")),
            net.transport(id),
        ));
        let engine = Arc::new(MemEngine::new());
        let applier = Arc::new(TxnApplier::new(Arc::clone(&engine)));
        node.start_group(DEFAULT_GROUP, engine, applier, config())
            .await
            .expect("start group");
        net.register(id, &node);
        nodes.insert(id, node);
    }
    let members = (1..=3).map(|id| (id, format!("node-{id}"))).collect();
    nodes[&1]
        .group(DEFAULT_GROUP)
        .expect("group")
        .initialize(members)
        .await
        .expect("initialize");
    nodes
}

async fn leader_of(nodes: &BTreeMap<NodeId, Arc<Node>>) -> NodeId {
    let (first, node) = nodes.iter().next().expect("a node");
    let allowed: Vec<NodeId> = nodes.keys().copied().collect();
    let status = node
        .group(DEFAULT_GROUP)
        .expect("group")
        .wait_for(WAIT, "leader", |s| {
            s.leader.is_some_and(|l| allowed.contains(&l))
        })
        .await
        .unwrap_or_else(|e| panic!("node {first} sees no leader: {e}"));
    let leader = status.leader.expect("leader");
    nodes[&leader]
        .group(DEFAULT_GROUP)
        .expect("group")
        .wait_for(WAIT, "leader role", |s| s.role == Role::Leader)
        .await
        .expect("leader knows it");
    leader
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn txn_commands_replicate_and_refusals_keep_the_group_running() {
    let net = InProcessNetwork::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let nodes = start_cluster(&net, dir.path()).await;
    let leader = leader_of(&nodes).await;
    let group = nodes[&leader].group(DEFAULT_GROUP).expect("group");

    let commit = Command::OnePhase {
        start_ts: 10,
        commit_ts: 20,
        mutations: vec![Mutation::put("k", "v")],
        read_keys: Vec::new(),
    };
    let applied = group.propose(commit.encode()).await.expect("propose");
    assert!(matches!(applied.response, Ok(CommandOutput::Applied)));

    let conflicting = Command::OnePhase {
        start_ts: 10,
        commit_ts: 30,
        mutations: vec![Mutation::put("k", "other")],
        read_keys: Vec::new(),
    };
    let refused = group.propose(conflicting.encode()).await.expect("propose");
    assert!(
        matches!(refused.response, Err(TxnError::WriteConflict { .. })),
        "{:?}",
        refused.response
    );
    let garbage = group.propose(vec![0xff, 0x00]).await.expect("propose");
    assert!(garbage.response.is_err());

    let index = group.read_barrier().await.expect("barrier");
    for node in nodes.values() {
        let replica = node.group(DEFAULT_GROUP).expect("group");
        replica
            .wait_for(WAIT, "apply", |s| s.applied_index >= index)
            .await
            .expect("applied");
        let machine = TxnStateMachine::new(Arc::clone(replica.engine()));
        assert_eq!(
            machine.read_point(b"k", 25).expect("read"),
            PointRead::Value(Some(b"v".to_vec()))
        );
        assert_eq!(replica.engine().last_commit_ts().expect("ts"), 20);
    }
    for node in nodes.values() {
        node.shutdown().await.expect("shutdown");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tso_ceiling_survives_a_leader_change() {
    let net = InProcessNetwork::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut nodes = start_cluster(&net, dir.path()).await;
    let leader = leader_of(&nodes).await;
    let group = nodes[&leader].group(DEFAULT_GROUP).expect("group");
    let clock = Arc::new(ManualClock::new(1_000_000));
    let store = Arc::new(RaftCeilingStore::new(Arc::clone(&group)));
    let oracle = TimestampOracle::start(store, clock.clone(), TsoConfig::default())
        .await
        .expect("oracle");
    let first = oracle.reserve(1).await.expect("timestamp");
    let second = oracle.reserve(1).await.expect("timestamp");
    assert!(second > first);

    // The leader dies; the oracle on the new leader starts above every persisted ceiling,
    // even though the (manual) clock did not move.
    net.unregister(leader);
    let old = nodes.remove(&leader).expect("old leader");
    old.shutdown().await.expect("shutdown");
    let new_leader = leader_of(&nodes).await;
    assert_ne!(new_leader, leader);
    let group = nodes[&new_leader].group(DEFAULT_GROUP).expect("group");
    let store = Arc::new(RaftCeilingStore::new(group));
    let oracle = TimestampOracle::start(store, clock, TsoConfig::default())
        .await
        .expect("oracle on the new leader");
    let third = oracle.reserve(1).await.expect("timestamp");
    assert!(third > second, "{third} must exceed {second}");
    for node in nodes.values() {
        node.shutdown().await.expect("shutdown");
    }
}
