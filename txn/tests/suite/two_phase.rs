//! Cases: Prewrite, Commit, Rollback, CheckTxnStatus.

use std::path::Path;

use elastickv_engine_api::{MvccEngine, Result as EngineResult};
use elastickv_txn::keys;
use elastickv_txn::{Command, PointRead, TxnError, TxnStatus};

use super::*;

pub fn prewrite_then_commit_makes_values_visible<E: MvccEngine, O: Fn(&Path) -> EngineResult<E>>(
    open: &O,
) {
    let env = env(open);
    ok(
        &env.sm,
        prewrite("a", 10, vec![put("a", "1"), put("b", "2")]),
    );
    assert!(matches!(
        env.sm.read_point(b"a", 15).expect("read"),
        PointRead::Locked(_)
    ));
    ok(&env.sm, commit("a", 10, 20, &["a", "b"]));
    assert_eq!(value(&env.sm, "a", 19), None);
    assert_eq!(value(&env.sm, "a", 20).as_deref(), Some("1"));
    assert_eq!(value(&env.sm, "b", 20).as_deref(), Some("2"));
    // Readers between start_ts and commit_ts are not blocked by the removed lock.
    assert_eq!(value(&env.sm, "b", 15), None);
    assert_eq!(live_with_prefix(&env.sm, keys::LOCK), 0);
    assert_eq!(status(&env.sm, check("a", 10, 0)), TxnStatus::Committed(20));
}

pub fn prewrite_is_idempotent<E: MvccEngine, O: Fn(&Path) -> EngineResult<E>>(open: &O) {
    let env = env(open);
    let command = prewrite("a", 10, vec![put("a", "1")]);
    ok(&env.sm, command.clone());
    ok(&env.sm, command);
    ok(&env.sm, commit("a", 10, 20, &["a"]));
    assert_eq!(value(&env.sm, "a", 20).as_deref(), Some("1"));
}

pub fn prewrite_conflicts_with_a_newer_version<E: MvccEngine, O: Fn(&Path) -> EngineResult<E>>(
    open: &O,
) {
    let env = env(open);
    ok(&env.sm, one_phase(10, 20, vec![put("a", "1")]));
    let err = refused(
        &env.sm,
        prewrite("b", 15, vec![put("b", "x"), put("a", "2")]),
    );
    assert!(matches!(err, TxnError::WriteConflict { ref key, conflict_ts: 20, .. } if key == b"a"));
    assert_eq!(
        live_with_prefix(&env.sm, keys::LOCK),
        0,
        "no lock of a refused prewrite"
    );
}

pub fn prewrite_refuses_a_key_locked_by_another_txn<
    E: MvccEngine,
    O: Fn(&Path) -> EngineResult<E>,
>(
    open: &O,
) {
    let env = env(open);
    ok(
        &env.sm,
        prewrite("p", 10, vec![put("p", "1"), put("a", "1")]),
    );
    match refused(&env.sm, prewrite("a", 12, vec![put("a", "2")])) {
        TxnError::Locked(lock) => {
            assert_eq!(lock.primary, b"p");
            assert_eq!(lock.start_ts, 10);
            assert_eq!(lock.lock_expiry, 1_010);
        }
        other => panic!("expected Locked, got {other}"),
    }
}

pub fn commit_of_rolled_back_primary_fails<E: MvccEngine, O: Fn(&Path) -> EngineResult<E>>(
    open: &O,
) {
    let env = env(open);
    ok(&env.sm, prewrite("a", 10, vec![put("a", "1")]));
    ok(&env.sm, rollback("a", 10, &["a"]));
    let err = refused(&env.sm, commit("a", 10, 20, &["a"]));
    assert!(matches!(err, TxnError::AlreadyRolledBack { start_ts: 10 }));
    // A late prewrite of the rolled-back primary fails too.
    let err = refused(&env.sm, prewrite("a", 10, vec![put("a", "1")]));
    assert!(matches!(err, TxnError::AlreadyRolledBack { .. }));
    assert_eq!(value(&env.sm, "a", 30), None);
}

