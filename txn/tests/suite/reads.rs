//! Cases: lock-aware reads, GC purge and compaction.

use std::path::Path;

use elastickv_engine_api::{KeyRange, MvccEngine, Result as EngineResult};
use elastickv_txn::{gc, keys, Command, CommandOutput, PointRead, TxnError};

use super::*;

pub fn younger_locks_do_not_block_older_readers<E: MvccEngine, O: Fn(&Path) -> EngineResult<E>>(
    open: &O,
) {
    let env = env(open);
    ok(&env.sm, one_phase(1, 5, vec![put("a", "old")]));
    ok(&env.sm, prewrite("a", 50, vec![put("a", "new")]));
    assert_eq!(value(&env.sm, "a", 40).as_deref(), Some("old"));
    let scan = env.sm.read_scan(&KeyRange::all(), 10, 40).expect("scan");
    assert!(scan.locks.is_empty());
    assert_eq!(scan.pairs.len(), 1);
}

pub fn readers_see_locks_of_older_pending_txns<E: MvccEngine, O: Fn(&Path) -> EngineResult<E>>(
    open: &O,
) {
    let env = env(open);
    ok(
        &env.sm,
        prewrite("p", 50, vec![put("p", "1"), put("a", "2")]),
    );
    match env.sm.read_point(b"a", 50).expect("read") {
        PointRead::Locked(lock) => {
            assert_eq!((lock.primary.as_slice(), lock.start_ts), (&b"p"[..], 50))
        }
        other => panic!("expected a lock, got {other:?}"),
    }
}

pub fn scan_sees_locks_on_keys_without_committed_versions<
    E: MvccEngine,
    O: Fn(&Path) -> EngineResult<E>,
>(
    open: &O,
) {
    let env = env(open);
    ok(&env.sm, one_phase(1, 2, vec![put("a", "1"), put("c", "3")]));
    ok(&env.sm, prewrite("b", 10, vec![put("b", "new")]));
    let scan = env.sm.read_scan(&KeyRange::all(), 10, 20).expect("scan");
    assert_eq!(scan.locks.len(), 1);
    assert_eq!(scan.locks[0].key, b"b");
}

pub fn scan_sees_locks_inside_the_returned_range_beyond_the_limit<
    E: MvccEngine,
    O: Fn(&Path) -> EngineResult<E>,
>(
    open: &O,
) {
    let env = env(open);
    ok(
        &env.sm,
        one_phase(
            1,
            2,
            vec![put("a", "1"), put("c", "3"), put("e", "5"), put("g", "7")],
        ),
    );
    // "b" (no committed version) lies inside the returned range [a, c]; "f" lies beyond.
    ok(
        &env.sm,
        prewrite("b", 10, vec![put("b", "x"), put("f", "y")]),
    );
    let scan = env.sm.read_scan(&KeyRange::all(), 2, 20).expect("scan");
    assert_eq!(scan.pairs.len(), 2);
    let locked: Vec<&[u8]> = scan.locks.iter().map(|l| l.key.as_slice()).collect();
    assert_eq!(locked, vec![&b"b"[..]]);
    // With a limit that reaches past "f", both are seen.
    let scan = env.sm.read_scan(&KeyRange::all(), 4, 20).expect("scan");
    assert_eq!(scan.locks.len(), 2);
}

pub fn purge_drops_finished_records_and_fences_old_prewrites<
    E: MvccEngine,
    O: Fn(&Path) -> EngineResult<E>,
>(
    open: &O,
) {
    let env = env(open);
    ok(&env.sm, prewrite("a", 10, vec![put("a", "1")]));
    ok(&env.sm, commit("a", 10, 20, &["a"]));
    ok(&env.sm, prewrite("b", 30, vec![put("b", "1")]));
    ok(&env.sm, rollback("b", 30, &["b"]));
    ok(&env.sm, prewrite("c", 40, vec![put("c", "1")]));
    ok(&env.sm, commit("c", 40, 60, &["c"]));
    assert_eq!(live_with_prefix(&env.sm, keys::RECORD), 3);
    let out = ok(
        &env.sm,
        Command::PurgeTxnRecords {
            safe_point: 50,
            cursor: vec![],
            limit: 10,
        },
    );
    // c started before 50 but committed after it: kept for now.
    assert!(matches!(
        out,
        CommandOutput::Purged {
            purged: 2,
            next_cursor: None
        }
    ));
    assert_eq!(live_with_prefix(&env.sm, keys::RECORD), 1);
    assert_eq!(env.sm.gc_fence().expect("fence"), 50);
    let err = refused(&env.sm, prewrite("z", 45, vec![put("z", "1")]));
    assert!(matches!(
        err,
        TxnError::StartTsTooOld {
            start_ts: 45,
            fence: 50
        }
    ));
    // Paging: a limit of one record per command still visits everything.
    let mut cursor = vec![];
    let mut purged = 0;
    loop {
        match ok(
            &env.sm,
            Command::PurgeTxnRecords {
                safe_point: 70,
                cursor,
                limit: 1,
            },
        ) {
            CommandOutput::Purged {
                purged: n,
                next_cursor,
            } => {
                purged += n;
                match next_cursor {
                    Some(next) => cursor = next,
                    None => break,
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(purged, 1);
    assert_eq!(live_with_prefix(&env.sm, keys::RECORD), 0);
}

pub fn compaction_keeps_reads_at_the_safe_point<E: MvccEngine, O: Fn(&Path) -> EngineResult<E>>(
    open: &O,
) {
    let env = env(open);
    for (i, v) in ["1", "2", "3"].iter().enumerate() {
        let ts = 10 * (i as u64 + 1);
        ok(&env.sm, one_phase(ts - 1, ts, vec![put("a", v)]));
    }
    ok(&env.sm, prewrite("p", 22, vec![put("p", "pending")]));
    ok(
        &env.sm,
        Command::MetaPut {
            ts: 1,
            key: k("m"),
            value: Some(b"kept".to_vec()),
        },
    );
    gc::compact_txn_data(env.sm.engine().as_ref(), 25).expect("compact");
    assert_eq!(value(&env.sm, "a", 25).as_deref(), Some("2"));
    assert_eq!(value(&env.sm, "a", 30).as_deref(), Some("3"));
    assert!(matches!(
        env.sm.read_point(b"a", 15),
        Err(TxnError::Engine(_))
    ));
    assert_eq!(
        env.sm
            .scan_locks(&KeyRange::all(), 10)
            .expect("locks")
            .len(),
        1,
        "pending locks survive"
    );
    assert_eq!(env.sm.meta(b"m").expect("meta"), Some(b"kept".to_vec()));
}
