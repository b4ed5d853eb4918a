//! The raw ordered keyspace for the Raft layer (ENGINE.md section 8).

use super::PREFIX_KEYS;
use crate::testkit::fixture::{expect_err, expected, pairs, Fixture};
use crate::testkit::Harness;
use crate::{Durability, EngineError, KeyRange, MvccEngine, RawKeyspace, RawOp};

fn raw_keys<E: MvccEngine>(e: &E, range: &KeyRange, limit: usize, reverse: bool) -> Vec<Vec<u8>> {
    let scan = if reverse {
        e.raw_reverse_scan(range, limit)
    } else {
        e.raw_scan(range, limit)
    };
    scan.unwrap().into_iter().map(|p| p.key).collect()
}

/// Raw put, overwrite, get and delete, with both durabilities.
pub fn raw_put_get_delete_round_trip<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    assert_eq!(e.raw_get(b"k").unwrap(), None);
    e.raw_write(&[RawOp::put("k", "1")], Durability::Sync)
        .unwrap();
    assert_eq!(e.raw_get(b"k").unwrap(), Some(b"1".to_vec()));
    e.raw_write(&[RawOp::put("k", "2")], Durability::Buffered)
        .unwrap();
    assert_eq!(e.raw_get(b"k").unwrap(), Some(b"2".to_vec()));
    e.raw_write(&[RawOp::put("empty", "")], Durability::Buffered)
        .unwrap();
    assert_eq!(e.raw_get(b"empty").unwrap(), Some(Vec::new()));
    e.raw_write(
        &[RawOp::delete("k"), RawOp::delete("never")],
        Durability::Sync,
    )
    .unwrap();
    assert_eq!(e.raw_get(b"k").unwrap(), None);
}

/// Operations of one raw batch apply in order.
pub fn raw_ops_in_one_batch_apply_in_order<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    let ops = [
        RawOp::put("a", "1"),
        RawOp::delete("a"),
        RawOp::delete("b"),
        RawOp::put("b", "2"),
        RawOp::put("c", "3"),
        RawOp::DeleteRange {
            range: KeyRange::new("c", "d"),
        },
        RawOp::put("c\0", "4"),
    ];
    e.raw_write(&ops, Durability::Sync).unwrap();
    let got = pairs(e.raw_scan(&KeyRange::all(), 10).unwrap());
    assert_eq!(got, expected(&[(b"b", b"2"), (b"c\0", b"4")]));
}

/// Raw scans respect `[start, end)`, the limit, and order prefix-related keys bytewise,
/// in both directions.
pub fn raw_scans_respect_range_limit_and_direction<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    let ops: Vec<RawOp> = PREFIX_KEYS
        .iter()
        .rev()
        .map(|k| RawOp::put(*k, *k))
        .collect();
    e.raw_write(&ops, Durability::Sync).unwrap();
    e.raw_write(
        &[RawOp::put("j", "j"), RawOp::put("l", "l")],
        Durability::Buffered,
    )
    .unwrap();
    let all: Vec<Vec<u8>> = PREFIX_KEYS.iter().map(|k| k.to_vec()).collect();
    assert_eq!(raw_keys(e, &KeyRange::prefix(b"k"), 100, false), all);
    let mut rev = all.clone();
    rev.reverse();
    assert_eq!(raw_keys(e, &KeyRange::prefix(b"k"), 100, true), rev);
    assert_eq!(
        raw_keys(e, &KeyRange::new("k", "k1"), 100, false),
        vec![b"k".to_vec(), b"k\0".to_vec()]
    );
    assert_eq!(
        raw_keys(e, &KeyRange::new(&b"k1"[..], &b"k\xff"[..]), 100, true),
        vec![b"k10".to_vec(), b"k1".to_vec()]
    );
    assert_eq!(
        raw_keys(e, &KeyRange::all(), 2, true),
        vec![b"l".to_vec(), b"k\xff".to_vec()]
    );
    assert_eq!(
        raw_keys(e, &KeyRange::from("k10"), 2, false),
        vec![b"k10".to_vec(), b"k\xff".to_vec()]
    );
    assert!(raw_keys(e, &KeyRange::all(), 0, false).is_empty());
    assert!(raw_keys(e, &KeyRange::all(), 0, true).is_empty());
    assert!(raw_keys(e, &KeyRange::new("l", "j"), 10, false).is_empty());
    assert!(raw_keys(e, &KeyRange::new("l", "j"), 10, true).is_empty());
    let values = pairs(e.raw_scan(&KeyRange::new("k1", "k2"), 10).unwrap());
    assert_eq!(values, expected(&[(b"k1", b"k1"), (b"k10", b"k10")]));
}