pub fn repeated_commit_succeeds<E: MvccEngine, O: Fn(&Path) -> EngineResult<E>>(open: &O) {
    let env = env(open);
    ok(
        &env.sm,
        prewrite("a", 10, vec![put("a", "1"), put("b", "2")]),
    );
    ok(&env.sm, commit("a", 10, 20, &["a", "b"]));
    ok(&env.sm, commit("a", 10, 20, &["a", "b"]));
    ok(&env.sm, commit("a", 10, 20, &["b"]));
    let err = refused(&env.sm, commit("a", 10, 25, &["a"]));
    assert!(matches!(
        err,
        TxnError::AlreadyCommitted { commit_ts: 20, .. }
    ));
    assert_eq!(value(&env.sm, "b", 20).as_deref(), Some("2"));
}

pub fn commit_without_primary_lock_fails<E: MvccEngine, O: Fn(&Path) -> EngineResult<E>>(open: &O) {
    let env = env(open);
    let err = refused(&env.sm, commit("a", 10, 20, &["a"]));
    assert!(matches!(err, TxnError::LockNotFound { .. }));
    assert!(live_engine_keys(&env.sm).is_empty());
}

pub fn rollback_of_committed_txn_fails<E: MvccEngine, O: Fn(&Path) -> EngineResult<E>>(open: &O) {
    let env = env(open);
    ok(&env.sm, prewrite("a", 10, vec![put("a", "1")]));
    ok(&env.sm, commit("a", 10, 20, &["a"]));
    let err = refused(&env.sm, rollback("a", 10, &["a"]));
    assert!(matches!(
        err,
        TxnError::AlreadyCommitted {
            start_ts: 10,
            commit_ts: 20
        }
    ));
    assert_eq!(value(&env.sm, "a", 20).as_deref(), Some("1"));
}

pub fn rollback_is_idempotent_and_removes_intents<
    E: MvccEngine,
    O: Fn(&Path) -> EngineResult<E>,
>(
    open: &O,
) {
    let env = env(open);
    let big = "v".repeat(1_000);
    ok(
        &env.sm,
        prewrite("a", 10, vec![put("a", &big), put("b", "small")]),
    );
    assert_eq!(live_with_prefix(&env.sm, keys::INTENT), 1);
    ok(&env.sm, rollback("a", 10, &["a", "b"]));
    ok(&env.sm, rollback("a", 10, &["a", "b"]));
    assert_eq!(live_with_prefix(&env.sm, keys::INTENT), 0);
    assert_eq!(live_with_prefix(&env.sm, keys::LOCK), 0);
    assert_eq!(status(&env.sm, check("a", 10, 0)), TxnStatus::RolledBack);
    // The key is free for the next transaction.
    ok(&env.sm, one_phase(11, 12, vec![put("a", "next")]));
}

pub fn missing_primary_lock_writes_rollback_record<
    E: MvccEngine,
    O: Fn(&Path) -> EngineResult<E>,
>(
    open: &O,
) {
    let env = env(open);
    // The primary's prewrite has not arrived (yet): the check must not just *infer*
    // "rolled back", it must make it true.
    assert_eq!(status(&env.sm, check("p", 10, 11)), TxnStatus::RolledBack);
    assert_eq!(live_with_prefix(&env.sm, keys::RECORD), 1);
    let err = refused(&env.sm, prewrite("p", 10, vec![put("p", "late")]));
    assert!(matches!(err, TxnError::AlreadyRolledBack { start_ts: 10 }));
    let err = refused(&env.sm, commit("p", 10, 20, &["p"]));
    assert!(matches!(err, TxnError::AlreadyRolledBack { .. }));
}

pub fn expired_primary_lock_is_rolled_back_by_status_check<
    E: MvccEngine,
    O: Fn(&Path) -> EngineResult<E>,
