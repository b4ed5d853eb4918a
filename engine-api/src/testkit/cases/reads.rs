//! Point reads, `latest_commit_ts` and the visibility rule (ENGINE.md sections 1-4).

use super::PREFIX_KEYS;
use crate::testkit::fixture::{dump, expect_err, Fixture};
use crate::testkit::Harness;
use crate::{EngineError, MvccEngine, RetentionController};

/// A read sees the newest version at or below its timestamp, nothing before the first.
pub fn get_returns_newest_version_at_or_below_read_ts<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    for ts in [10, 20, 30] {
        e.put_at(b"k", format!("v{ts}").as_bytes(), ts, 0).unwrap();
    }
    let at = |ts| e.get_at(b"k", ts).unwrap();
    assert_eq!(at(0), None, "no version at or below ts 0");
    assert_eq!(at(9), None);
    assert_eq!(at(10), Some(b"v10".to_vec()));
    assert_eq!(at(19), Some(b"v10".to_vec()));
    assert_eq!(at(20), Some(b"v20".to_vec()));
    assert_eq!(at(29), Some(b"v20".to_vec()));
    assert_eq!(at(30), Some(b"v30".to_vec()));
    assert_eq!(at(u64::MAX), Some(b"v30".to_vec()));
    assert_eq!(e.get_at(b"missing", u64::MAX).unwrap(), None);
}

/// Writes may arrive out of timestamp order; reads still see the newest at or below.
pub fn versions_written_out_of_order_are_read_by_timestamp<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    e.put_at(b"k", b"v30", 30, 0).unwrap();
    e.put_at(b"k", b"v10", 10, 0).unwrap();
    e.put_at(b"k", b"v20", 20, 0).unwrap();
    assert_eq!(e.get_at(b"k", 15).unwrap(), Some(b"v10".to_vec()));
    assert_eq!(e.get_at(b"k", 25).unwrap(), Some(b"v20".to_vec()));
    assert_eq!(e.get_at(b"k", 35).unwrap(), Some(b"v30".to_vec()));
    assert_eq!(e.latest_commit_ts(b"k").unwrap(), Some(30));
    assert_eq!(e.last_commit_ts().unwrap(), 30);
}

/// A tombstone hides the key and every older value; a later put makes it visible again.
pub fn tombstone_hides_key_until_a_newer_put<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    e.put_at(b"k", b"v10", 10, 0).unwrap();
    e.delete_at(b"k", 20).unwrap();
    e.put_at(b"k", b"v30", 30, 0).unwrap();
    assert_eq!(e.get_at(b"k", 15).unwrap(), Some(b"v10".to_vec()));
    assert_eq!(e.get_at(b"k", 20).unwrap(), None);
    assert_eq!(e.get_at(b"k", 29).unwrap(), None);
    assert!(!e.exists_at(b"k", 25).unwrap());
    assert_eq!(e.get_at(b"k", 30).unwrap(), Some(b"v30".to_vec()));
    e.delete_at(b"never-written", 40).unwrap();
    assert_eq!(e.get_at(b"never-written", 50).unwrap(), None);
    assert_eq!(e.latest_commit_ts(b"never-written").unwrap(), Some(40));
}

/// Writing the same key at the same ts replaces the version (re-applying is harmless).
pub fn same_ts_write_replaces_the_version<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    e.put_at(b"k", b"first", 10, 0).unwrap();
    e.put_at(b"k", b"second", 10, 0).unwrap();
    assert_eq!(e.get_at(b"k", 10).unwrap(), Some(b"second".to_vec()));
    e.put_at(b"k", b"second", 10, 0).unwrap();
    assert_eq!(
        dump(e)[&b"k".to_vec()].len(),
        1,
        "one version per (key, ts)"
    );
    e.delete_at(b"k", 10).unwrap();
    assert_eq!(e.get_at(b"k", 10).unwrap(), None);
    e.put_at(b"k", b"third", 10, 0).unwrap();
    assert_eq!(e.get_at(b"k", 10).unwrap(), Some(b"third".to_vec()));
    assert_eq!(dump(e)[&b"k".to_vec()].len(), 1);
}

/// `exists_at` follows exactly the rule of `get_at`, also for empty values.
pub fn exists_at_follows_the_visibility_rule<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    e.put_at(b"empty", b"", 10, 0).unwrap();
    e.put_at(b"ttl", b"x", 10, 15).unwrap();
    e.put_at(b"gone", b"x", 10, 0).unwrap();
    e.delete_at(b"gone", 12).unwrap();
    assert_eq!(e.get_at(b"empty", 10).unwrap(), Some(Vec::new()));
    assert!(
        e.exists_at(b"empty", 10).unwrap(),
        "an empty value is a value"
    );
    assert!(!e.exists_at(b"empty", 9).unwrap());
    assert!(e.exists_at(b"ttl", 14).unwrap());
    assert!(!e.exists_at(b"ttl", 15).unwrap());
    assert!(e.exists_at(b"gone", 11).unwrap());
    assert!(!e.exists_at(b"gone", 12).unwrap());
    assert!(!e.exists_at(b"nothing", 12).unwrap());
}

