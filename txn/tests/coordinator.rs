//! The coordinator over three in-memory shards: one- and two-phase commit, failures
//! between and inside phases, isolation levels.

mod cluster;

use cluster::*;
use elastickv_engine_api::{KeyRange, Mutation};
use elastickv_txn::keys;
use elastickv_txn::{
    Command, CommandKind, Fault, FaultEffect, FaultPoint, Isolation, ShardClient, Transaction,
    TransactionError,
};

async fn write(c: &Cluster<impl ShardClient>, pairs: &[(&str, &str)]) -> u64 {
    let mut txn = c.coord.begin(Isolation::Snapshot).await.expect("begin");
    for (k, v) in pairs {
        txn.put(*k, *v).expect("put");
    }
    txn.commit().await.expect("commit")
}

/// A transaction begun with `begin_short` (start_ts and a reserved commit_ts at once).
async fn short<C: ShardClient>(c: &Cluster<C>) -> Transaction<C> {
    c.coord
        .begin_short(Isolation::Snapshot)
        .await
        .expect("begin")
}

async fn read(c: &Cluster<impl ShardClient>, key: &str) -> Option<String> {
    c.coord
        .get_latest(key.as_bytes())
        .await
        .expect("read")
        .map(|v| String::from_utf8(v).expect("utf-8"))
}

#[tokio::test]
async fn single_group_txn_commits_in_one_phase() {
    let c = cluster().await;
    write(&c, &[("a", "1"), ("b", "2")]).await;
    assert_eq!(read(&c, "a").await.as_deref(), Some("1"));
    assert_eq!(read(&c, "b").await.as_deref(), Some("2"));
    assert_eq!(
        live_records(&c.shards, 1, keys::RECORD),
        0,
        "one-phase leaves no record"
    );
    assert!(all_locks(&c.shards).is_empty());
}

#[tokio::test]
async fn cross_group_txn_commits_in_two_phases() {
    let c = cluster().await;
    let commit_ts = write(&c, &[("a", "1"), ("j", "2"), ("x", "3")]).await;
    for (k, v) in [("a", "1"), ("j", "2"), ("x", "3")] {
        assert_eq!(read(&c, k).await.as_deref(), Some(v));
    }
    assert_eq!(
        live_records(&c.shards, 1, keys::RECORD),
        1,
        "the primary's commit record"
    );
    assert!(all_locks(&c.shards).is_empty());
    // Strict serializability: a transaction begun after the acknowledgement sees it.
    let txn = c.coord.begin(Isolation::Snapshot).await.expect("begin");
    assert!(txn.start_ts() > commit_ts);
}

#[tokio::test]
async fn commit_ts_taken_after_prewrite() {
    let c = recorded_cluster().await;
    let commit_ts = write(&c, &[("a", "1"), ("j", "2"), ("x", "3")]).await;
    let events = c.client.events();
    let tso_at = events
        .iter()
        .position(|e| matches!(e, Event::Timestamp(ts) if *ts == commit_ts))
        .expect("commit_ts came from the TSO");
    let prewrites: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| {
            matches!(
                e,
                Event::Applied {
                    command: Command::Prewrite { .. },
                    ..
                }
            )
        })
        .map(|(i, _)| i)
        .collect();
    assert_eq!(prewrites.len(), 3);
    assert!(
        prewrites.iter().all(|i| *i < tso_at),
        "every prewrite finished before commit_ts was taken"
    );
    let first_commit = events
        .iter()
        .position(|e| {
            matches!(
                e,
                Event::Applied {
                    command: Command::Commit { .. },
                    ..
                }
            )
        })
        .expect("a commit");
    assert!(first_commit > tso_at);
    // The primary (smallest key, group 1) is prewritten and committed first.
    assert!(matches!(
        &events[prewrites[0]],
        Event::Applied { group: 1, .. }
    ));
    assert!(matches!(
        &events[first_commit],
        Event::Applied { group: 1, .. }
    ));
}

