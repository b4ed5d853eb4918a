//! Cases: determinism and robustness against corrupt stored records.

use std::path::Path;

use elastickv_engine_api::testkit::fixture::stream_of;
use elastickv_engine_api::{KeyRange, Mutation, MvccEngine, Result as EngineResult};
use elastickv_txn::{keys, Command, TxnStateMachine};

use super::*;

/// A command log exercising every command kind, including refused ones.
pub fn sample_log() -> Vec<Command> {
    let mut log = vec![
        Command::TsoCeiling { ceiling: 1_000 },
        Command::MetaPut {
            ts: 1,
            key: k("routes"),
            value: Some(b"v1".to_vec()),
        },
        Command::RawBatch {
            ts: 2,
            writes: vec![put("raw", "1"), put("a", "0")],
        },
        one_phase(3, 4, vec![put("a", "1"), put("b", "1")]),
        prewrite(
            "a",
            5,
            vec![put("a", "2"), del("b"), put("big", &"x".repeat(600))],
        ),
        Command::RawBatch {
            ts: 6,
            writes: vec![put("a", "raw-refused"), put("c", "ok")],
        },
        commit("a", 5, 7, &["a", "b", "big"]),
        prewrite("c", 8, vec![put("c", "2")]),
        check("c", 8, 2_000),
        commit("c", 8, 9, &["c"]),
        one_phase(6, 10, vec![put("a", "conflict")]),
        check("nobody", 11, 12),
        Command::PurgeTxnRecords {
            safe_point: 9,
            cursor: vec![],
            limit: 10,
        },
    ];
    for i in 0..20u64 {
        let key = format!("k{i}");
        log.push(one_phase(
            20 + 2 * i,
            21 + 2 * i,
            vec![Mutation::put(key.into_bytes(), i.to_be_bytes())],
        ));
    }
    log
}

/// Applies a log, returning the results as text (refusals included).
pub fn apply_log<E: MvccEngine>(sm: &TxnStateMachine<E>, log: &[Command]) -> Vec<String> {
    log.iter().map(|c| format!("{:?}", sm.apply(c))).collect()
}

pub fn state_machine_is_deterministic<E: MvccEngine, O: Fn(&Path) -> EngineResult<E>>(open: &O) {
    let first = env(open);
    let second = env(open);
    let log = sample_log();
    // Round-trip every command through its encoding, as Raft would.
    let decoded: Vec<Command> = log
        .iter()
        .map(|c| Command::decode(&c.encode()).expect("decode"))
        .collect();
    assert_eq!(decoded, log);
    let a = apply_log(&first.sm, &log);
    let b = apply_log(&second.sm, &decoded);
    assert_eq!(a, b);
    assert_eq!(
        stream_of(first.sm.engine().as_ref()),
        stream_of(second.sm.engine().as_ref())
    );
}

pub fn malformed_stored_records_are_errors_not_panics<
    E: MvccEngine,
    O: Fn(&Path) -> EngineResult<E>,
>(
    open: &O,
) {
    let env = env(open);
    // Bytes that are not a lock, written under a lock key behind the state machine's back.
    env.sm
        .engine()
        .put_at(&keys::lock_key(b"a"), b"\x01\xff", 5, 0)
        .expect("put");
    assert!(env.sm.read_point(b"a", 10).is_err());
    assert!(env.sm.scan_locks(&KeyRange::all(), 10).is_err());
    assert!(env
        .sm
        .apply(&one_phase(10, 11, vec![put("a", "1")]))
        .is_err());
    assert!(env.sm.apply(&check("a", 5, 10)).is_err());
}
