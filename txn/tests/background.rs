//! The lock resolver, GC and the "every write goes through a command" property.

mod cluster;

use std::time::Duration;

use cluster::*;
use elastickv_engine_api::testkit::fixture::stream_of;
use elastickv_engine_api::Mutation;
use elastickv_engine_mem::MemEngine;
use elastickv_txn::gc::safe_point;
use elastickv_txn::ts::{compose, sub_millis};
use elastickv_txn::{
    keys, Command, CommandKind, Fault, FaultEffect, FaultPoint, GcConfig, GcDriver, Isolation,
    LockResolver, LockResolverConfig, MemShards, ShardClient, TxnStateMachine,
};

/// Leaves `n` single-key transactions prewritten on group 1 with locks expiring at
/// `lock_expiry`, each its own primary.
async fn abandoned_locks(c: &Cluster, n: usize, lock_expiry: u64) {
    for i in 0..n {
        let key = format!("a{i:04}");
        let start_ts = c.tso.timestamp().await.expect("ts");
        let command = Command::Prewrite {
            primary: key.clone().into_bytes(),
            start_ts,
            lock_expiry,
            txn_size: 1,
            mutations: vec![Mutation::put(key.into_bytes(), "v")],
            read_keys: vec![],
        };
        c.client.apply(1, command).await.expect("prewrite");
    }
}

fn resolver(c: &Cluster, page_size: usize, max_locks_per_round: usize) -> LockResolver<Shards> {
    let config = LockResolverConfig {
        interval: Duration::from_secs(3600),
        page_size,
        max_locks_per_round,
    };
    LockResolver::new(c.client.clone(), c.tso.clone(), 1, config)
}

#[tokio::test]
async fn lock_resolver_visits_every_lock() {
    let c = cluster().await;
    abandoned_locks(&c, 250, 1).await;
    let mut r = resolver(&c, 40, 100);
    let first = r.run_round().await.expect("round");
    assert_eq!(
        (first.examined, first.resolved, first.wrapped),
        (100, 100, false)
    );
    assert_eq!(all_locks(&c.shards).len(), 150, "bounded work per round");
    let mut rounds = 1;
    loop {
        let round = r.run_round().await.expect("round");
        rounds += 1;
        if round.wrapped {
            break;
        }
    }
    assert_eq!(rounds, 3);
    assert!(
        all_locks(&c.shards).is_empty(),
        "every lock was visited, not just the first page"
    );
    assert!(r.cursor().is_empty(), "the cursor wraps to the start");
}

#[tokio::test]
async fn lock_resolver_leaves_live_locks_alone() {
    let c = cluster().await;
    abandoned_locks(&c, 5, u64::MAX - 1).await;
    let round = resolver(&c, 2, 100).run_round().await.expect("round");
    assert_eq!(
        (round.examined, round.resolved, round.wrapped),
        (5, 0, true)
    );
    assert_eq!(all_locks(&c.shards).len(), 5);
}

#[tokio::test]
async fn lock_resolver_retries_errors_next_round() {
    let c = cluster().await;
    abandoned_locks(&c, 3, 1).await;
    c.shards.inject(Fault {
        group: Some(1),
        kind: Some(CommandKind::CheckTxnStatus),
        point: FaultPoint::BeforeApply,
        effect: FaultEffect::Fail,
        times: 1,
    });
    let mut r = resolver(&c, 10, 100);
    assert!(r.run_round().await.is_err());
    assert!(!all_locks(&c.shards).is_empty());
    let round = r.run_round().await.expect("round");
    assert!(round.wrapped);
    assert!(all_locks(&c.shards).is_empty());
}

#[tokio::test]
async fn lock_resolver_stops_promptly_on_shutdown() {
    let c = cluster().await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(resolver(&c, 10, 100).run(stopped));
    stop.send(true).expect("send");
    // The resolver waits an hour between rounds; shutdown interrupts the wait. The
    // timeout only bounds a failing test.
    tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .expect("stopped before the next round")
        .expect("task");
}

#[test]
fn gc_safe_point_is_min_of_oldest_txn_and_retention() {
    let now = compose(1_000_000, 0);
    let retention = Duration::from_secs(600);
    assert_eq!(safe_point(None, now, retention), sub_millis(now, 600_000));
    assert_eq!(
        safe_point(Some(compose(10, 0)), now, retention),
        compose(10, 0)
    );
    assert_eq!(
        safe_point(Some(now), now, retention),
        sub_millis(now, 600_000)
    );
    assert_eq!(safe_point(None, 5, retention), 0);
}