#[tokio::test]
async fn ambiguous_primary_commit_does_not_abort_secondaries() {
    let c = cluster().await;
    // The commit applied but its answer was lost: the status check finds it committed.
    c.shards.inject(Fault {
        group: Some(1),
        kind: Some(CommandKind::Commit),
        point: FaultPoint::AfterApply,
        effect: FaultEffect::Timeout,
        times: 1,
    });
    write(&c, &[("a", "1"), ("x", "1")]).await;
    assert_eq!(read(&c, "x").await.as_deref(), Some("1"));

    // Now neither the commit nor the status check answers: the outcome is unknown and
    // nothing may be rolled back, because the commit may have been applied.
    for kind in [CommandKind::Commit, CommandKind::CheckTxnStatus] {
        c.shards.inject(Fault {
            group: Some(1),
            kind: Some(kind),
            point: FaultPoint::AfterApply,
            effect: FaultEffect::Timeout,
            times: 100,
        });
    }
    let mut txn = c.coord.begin(Isolation::Snapshot).await.expect("begin");
    txn.put("a", "2").expect("put");
    txn.put("x", "2").expect("put");
    let err = txn.commit().await.expect_err("outcome unknown");
    assert!(
        matches!(err, TransactionError::Undetermined { .. }),
        "{err}"
    );
    let locks = all_locks(&c.shards);
    assert_eq!(locks.len(), 1, "the secondary keeps its lock: {locks:?}");
    assert_eq!(locks[0].key, b"x");
    c.shards.clear_faults();
    // It had in fact committed: a reader finishes the secondary.
    assert_eq!(read(&c, "x").await.as_deref(), Some("2"));
    assert_eq!(read(&c, "a").await.as_deref(), Some("2"));
    assert!(all_locks(&c.shards).is_empty());
}

#[tokio::test]
async fn unanswered_primary_commit_is_settled_by_lock_expiry() {
    let c = cluster().await;
    for kind in [CommandKind::Commit, CommandKind::CheckTxnStatus] {
        c.shards.inject(Fault {
            group: Some(1),
            kind: Some(kind),
            point: FaultPoint::BeforeApply,
            effect: FaultEffect::Timeout,
            times: 100,
        });
    }
    let mut txn = c.coord.begin(Isolation::Snapshot).await.expect("begin");
    txn.put("a", "1").expect("put");
    txn.put("x", "1").expect("put");
    let err = txn.commit().await.expect_err("outcome unknown");
    assert!(matches!(err, TransactionError::Undetermined { .. }));
    assert_eq!(
        all_locks(&c.shards).len(),
        2,
        "nothing rolled back while undetermined"
    );
    c.shards.clear_faults();
    c.clock.advance(10_000);
    resolve_everything(c.client.clone(), c.tso.clone()).await;
    assert!(all_locks(&c.shards).is_empty());
    assert_eq!(read(&c, "a").await, None);
    assert_eq!(read(&c, "x").await, None);
}

#[tokio::test]
async fn failed_prewrite_rolls_back_prewritten_groups() {
    let c = cluster().await;
    c.shards.inject(Fault {
        group: Some(3),
        kind: Some(CommandKind::Prewrite),
        point: FaultPoint::BeforeApply,
        effect: FaultEffect::Fail,
        times: 1,
    });
    let mut txn = c.coord.begin(Isolation::Snapshot).await.expect("begin");
    for k in ["a", "j", "x"] {
        txn.put(k, "v").expect("put");
    }
    let err = txn.commit().await.expect_err("prewrite failed");
    assert!(err.is_retryable(), "{err}");
    assert!(all_locks(&c.shards).is_empty());
    assert_eq!(
        live_records(&c.shards, 1, keys::RECORD),
        1,
        "the primary's rollback record"
    );
    for k in ["a", "j", "x"] {
        assert_eq!(read(&c, k).await, None);
    }
}

#[tokio::test]
async fn prewrite_conflict_with_another_lock_aborts_cleanly() {
    let c = cluster().await;
    // Another transaction holds "x".
    let other = Command::Prewrite {
        primary: b"x".to_vec(),
        start_ts: c.tso.timestamp().await.expect("ts"),
        lock_expiry: u64::MAX - 1,
        txn_size: 1,
        mutations: vec![Mutation::put("x", "other")],
        read_keys: vec![],
    };
    c.client.apply(3, other).await.expect("prewrite");
    let mut txn = c.coord.begin(Isolation::Snapshot).await.expect("begin");
    txn.put("a", "1").expect("put");
    txn.put("x", "1").expect("put");
    let err = txn.commit().await.expect_err("locked");
    assert!(matches!(err, TransactionError::Locked(_)), "{err}");
    let locks = all_locks(&c.shards);
    assert_eq!(locks.len(), 1);
    assert_eq!(
        locks[0].primary, b"x",
        "only the other transaction's lock remains"
    );
}

#[tokio::test]
async fn rolled_back_primary_aborts_commit_and_secondaries() {
    let c = recorded_cluster().await;
    *c.client.expire_primary_before_commit.lock() = Some(b"a".to_vec());
    let mut txn = c.coord.begin(Isolation::Snapshot).await.expect("begin");
    txn.put("a", "1").expect("put");
    txn.put("x", "1").expect("put");
    let err = txn.commit().await.expect_err("rolled back");
    assert!(matches!(err, TransactionError::Aborted(_)), "{err}");
    assert!(all_locks(&c.shards).is_empty());
    assert_eq!(read(&c, "x").await, None);
}

