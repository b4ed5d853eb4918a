//! Forward and reverse scans (ENGINE.md section 4): ranges, limits, hidden keys.

use super::PREFIX_KEYS;
use crate::testkit::fixture::{expected, pairs, Fixture};
use crate::testkit::Harness;
use crate::{KeyRange, MvccEngine};

/// A scan range `[start, end)` and the keys it must return, ascending.
type RangeCase = (&'static [u8], &'static [u8], &'static [&'static [u8]]);

fn scan<E: MvccEngine>(e: &E, range: &KeyRange, limit: usize, ts: u64) -> Vec<(Vec<u8>, Vec<u8>)> {
    pairs(e.scan_at(range, limit, ts).unwrap())
}

fn rscan<E: MvccEngine>(e: &E, range: &KeyRange, limit: usize, ts: u64) -> Vec<(Vec<u8>, Vec<u8>)> {
    pairs(e.reverse_scan_at(range, limit, ts).unwrap())
}

fn abcde<E: MvccEngine>(e: &E) {
    for key in ["a", "b", "c", "d", "e"] {
        e.put_at(key.as_bytes(), key.to_uppercase().as_bytes(), 10, 0)
            .unwrap();
    }
}

/// A scan returns the visible pairs of `[start, end)` in ascending key order.
pub fn scan_returns_visible_pairs_of_half_open_range_ascending<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    abcde(e);
    let got = scan(e, &KeyRange::new("b", "d"), 100, 10);
    assert_eq!(got, expected(&[(b"b", b"B"), (b"c", b"C")]));
    let got = scan(e, &KeyRange::new("a", "b"), 100, 10);
    assert_eq!(
        got,
        expected(&[(b"a", b"A")]),
        "start included, end excluded"
    );
    let got = scan(e, &KeyRange::new("bb", "cc"), 100, 10);
    assert_eq!(got, expected(&[(b"c", b"C")]), "bounds need not be keys");
    assert_eq!(
        scan(e, &KeyRange::all(), 100, 9),
        Vec::new(),
        "before any write"
    );
}

/// A reverse scan covers the same key set, descending: the largest keys first.
pub fn reverse_scan_returns_largest_keys_first<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    abcde(e);
    let got = rscan(e, &KeyRange::new("b", "e"), 100, 10);
    assert_eq!(got, expected(&[(b"d", b"D"), (b"c", b"C"), (b"b", b"B")]));
    let got = rscan(e, &KeyRange::new("a", "e"), 2, 10);
    assert_eq!(
        got,
        expected(&[(b"d", b"D"), (b"c", b"C")]),
        "top two of [a, e)"
    );
    let got = rscan(e, &KeyRange::all(), 1, 10);
    assert_eq!(got, expected(&[(b"e", b"E")]));
    let got = scan(e, &KeyRange::all(), 2, 10);
    assert_eq!(got, expected(&[(b"a", b"A"), (b"b", b"B")]));
}

/// `limit == 0` returns nothing, in both directions.
pub fn scan_with_limit_zero_returns_nothing<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    abcde(e);
    assert_eq!(scan(e, &KeyRange::all(), 0, 10), Vec::new());
    assert_eq!(rscan(e, &KeyRange::all(), 0, 10), Vec::new());
    assert_eq!(scan(e, &KeyRange::new("a", "z"), 0, u64::MAX), Vec::new());
}

/// Empty and inverted ranges return nothing (never an error, never a panic).
pub fn empty_and_inverted_ranges_return_nothing<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    abcde(e);
    for range in [
        KeyRange::new("c", "c"),
        KeyRange::new("d", "b"),
        KeyRange::new("z", "a"),
        KeyRange::new("b", ""),
        KeyRange::new("", ""),
    ] {
        assert_eq!(scan(e, &range, 10, 10), Vec::new(), "{range:?}");
        assert_eq!(rscan(e, &range, 10, 10), Vec::new(), "{range:?}");
    }
}

