//! Cases: OnePhase, RawBatch, validation, metadata, TSO ceiling, raw ops, key layout.

use std::path::Path;

use elastickv_engine_api::{
    Durability, KeyRange, Limits, Mutation, MvccEngine, RawOp, Result as EngineResult,
};
use elastickv_txn::keys;
use elastickv_txn::{Command, CommandOutput, TxnError};

use super::*;

pub fn one_phase_writes_everything_at_commit_ts_and_leaves_no_records<
    E: MvccEngine,
    O: Fn(&Path) -> EngineResult<E>,
>(
    open: &O,
) {
    let env = env(open);
    ok(
        &env.sm,
        one_phase(10, 20, vec![put("a", "1"), put("b", "2")]),
    );
    assert_eq!(value(&env.sm, "a", 19), None);
    assert_eq!(value(&env.sm, "a", 20).as_deref(), Some("1"));
    assert_eq!(value(&env.sm, "b", 25).as_deref(), Some("2"));
    // Only user data: no lock, intent or record.
    assert!(live_engine_keys(&env.sm).iter().all(|k| k[0] == keys::DATA));
}

pub fn one_phase_conflicts_with_a_newer_version<E: MvccEngine, O: Fn(&Path) -> EngineResult<E>>(
    open: &O,
) {
    let env = env(open);
    ok(&env.sm, one_phase(10, 20, vec![put("a", "1")]));
    let err = refused(
        &env.sm,
        one_phase(15, 30, vec![put("b", "x"), put("a", "2")]),
    );
    assert!(
        matches!(err, TxnError::WriteConflict { ref key, start_ts: 15, conflict_ts: 20 } if key == b"a")
    );
    assert_eq!(
        value(&env.sm, "b", 40),
        None,
        "nothing of a refused command is written"
    );
    // Equal is not a conflict.
    ok(&env.sm, one_phase(20, 30, vec![put("a", "3")]));
}

pub fn one_phase_checks_read_keys<E: MvccEngine, O: Fn(&Path) -> EngineResult<E>>(open: &O) {
    let env = env(open);
    ok(&env.sm, one_phase(10, 20, vec![put("r", "1")]));
    let command = Command::OnePhase {
        start_ts: 15,
        commit_ts: 30,
        mutations: vec![put("w", "1")],
        read_keys: vec![k("r")],
    };
    let err = refused(&env.sm, command);
    assert!(matches!(err, TxnError::WriteConflict { ref key, .. } if key == b"r"));
    assert_eq!(value(&env.sm, "w", 40), None);
}

pub fn one_phase_refuses_locked_keys<E: MvccEngine, O: Fn(&Path) -> EngineResult<E>>(open: &O) {
    let env = env(open);
    ok(&env.sm, prewrite("a", 10, vec![put("a", "1")]));
    let err = refused(&env.sm, one_phase(12, 20, vec![put("a", "2")]));
    match err {
        TxnError::Locked(lock) => {
            assert_eq!(
                (lock.key.as_slice(), lock.primary.as_slice(), lock.start_ts),
                (&b"a"[..], &b"a"[..], 10)
            );
        }
        other => panic!("expected Locked, got {other}"),
    }
}

pub fn raw_batch_reports_per_item_results<E: MvccEngine, O: Fn(&Path) -> EngineResult<E>>(
    open: &O,
) {
    let env = env(open);
    ok(&env.sm, prewrite("locked", 5, vec![put("locked", "x")]));
    let out = ok(
        &env.sm,
        Command::RawBatch {
            ts: 10,
            writes: vec![
                put("a", "1"),
                put("locked", "y"),
                Mutation::put(Vec::new(), "z"),
                put("b", "2"),
            ],
        },
    );
    let CommandOutput::Raw(results) = out else {
        panic!("expected per-item results")
    };
    assert!(results[0].is_ok() && results[3].is_ok());
    assert!(matches!(results[1], Err(TxnError::Locked(_))));
    assert!(matches!(results[2], Err(TxnError::InvalidCommand(_))));
    assert_eq!(value(&env.sm, "a", 10).as_deref(), Some("1"));
    assert_eq!(value(&env.sm, "b", 10).as_deref(), Some("2"));
    ok(
        &env.sm,
        Command::RawBatch {
            ts: 11,
            writes: vec![del("a")],
        },
    );
    assert_eq!(value(&env.sm, "a", 11), None);
}

pub fn batch_validation_happens_before_any_write<E: MvccEngine, O: Fn(&Path) -> EngineResult<E>>(
    open: &O,
) {
    let env = env(open);
    let limits: Limits = env.sm.engine().limits();
    let too_long = vec![b'x'; limits.max_key_size];
    let before = env.sm.engine().last_commit_ts().expect("last_commit_ts");
    let bad_prewrite = prewrite(
        "a",
        10,
        vec![
            put("a", "1"),
            put("b", "2"),
            Mutation::put(too_long.clone(), "v"),
        ],
    );
    assert!(matches!(
        refused(&env.sm, bad_prewrite),
        TxnError::KeyTooLarge { .. }
    ));
    let bad_one_phase = one_phase(10, 20, vec![put("a", "1"), Mutation::put(Vec::new(), "v")]);
    assert!(matches!(
        refused(&env.sm, bad_one_phase),
        TxnError::InvalidCommand(_)
    ));
    let duplicate = one_phase(10, 20, vec![put("a", "1"), put("a", "2")]);
    assert!(matches!(
        refused(&env.sm, duplicate),
        TxnError::InvalidCommand(_)
    ));
    let bad_commit = Command::Commit {
        primary: k("a"),
        start_ts: 10,
        commit_ts: 10,
        keys: vec![k("a")],
    };
    assert!(matches!(
        refused(&env.sm, bad_commit),
        TxnError::InvalidCommand(_)
    ));
    let bad_keys = Command::Rollback {
        primary: k("a"),
        start_ts: 10,
        keys: vec![k("a"), too_long],
    };
    assert!(matches!(
        refused(&env.sm, bad_keys),
        TxnError::KeyTooLarge { .. }
    ));
    assert!(
        live_engine_keys(&env.sm).is_empty(),
        "a refused command writes nothing"
    );
    assert_eq!(
        env.sm.engine().last_commit_ts().expect("last_commit_ts"),
        before
    );
}