/// A raw range delete removes exactly `[start, end)`; unbounded ends reach the last key;
/// empty and inverted ranges remove nothing.
pub fn raw_delete_range_removes_exactly_the_half_open_range<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    let keys: [&[u8]; 7] = [
        b"a", b"log/1", b"log/10", b"log/2", b"log0", b"log\xff", b"z",
    ];
    let put_all: Vec<RawOp> = keys.iter().map(|k| RawOp::put(*k, "v")).collect();
    e.raw_write(&put_all, Durability::Sync).unwrap();
    e.raw_write(
        &[
            RawOp::DeleteRange {
                range: KeyRange::new("log/2", "log/1"),
            },
            RawOp::DeleteRange {
                range: KeyRange::new("a", "a"),
            },
        ],
        Durability::Sync,
    )
    .unwrap();
    assert_eq!(
        raw_keys(e, &KeyRange::all(), 100, false).len(),
        7,
        "nothing removed"
    );
    e.raw_write(
        &[RawOp::DeleteRange {
            range: KeyRange::new("log/1", "log/2"),
        }],
        Durability::Sync,
    )
    .unwrap();
    let left = raw_keys(e, &KeyRange::all(), 100, false);
    assert_eq!(
        left,
        vec![
            b"a".to_vec(),
            b"log/2".to_vec(),
            b"log0".to_vec(),
            b"log\xff".to_vec(),
            b"z".to_vec()
        ]
    );
    e.raw_write(
        &[RawOp::DeleteRange {
            range: KeyRange::from(&b"log\xff"[..]),
        }],
        Durability::Buffered,
    )
    .unwrap();
    let left = raw_keys(e, &KeyRange::all(), 100, false);
    assert_eq!(
        left,
        vec![b"a".to_vec(), b"log/2".to_vec(), b"log0".to_vec()]
    );
    e.raw_write(
        &[RawOp::DeleteRange {
            range: KeyRange::all(),
        }],
        Durability::Sync,
    )
    .unwrap();
    assert!(raw_keys(e, &KeyRange::all(), 100, false).is_empty());
}

/// The raw keyspace and the MVCC keyspace are separate.
pub fn raw_keyspace_is_separate_from_mvcc_data<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    e.raw_write(&[RawOp::put("k", "raw")], Durability::Sync)
        .unwrap();
    e.put_at(b"k", b"mvcc", 10, 0).unwrap();
    e.put_at(b"only-mvcc", b"x", 10, 0).unwrap();
    assert_eq!(e.raw_get(b"k").unwrap(), Some(b"raw".to_vec()));
    assert_eq!(e.get_at(b"k", 10).unwrap(), Some(b"mvcc".to_vec()));
    assert_eq!(e.raw_get(b"only-mvcc").unwrap(), None);
    assert_eq!(e.raw_scan(&KeyRange::all(), 10).unwrap().len(), 1);
    assert_eq!(e.scan_at(&KeyRange::all(), 10, 10).unwrap().len(), 2);
    e.raw_write(
        &[RawOp::DeleteRange {
            range: KeyRange::all(),
        }],
        Durability::Sync,
    )
    .unwrap();
    assert_eq!(e.get_at(b"k", 10).unwrap(), Some(b"mvcc".to_vec()));
    e.compact(20, &crate::CompactionScope::All).unwrap();
    e.raw_write(&[RawOp::put("r", "1")], Durability::Sync)
        .unwrap();
    assert_eq!(
        e.raw_get(b"r").unwrap(),
        Some(b"1".to_vec()),
        "raw ignores the watermark"
    );
}

/// A bad raw operation anywhere rejects the whole raw batch.
pub fn bad_raw_op_rejects_the_whole_raw_batch<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    let limits = e.limits();
    let bad: Vec<Vec<RawOp>> = vec![
        vec![RawOp::put("a", "1"), RawOp::put("", "x")],
        vec![RawOp::put("a", "1"), RawOp::delete("")],
        vec![
            RawOp::put("a", "1"),
            RawOp::put(vec![b'k'; limits.max_key_size + 1], "x"),
        ],
        vec![
            RawOp::put("a", "1"),
            RawOp::put("b", vec![0u8; limits.max_value_size + 1]),
        ],
    ];
    for ops in &bad {
        for durability in [Durability::Sync, Durability::Buffered] {
            let err = expect_err(e.raw_write(ops, durability));
            assert!(
                matches!(
                    err,
                    EngineError::EmptyKey { .. }
                        | EngineError::KeyTooLarge { .. }
                        | EngineError::ValueTooLarge { .. }
                ),
                "{err:?}"
            );
        }
    }
    assert!(e.raw_scan(&KeyRange::all(), 10).unwrap().is_empty());
    assert!(matches!(
        expect_err(e.raw_get(b"")),
        EngineError::EmptyKey { .. }
    ));
}
