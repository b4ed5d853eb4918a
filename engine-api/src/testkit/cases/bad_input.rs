//! Bad input gets a specific error or a defined empty result, never a panic and never a
//! partial write (ENGINE.md sections 4, 5, 7 and 10).

use crate::stream::SnapshotWriter;
use crate::testkit::fixture::{dump, expect_err, Fixture};
use crate::testkit::Harness;
use crate::{
    Durability, EngineError, KeyRange, Mutation, MvccEngine, RawKeyspace, RawOp, Version,
    WriteBatch,
};

/// Empty keys are refused by every operation that takes a key.
pub fn empty_keys_are_refused_everywhere<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    let empty = |err: EngineError| matches!(err, EngineError::EmptyKey { .. });
    assert!(empty(expect_err(e.get_at(b"", 1))));
    assert!(empty(expect_err(e.exists_at(b"", 1))));
    assert!(empty(expect_err(e.latest_commit_ts(b""))));
    assert!(empty(expect_err(e.put_at(b"", b"v", 1, 0))));
    assert!(empty(expect_err(e.delete_at(b"", 1))));
    assert!(empty(expect_err(e.expire_at(b"", 0, 1))));
    assert!(empty(expect_err(e.apply_mutations(
        &[Mutation::put("", "v")],
        0,
        1
    ))));
    let read_set = vec![Vec::new()];
    let batch = WriteBatch::new(&[], 0)
        .with_conflict_check(0)
        .with_read_set(&read_set);
    assert!(empty(expect_err(e.write(&batch))));
    assert!(empty(expect_err(e.raw_get(b""))));
    assert!(empty(expect_err(
        e.raw_write(&[RawOp::put("", "v")], Durability::Sync)
    )));
    assert!(dump(e).is_empty());
    assert_eq!(e.last_commit_ts().unwrap(), 0);
    // The empty key is a valid scan bound: "from the beginning".
    assert!(e
        .scan_at(&KeyRange::new("", "z"), 10, 1)
        .unwrap()
        .is_empty());
}

/// Keys over the engine's limit are refused with `KeyTooLarge` (never truncated); a key
/// of exactly the limit is accepted.
pub fn keys_over_the_limit_are_refused_and_at_the_limit_accepted<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    let max = e.limits().max_key_size;
    let at_limit = vec![0xabu8; max];
    let mut over = at_limit.clone();
    over.push(0);
    let too_large = |err: EngineError| matches!(err, EngineError::KeyTooLarge { size, limit } if size == max + 1 && limit == max);
    assert!(too_large(expect_err(e.put_at(&over, b"v", 1, 0))));
    assert!(too_large(expect_err(e.delete_at(&over, 1))));
    assert!(too_large(expect_err(e.get_at(&over, 1))));
    assert!(too_large(expect_err(e.latest_commit_ts(&over))));
    assert!(too_large(expect_err(e.apply_mutations(
        &[Mutation::delete(over.clone())],
        0,
        1
    ))));
    assert!(too_large(expect_err(
        e.raw_write(&[RawOp::put(over.clone(), "v")], Durability::Sync)
    )));
    assert!(too_large(expect_err(e.raw_get(&over))));
    assert!(dump(e).is_empty());
    e.put_at(&at_limit, b"v", 1, 0).unwrap();
    assert_eq!(e.get_at(&at_limit, 1).unwrap(), Some(b"v".to_vec()));
    assert_eq!(
        e.get_at(&at_limit[..max - 1], 1).unwrap(),
        None,
        "not truncated"
    );
    e.raw_write(&[RawOp::put(at_limit.clone(), "r")], Durability::Sync)
        .unwrap();
    assert_eq!(e.raw_get(&at_limit).unwrap(), Some(b"r".to_vec()));
    let scan = e.scan_at(&KeyRange::all(), 10, 1).unwrap();
    assert_eq!(scan.len(), 1);
    assert_eq!(scan[0].key, at_limit);
}

/// Values over the limit are refused with `ValueTooLarge`; nothing is written.
pub fn values_over_the_limit_are_refused<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    let max = e.limits().max_value_size;
    let over = vec![1u8; max + 1];
    let too_large = |err: EngineError| matches!(err, EngineError::ValueTooLarge { size, limit } if size == max + 1 && limit == max);
    assert!(too_large(expect_err(e.put_at(b"k", &over, 1, 0))));
    assert!(too_large(expect_err(e.apply_mutations(
        &[Mutation::put("k", over.clone())],
        0,
        1
    ))));
    assert!(too_large(expect_err(
        e.raw_write(&[RawOp::put("k", over.clone())], Durability::Sync)
    )));
    assert!(dump(e).is_empty());
    assert_eq!(e.raw_get(b"k").unwrap(), None);
    assert_eq!(e.last_commit_ts().unwrap(), 0);
}