/// Keys that are prefixes of each other (`k`, `k\0`, `k1`, `k10`, `k\xff`) are fully
/// independent for point reads and `latest_commit_ts`.
pub fn prefix_related_keys_are_independent_for_point_reads<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    // Each key gets its own distinct set of versions.
    for (i, key) in PREFIX_KEYS.iter().enumerate() {
        let base = 10 * (i as u64 + 1);
        e.put_at(key, &[b'a', i as u8], base, 0).unwrap();
        e.put_at(key, &[b'b', i as u8], base + 5, 0).unwrap();
    }
    e.delete_at(b"k1", 100).unwrap();
    for (i, key) in PREFIX_KEYS.iter().enumerate() {
        let base = 10 * (i as u64 + 1);
        assert_eq!(e.get_at(key, base - 1).unwrap(), None, "{key:?}");
        assert_eq!(e.get_at(key, base).unwrap(), Some(vec![b'a', i as u8]));
        assert_eq!(e.get_at(key, base + 4).unwrap(), Some(vec![b'a', i as u8]));
        assert_eq!(e.get_at(key, base + 5).unwrap(), Some(vec![b'b', i as u8]));
        let expected_latest = if *key == b"k1" { 100 } else { base + 5 };
        assert_eq!(e.latest_commit_ts(key).unwrap(), Some(expected_latest));
    }
    assert_eq!(e.get_at(b"k1", 200).unwrap(), None);
    assert_eq!(e.get_at(b"k10", 200).unwrap(), Some(vec![b'b', 3]));
    for absent in [&b"k\0\0"[..], b"k100", b"k\xff\xff", b"j", b"l", b"k2"] {
        assert_eq!(e.get_at(absent, u64::MAX).unwrap(), None, "{absent:?}");
        assert_eq!(e.latest_commit_ts(absent).unwrap(), None, "{absent:?}");
    }
}

/// `latest_commit_ts` reports the newest version of any kind and ignores the watermark.
pub fn latest_commit_ts_counts_tombstones_and_expired_versions<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    assert_eq!(e.latest_commit_ts(b"k").unwrap(), None);
    e.put_at(b"k", b"v", 10, 0).unwrap();
    assert_eq!(e.latest_commit_ts(b"k").unwrap(), Some(10));
    e.delete_at(b"k", 20).unwrap();
    assert_eq!(e.latest_commit_ts(b"k").unwrap(), Some(20));
    e.put_at(b"k", b"v", 30, 31).unwrap();
    assert_eq!(e.latest_commit_ts(b"k").unwrap(), Some(30));
    e.put_at(b"k", b"v", 5, 0).unwrap();
    assert_eq!(
        e.latest_commit_ts(b"k").unwrap(),
        Some(30),
        "an older write"
    );
    e.set_min_retained_ts(1000).unwrap();
    assert_eq!(
        e.latest_commit_ts(b"k").unwrap(),
        Some(30),
        "not subject to it"
    );
}

/// Every read below the watermark fails with `ReadTsCompacted`; reads at the watermark,
/// at 0 and at `u64::MAX` do not; writes below it are still accepted.
pub fn reads_below_the_watermark_fail_with_read_ts_compacted<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    e.put_at(b"k", b"v10", 10, 0).unwrap();
    e.set_min_retained_ts(20).unwrap();
    assert_eq!(e.min_retained_ts().unwrap(), 20);
    let compacted = |err: EngineError| {
        matches!(
            err,
            EngineError::ReadTsCompacted {
                read_ts: 19,
                min_retained: 20
            }
        )
    };
    let range = crate::KeyRange::all();
    assert!(compacted(expect_err(e.get_at(b"k", 19))));
    assert!(compacted(expect_err(e.exists_at(b"k", 19))));
    assert!(compacted(expect_err(e.scan_at(&range, 10, 19))));
    assert!(compacted(expect_err(e.reverse_scan_at(&range, 10, 19))));
    assert!(compacted(expect_err(e.get_at(b"missing", 19))));
    assert_eq!(e.get_at(b"k", 20).unwrap(), Some(b"v10".to_vec()));
    assert_eq!(e.get_at(b"k", 0).unwrap(), None);
    assert_eq!(e.get_at(b"k", u64::MAX).unwrap(), Some(b"v10".to_vec()));
    assert_eq!(e.scan_at(&range, 10, 0).unwrap(), Vec::new());
    assert_eq!(e.reverse_scan_at(&range, 10, u64::MAX).unwrap().len(), 1);
    e.put_at(b"k", b"v15", 15, 0).unwrap();
    assert_eq!(e.get_at(b"k", 20).unwrap(), Some(b"v15".to_vec()));
    assert_eq!(e.latest_commit_ts(b"k").unwrap(), Some(15));
}

/// Any byte sequence is a key: binary keys with zero and `0xff` bytes round-trip.
pub fn binary_keys_and_values_round_trip<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    let keys: [&[u8]; 6] = [b"\0", b"\0\0", b"\0\x01", b"\xff", b"\xff\0\xff", b"\x01\0"];
    for (i, key) in keys.iter().enumerate() {
        let value: Vec<u8> = (0..=255u8).chain([0, 0, i as u8]).collect();
        e.put_at(key, &value, 7, 0).unwrap();
    }
    for (i, key) in keys.iter().enumerate() {
        let value: Vec<u8> = (0..=255u8).chain([0, 0, i as u8]).collect();
        assert_eq!(e.get_at(key, 7).unwrap(), Some(value));
    }
    let scanned: Vec<Vec<u8>> = e
        .scan_at(&crate::KeyRange::all(), 100, 7)
        .unwrap()
        .into_iter()
        .map(|p| p.key)
        .collect();
    let mut sorted: Vec<Vec<u8>> = keys.iter().map(|k| k.to_vec()).collect();
    sorted.sort();
    assert_eq!(scanned, sorted);
}