/// `end == None` is unbounded and an empty start is the beginning, in both directions.
pub fn unbounded_end_reaches_the_last_key<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    abcde(e);
    e.put_at(b"\xff\xff\xff", b"last", 10, 0).unwrap();
    let got = scan(e, &KeyRange::from("d"), 100, 10);
    let want = expected(&[(b"d", b"D"), (b"e", b"E"), (b"\xff\xff\xff", b"last")]);
    assert_eq!(got, want);
    let mut reversed = want.clone();
    reversed.reverse();
    assert_eq!(rscan(e, &KeyRange::from("d"), 100, 10), reversed);
    assert_eq!(scan(e, &KeyRange::all(), 100, 10).len(), 6);
    assert_eq!(
        rscan(e, &KeyRange::all(), 100, 10)[0].0,
        b"\xff\xff\xff".to_vec()
    );
    let got = scan(e, &KeyRange::new("", "b"), 100, 10);
    assert_eq!(got, expected(&[(b"a", b"A")]));
}

/// Tombstoned, expired and not-yet-written keys are skipped without counting toward
/// the limit, in both directions.
pub fn hidden_keys_do_not_count_toward_the_limit<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    // a: live; b: deleted; c: expired at 20; d: written after the read ts; e: live;
    // f: live, g: deleted.
    e.put_at(b"a", b"A", 10, 0).unwrap();
    e.put_at(b"b", b"B", 10, 0).unwrap();
    e.delete_at(b"b", 15).unwrap();
    e.put_at(b"c", b"C", 10, 20).unwrap();
    e.put_at(b"d", b"D", 30, 0).unwrap();
    e.put_at(b"e", b"E", 10, 0).unwrap();
    e.put_at(b"f", b"F", 10, 0).unwrap();
    e.delete_at(b"g", 10).unwrap();
    let got = scan(e, &KeyRange::all(), 2, 25);
    assert_eq!(got, expected(&[(b"a", b"A"), (b"e", b"E")]));
    let got = rscan(e, &KeyRange::all(), 2, 25);
    assert_eq!(got, expected(&[(b"f", b"F"), (b"e", b"E")]));
    let got = scan(e, &KeyRange::from("b"), 1, 25);
    assert_eq!(got, expected(&[(b"e", b"E")]));
    let got = rscan(e, &KeyRange::new("a", "e"), 1, 25);
    assert_eq!(got, expected(&[(b"a", b"A")]));
    let got = scan(e, &KeyRange::all(), 100, 19);
    assert_eq!(got.len(), 4, "c is still live at 19: {got:?}");
    assert_eq!(scan(e, &KeyRange::new("b", "e"), 100, 25), Vec::new());
    assert_eq!(rscan(e, &KeyRange::new("b", "e"), 100, 25), Vec::new());
}

/// A scan returns one pair per key: the newest version visible at the read ts.
pub fn scan_returns_one_pair_per_key_at_its_visible_version<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    for ts in 1..=20u64 {
        e.put_at(b"a", format!("a{ts}").as_bytes(), ts, 0).unwrap();
        e.put_at(b"b", format!("b{ts}").as_bytes(), ts + 100, 0)
            .unwrap();
        e.put_at(b"c", format!("c{ts}").as_bytes(), ts * 2, 0)
            .unwrap();
    }
    let got = scan(e, &KeyRange::all(), 100, 15);
    assert_eq!(got, expected(&[(b"a", b"a15"), (b"c", b"c7")]));
    let got = rscan(e, &KeyRange::all(), 100, 15);
    assert_eq!(got, expected(&[(b"c", b"c7"), (b"a", b"a15")]));
    let got = scan(e, &KeyRange::all(), 100, 110);
    assert_eq!(
        got,
        expected(&[(b"a", b"a20"), (b"b", b"b10"), (b"c", b"c20")])
    );
    let got = rscan(e, &KeyRange::all(), 100, u64::MAX);
    assert_eq!(
        got,
        expected(&[(b"c", b"c20"), (b"b", b"b20"), (b"a", b"a20")])
    );
}