/// Commit timestamps 0 and `u64::MAX` are reserved: writes there are refused.
pub fn reserved_commit_timestamps_are_refused<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    for ts in [0, u64::MAX] {
        let invalid = |err: EngineError| matches!(err, EngineError::InvalidArgument(_));
        assert!(invalid(expect_err(e.put_at(b"k", b"v", ts, 0))), "{ts}");
        assert!(invalid(expect_err(e.delete_at(b"k", ts))), "{ts}");
        assert!(invalid(expect_err(e.apply_mutations(
            &[Mutation::put("k", "v")],
            0,
            ts
        ))));
    }
    assert!(dump(e).is_empty());
    assert_eq!(e.last_commit_ts().unwrap(), 0);
}

/// A batch with more entries than the engine's limit is refused whole.
pub fn batches_over_the_entry_limit_are_refused<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    let max = e.limits().max_batch_entries;
    if max >= 1_000_000 {
        return; // Too large to build in a test; nothing to check.
    }
    let muts: Vec<Mutation> = (0..=max as u64)
        .map(|i| Mutation::put(i.to_be_bytes(), "v"))
        .collect();
    let err = expect_err(e.write(&WriteBatch::new(&muts, 1)));
    assert!(
        matches!(err, EngineError::BatchTooLarge { size, limit } if size == max + 1 && limit == max)
    );
    assert!(dump(e).is_empty());
    e.write(&WriteBatch::new(&muts[..max], 1)).unwrap();
    assert_eq!(dump(e).len(), max);
}

/// Streams with over-limit keys or a version at ts 0 are refused, leaving data intact.
pub fn restore_of_invalid_streams_keeps_the_data<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    e.put_at(b"mine", b"kept", 3, 0).unwrap();
    let before = dump(e);
    let over = vec![b'x'; e.limits().max_key_size + 1];
    let mut long_key = Vec::new();
    let mut w = SnapshotWriter::new(&mut long_key, 10, 0).unwrap();
    w.push(b"a", &Version::value(5, "ok")).unwrap();
    w.push(&over, &Version::value(5, "v")).unwrap();
    w.finish().unwrap();
    let err = expect_err(e.restore(&mut long_key.as_slice()));
    assert!(matches!(err, EngineError::KeyTooLarge { .. }), "{err:?}");
    let mut ts_zero = Vec::new();
    let mut w = SnapshotWriter::new(&mut ts_zero, 10, 0).unwrap();
    w.push(b"a", &Version::value(0, "at zero")).unwrap();
    w.finish().unwrap();
    assert!(matches!(
        expect_err(e.restore(&mut ts_zero.as_slice())),
        EngineError::Corrupted(_)
    ));
    let mut newer_than_header = Vec::new();
    let mut w = SnapshotWriter::new(&mut newer_than_header, 10, 0).unwrap();
    w.push(b"a", &Version::value(11, "after last_commit_ts"))
        .unwrap();
    w.finish().unwrap();
    let err = expect_err(e.restore(&mut newer_than_header.as_slice()));
    assert!(matches!(err, EngineError::Corrupted(_)), "{err:?}");
    assert_eq!(dump(e), before);
    assert_eq!(e.last_commit_ts().unwrap(), 3);
}

/// Scan bounds longer than the key limit give `KeyTooLarge` or the correct result,
/// never a panic; inverted bounds and huge limits are simply handled.
pub fn scan_bounds_are_validated_not_trusted<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    e.put_at(b"k", b"v", 1, 0).unwrap();
    e.raw_write(&[RawOp::put("k", "v")], Durability::Sync)
        .unwrap();
    let over = vec![b'z'; e.limits().max_key_size + 1];
    let range = KeyRange::new(b"a".to_vec(), over.clone());
    let results = [
        e.scan_at(&range, 10, 1),
        e.reverse_scan_at(&range, 10, 1),
        e.raw_scan(&range, 10),
        e.raw_reverse_scan(&range, 10),
    ];
    for result in results {
        match result {
            Ok(pairs) => assert_eq!(pairs.len(), 1, "the one key inside the range"),
            Err(err) => assert!(matches!(err, EngineError::KeyTooLarge { .. }), "{err:?}"),
        }
    }
    let inverted = KeyRange::new("z", "a");
    assert!(e
        .scan_at(&inverted, usize::MAX, u64::MAX)
        .unwrap()
        .is_empty());
    assert!(e
        .raw_reverse_scan(&inverted, usize::MAX)
        .unwrap()
        .is_empty());
    assert_eq!(
        e.scan_at(&KeyRange::all(), usize::MAX, u64::MAX)
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        e.reverse_scan_at(&KeyRange::all(), usize::MAX, 1)
            .unwrap()
            .len(),
        1
    );
}
