//! `cargo bench -p elastickv-bench --bench raft`: proposals per second through a
//! 3-node in-process Raft cluster, and the log syncs they cost on the leader.
//!
//! Each engine compiled in (`engine-mem`, `engine-redb`) gets its own cluster: three
//! `RaftNode`s on an `InProcessNetwork`, each in its own temporary directory, running the
//! default group with `TxnApplier` over its engine and the default `GroupConfig`. Every
//! proposal is a one-phase transaction putting a fresh 16-byte key with a 100-byte value
//! (`txn::Command::OnePhase`), proposed on the leader. One criterion iteration is a round
//! of `16 * max(P, 4)` proposals spread over `P` concurrent proposer tasks (P = 1, 16, 64)
//! on a multi-thread Tokio runtime, so the throughput criterion reports is proposals/s.
//!
//! Across each configuration's whole run (warm-up included) the leader's
//! `GroupStatus::log_syncs` and `appended_entries` deltas, divided by the proposals
//! made, are printed to stderr and merged into `raft-syncs.json` in criterion's output
//! directory (`$CRITERION_HOME`, else `$CARGO_TARGET_DIR/criterion`, else the
//! workspace's `target/criterion`).
//!
//! `EKV_BENCH_QUICK=1` shortens warm-up and measurement; `EKV_BENCH_ENGINES=redb`
//! restricts the engines.
// Without any of the engines above compiled in, there is nothing to run.
#![cfg_attr(
    not(any(feature = "engine-mem", feature = "engine-redb")),
    allow(dead_code, unused_imports, unused_variables, unused_mut)
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use elastickv_bench::engines::EngineUnderTest;
use elastickv_engine_api::{EngineError, Mutation, MvccEngine};
use elastickv_raft::{
    Group, GroupConfig, GroupStatus, InProcessNetwork, LogStorage, NodeId, RaftNode, Role,
    TxnApplier, DEFAULT_GROUP,
};
use elastickv_txn::{Command, CommandOutput};
use tempfile::TempDir;

/// Nodes in the cluster.
const NODES: NodeId = 3;
/// Concurrent proposers measured.
const PROPOSERS: [usize; 3] = [1, 16, 64];
/// Bytes of each proposal's key and value.
const KEY_LEN: usize = 16;
const VALUE_LEN: usize = 100;
/// How long starting the cluster (and electing a leader) may take.
const WAIT: Duration = Duration::from_secs(30);

type Node<E> = RaftNode<E, TxnApplier<E>>;
type TxnGroup<E> = Group<E, TxnApplier<E>>;

/// Proposals in one iteration with `proposers` concurrent proposers: every proposer
/// makes at least 16, and a lone proposer 64.
fn proposals_per_iteration(proposers: usize) -> usize {
    16 * proposers.max(4)
}

/// The stream of proposals: fresh keys and increasing timestamps, so no proposal
/// conflicts with another and every one is applied.
struct Workload {
    next: AtomicU64,
    value: Vec<u8>,
}

impl Workload {
    fn new() -> Self {
        let mut value = elastickv_bench::dataset::Values::new(0x4af7).next_value();
        value.truncate(VALUE_LEN);
        Workload {
            next: AtomicU64::new(0),
            value,
        }
    }

    fn next_command(&self) -> Vec<u8> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let key = format!("raft:{n:011}").into_bytes();
        debug_assert_eq!(key.len(), KEY_LEN);
        let start_ts = 2 * n + 1;
        Command::OnePhase {
            start_ts,
            commit_ts: start_ts + 1,
            mutations: vec![Mutation::put(key, self.value.clone())],
            read_keys: Vec::new(),
        }
        .encode()
    }
}

/// A running 3-node cluster and the directories of its nodes.
struct Cluster<E: MvccEngine> {
    net: Arc<InProcessNetwork>,
    nodes: BTreeMap<NodeId, Arc<Node<E>>>,
    leader: NodeId,
    /// One per node; removed by `shutdown` once the nodes have closed their engines.
    dirs: Vec<TempDir>,
}