/// Prefix-related keys sort bytewise in both directions and range bounds between them
/// are exact.
pub fn scans_order_prefix_related_keys_bytewise<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    // Written in reverse order, each with several versions so that version ordering
    // cannot be confused with key ordering.
    for (i, key) in PREFIX_KEYS.iter().enumerate().rev() {
        for ts in [5, 10, 15] {
            e.put_at(key, &[i as u8, ts as u8], ts, 0).unwrap();
        }
    }
    e.put_at(b"j", b"before", 10, 0).unwrap();
    e.put_at(b"l", b"after", 10, 0).unwrap();
    let keys = |scan: Vec<(Vec<u8>, Vec<u8>)>| scan.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    let all: Vec<Vec<u8>> = PREFIX_KEYS.iter().map(|k| k.to_vec()).collect();
    let got = scan(e, &KeyRange::prefix(b"k"), 100, 12);
    assert_eq!(keys(got.clone()), all);
    assert!(got
        .iter()
        .enumerate()
        .all(|(i, (_, v))| v == &vec![i as u8, 10]));
    let mut rev = all.clone();
    rev.reverse();
    assert_eq!(keys(rscan(e, &KeyRange::prefix(b"k"), 100, 12)), rev);
    // [k, k1) holds k and k\0; [k1, k\xff) holds k1 and k10; [k\0, k10) holds k\0, k1.
    let cases: [RangeCase; 5] = [
        (b"k", b"k1", &[b"k", b"k\0"]),
        (b"k1", b"k\xff", &[b"k1", b"k10"]),
        (b"k\0", b"k10", &[b"k\0", b"k1"]),
        (b"k10", b"k\xff\0", &[b"k10", b"k\xff"]),
        (b"k\0\0", b"k1\0", &[b"k1"]),
    ];
    for (start, end, want) in cases {
        let want: Vec<Vec<u8>> = want.iter().map(|k| k.to_vec()).collect();
        let range = KeyRange::new(start, end);
        assert_eq!(keys(scan(e, &range, 100, 15)), want, "{range:?}");
        let mut want_rev = want.clone();
        want_rev.reverse();
        assert_eq!(keys(rscan(e, &range, 100, 15)), want_rev, "{range:?}");
    }
    assert_eq!(
        keys(rscan(e, &KeyRange::new("a", "k10"), 2, 15)),
        vec![b"k1".to_vec(), b"k\0".to_vec()]
    );
    assert_eq!(
        keys(scan(e, &KeyRange::from("k\0"), 2, 15)),
        vec![b"k\0".to_vec(), b"k1".to_vec()]
    );
}

/// A scan sees the state at its read timestamp even when newer versions exist for
/// every key, and stops at the limit.
pub fn scan_stops_at_the_limit_across_many_keys<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    let muts: Vec<crate::Mutation> = (0..500u32)
        .map(|i| crate::Mutation::put(format!("key{i:04}"), i.to_be_bytes()))
        .collect();
    e.write(&crate::WriteBatch::new(&muts, 10)).unwrap();
    let newer: Vec<crate::Mutation> = (0..500u32)
        .map(|i| crate::Mutation::put(format!("key{i:04}"), b"newer".to_vec()))
        .collect();
    e.write(&crate::WriteBatch::new(&newer, 20)).unwrap();
    let got = e.scan_at(&KeyRange::from("key0100"), 7, 15).unwrap();
    assert_eq!(got.len(), 7);
    assert_eq!(got[0].key, b"key0100".to_vec());
    assert_eq!(got[6].key, b"key0106".to_vec());
    assert_eq!(got[6].value, 106u32.to_be_bytes().to_vec());
    let got = e
        .reverse_scan_at(&KeyRange::new("key0100", "key0200"), 3, 15)
        .unwrap();
    let keys: Vec<Vec<u8>> = got.into_iter().map(|p| p.key).collect();
    assert_eq!(
        keys,
        vec![
            b"key0199".to_vec(),
            b"key0198".to_vec(),
            b"key0197".to_vec()
        ]
    );
    assert_eq!(e.scan_at(&KeyRange::all(), 1000, 25).unwrap().len(), 500);
}