#[tokio::test]
async fn gc_drops_old_records_and_keeps_running_snapshots_readable() {
    let c = cluster().await;
    let config = GcConfig {
        retention: Duration::from_secs(1),
        page_size: 2,
    };
    let gc = GcDriver::new(
        c.client.clone(),
        c.tso.clone(),
        c.coord.active().clone(),
        config,
    );
    for i in 0..5 {
        let mut txn = c.coord.begin(Isolation::Snapshot).await.expect("begin");
        txn.put("a", format!("{i}")).expect("put");
        txn.put("x", format!("{i}")).expect("put");
        txn.commit().await.expect("commit");
    }
    assert_eq!(live_records(&c.shards, 1, keys::RECORD), 5);
    // A long-running reader holds the safe point back.
    let mut reader = c.coord.begin(Isolation::Snapshot).await.expect("begin");
    let mut late = c.coord.begin(Isolation::Snapshot).await.expect("begin");
    late.put("a", "late").expect("put");
    late.put("x", "late").expect("put");
    late.commit().await.expect("commit");
    c.clock.advance(5_000);
    let round = gc.run_round().await.expect("gc");
    assert_eq!(round.safe_point, reader.start_ts());
    assert_eq!(
        round.records_purged, 5,
        "records older than the safe point are dropped"
    );
    assert_eq!(
        live_records(&c.shards, 1, keys::RECORD),
        1,
        "the late transaction's record stays"
    );
    c.shards.compact_all(round.safe_point).expect("compact");
    assert_eq!(
        reader.get(b"a").await.expect("snapshot read"),
        Some(b"4".to_vec())
    );
    drop(reader);
    let round = gc.run_round().await.expect("gc");
    assert!(round.safe_point > 0);
    assert_eq!(live_records(&c.shards, 1, keys::RECORD), 0);
    c.shards.compact_all(round.safe_point).expect("compact");
    let mut fresh = c.coord.begin(Isolation::Snapshot).await.expect("begin");
    assert_eq!(fresh.get(b"x").await.expect("read"), Some(b"late".to_vec()));
}

#[tokio::test]
async fn gc_resolves_old_expired_locks_and_spares_pending_ones() {
    let c = cluster().await;
    let gc = GcDriver::new(
        c.client.clone(),
        c.tso.clone(),
        c.coord.active().clone(),
        GcConfig {
            retention: Duration::from_secs(1),
            page_size: 10,
        },
    );
    let expired_at = c.tso.timestamp().await.expect("ts") + 1;
    abandoned_locks(&c, 2, expired_at).await;
    let pending_start = c.tso.timestamp().await.expect("ts");
    let pending = Command::Prewrite {
        primary: b"b".to_vec(),
        start_ts: pending_start,
        lock_expiry: u64::MAX - 1,
        txn_size: 1,
        mutations: vec![Mutation::put("b", "v")],
        read_keys: vec![],
    };
    c.client.apply(1, pending).await.expect("prewrite");
    c.clock.advance(5_000);
    let round = gc.run_round().await.expect("gc");
    assert_eq!(round.locks_resolved, 2);
    assert_eq!(
        round.record_safe_point, pending_start,
        "records wait for the pending lock"
    );
    let locks = all_locks(&c.shards);
    assert_eq!(locks.len(), 1);
    assert_eq!(locks[0].key, b"b");
}

#[tokio::test]
async fn all_writes_go_through_commands() {
    // Run a workload (one- and two-phase commits, reader resolution, the lock resolver,
    // GC) and record every command each group applied. Replaying the log on fresh
    // engines must rebuild exactly the same state: no path wrote to an engine directly.
    let c = recorded_cluster().await;
    c.shards.inject(Fault {
        group: Some(3),
        kind: Some(CommandKind::Commit),
        point: FaultPoint::BeforeApply,
        effect: FaultEffect::Fail,
        times: 100,
    });
    for i in 0..4 {
        let mut txn = c.coord.begin(Isolation::Serializable).await.expect("begin");
        txn.get(b"j").await.expect("read");
        txn.put("a", format!("{i}")).expect("put");
        if i % 2 == 0 {
            txn.put(format!("x{i}"), format!("{i}")).expect("put");
        }
        txn.commit().await.expect("commit");
    }
    c.shards.clear_faults();
    assert_eq!(
        c.coord.get_latest(b"x2").await.expect("read"),
        Some(b"2".to_vec())
    );
    c.clock.advance(60_000);
    resolve_everything(c.client.clone(), c.tso.clone()).await;
    let gc = GcDriver::new(
        c.client.clone(),
        c.tso.clone(),
        c.coord.active().clone(),
        GcConfig {
            retention: Duration::from_secs(1),
            page_size: 3,
        },
    );
    gc.run_round().await.expect("gc");

    let replica: MemShards<MemEngine> = MemShards::new(
        routes(),
        vec![
            (1, MemEngine::new()),
            (2, MemEngine::new()),
            (3, MemEngine::new()),
        ],
    );
    for event in c.client.events() {
        if let Event::Applied { group, command, ok } = event {
            // Failed-before-apply commands were never applied; refused ones write nothing.
            if ok {
                let sm: &TxnStateMachine<MemEngine> = replica.machine(group).expect("shard");
                sm.apply(&command).expect("replay");
            }
        }
    }
    for group in [1, 2, 3] {
        let original = c.shards.machine(group).expect("shard").engine();
        let replayed = replica.machine(group).expect("shard").engine();
        assert_eq!(
            stream_of(original.as_ref()),
            stream_of(replayed.as_ref()),
            "group {group}"
        );
    }
}
