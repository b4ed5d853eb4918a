//! Opening directories: continuing an existing store, and refusing what is not ours.

mod harness;

use std::ops::Bound;

use elastickv_engine_api::ordered::{Direction, OrderedRead, OrderedStore, OrderedWrite, Table};
use elastickv_engine_api::testkit::Harness;
use elastickv_engine_api::{
    Durability, EngineError, KeyRange, MvccEngine, RawKeyspace, RawOp, RetentionController,
};
use elastickv_engine_rocks::{open_rocks, RocksEngine, LAYOUT_FILE};
use harness::{test_options, Rocks};

fn incompatible(result: elastickv_engine_api::Result<RocksEngine>) -> String {
    match result {
        Err(EngineError::Incompatible(message)) => message,
        Err(other) => panic!("expected Incompatible, got {other:?}"),
        Ok(_) => panic!("expected Incompatible, the directory was opened"),
    }
}

#[test]
fn reopening_continues_with_data_counters_and_raw_keyspace() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = Rocks.open(dir.path()).unwrap();
        engine.put_at(b"a", b"1", 10, 0).unwrap();
        engine.put_at(b"b", b"2", 20, 0).unwrap();
        engine.delete_at(b"a", 30).unwrap();
        engine.set_min_retained_ts(15).unwrap();
        engine
            .raw_write(
                &[RawOp::put("log/1", "e1"), RawOp::put("log/2", "e2")],
                Durability::Buffered,
            )
            .unwrap();
    }
    let engine = Rocks.open(dir.path()).unwrap();
    assert_eq!(engine.last_commit_ts().unwrap(), 30);
    assert_eq!(engine.min_retained_ts().unwrap(), 15);
    assert_eq!(engine.get_at(b"a", 20).unwrap(), Some(b"1".to_vec()));
    assert_eq!(engine.get_at(b"a", 30).unwrap(), None);
    assert_eq!(engine.raw_get(b"log/2").unwrap(), Some(b"e2".to_vec()));
    engine.put_at(b"c", b"3", 40, 0).unwrap();
    drop(engine);
    let engine = Rocks.open(dir.path()).unwrap();
    assert_eq!(engine.last_commit_ts().unwrap(), 40);
    assert_eq!(engine.get_at(b"c", 40).unwrap(), Some(b"3".to_vec()));
}

#[test]
fn a_second_open_of_the_same_directory_fails_while_the_first_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let _engine = Rocks.open(dir.path()).unwrap();
    let err = Rocks.open(dir.path()).unwrap_err();
    assert!(matches!(err, EngineError::Io(_)), "{err:?}");
}

#[test]
fn another_engines_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("elastickv.redb"), b"redb file").unwrap();
    let message = incompatible(open_rocks(dir.path(), test_options()));
    assert!(message.contains("elastickv.redb"), "{message}");
    // Nothing was created in it.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn a_foreign_rocksdb_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        let db = rocksdb::DB::open(&opts, dir.path()).unwrap();
        db.put(b"someone", b"else").unwrap();
    }
    let message = incompatible(open_rocks(dir.path(), test_options()));
    assert!(message.contains(LAYOUT_FILE), "{message}");
}

#[test]
fn a_newer_layout_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(Rocks.open(dir.path()).unwrap());
    std::fs::write(dir.path().join(LAYOUT_FILE), "elastickv-rocks layout 2\n").unwrap();
    let message = incompatible(open_rocks(dir.path(), test_options()));
    assert!(message.contains("layout version 2"), "{message}");
}

#[test]
fn a_newer_format_or_another_engines_marker_is_refused() {
    for (marker, expected) in [
        (&b"rocks:2"[..], "format version 2"),
        (&b"redb:1"[..], "redb"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        {
            let engine = Rocks.open(dir.path()).unwrap();
            let mut txn = engine.store().begin_write().unwrap();
            txn.put(Table::Meta, b"format", marker).unwrap();
            txn.commit(Durability::Sync).unwrap();
        }
        let message = incompatible(open_rocks(dir.path(), test_options()));
        assert!(message.contains(expected), "{message}");
    }
}

#[test]
fn a_file_in_place_of_the_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    incompatible(open_rocks(&file, test_options()));
}

#[test]
fn a_missing_directory_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a/b/data");
    let engine = open_rocks(&nested, test_options()).unwrap();
    engine.put_at(b"k", b"v", 1, 0).unwrap();
    assert!(nested.join(LAYOUT_FILE).is_file());
}