impl<E: MvccEngine> Cluster<E> {
    async fn start(engine: &EngineUnderTest<E>) -> Self {
        let net = InProcessNetwork::new();
        let mut nodes = BTreeMap::new();
        let mut dirs = Vec::new();
        for id in 1..=NODES {
            let dir = tempfile::tempdir().expect("temp dir");
            let node = Arc::new(Node::<E>::new(id, dir.path(), net.transport(id)));
            let open = engine.open;
            // The log where the server keeps it: files, or the engine for mem.
            let config = GroupConfig {
                log_storage: if engine.name == "mem" {
                    LogStorage::Engine
                } else {
                    LogStorage::Files
                },
                ..GroupConfig::default()
            };
            node.open_group(
                DEFAULT_GROUP,
                config,
                |path: &Path| Ok::<E, EngineError>(open(path)),
                |engine: &Arc<E>| TxnApplier::new(Arc::clone(engine)),
            )
            .await
            .expect("open the default group");
            net.register(id, &node);
            nodes.insert(id, node);
            dirs.push(dir);
        }
        let members = (1..=NODES).map(|id| (id, format!("node-{id}"))).collect();
        nodes[&1]
            .group(DEFAULT_GROUP)
            .expect("group")
            .initialize(members)
            .await
            .expect("initialize");
        let seen = nodes[&1]
            .group(DEFAULT_GROUP)
            .expect("group")
            .wait_for(WAIT, "a leader", |s| s.leader.is_some())
            .await
            .expect("no leader elected");
        let leader = seen.leader.expect("leader");
        nodes[&leader]
            .group(DEFAULT_GROUP)
            .expect("group")
            .wait_for(WAIT, "leader ready", |s| {
                s.role == Role::Leader && s.applied_index >= s.last_log_index
            })
            .await
            .expect("the leader takes office");
        Cluster {
            net,
            nodes,
            leader,
            dirs,
        }
    }

    fn group(&self, node: NodeId) -> Arc<TxnGroup<E>> {
        self.nodes[&node].group(DEFAULT_GROUP).expect("group")
    }

    fn statuses(&self) -> BTreeMap<NodeId, GroupStatus> {
        self.nodes
            .keys()
            .map(|&id| (id, self.group(id).status()))
            .collect()
    }

    /// Stops every node (waiting until each has closed its engine), then removes the
    /// directories.
    async fn shutdown(self) {
        for (id, node) in &self.nodes {
            node.shutdown().await.expect("shut a node down");
            self.net.unregister(*id);
        }
        drop(self.nodes);
        drop(self.dirs);
    }
}

/// `proposals` proposals from `proposers` concurrent tasks on the leader; returns how
/// long they took to be committed and applied.
async fn round<E: MvccEngine>(
    group: &Arc<TxnGroup<E>>,
    workload: &Arc<Workload>,
    proposers: usize,
    proposals: usize,
) -> Duration {
    let start = Instant::now();
    let tasks: Vec<_> = (0..proposers)
        .map(|p| {
            let group = Arc::clone(group);
            let workload = Arc::clone(workload);
            let mine = proposals / proposers + usize::from(p < proposals % proposers);
            tokio::spawn(async move {
                for _ in 0..mine {
                    let proposed = group
                        .propose(workload.next_command())
                        .await
                        .unwrap_or_else(|e| panic!("proposal failed: {e}"));
                    if !matches!(proposed.response, Ok(CommandOutput::Applied)) {
                        panic!("proposal refused: {:?}", proposed.response);
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("proposer task");
    }
    start.elapsed()
}

/// Log syncs and entries measured over one configuration's run.
#[derive(Debug)]
struct SyncFigures {
    proposals: u64,
    leader_log_syncs: u64,
    leader_appended_entries: u64,
    follower_log_syncs: u64,
}

impl SyncFigures {
    fn per_proposal(&self, n: u64) -> f64 {
        n as f64 / self.proposals as f64
    }

    fn to_json(&self) -> serde_json::Value {
        let followers = (NODES - 1) as f64;
        serde_json::json!({
            "proposals": self.proposals,
            "leader_log_syncs": self.leader_log_syncs,
            "leader_appended_entries": self.leader_appended_entries,
            "leader_syncs_per_proposal": self.per_proposal(self.leader_log_syncs),
            "leader_entries_per_proposal": self.per_proposal(self.leader_appended_entries),
            "follower_syncs_per_proposal":
                self.per_proposal(self.follower_log_syncs) / followers,
        })
    }
}

/// Measures every proposer count on a fresh cluster of `engine`, then shuts it down.
fn run_engine<E: MvccEngine>(
    c: &mut Criterion,
    engine: &EngineUnderTest<E>,
) -> BTreeMap<usize, SyncFigures> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    eprintln!("starting a {NODES}-node {} cluster...", engine.name);
    let cluster = rt.block_on(Cluster::start(engine));
    let leader = cluster.leader;
    let group = cluster.group(leader);
    let workload = Arc::new(Workload::new());
    let mut figures = BTreeMap::new();
    for proposers in PROPOSERS {
        let per_iteration = proposals_per_iteration(proposers);
        let before = cluster.statuses();
        let made_before = workload.next.load(Ordering::Relaxed);
        let mut g = c.benchmark_group(format!("raft_propose_p{proposers}"));
        g.throughput(Throughput::Elements(per_iteration as u64));
        g.sampling_mode(SamplingMode::Flat);
        g.sample_size(10);
        g.bench_function(BenchmarkId::from_parameter(engine.name), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| rt.block_on(round(&group, &workload, proposers, per_iteration)))
                    .sum()
            })
        });
        g.finish();
        let after = cluster.statuses();
        let proposals = workload.next.load(Ordering::Relaxed) - made_before;
        if proposals == 0 {
            continue; // filtered out on the command line
        }
        assert_eq!(
            before[&leader].term, after[&leader].term,
            "the leader changed during the run: the figures are not comparable"
        );
        let delta = |id: NodeId, f: fn(&GroupStatus) -> u64| f(&after[&id]) - f(&before[&id]);
        let measured = SyncFigures {
            proposals,
            leader_log_syncs: delta(leader, |s| s.log_syncs),
            leader_appended_entries: delta(leader, |s| s.appended_entries),
            follower_log_syncs: (1..=NODES)
                .filter(|&id| id != leader)
                .map(|id| delta(id, |s| s.log_syncs))
                .sum(),
        };
        eprintln!(
            "raft {} p{proposers}: {proposals} proposals; leader: {} log syncs \
             ({:.3}/proposal), {} entries ({:.3}/proposal); followers: {:.3} syncs/proposal",
            engine.name,
            measured.leader_log_syncs,
            measured.per_proposal(measured.leader_log_syncs),
            measured.leader_appended_entries,
            measured.per_proposal(measured.leader_appended_entries),
            measured.per_proposal(measured.follower_log_syncs) / (NODES - 1) as f64,
        );
        figures.insert(proposers, measured);
    }
    drop(group);
    rt.block_on(cluster.shutdown());
    rt.shutdown_timeout(Duration::from_secs(10));
    figures
}

