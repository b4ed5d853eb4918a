//! TTL and the `expire_at` operation (ENGINE.md sections 2 and 4).

use crate::testkit::fixture::{expect_err, Fixture};
use crate::testkit::Harness;
use crate::{EngineError, KeyRange, Mutation, MvccEngine, WriteBatch};

/// A value with `expire_at` is visible below it and hidden from exactly `expire_at` on;
/// expiry is judged against the read timestamp.
pub fn ttl_value_is_hidden_exactly_at_expire_at<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    e.put_at(b"k", b"v", 10, 20).unwrap();
    assert_eq!(e.get_at(b"k", 10).unwrap(), Some(b"v".to_vec()));
    assert_eq!(e.get_at(b"k", 19).unwrap(), Some(b"v".to_vec()));
    assert_eq!(e.get_at(b"k", 20).unwrap(), None);
    assert_eq!(e.get_at(b"k", 21).unwrap(), None);
    assert_eq!(e.get_at(b"k", u64::MAX).unwrap(), None);
    assert_eq!(e.scan_at(&KeyRange::all(), 10, 19).unwrap().len(), 1);
    assert_eq!(e.scan_at(&KeyRange::all(), 10, 20).unwrap().len(), 0);
    assert_eq!(
        e.reverse_scan_at(&KeyRange::all(), 10, 19).unwrap().len(),
        1
    );
    assert_eq!(
        e.reverse_scan_at(&KeyRange::all(), 10, 20).unwrap().len(),
        0
    );
    // A TTL at or below the write's own ts means the value is never visible.
    e.put_at(b"dead", b"v", 30, 30).unwrap();
    e.put_at(b"deader", b"v", 30, 1).unwrap();
    assert_eq!(e.get_at(b"dead", 30).unwrap(), None);
    assert_eq!(e.get_at(b"deader", 30).unwrap(), None);
    assert_eq!(e.latest_commit_ts(b"dead").unwrap(), Some(30));
}

/// An expired newest version hides the key: there is no fall-back to an older value.
pub fn expired_newest_version_does_not_fall_back_to_older_values<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    e.put_at(b"k", b"old", 10, 0).unwrap();
    e.put_at(b"k", b"new", 20, 25).unwrap();
    assert_eq!(e.get_at(b"k", 15).unwrap(), Some(b"old".to_vec()));
    assert_eq!(e.get_at(b"k", 24).unwrap(), Some(b"new".to_vec()));
    assert_eq!(e.get_at(b"k", 25).unwrap(), None);
    assert_eq!(e.get_at(b"k", 100).unwrap(), None);
    assert!(e.scan_at(&KeyRange::all(), 10, 30).unwrap().is_empty());
    assert!(e
        .reverse_scan_at(&KeyRange::all(), 10, 30)
        .unwrap()
        .is_empty());
}

/// TTLs set through `apply_mutations` behave like those set through `put_at`.
pub fn ttl_set_in_a_batch_is_judged_per_version<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    let muts = [
        Mutation::Put {
            key: b"a".to_vec(),
            value: b"A".to_vec(),
            expire_at: 15,
        },
        Mutation::put("b", "B"),
    ];
    e.write(&WriteBatch::new(&muts, 10).with_conflict_check(9))
        .unwrap();
    assert_eq!(e.get_at(b"a", 14).unwrap(), Some(b"A".to_vec()));
    assert_eq!(e.get_at(b"a", 15).unwrap(), None);
    assert_eq!(e.get_at(b"b", 15).unwrap(), Some(b"B".to_vec()));
}

/// `expire_at` re-writes the value visible at `commit_ts` as a new version with the new
/// TTL; older reads are unchanged.
pub fn expire_at_rewrites_the_visible_value_with_a_new_ttl<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    e.put_at(b"k", b"v", 10, 0).unwrap();
    assert!(e.expire_at(b"k", 50, 20).unwrap());
    assert_eq!(e.latest_commit_ts(b"k").unwrap(), Some(20));
    assert_eq!(e.last_commit_ts().unwrap(), 20);
    assert_eq!(e.get_at(b"k", 15).unwrap(), Some(b"v".to_vec()));
    assert_eq!(e.get_at(b"k", 49).unwrap(), Some(b"v".to_vec()));
    assert_eq!(e.get_at(b"k", 50).unwrap(), None);
    // Extending a TTL that has not yet passed.
    assert!(e.expire_at(b"k", 80, 30).unwrap());
    assert_eq!(e.get_at(b"k", 60).unwrap(), Some(b"v".to_vec()));
    assert_eq!(e.get_at(b"k", 80).unwrap(), None);
}

