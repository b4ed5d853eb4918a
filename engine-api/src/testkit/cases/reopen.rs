//! Persistence across a clean reopen (ENGINE.md section 9). These cases run only for
//! engines whose harness declares them persistent; for others they pass trivially.

use crate::testkit::fixture::{dump, stream_of, Fixture};
use crate::testkit::model::ModelEngine;
use crate::testkit::Harness;
use crate::{
    CompactionScope, Durability, KeyRange, Mutation, MvccEngine, RawKeyspace, RawOp,
    RetentionController, WriteBatch,
};

/// Versions of every kind and `last_commit_ts` survive a reopen.
pub fn reopen_keeps_versions_and_last_commit_ts<H: Harness>(harness: &H) {
    let mut fx = Fixture::new(harness);
    if !fx.persistent() {
        return;
    }
    let e = fx.engine();
    e.put_at(b"k", b"v10", 10, 0).unwrap();
    e.put_at(b"k", b"v20", 20, 0).unwrap();
    e.delete_at(b"gone", 30).unwrap();
    e.put_at(b"ttl", b"t", 25, 40).unwrap();
    e.put_at(b"k\0", b"prefix", 15, 0).unwrap();
    let buffered = [Mutation::put("buffered", "b")];
    e.write(&WriteBatch::new(&buffered, 50).with_durability(Durability::Buffered))
        .unwrap();
    e.put_at(b"old", b"o", 5, 0).unwrap();
    let before = dump(e);
    let e = fx.reopen();
    assert_eq!(dump(e), before);
    assert_eq!(e.last_commit_ts().unwrap(), 50);
    assert_eq!(e.get_at(b"k", 15).unwrap(), Some(b"v10".to_vec()));
    assert_eq!(e.get_at(b"ttl", 40).unwrap(), None);
    assert_eq!(e.latest_commit_ts(b"gone").unwrap(), Some(30));
    assert_eq!(e.get_at(b"buffered", 50).unwrap(), Some(b"b".to_vec()));
    e.put_at(b"k", b"v60", 60, 0).unwrap();
    let e = fx.reopen();
    assert_eq!(e.last_commit_ts().unwrap(), 60);
    assert_eq!(e.get_at(b"k", u64::MAX).unwrap(), Some(b"v60".to_vec()));
}

/// The watermark survives a reopen, and so does what compaction removed.
pub fn reopen_keeps_the_watermark_and_compacted_state<H: Harness>(harness: &H) {
    let mut fx = Fixture::new(harness);
    if !fx.persistent() {
        return;
    }
    let e = fx.engine();
    for ts in [10, 20, 30] {
        e.put_at(b"k", format!("v{ts}").as_bytes(), ts, 0).unwrap();
    }
    e.compact(25, &CompactionScope::All).unwrap();
    let after_compaction = dump(e);
    let e = fx.reopen();
    assert_eq!(e.min_retained_ts().unwrap(), 25);
    assert_eq!(dump(e), after_compaction);
    assert!(e.get_at(b"k", 15).is_err());
    assert_eq!(e.get_at(b"k", 25).unwrap(), Some(b"v20".to_vec()));
    e.set_min_retained_ts(28).unwrap();
    let e = fx.reopen();
    assert_eq!(e.min_retained_ts().unwrap(), 28);
    e.set_min_retained_ts(3).unwrap();
    let e = fx.reopen();
    assert_eq!(
        e.min_retained_ts().unwrap(),
        28,
        "never lowered, also on disk"
    );
}

/// The raw keyspace survives a reopen, for synced and buffered batches and for raw
/// operations made together with mutations.
pub fn reopen_keeps_the_raw_keyspace<H: Harness>(harness: &H) {
    let mut fx = Fixture::new(harness);
    if !fx.persistent() {
        return;
    }
    let e = fx.engine();
    e.raw_write(
        &[RawOp::put("vote", "v1"), RawOp::put("log/1", "a")],
        Durability::Sync,
    )
    .unwrap();
    e.raw_write(&[RawOp::put("log/2", "b")], Durability::Buffered)
        .unwrap();
    e.raw_write(&[RawOp::delete("log/1")], Durability::Sync)
        .unwrap();
    let muts = [Mutation::put("k", "v")];
    let raw = [RawOp::put("applied", 9u64.to_be_bytes())];
    e.write(&WriteBatch::new(&muts, 9).with_raw(&raw)).unwrap();
    let before = e.raw_scan(&KeyRange::all(), 100).unwrap();
    let e = fx.reopen();
    assert_eq!(e.raw_scan(&KeyRange::all(), 100).unwrap(), before);
    assert_eq!(
        e.raw_get(b"applied").unwrap(),
        Some(9u64.to_be_bytes().to_vec())
    );
    assert_eq!(e.raw_get(b"log/1").unwrap(), None);
    assert_eq!(e.get_at(b"k", 9).unwrap(), Some(b"v".to_vec()));
}

/// A restored image (data, counters, raw ops of `restore_with`) survives a reopen.
pub fn reopen_keeps_a_restored_image<H: Harness>(harness: &H) {
    let mut fx = Fixture::new(harness);
    if !fx.persistent() {
        return;
    }
    let model = ModelEngine::with_limits(fx.engine().limits());
    model.put_at(b"a", b"1", 100, 0).unwrap();
    model.delete_at(b"a", 110).unwrap();
    model.put_at(b"b", b"2", 105, 0).unwrap();
    model.set_min_retained_ts(101).unwrap();
    let stream = stream_of(&model);
    let e = fx.engine();
    e.put_at(b"stale", b"x", 500, 0).unwrap();
    e.restore_with(&mut stream.as_slice(), &[RawOp::put("applied", "7")])
        .unwrap();
    let e = fx.reopen();
    assert_eq!(dump(e), dump(&model));
    assert_eq!(e.last_commit_ts().unwrap(), 110);
    assert_eq!(e.min_retained_ts().unwrap(), 101);
    assert_eq!(e.raw_get(b"applied").unwrap(), Some(b"7".to_vec()));
    assert_eq!(e.latest_commit_ts(b"stale").unwrap(), None);
}