>(
    open: &O,
) {
    let env = env(open);
    ok(
        &env.sm,
        prewrite("a", 10, vec![put("a", "1"), put("b", "2")]),
    );
    // Expiry is 1_010: judged against the caller's timestamp, never a clock.
    assert_eq!(
        status(&env.sm, check("a", 10, 1_009)),
        TxnStatus::Pending { lock_expiry: 1_010 }
    );
    assert_eq!(
        status(&env.sm, check("a", 10, 1_010)),
        TxnStatus::RolledBack
    );
    assert!(env
        .sm
        .scan_locks(&elastickv_engine_api::KeyRange::all(), 10)
        .expect("locks")
        .iter()
        .all(|l| l.key == b"b"));
    assert!(matches!(
        refused(&env.sm, commit("a", 10, 2_000, &["a", "b"])),
        TxnError::AlreadyRolledBack { .. }
    ));
    // The secondary is rolled back by whoever resolves it.
    ok(&env.sm, rollback("a", 10, &["b"]));
    assert_eq!(live_with_prefix(&env.sm, keys::LOCK), 0);
}

pub fn status_check_reports_commit<E: MvccEngine, O: Fn(&Path) -> EngineResult<E>>(open: &O) {
    let env = env(open);
    ok(
        &env.sm,
        prewrite("a", 10, vec![put("a", "1"), put("b", "2")]),
    );
    ok(&env.sm, commit("a", 10, 20, &["a"]));
    // Even long after expiry, a committed transaction stays committed.
    assert_eq!(
        status(&env.sm, check("a", 10, u64::MAX - 1)),
        TxnStatus::Committed(20)
    );
    assert!(matches!(
        env.sm.read_point(b"b", 30).expect("read"),
        PointRead::Locked(_)
    ));
    ok(&env.sm, commit("a", 10, 20, &["b"]));
    assert_eq!(value(&env.sm, "b", 30).as_deref(), Some("2"));
}

pub fn deletes_commit_as_tombstones<E: MvccEngine, O: Fn(&Path) -> EngineResult<E>>(open: &O) {
    let env = env(open);
    ok(&env.sm, one_phase(1, 2, vec![put("a", "1")]));
    ok(&env.sm, prewrite("a", 10, vec![del("a")]));
    ok(&env.sm, commit("a", 10, 20, &["a"]));
    assert_eq!(value(&env.sm, "a", 19).as_deref(), Some("1"));
    assert_eq!(value(&env.sm, "a", 20), None);
}

pub fn large_values_are_staged_in_intents<E: MvccEngine, O: Fn(&Path) -> EngineResult<E>>(
    open: &O,
) {
    let env = env(open);
    let big = "x".repeat(elastickv_txn::INLINE_VALUE_LIMIT + 1);
    ok(
        &env.sm,
        prewrite("a", 10, vec![put("a", &big), put("s", "small")]),
    );
    assert_eq!(live_with_prefix(&env.sm, keys::INTENT), 1);
    ok(&env.sm, commit("a", 10, 20, &["a", "s"]));
    assert_eq!(value(&env.sm, "a", 20), Some(big));
    assert_eq!(live_with_prefix(&env.sm, keys::INTENT), 0);
}

pub fn lock_only_locks_block_writers_not_readers<E: MvccEngine, O: Fn(&Path) -> EngineResult<E>>(
    open: &O,
) {
    let env = env(open);
    ok(&env.sm, one_phase(1, 2, vec![put("r", "0")]));
    let command = Command::Prewrite {
        primary: k("w"),
        start_ts: 10,
        lock_expiry: 1_000,
        txn_size: 1,
        mutations: vec![put("w", "1")],
        read_keys: vec![k("r")],
    };
    ok(&env.sm, command);
    assert_eq!(value(&env.sm, "r", 15).as_deref(), Some("0"));
    assert!(matches!(
        refused(&env.sm, one_phase(11, 12, vec![put("r", "x")])),
        TxnError::Locked(_)
    ));
    ok(&env.sm, commit("w", 10, 20, &["w", "r"]));
    assert_eq!(live_with_prefix(&env.sm, keys::LOCK), 0);
    assert_eq!(
        value(&env.sm, "r", 30).as_deref(),
        Some("0"),
        "a lock-only key is not written"
    );
    // A writer that started before the reader committed conflicts (read-write).
    assert!(matches!(
        refused(&env.sm, one_phase(15, 30, vec![put("r", "x")])),
        TxnError::WriteConflict { .. }
    ));
}