#[tokio::test]
async fn reader_resolves_committed_secondary_locks() {
    let c = cluster().await;
    c.shards.inject(Fault {
        group: Some(3),
        kind: Some(CommandKind::Commit),
        point: FaultPoint::BeforeApply,
        effect: FaultEffect::Fail,
        times: 100,
    });
    write(&c, &[("a", "1"), ("x", "1")]).await;
    assert_eq!(
        all_locks(&c.shards).len(),
        1,
        "the secondary was left locked"
    );
    c.shards.clear_faults();
    assert_eq!(read(&c, "x").await.as_deref(), Some("1"));
    assert!(all_locks(&c.shards).is_empty());
}

#[tokio::test(start_paused = true)]
async fn reader_reports_locked_for_a_pending_lock() {
    let c = cluster().await;
    let start_ts = c.tso.timestamp().await.expect("ts");
    let pending = Command::Prewrite {
        primary: b"a".to_vec(),
        start_ts,
        lock_expiry: u64::MAX - 1,
        txn_size: 1,
        mutations: vec![Mutation::put("a", "1")],
        read_keys: vec![],
    };
    c.client.apply(1, pending).await.expect("prewrite");
    let mut txn = c.coord.begin(Isolation::Snapshot).await.expect("begin");
    let err = txn.get(b"a").await.expect_err("locked");
    assert!(matches!(err, TransactionError::Locked(ref l) if l.start_ts == start_ts));
    assert!(err.is_retryable());
    // Scans meet the same lock.
    let scan_err = txn.scan(&KeyRange::all(), 10).await.expect_err("locked");
    assert!(matches!(scan_err, TransactionError::Locked(_)));
}

#[tokio::test]
async fn reader_rolls_back_expired_locks() {
    let c = cluster().await;
    let start_ts = c.tso.timestamp().await.expect("ts");
    let abandoned = Command::Prewrite {
        primary: b"x".to_vec(),
        start_ts,
        lock_expiry: start_ts + 1,
        txn_size: 2,
        mutations: vec![Mutation::put("a", "1")],
        read_keys: vec![],
    };
    c.client.apply(1, abandoned).await.expect("prewrite");
    c.clock.advance(1);
    assert_eq!(read(&c, "a").await, None);
    assert!(all_locks(&c.shards).is_empty());
    assert_eq!(
        live_records(&c.shards, 3, keys::RECORD),
        1,
        "a rollback record on the primary's group"
    );
}

#[tokio::test]
async fn reads_see_own_writes_and_merge_scans() {
    let c = cluster().await;
    write(&c, &[("a", "1"), ("b", "2"), ("j", "3"), ("x", "4")]).await;
    let mut txn = c.coord.begin(Isolation::Snapshot).await.expect("begin");
    txn.put("c", "new").expect("put");
    txn.delete("b").expect("delete");
    assert_eq!(txn.get(b"c").await.expect("get"), Some(b"new".to_vec()));
    assert_eq!(txn.get(b"b").await.expect("get"), None);
    let scan = txn.scan(&KeyRange::all(), 3).await.expect("scan");
    let keys: Vec<&[u8]> = scan.iter().map(|p| p.key.as_slice()).collect();
    assert_eq!(keys, vec![&b"a"[..], b"c", b"j"]);
    let scan = txn.scan(&KeyRange::new("i", "z"), 10).await.expect("scan");
    assert_eq!(scan.len(), 2);
    txn.rollback().await.expect("rollback");
    assert_eq!(read(&c, "c").await, None);
}

#[tokio::test]
async fn lost_update_is_prevented() {
    let c = cluster().await;
    write(&c, &[("counter", "0")]).await;
    let mut t1 = c.coord.begin(Isolation::Snapshot).await.expect("begin");
    let mut t2 = c.coord.begin(Isolation::Snapshot).await.expect("begin");
    t1.get(b"counter").await.expect("get");
    t2.get(b"counter").await.expect("get");
    t1.put("counter", "1").expect("put");
    t2.put("counter", "1").expect("put");
    t1.commit().await.expect("first commit wins");
    let err = t2.commit().await.expect_err("second conflicts");
    assert!(matches!(err, TransactionError::Conflict(_)), "{err}");
}

/// Two doctors on call; each, seeing the other on call, goes off call.
async fn doctors(c: &Cluster, isolation: Isolation, alice: &str, bob: &str) -> (bool, bool) {
    write(c, &[(alice, "on"), (bob, "on")]).await;
    let mut t1 = c.coord.begin(isolation).await.expect("begin");
    let mut t2 = c.coord.begin(isolation).await.expect("begin");
    for t in [&mut t1, &mut t2] {
        assert_eq!(
            t.get(alice.as_bytes()).await.expect("get"),
            Some(b"on".to_vec())
        );
        assert_eq!(
            t.get(bob.as_bytes()).await.expect("get"),
            Some(b"on".to_vec())
        );
    }
    t1.put(alice, "off").expect("put");
    t2.put(bob, "off").expect("put");
    let r1 = t1.commit().await;
    let r2 = t2.commit().await;
    for r in [&r1, &r2] {
        if let Err(e) = r {
            assert!(e.is_retryable(), "{e}");
        }
    }
    (r1.is_ok(), r2.is_ok())
}