/// `expire_at` with `0` clears the TTL.
pub fn expire_at_zero_clears_the_ttl<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    e.put_at(b"k", b"v", 10, 30).unwrap();
    assert!(e.expire_at(b"k", 0, 20).unwrap());
    assert_eq!(e.get_at(b"k", 30).unwrap(), Some(b"v".to_vec()));
    assert_eq!(e.get_at(b"k", u64::MAX).unwrap(), Some(b"v".to_vec()));
    assert_eq!(e.get_at(b"k", 19).unwrap(), Some(b"v".to_vec()));
}

/// `expire_at` uses the value visible at `commit_ts`, not the newest one.
pub fn expire_at_uses_the_value_visible_at_commit_ts<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    e.put_at(b"k", b"old", 10, 0).unwrap();
    e.put_at(b"k", b"new", 30, 0).unwrap();
    assert!(e.expire_at(b"k", 100, 20).unwrap());
    assert_eq!(e.get_at(b"k", 25).unwrap(), Some(b"old".to_vec()));
    assert_eq!(e.get_at(b"k", 30).unwrap(), Some(b"new".to_vec()));
    assert_eq!(e.get_at(b"k", 100).unwrap(), Some(b"new".to_vec()));
    assert_eq!(e.latest_commit_ts(b"k").unwrap(), Some(30));
    assert_eq!(e.last_commit_ts().unwrap(), 30);
}

/// `expire_at` on a missing, deleted or already expired key reports `false` and writes
/// nothing.
pub fn expire_at_without_a_visible_value_writes_nothing<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    e.put_at(b"deleted", b"v", 10, 0).unwrap();
    e.delete_at(b"deleted", 12).unwrap();
    e.put_at(b"expired", b"v", 10, 15).unwrap();
    e.put_at(b"later", b"v", 40, 0).unwrap();
    assert!(!e.expire_at(b"missing", 100, 20).unwrap());
    assert!(!e.expire_at(b"deleted", 100, 20).unwrap());
    assert!(!e.expire_at(b"expired", 100, 20).unwrap());
    assert!(
        !e.expire_at(b"later", 100, 20).unwrap(),
        "not visible at commit_ts"
    );
    assert_eq!(e.latest_commit_ts(b"missing").unwrap(), None);
    assert_eq!(e.latest_commit_ts(b"deleted").unwrap(), Some(12));
    assert_eq!(e.latest_commit_ts(b"expired").unwrap(), Some(10));
    assert_eq!(e.latest_commit_ts(b"later").unwrap(), Some(40));
    assert_eq!(e.get_at(b"expired", 20).unwrap(), None);
    assert_eq!(e.last_commit_ts().unwrap(), 40);
}

/// `expire_at` validates its arguments like any write.
pub fn expire_at_rejects_bad_keys_and_reserved_timestamps<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    e.put_at(b"k", b"v", 10, 0).unwrap();
    assert!(matches!(
        expect_err(e.expire_at(b"", 5, 20)),
        EngineError::EmptyKey { .. }
    ));
    let long = vec![b'x'; e.limits().max_key_size + 1];
    assert!(matches!(
        expect_err(e.expire_at(&long, 5, 20)),
        EngineError::KeyTooLarge { .. }
    ));
    assert!(matches!(
        expect_err(e.expire_at(b"k", 5, 0)),
        EngineError::InvalidArgument(_)
    ));
    assert!(matches!(
        expect_err(e.expire_at(b"k", 5, u64::MAX)),
        EngineError::InvalidArgument(_)
    ));
    assert_eq!(e.latest_commit_ts(b"k").unwrap(), Some(10));
    assert_eq!(e.get_at(b"k", u64::MAX - 1).unwrap(), Some(b"v".to_vec()));
}
