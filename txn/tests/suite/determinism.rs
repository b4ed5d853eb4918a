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

/// The raw operations given with command `i` in the group cases: one key every command
/// overwrites (like Raft's applied index) and one of its own.
fn raw_ops_of(i: usize) -> Vec<elastickv_engine_api::RawOp> {
    use elastickv_engine_api::RawOp;
    vec![
        RawOp::put("applied", i.to_string()),
        RawOp::put(format!("cmd-{i:04}"), "done"),
    ]
}

/// Applies `log` one command at a time (`apply_with`) on one engine and in groups of
/// `group` commands (`apply_group`) on another, and checks that they answered alike and
/// hold the same data and raw keyspace afterwards.
pub fn check_groups_against_one_by_one<E: MvccEngine, O: Fn(&Path) -> EngineResult<E>>(
    open: &O,
    log: &[Command],
    group: usize,
) {
    use elastickv_engine_api::Durability;
    let single = env(open);
    let grouped = env(open);
    let raws: Vec<_> = (0..log.len()).map(raw_ops_of).collect();
    let expected: Vec<String> = log
        .iter()
        .zip(&raws)
        .map(|(c, raw)| format!("{:?}", single.sm.apply_with(c, raw, Durability::Buffered)))
        .collect();
    let mut got = Vec::new();
    let items: Vec<(&Command, &[elastickv_engine_api::RawOp])> = log
        .iter()
        .zip(&raws)
        .map(|(c, r)| (c, r.as_slice()))
        .collect();
    for chunk in items.chunks(group) {
        let outcomes = grouped
            .sm
            .apply_group(chunk, Durability::Buffered)
            .expect("no engine failure");
        assert_eq!(outcomes.len(), chunk.len());
        got.extend(outcomes.iter().map(|o| format!("{o:?}")));
    }
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g, e, "command {i} ({:?}), groups of {group}", log[i]);
    }
    assert_eq!(
        stream_of(grouped.sm.engine().as_ref()),
        stream_of(single.sm.engine().as_ref()),
        "groups of {group}: the same data"
    );
    let all = KeyRange::all();
    let raw_of = |e: &Env<E>| e.sm.engine().raw_scan(&all, 10_000).expect("raw scan");
    assert_eq!(raw_of(&grouped), raw_of(&single), "groups of {group}: raw");
    assert_eq!(
        grouped.sm.engine().raw_get(b"applied").expect("raw get"),
        Some((log.len() - 1).to_string().into_bytes())
    );
}

/// `apply_group` answers and writes exactly what applying the commands one by one does,
/// whatever the grouping: on the sample log (every command kind, refusals included,
/// commands of one transaction next to each other) and on a generated log of commands
/// over five keys, where commands in a group keep meeting on the same keys.
pub fn apply_group_matches_applying_one_by_one<E: MvccEngine, O: Fn(&Path) -> EngineResult<E>>(
    open: &O,
) {
    let sample = sample_log();
    for group in [1, 2, 3, 7, sample.len()] {
        check_groups_against_one_by_one(open, &sample, group);
    }
    let log = generated_log(0x2545_f491_4f6c_dd1d, 300);
    for group in [4, 16, log.len()] {
        check_groups_against_one_by_one(open, &log, group);
    }
}

/// A fixed linear congruential sequence from `seed`: `next(n)` is the next number in
/// `0..n`, the same every run.
fn lcg(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut state = seed;
    move |n| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % n
    }
}

/// A generated log of `commands` commands over five keys (more with the purges among
/// them): every command kind, start timestamps that lag so that conflicts and locks
/// meet, rollbacks, raw writes and GC purges. A fixed linear congruential sequence from
/// `seed`: the same log every run.
pub fn generated_log(seed: u64, commands: usize) -> Vec<Command> {
    let mut next = lcg(seed);
    let keys = ["a", "b", "c", "d", "e"];
    let mut log = Vec::new();
    let mut ts = 10;
    for _ in 0..commands {
        ts += 1 + next(3);
        let key = keys[next(5) as usize];
        let other = keys[next(5) as usize];
        // Some start timestamps lag, so that conflicts happen.
        let start = ts - next(6);
        let command = match next(9) {
            0..=2 => one_phase(start, ts, vec![put(key, &ts.to_string())]),
            3 => Command::OnePhase {
                start_ts: start,
                commit_ts: ts,
                mutations: vec![put(key, "rw")],
                read_keys: vec![k(other)],
            },
            4 => prewrite(key, start, vec![put(key, "2pc"), put(other, "2pc")]),
            5 => commit(key, start, ts, &[key, other]),
            6 => check(key, start, ts),
            7 => rollback(key, start, &[key, other]),
            _ => Command::RawBatch {
                ts,
                writes: vec![put(key, "raw"), del(other)],
            },
        };
        log.push(command);
        if next(50) == 0 {
            log.push(Command::PurgeTxnRecords {
                safe_point: ts - 20,
                cursor: vec![],
                limit: 100,
            });
            // Started below the new GC fence: refused, in a group too (whose plans
            // read the fence before the purge raised it).
            log.push(one_phase(ts - 21, ts, vec![put(key, "too old")]));
            log.push(prewrite(other, ts - 21, vec![put(other, "too old")]));
        }
    }
    log
}