/// Where criterion writes its results (the same rules criterion follows, except that
/// the last fallback is this workspace's `target`, since benchmarks run in `bench/`).
fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    target.join("criterion")
}

/// Merges this run's figures (engine -> proposers -> figures) into `raft-syncs.json`,
/// keeping the entries of engines not run this time.
fn write_syncs(results: &BTreeMap<&'static str, BTreeMap<usize, SyncFigures>>) {
    if results.values().all(BTreeMap::is_empty) {
        return;
    }
    let dir = criterion_dir();
    let path = dir.join("raft-syncs.json");
    let mut doc = std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .filter(serde_json::Value::is_object)
        .unwrap_or_else(|| serde_json::json!({}));
    doc["description"] = serde_json::json!(
        "Log syncs and log entries per proposal in a 3-node in-process cluster \
         (bench/benches/raft.rs), by engine and number of concurrent proposers, counted \
         over each configuration's whole run."
    );
    if !doc["engines"].is_object() {
        doc["engines"] = serde_json::json!({});
    }
    for (engine, by_proposers) in results {
        if by_proposers.is_empty() {
            continue;
        }
        let entry: serde_json::Map<String, serde_json::Value> = by_proposers
            .iter()
            .map(|(p, f)| (p.to_string(), f.to_json()))
            .collect();
        doc["engines"][*engine] = serde_json::Value::Object(entry);
    }
    let written = std::fs::create_dir_all(&dir).and_then(|()| {
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&doc).expect("json") + "\n",
        )
    });
    match written {
        Ok(()) => eprintln!("log syncs per proposal written to {}", path.display()),
        Err(e) => eprintln!("cannot write {}: {e}", path.display()),
    }
}

fn configure(c: &mut Criterion) -> Criterion {
    let quick = std::env::var_os("EKV_BENCH_QUICK").is_some_and(|v| v != "0");
    let (warm, measure) = if quick { (1, 2) } else { (2, 5) };
    std::mem::take(c)
        .warm_up_time(Duration::from_secs(warm))
        .measurement_time(Duration::from_secs(measure))
}

fn raft(c: &mut Criterion) {
    let mut c = configure(c);
    let wanted = |name: &str| {
        std::env::var("EKV_BENCH_ENGINES")
            .map_or(true, |list| list.split(',').any(|e| e.trim() == name))
    };
    let mut results: BTreeMap<&'static str, BTreeMap<usize, SyncFigures>> = BTreeMap::new();
    #[cfg(feature = "engine-mem")]
    if wanted("mem") {
        results.insert("mem", run_engine(&mut c, &elastickv_bench::engines::mem()));
    }
    #[cfg(feature = "engine-redb")]
    if wanted("redb") {
        results.insert(
            "redb",
            run_engine(&mut c, &elastickv_bench::engines::redb()),
        );
    }
    write_syncs(&results);
    c.final_summary();
}

criterion_group!(benches, raft);
criterion_main!(benches);