pub fn extra_raw_ops_are_written_with_every_command<
    E: MvccEngine,
    O: Fn(&Path) -> EngineResult<E>,
>(
    open: &O,
) {
    let env = env(open);
    let applied = |n: u64| [RawOp::put("applied", n.to_be_bytes())];
    let read_applied = || env.sm.engine().raw_get(b"applied").expect("raw get");
    env.sm
        .apply_with(
            &one_phase(10, 20, vec![put("a", "1")]),
            &applied(1),
            Durability::Buffered,
        )
        .expect("apply");
    assert_eq!(read_applied(), Some(1u64.to_be_bytes().to_vec()));
    // A refused command still records that its log entry was applied.
    let err = env.sm.apply_with(
        &one_phase(10, 30, vec![put("a", "2")]),
        &applied(2),
        Durability::Sync,
    );
    assert!(matches!(err, Err(TxnError::WriteConflict { .. })));
    assert_eq!(read_applied(), Some(2u64.to_be_bytes().to_vec()));
    // So does a command that writes nothing.
    env.sm
        .apply_with(&check("zz", 5, 0), &applied(3), Durability::Sync)
        .expect("apply");
    env.sm
        .apply_with(&check("zz", 5, 0), &applied(4), Durability::Sync)
        .expect("apply");
    assert_eq!(read_applied(), Some(4u64.to_be_bytes().to_vec()));
}

pub fn prefix_related_user_keys_stay_independent_and_ordered<
    E: MvccEngine,
    O: Fn(&Path) -> EngineResult<E>,
>(
    open: &O,
) {
    let env = env(open);
    let names: [&[u8]; 6] = [b"k", b"k\0", b"k1", b"k10", b"k\xff", b"l"];
    for (i, name) in names.iter().enumerate() {
        let ts = 10 + i as u64 * 10;
        let command = Command::OnePhase {
            start_ts: ts - 1,
            commit_ts: ts,
            mutations: vec![Mutation::put(name.to_vec(), vec![b'0' + i as u8])],
            read_keys: vec![],
        };
        ok(&env.sm, command);
    }
    // "k" was written at 10: a transaction that started at 15 and writes "k" does not
    // conflict with the newer versions of "k1" or "k\0".
    let command = Command::OnePhase {
        start_ts: 15,
        commit_ts: 100,
        mutations: vec![Mutation::put(b"k".to_vec(), b"new".to_vec())],
        read_keys: vec![],
    };
    ok(&env.sm, command);
    let scan = env
        .sm
        .read_scan(&KeyRange::new(b"k".to_vec(), b"l".to_vec()), 10, 90)
        .expect("scan");
    let got: Vec<&[u8]> = scan.pairs.iter().map(|p| p.key.as_slice()).collect();
    assert_eq!(got, names[..5].to_vec());
    let prefix_scan = env
        .sm
        .read_scan(&KeyRange::prefix(b"k1"), 10, 90)
        .expect("scan");
    assert_eq!(prefix_scan.pairs.len(), 2);
}

pub fn tso_ceiling_only_grows<E: MvccEngine, O: Fn(&Path) -> EngineResult<E>>(open: &O) {
    let env = env(open);
    assert_eq!(env.sm.tso_ceiling().expect("ceiling"), 0);
    ok(&env.sm, Command::TsoCeiling { ceiling: 1_000 });
    ok(&env.sm, Command::TsoCeiling { ceiling: 500 });
    assert_eq!(env.sm.tso_ceiling().expect("ceiling"), 1_000);
    ok(&env.sm, Command::TsoCeiling { ceiling: 2_000 });
    assert_eq!(env.sm.tso_ceiling().expect("ceiling"), 2_000);
    assert!(matches!(
        refused(&env.sm, Command::TsoCeiling { ceiling: 0 }),
        TxnError::InvalidCommand(_)
    ));
}

pub fn meta_put_sets_and_deletes_entries<E: MvccEngine, O: Fn(&Path) -> EngineResult<E>>(open: &O) {
    let env = env(open);
    ok(
        &env.sm,
        Command::MetaPut {
            ts: 5,
            key: k("routes"),
            value: Some(b"v1".to_vec()),
        },
    );
    ok(
        &env.sm,
        Command::MetaPut {
            ts: 6,
            key: k("routes"),
            value: Some(b"v2".to_vec()),
        },
    );
    assert_eq!(env.sm.meta(b"routes").expect("meta"), Some(b"v2".to_vec()));
    // A user key of the same name is a different key.
    assert_eq!(value(&env.sm, "routes", 100), None);
    ok(
        &env.sm,
        Command::MetaPut {
            ts: 7,
            key: k("routes"),
            value: None,
        },
    );
    assert_eq!(env.sm.meta(b"routes").expect("meta"), None);
}