/// Store-level scans: every bound kind, both directions, keys that are prefixes of each
/// other.
#[test]
fn store_scans_honour_every_bound_kind_in_both_directions() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Rocks.open(dir.path()).unwrap();
    let keys: [&[u8]; 6] = [b"k", b"k\0", b"k\0\0", b"k1", b"k10", b"k\xff"];
    let mut txn = engine.store().begin_write().unwrap();
    for key in keys {
        txn.put(Table::Raw, key, key).unwrap();
    }
    txn.commit(Durability::Sync).unwrap();
    let view = engine.store().read().unwrap();
    let scan = |lower: Bound<&[u8]>, upper: Bound<&[u8]>, direction: Direction| {
        let mut out: Vec<Vec<u8>> = Vec::new();
        view.scan(Table::Raw, lower, upper, direction, &mut |k, v| {
            assert_eq!(k, v);
            out.push(k.to_vec());
            Ok(true)
        })
        .unwrap();
        out
    };
    let sorted: Vec<Vec<u8>> = {
        let mut all: Vec<Vec<u8>> = keys.iter().map(|k| k.to_vec()).collect();
        all.sort();
        all
    };
    let bounds: [Bound<&[u8]>; 8] = [
        Bound::Unbounded,
        Bound::Included(&b"k"[..]),
        Bound::Excluded(&b"k"[..]),
        Bound::Included(&b"k\0"[..]),
        Bound::Excluded(&b"k\0"[..]),
        Bound::Included(&b"k1"[..]),
        Bound::Excluded(&b"k10"[..]),
        Bound::Included(&b"k\xff"[..]),
    ];
    let inside = |key: &[u8], lower: Bound<&[u8]>, upper: Bound<&[u8]>| {
        let above = match lower {
            Bound::Included(l) => key >= l,
            Bound::Excluded(l) => key > l,
            Bound::Unbounded => true,
        };
        let below = match upper {
            Bound::Included(u) => key <= u,
            Bound::Excluded(u) => key < u,
            Bound::Unbounded => true,
        };
        above && below
    };
    for lower in bounds {
        for upper in bounds {
            let expected: Vec<Vec<u8>> = sorted
                .iter()
                .filter(|k| inside(k.as_slice(), lower, upper))
                .cloned()
                .collect();
            assert_eq!(
                scan(lower, upper, Direction::Forward),
                expected,
                "{lower:?}..{upper:?}"
            );
            let mut reversed = expected.clone();
            reversed.reverse();
            assert_eq!(
                scan(lower, upper, Direction::Reverse),
                reversed,
                "{lower:?}..{upper:?} rev"
            );
        }
    }
    // The visitor stops the scan.
    let mut seen = 0;
    view.scan(
        Table::Raw,
        Bound::Unbounded,
        Bound::Unbounded,
        Direction::Reverse,
        &mut |_, _| {
            seen += 1;
            Ok(seen < 2)
        },
    )
    .unwrap();
    assert_eq!(seen, 2);
}

/// An unbounded range delete covers keys put earlier in the same batch, and not keys
/// put after it.
#[test]
fn unbounded_raw_range_deletes_follow_batch_order() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Rocks.open(dir.path()).unwrap();
    engine
        .raw_write(
            &[RawOp::put("a", "1"), RawOp::put("m", "2")],
            Durability::Sync,
        )
        .unwrap();
    engine
        .raw_write(
            &[
                RawOp::put("z", "3"),
                RawOp::put(b"zz\xff", b"4"),
                RawOp::DeleteRange {
                    range: KeyRange::from("b"),
                },
                RawOp::put("zzz", "5"),
            ],
            Durability::Sync,
        )
        .unwrap();
    let all = engine.raw_scan(&KeyRange::all(), usize::MAX).unwrap();
    let keys: Vec<&[u8]> = all.iter().map(|p| p.key.as_slice()).collect();
    assert_eq!(keys, [&b"a"[..], b"zzz"]);
    // On an empty table, an unbounded delete is a no-op.
    engine
        .raw_write(
            &[RawOp::DeleteRange {
                range: KeyRange::all(),
            }],
            Durability::Buffered,
        )
        .unwrap();
    assert!(engine.raw_scan(&KeyRange::all(), 10).unwrap().is_empty());
    engine
        .raw_write(
            &[RawOp::DeleteRange {
                range: KeyRange::all(),
            }],
            Durability::Sync,
        )
        .unwrap();
}
