//! The write-conflict rule of `apply_mutations` (ENGINE.md section 5).

use super::PREFIX_KEYS;
use crate::testkit::fixture::{dump, expect_err, Fixture};
use crate::testkit::Harness;
use crate::{EngineError, Mutation, MvccEngine, RawKeyspace, RawOp, WriteBatch};

fn conflict_key(err: EngineError) -> (Vec<u8>, u64) {
    match err {
        EngineError::WriteConflict { key, start_ts } => (key, start_ts),
        other => panic!("expected WriteConflict, got {other:?}"),
    }
}

/// A version newer than `start_ts` conflicts; one at exactly `start_ts` does not.
pub fn version_newer_than_start_ts_conflicts_and_equal_does_not<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    e.put_at(b"k", b"v20", 20, 0).unwrap();
    let err = expect_err(e.apply_mutations(&[Mutation::put("k", "x")], 19, 30));
    assert_eq!(conflict_key(err), (b"k".to_vec(), 19));
    assert_eq!(e.get_at(b"k", u64::MAX).unwrap(), Some(b"v20".to_vec()));
    e.apply_mutations(&[Mutation::put("k", "x")], 20, 30)
        .unwrap();
    assert_eq!(e.get_at(b"k", 30).unwrap(), Some(b"x".to_vec()));
    e.apply_mutations(&[Mutation::put("fresh", "x")], 0, 31)
        .unwrap();
    assert_eq!(e.get_at(b"fresh", 31).unwrap(), Some(b"x".to_vec()));
}

/// Tombstones and expired versions newer than `start_ts` conflict too.
pub fn tombstones_and_expired_versions_conflict<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    e.delete_at(b"deleted", 20).unwrap();
    e.put_at(b"expired", b"v", 20, 21).unwrap();
    for key in [&b"deleted"[..], b"expired"] {
        let err = expect_err(e.apply_mutations(&[Mutation::delete(key)], 10, 30));
        assert_eq!(conflict_key(err).0, key.to_vec());
    }
    e.apply_mutations(&[Mutation::put("deleted", "x")], 20, 30)
        .unwrap();
}

/// The error names the first conflicting key in the caller's order.
pub fn conflict_names_the_first_conflicting_key_in_caller_order<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    e.put_at(b"b", b"v", 20, 0).unwrap();
    e.put_at(b"c", b"v", 20, 0).unwrap();
    let muts = [
        Mutation::put("a", "x"),
        Mutation::put("c", "x"),
        Mutation::put("b", "x"),
    ];
    assert_eq!(
        conflict_key(expect_err(e.apply_mutations(&muts, 10, 30))).0,
        b"c"
    );
    let muts = [Mutation::put("b", "x"), Mutation::put("c", "x")];
    assert_eq!(
        conflict_key(expect_err(e.apply_mutations(&muts, 10, 30))).0,
        b"b"
    );
}

/// On conflict nothing is written: no mutation, no raw operation, no `last_commit_ts`.
pub fn conflict_writes_nothing_at_all<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    e.put_at(b"z", b"v", 20, 0).unwrap();
    let before = dump(e);
    let muts = [
        Mutation::put("a", "x"),
        Mutation::delete("m"),
        Mutation::put("z", "x"),
    ];
    let raw = [RawOp::put("applied", "1")];
    let batch = WriteBatch::new(&muts, 30)
        .with_conflict_check(10)
        .with_raw(&raw);
    assert_eq!(conflict_key(expect_err(e.write(&batch))).0, b"z");
    assert_eq!(dump(e), before);
    assert_eq!(e.last_commit_ts().unwrap(), 20);
    assert_eq!(e.raw_get(b"applied").unwrap(), None);
    assert_eq!(e.latest_commit_ts(b"a").unwrap(), None);
}

/// Read-set keys are checked for conflicts like mutated keys but never written.
pub fn read_set_keys_are_checked_but_not_written<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    e.put_at(b"read", b"v", 20, 0).unwrap();
    let muts = [Mutation::put("write", "x")];
    let read_set = vec![b"other".to_vec(), b"read".to_vec()];
    let batch = WriteBatch::new(&muts, 30)
        .with_conflict_check(10)
        .with_read_set(&read_set);
    assert_eq!(conflict_key(expect_err(e.write(&batch))).0, b"read");
    assert_eq!(e.latest_commit_ts(b"write").unwrap(), None);
    let batch = WriteBatch::new(&muts, 30)
        .with_conflict_check(20)
        .with_read_set(&read_set);
    e.write(&batch).unwrap();
    assert_eq!(e.get_at(b"write", 30).unwrap(), Some(b"x".to_vec()));
    assert_eq!(
        e.latest_commit_ts(b"read").unwrap(),
        Some(20),
        "not written"
    );
    assert_eq!(e.latest_commit_ts(b"other").unwrap(), None, "not written");
    // A read set alone (no mutations) is still checked.
    let batch = WriteBatch::new(&[], 40)
        .with_conflict_check(25)
        .with_read_set(&read_set);
    e.write(&batch).unwrap();
    let batch = WriteBatch::new(&[], 40)
        .with_conflict_check(15)
        .with_read_set(&read_set);
    assert_eq!(conflict_key(expect_err(e.write(&batch))).0, b"read");
}

/// Writes without a conflict check (`put_at`, `delete_at`, plain batches) never
/// conflict, even under newer versions.
pub fn writes_without_a_conflict_check_never_conflict<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    e.put_at(b"k", b"v50", 50, 0).unwrap();
    e.put_at(b"k", b"v10", 10, 0).unwrap();
    e.delete_at(b"k", 20).unwrap();
    e.write(&WriteBatch::new(&[Mutation::put("k", "v30")], 30))
        .unwrap();
    assert_eq!(e.get_at(b"k", 15).unwrap(), Some(b"v10".to_vec()));
    assert_eq!(e.get_at(b"k", 25).unwrap(), None);
    assert_eq!(e.get_at(b"k", 35).unwrap(), Some(b"v30".to_vec()));
    assert_eq!(e.get_at(b"k", 55).unwrap(), Some(b"v50".to_vec()));
}

/// Conflict checks distinguish keys that are prefixes of each other.
pub fn conflict_checks_distinguish_prefix_related_keys<H: Harness>(harness: &H) {
    for (i, hot) in PREFIX_KEYS.iter().enumerate() {
        let fx = Fixture::new(harness);
        let e = fx.engine();
        for key in PREFIX_KEYS {
            e.put_at(key, b"base", 10, 0).unwrap();
        }
        e.put_at(hot, b"newer", 50, 0).unwrap();
        for (j, key) in PREFIX_KEYS.iter().enumerate() {
            let result = e.apply_mutations(&[Mutation::put(*key, "x")], 20, 60 + j as u64);
            if i == j {
                assert_eq!(conflict_key(expect_err(result)).0, key.to_vec());
            } else {
                result
                    .unwrap_or_else(|err| panic!("{key:?} must not conflict with {hot:?}: {err}"));
            }
        }
        let read_set = vec![hot.to_vec()];
        let batch = WriteBatch::new(&[], 0)
            .with_conflict_check(20)
            .with_read_set(&read_set);
        assert_eq!(conflict_key(expect_err(e.write(&batch))).0, hot.to_vec());
    }
}
