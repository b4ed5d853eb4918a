//! Replicas on different engines: a snapshot built by one engine installs on another.

mod harness;

use std::sync::Arc;

use elastickv_engine_mem::MemEngine;
use elastickv_engine_redb::{open_redb, RedbEngine, RedbOptions};
use elastickv_raft::{RaftNode, DEFAULT_GROUP};
use harness::{test_config, Cluster, EngineKind, KvApplier, WAIT};

struct Redb;

impl EngineKind for Redb {
    type Engine = RedbEngine;
    const PERSISTENT: bool = true;
    fn open(dir: &std::path::Path) -> Result<RedbEngine, elastickv_engine_api::EngineError> {
        open_redb(
            dir,
            RedbOptions {
                cache_size: 16 * 1024 * 1024,
                ..RedbOptions::default()
            },
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mem_replica_installs_a_snapshot_built_by_redb_replicas() {
    let mut config = test_config();
    config.snapshot_after_logs = 20;
    config.logs_kept_after_snapshot = 0;
    let cluster = Cluster::<Redb>::start(3, config.clone()).await;
    let mut last = 0;
    for i in 0..100 {
        last = cluster.put(&format!("k{i:03}"), &format!("v{i}")).await;
    }
    let leader = cluster.leader().await;
    cluster
        .group(leader)
        .wait_for(WAIT, "log purged", |s| s.purged_index > 0)
        .await
        .expect("purge");

    let dir = tempfile::tempdir().expect("temp dir");
    let mem_node = Arc::new(RaftNode::<MemEngine, KvApplier>::new(
        4,
        dir.path(),
        cluster.net.transport(4),
    ));
    let mem_group = mem_node
        .start_group(
            DEFAULT_GROUP,
            Arc::new(MemEngine::new()),
            Arc::new(KvApplier),
            config,
        )
        .await
        .expect("start mem group");
    cluster.net.register(4, &mem_node);
    cluster
        .group(leader)
        .add_learner(4, "node-4")
        .await
        .expect("add learner");
    let status = mem_group
        .wait_for(WAIT, "mem replica caught up", |s| s.applied_index >= last)
        .await
        .expect("caught up");
    assert!(
        status.snapshot_index > 0,
        "the mem replica installed a snapshot"
    );

    let mut image = Vec::new();
    elastickv_engine_api::EngineSnapshot::write_to(
        &elastickv_engine_api::MvccEngine::snapshot(mem_group.engine().as_ref()).expect("snapshot"),
        &mut image,
    )
    .expect("stream");
    assert!(
        image == cluster.image(leader),
        "mem replica equals the redb leader byte for byte"
    );
    mem_node.shutdown().await.expect("shutdown mem node");
    cluster.shutdown().await;
}
