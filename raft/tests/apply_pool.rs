//! The replication suite with every group of the process applying on one shared
//! thread (`set_apply_threads`), on the in-memory engine: a group's batches still run
//! one at a time and in order, whatever the other groups do.

mod harness;
#[macro_use]
mod scenarios;

use std::num::NonZeroUsize;
use std::path::Path;

use elastickv_engine_api::EngineError;
use elastickv_engine_mem::MemEngine;
use harness::{test_config, Cluster, EngineKind};

struct PooledMem;

impl EngineKind for PooledMem {
    type Engine = MemEngine;
    const PERSISTENT: bool = false;
    fn open(_dir: &Path) -> Result<MemEngine, EngineError> {
        // An engine opens before its group starts: the pool is in place by then. The
        // first test to get here sets it; the others find it set.
        let _ = elastickv_raft::set_apply_threads(NonZeroUsize::MIN);
        Ok(MemEngine::new())
    }
}

scenarios!(PooledMem);

/// The threads of this process named `name`.
fn threads_named(name: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim_end() == name)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_group_applies_on_the_one_pool_thread() {
    let cluster = Cluster::<PooledMem>::start(3, test_config()).await;
    for i in 0..20 {
        cluster.put(&format!("k{i}"), "v").await;
    }
    // Three nodes here (and the other tests' nodes, running meanwhile): one thread.
    assert_eq!(threads_named("ekv-apply"), 1);
    assert_eq!(
        elastickv_raft::set_apply_threads(NonZeroUsize::new(4).expect("4")),
        Err(NonZeroUsize::MIN),
        "the pool size is set once"
    );
    cluster.shutdown().await;
}
