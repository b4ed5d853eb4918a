//! State-machine apply throughput (one-phase commits of 1 and 10 keys, prewrite + commit
//! pairs) and coordinator commits over in-memory shards, on the mem engine.
//!
//! `cargo bench -p elastickv-txn`

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use elastickv_engine_api::Mutation;
use elastickv_engine_mem::MemEngine;
use elastickv_txn::ts::SystemClock;
use elastickv_txn::tso::{MemCeilingStore, TimestampOracle, TimestampSource, TsoConfig};
use elastickv_txn::{
    Command, Coordinator, CoordinatorConfig, Isolation, MemShards, RouteTable, TxnStateMachine,
};

fn mutations(n: usize, round: u64) -> Vec<Mutation> {
    (0..n)
        .map(|i| Mutation::put(format!("key-{i:03}-{}", round % 1024), round.to_be_bytes()))
        .collect()
}

fn apply(c: &mut Criterion) {
    let mut group = c.benchmark_group("apply");
    for keys in [1usize, 10] {
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::new("one_phase", keys), &keys, |b, &keys| {
            let sm = TxnStateMachine::new(Arc::new(MemEngine::new()));
            let mut ts = 1;
            b.iter(|| {
                let command = Command::OnePhase {
                    start_ts: ts,
                    commit_ts: ts + 1,
                    mutations: mutations(keys, ts),
                    read_keys: vec![],
                };
                ts += 2;
                sm.apply(&command).expect("apply")
            });
        });
        group.bench_with_input(
            BenchmarkId::new("prewrite_commit", keys),
            &keys,
            |b, &keys| {
                let sm = TxnStateMachine::new(Arc::new(MemEngine::new()));
                let mut ts = 1;
                b.iter(|| {
                    let muts = mutations(keys, ts);
                    let primary = muts[0].key().to_vec();
                    let keys: Vec<Vec<u8>> = muts.iter().map(|m| m.key().to_vec()).collect();
                    let prewrite = Command::Prewrite {
                        primary: primary.clone(),
                        start_ts: ts,
                        lock_expiry: u64::MAX - 1,
                        txn_size: keys.len() as u64,
                        mutations: muts,
                        read_keys: vec![],
                    };
                    sm.apply(&prewrite).expect("prewrite");
                    let commit = Command::Commit {
                        primary,
                        start_ts: ts,
                        commit_ts: ts + 1,
                        keys,
                    };
                    ts += 2;
                    sm.apply(&commit).expect("commit")
                });
            },
        );
    }
    group.finish();
}

fn coordinator(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let routes = RouteTable::new(vec![
        (b"".to_vec(), 1),
        (b"key-005".to_vec(), 2),
        (b"key-008".to_vec(), 3),
    ]);
    let shards = Arc::new(MemShards::new(
        routes,
        vec![
            (1, MemEngine::new()),
            (2, MemEngine::new()),
            (3, MemEngine::new()),
        ],
    ));
    let tso: Arc<dyn TimestampSource> = Arc::new(
        runtime
            .block_on(TimestampOracle::start(
                Arc::new(MemCeilingStore::new()),
                Arc::new(SystemClock),
                TsoConfig::default(),
            ))
            .expect("tso"),
    );
    let coord = Coordinator::new(shards, tso, CoordinatorConfig::default());
    let mut group = c.benchmark_group("coordinator");
    group.throughput(Throughput::Elements(1));
    for (name, keys) in [
        ("one_phase_1_key", 1usize),
        ("two_phase_10_keys_3_groups", 10),
    ] {
        let mut round = 0u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                round += 1;
                runtime.block_on(async {
                    let mut txn = coord.begin(Isolation::Snapshot).await.expect("begin");
                    for m in mutations(keys, round) {
                        txn.put(m.key().to_vec(), b"v".to_vec()).expect("put");
                    }
                    txn.commit().await.expect("commit")
                })
            });
        });
    }
    group.finish();
}

criterion_group!(benches, apply, coordinator);
criterion_main!(benches);