#[tokio::test]
async fn write_skew_commits_under_snapshot_isolation() {
    let c = cluster().await;
    assert_eq!(
        doctors(&c, Isolation::Snapshot, "alice", "bob").await,
        (true, true)
    );
    assert_eq!(
        doctors(&c, Isolation::Snapshot, "carol", "zed").await,
        (true, true)
    );
}

#[tokio::test]
async fn write_skew_is_prevented_under_serializable() {
    let c = cluster().await;
    // Same group (one-phase with read keys) and across groups (lock-only locks).
    for (alice, bob) in [("alice", "bob"), ("carol", "zed")] {
        let (first, second) = doctors(&c, Isolation::Serializable, alice, bob).await;
        assert!(first, "the first commit succeeds");
        assert!(!second, "the second would leave nobody on call");
        let alice_state = read(&c, alice).await;
        let bob_state = read(&c, bob).await;
        assert!(alice_state.as_deref() == Some("on") || bob_state.as_deref() == Some("on"));
    }
}

#[tokio::test]
async fn one_phase_commit_below_a_served_read_is_refused() {
    // A one-phase commit takes no locks: had its commit_ts been taken before a reader's
    // read_ts, and been applied after that read, the reader's snapshot would change.
    let c = cluster().await;
    let start_ts = c.tso.timestamp().await.expect("ts");
    let early_commit_ts = c.tso.timestamp().await.expect("ts");
    assert_eq!(read(&c, "a").await, None);
    let late = Command::OnePhase {
        start_ts,
        commit_ts: early_commit_ts,
        mutations: vec![Mutation::put("a", "1")],
        read_keys: vec![],
    };
    let err = c.client.apply(1, late).await.expect_err("refused");
    assert!(
        matches!(err, elastickv_txn::ShardError::CommitTsTooOld { .. }),
        "{err}"
    );
    assert_eq!(read(&c, "a").await, None, "the snapshot did not change");
    // The coordinator retries with a fresh commit_ts.
    write(&c, &[("a", "2")]).await;
    assert_eq!(read(&c, "a").await.as_deref(), Some("2"));
}

#[tokio::test]
async fn short_transaction_takes_both_timestamps_in_one_request() {
    let c = recorded_cluster().await;
    let mut txn = short(&c).await;
    let start_ts = txn.start_ts();
    txn.put("a", "1").expect("put");
    let commit_ts = txn.commit().await.expect("commit");
    assert_eq!(commit_ts, start_ts + 1, "the reserved commit_ts");
    let events = c.client.events();
    assert!(
        matches!(
            events.as_slice(),
            [
                Event::Timestamp(s),
                Event::Timestamp(t),
                Event::Applied { command: Command::OnePhase { start_ts: cs, commit_ts: ct, .. }, ok: true, .. },
            ] if *s == start_ts && *t == commit_ts && *cs == start_ts && *ct == commit_ts
        ),
        "one oracle request of two timestamps, then the one-phase commit: {events:?}"
    );
    assert_eq!(read(&c, "a").await.as_deref(), Some("1"));
}

#[tokio::test]
async fn short_transaction_retries_when_a_read_passed_its_reserved_commit_ts() {
    let c = cluster().await;
    let mut txn = short(&c).await;
    let reserved = txn.start_ts() + 1;
    txn.put("a", "1").expect("put");
    // A read served meanwhile, at a timestamp above the reservation.
    assert_eq!(read(&c, "a").await, None);
    let commit_ts = txn.commit().await.expect("commit after a retry");
    assert!(
        commit_ts > reserved,
        "a fresh commit_ts ({commit_ts}) replaced the refused reservation ({reserved})"
    );
    assert_eq!(read(&c, "a").await.as_deref(), Some("1"));
}

#[tokio::test]
async fn short_transaction_across_groups_commits_in_two_phases() {
    let c = recorded_cluster().await;
    let mut txn = short(&c).await;
    let start_ts = txn.start_ts();
    txn.put("a", "1").expect("put");
    txn.put("x", "2").expect("put");
    let commit_ts = txn.commit().await.expect("commit");
    assert!(
        commit_ts > start_ts + 1,
        "two-phase commit takes its commit_ts after the prewrites, not the reservation"
    );
    assert_eq!(read(&c, "a").await.as_deref(), Some("1"));
    assert_eq!(read(&c, "x").await.as_deref(), Some("2"));
}
