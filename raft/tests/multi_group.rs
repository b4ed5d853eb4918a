//! Several groups per node: each with its own engine in `<data-dir>/group-<id>/`,
//! all sharing the node's transport.

mod harness;

use std::collections::BTreeMap;
use std::sync::Arc;

use elastickv_engine_api::MvccEngine;
use elastickv_engine_redb::{open_redb, RedbEngine, RedbOptions};
use elastickv_raft::{GroupId, InProcessNetwork, NodeId, RaftError, RaftNode, Role};
use harness::{kv, test_config, KvApplier, WAIT};

type Node = RaftNode<RedbEngine, KvApplier>;

fn open(dir: &std::path::Path) -> Result<RedbEngine, elastickv_engine_api::EngineError> {
    open_redb(
        dir,
        RedbOptions {
            cache_size: 8 * 1024 * 1024,
            ..RedbOptions::default()
        },
    )
}

async fn propose(nodes: &BTreeMap<NodeId, Arc<Node>>, group: GroupId, command: Vec<u8>) -> u64 {
    for _ in 0..20 {
        let any = nodes[&1].group(group).expect("group");
        let status = any
            .wait_for(WAIT, "leader", |s| s.leader.is_some())
            .await
            .expect("leader");
        let leader = nodes[&status.leader.expect("leader")]
            .group(group)
            .expect("group");
        match leader.propose(command.clone()).await {
            Ok(p) => {
                p.response.expect("applied");
                return p.index;
            }
            Err(RaftError::NotLeader { .. }) => continue,
            Err(e) => panic!("propose failed: {e}"),
        }
    }
    panic!("group {group} has no stable leader")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn groups_on_the_same_nodes_are_independent() {
    let net = InProcessNetwork::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let groups: [GroupId; 3] = [0, 1, 2];
    let mut nodes = BTreeMap::new();
    for id in 1..=3u64 {
        let node = Arc::new(Node::new(
            id,
            dir.path().join(format!("node-{id}")),
            net.transport(id),
        ));
        for group in groups {
            node.open_group(group, test_config(), open, |_| KvApplier)
                .await
                .expect("open group");
        }
        net.register(id, &node);
        nodes.insert(id, node);
    }
    for group in groups {
        // Different nodes bootstrap different groups, so leaders spread out.
        let initiator = group % 3 + 1;
        let members = (1..=3).map(|id| (id, format!("node-{id}"))).collect();
        nodes[&initiator]
            .group(group)
            .expect("group")
            .initialize(members)
            .await
            .expect("initialize");
    }
    let mut last = BTreeMap::new();
    for group in groups {
        for i in 0..10 {
            let key = format!("g{group}-k{i}");
            let index = propose(&nodes, group, kv::put(key.as_bytes(), b"v")).await;
            last.insert(group, index);
        }
    }
    for (id, node) in &nodes {
        assert_eq!(node.group_ids(), vec![0, 1, 2]);
        for group in groups {
            assert!(node
                .group_dir(group)
                .join("engine")
                .join(elastickv_engine_redb::DATA_FILE)
                .is_file());
            let replica = node.group(group).expect("group");
            let status = replica
                .wait_for(WAIT, "apply", |s| s.applied_index >= last[&group])
                .await
                .expect("applied");
            assert!(
                matches!(status.role, Role::Leader | Role::Follower),
                "node {id}"
            );
            for other in groups {
                let present = replica
                    .engine()
                    .get_at(format!("g{other}-k0").as_bytes(), u64::MAX)
                    .expect("read");
                assert_eq!(
                    present.is_some(),
                    other == group,
                    "node {id} group {group} key of group {other}"
                );
            }
        }
    }
    // Closing one group leaves the others serving.
    for node in nodes.values() {
        node.close_group(2).await.expect("close group 2");
    }
    propose(&nodes, 1, kv::put(b"after-close", b"v")).await;
    for node in nodes.values() {
        node.shutdown().await.expect("shutdown");
    }
}