/// Planning answers from its memory of recent writes only what the store would answer:
/// the same log gives the same answers and the same store with the memory off, at its
/// default size, so small that it keeps dropping keys, and forgotten now and then (as
/// after a snapshot restore), one by one and in groups, with GC compacting the store at
/// each purge's fence as the server does.
pub fn recent_writes_never_change_an_answer<E: MvccEngine, O: Fn(&Path) -> EngineResult<E>>(
    open: &O,
) {
    use elastickv_engine_api::Durability;
    use std::sync::Arc;

    let log = contended_log(0x9e37_79b9_7f4a_7c15, 600);
    // (capacity, forget every n commands (0: never), group size)
    let runs: [(usize, usize, usize); 6] = [
        (0, 0, 1),
        (elastickv_txn::DEFAULT_RECENT_WRITES, 0, 1),
        (4, 0, 1),
        (16, 37, 1),
        (3, 0, 8),
        (elastickv_txn::DEFAULT_RECENT_WRITES, 23, 16),
    ];
    let mut expected: Option<(Vec<String>, Vec<u8>)> = None;
    for (capacity, forget_every, group) in runs {
        let dir = tempfile::tempdir().expect("temporary directory");
        let engine = Arc::new(open(dir.path()).expect("open the engine"));
        let sm = TxnStateMachine::with_recent_writes(Arc::clone(&engine), capacity);
        let mut answers = Vec::new();
        for (n, chunk) in log.chunks(group).enumerate() {
            if forget_every > 0 && n % forget_every == forget_every - 1 {
                sm.forget_recent_writes();
            }
            let items: Vec<(&Command, &[elastickv_engine_api::RawOp])> =
                chunk.iter().map(|c| (c, &[][..])).collect();
            let outcomes = sm
                .apply_group(&items, Durability::Buffered)
                .expect("no engine failure");
            answers.extend(outcomes.iter().map(|o| format!("{o:?}")));
            if chunk
                .iter()
                .any(|c| matches!(c, Command::PurgeTxnRecords { .. }))
            {
                let fence = sm.gc_fence().expect("fence");
                elastickv_txn::gc::compact_txn_data(engine.as_ref(), fence).expect("compact");
            }
        }
        let store = stream_of(engine.as_ref());
        let count = |what: &str| answers.iter().filter(|a| a.contains(what)).count();
        assert!(
            count("WriteConflict") > 20 && count("Locked") > 20 && count("Ok(") > 200,
            "the log meets conflicts and locks: {} conflicts, {} locked, {} applied",
            count("WriteConflict"),
            count("Locked"),
            count("Ok(")
        );
        match &expected {
            None => expected = Some((answers, store)),
            Some((want, want_store)) => {
                for (i, (got, want)) in answers.iter().zip(want).enumerate() {
                    assert_eq!(
                        got, want,
                        "command {i} ({:?}): capacity {capacity}, forgetting every \
                         {forget_every}, groups of {group}",
                        log[i]
                    );
                }
                assert_eq!(answers.len(), want.len());
                assert!(
                    &store == want_store,
                    "capacity {capacity}, forgetting every {forget_every}, groups of \
                     {group}: the same store"
                );
            }
        }
    }
}

/// A generated log of two-phase transactions that finish (commit or roll back) while
/// one-phase writes, raw writes and purges go on beside them over twelve keys, with
/// lagging start timestamps: writes meet newer versions, locks, and lock versions left
/// by finished transactions. Fixed by `seed`.
pub fn contended_log(seed: u64, commands: usize) -> Vec<Command> {
    let mut next = lcg(seed);
    let keys: Vec<String> = (0..12).map(|i| format!("key{i:02}")).collect();
    // Prewritten transactions not finished yet: (primary, other key, start_ts).
    let mut open: Vec<(String, String, Timestamp)> = Vec::new();
    let mut log = Vec::new();
    let mut ts = 100;
    while log.len() < commands {
        ts += 1 + next(3);
        let key = keys[next(12) as usize].clone();
        let other = keys[next(12) as usize].clone();
        let start = ts - next(8);
        match next(20) {
            0..=7 => log.push(one_phase(start, ts, vec![put(&key, &ts.to_string())])),
            8 => log.push(Command::OnePhase {
                start_ts: start,
                commit_ts: ts,
                mutations: vec![del(&key)],
                read_keys: vec![k(&other)],
            }),
            9..=11 => {
                log.push(prewrite(
                    &key,
                    start,
                    vec![put(&key, "2pc"), put(&other, "2pc")],
                ));
                open.push((key, other, start));
            }
            12..=14 if !open.is_empty() => {
                let (primary, second, start) = open.remove(next(open.len() as u64) as usize);
                log.push(commit(&primary, start, ts, &[&primary, &second]));
            }
            15 if !open.is_empty() => {
                let (primary, second, start) = open.remove(next(open.len() as u64) as usize);
                log.push(rollback(&primary, start, &[&primary, &second]));
            }
            16 => log.push(check(&key, start, ts)),
            17 => log.push(Command::RawBatch {
                ts,
                writes: vec![put(&key, "raw"), del(&other)],
            }),
            18 if next(4) == 0 => log.push(Command::PurgeTxnRecords {
                safe_point: ts - 30,
                cursor: vec![],
                limit: 100,
            }),
            _ => log.push(one_phase(start, ts, vec![put(&other, "x"), put(&key, "y")])),
        }
    }
    log
}
