//! Compaction and the retention watermark (ENGINE.md sections 3 and 6).

use std::collections::BTreeMap;

use crate::testkit::fixture::{dump, expect_err, Fixture};
use crate::testkit::Harness;
use crate::{
    CompactionScope, EngineError, KeyRange, KvPair, MvccEngine, RetentionController, Version,
};

fn is_compacted(err: &EngineError, read_ts: u64, min_retained: u64) -> bool {
    matches!(err, EngineError::ReadTsCompacted { read_ts: r, min_retained: m } if *r == read_ts && *m == min_retained)
}

/// Everything a read at `ts` sees: every key's point read plus both full scans.
fn reads_at<E: MvccEngine>(
    e: &E,
    keys: &[&[u8]],
    ts: u64,
) -> (Vec<Option<Vec<u8>>>, Vec<KvPair>, Vec<KvPair>) {
    (
        keys.iter().map(|k| e.get_at(k, ts).unwrap()).collect(),
        e.scan_at(&KeyRange::all(), 1000, ts).unwrap(),
        e.reverse_scan_at(&KeyRange::all(), 1000, ts).unwrap(),
    )
}

/// The example of ENGINE.md: versions 10/20/30, compact(25): read@30 = v30,
/// read@25 = v20, read@15 fails with `ReadTsCompacted`; v10 is gone.
pub fn compaction_keeps_the_anchor_and_newer_versions<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    for ts in [10, 20, 30] {
        e.put_at(b"k", format!("v{ts}").as_bytes(), ts, 0).unwrap();
    }
    e.compact(25, &CompactionScope::All).unwrap();
    assert!(e.min_retained_ts().unwrap() >= 25);
    assert_eq!(e.get_at(b"k", 30).unwrap(), Some(b"v30".to_vec()));
    assert_eq!(e.get_at(b"k", 25).unwrap(), Some(b"v20".to_vec()));
    let err = expect_err(e.get_at(b"k", 15));
    assert!(is_compacted(&err, 15, 25), "{err:?}");
    let versions: Vec<u64> = dump(e)[&b"k".to_vec()].iter().map(|v| v.ts).collect();
    assert_eq!(
        versions,
        vec![30, 20],
        "v10 lies below the anchor and is removed"
    );
    assert_eq!(e.latest_commit_ts(b"k").unwrap(), Some(30));
}

/// A key's only version at or below `min_ts` is its anchor and stays readable.
pub fn single_version_is_kept_as_the_anchor<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    e.put_at(b"k", b"v", 10, 0).unwrap();
    e.put_at(b"ttl", b"t", 10, 1000).unwrap();
    e.compact(100, &CompactionScope::All).unwrap();
    assert_eq!(e.get_at(b"k", 100).unwrap(), Some(b"v".to_vec()));
    assert_eq!(e.get_at(b"ttl", 100).unwrap(), Some(b"t".to_vec()));
    assert_eq!(e.get_at(b"ttl", 1000).unwrap(), None);
    e.compact(200, &CompactionScope::All).unwrap();
    assert_eq!(e.get_at(b"k", u64::MAX).unwrap(), Some(b"v".to_vec()));
    assert_eq!(e.latest_commit_ts(b"k").unwrap(), Some(10));
}

/// Tombstone and expired anchors may be removed, but reads at and above `min_ts` are
/// unchanged, and compaction of everything hidden leaves those keys unreadable.
pub fn removing_hidden_anchors_leaves_reads_at_or_above_min_ts_unchanged<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    let keys: [&[u8]; 5] = [b"deleted", b"expired", b"revived", b"ttl-later", b"live"];
    e.put_at(b"deleted", b"v", 10, 0).unwrap();
    e.delete_at(b"deleted", 20).unwrap();
    e.put_at(b"expired", b"v", 10, 0).unwrap();
    e.put_at(b"expired", b"v", 20, 25).unwrap();
    e.put_at(b"revived", b"v", 10, 0).unwrap();
    e.delete_at(b"revived", 20).unwrap();
    e.put_at(b"revived", b"again", 40, 0).unwrap();
    e.put_at(b"ttl-later", b"v", 20, 45).unwrap();
    e.put_at(b"live", b"v", 10, 0).unwrap();
    let probe_ts = [30, 31, 39, 40, 44, 45, 50, u64::MAX];
    let before: Vec<_> = probe_ts.iter().map(|ts| reads_at(e, &keys, *ts)).collect();
    e.compact(30, &CompactionScope::All).unwrap();
    let after: Vec<_> = probe_ts.iter().map(|ts| reads_at(e, &keys, *ts)).collect();
    assert_eq!(before, after);
    let versions = dump(e);
    // Versions below the anchors are gone whether or not the hiding anchors stayed.
    for key in [&b"deleted"[..], b"expired", b"revived"] {
        let left = versions.get(key).map(Vec::len).unwrap_or(0);
        assert!(
            left <= if key == b"revived" { 2 } else { 1 },
            "{key:?}: {versions:?}"
        );
        assert!(versions
            .get(key)
            .is_none_or(|v| v.iter().all(|v| v.ts >= 20)));
    }
    assert_eq!(
        versions[&b"ttl-later".to_vec()].len(),
        1,
        "not hidden at 30: kept"
    );
    assert_eq!(e.get_at(b"revived", 40).unwrap(), Some(b"again".to_vec()));
}

/// `CompactionScope::Only` compacts only keys inside its ranges.
pub fn compaction_scope_only_touches_listed_ranges<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    let keys: [&[u8]; 5] = [b"a", b"k", b"k1", b"k10", b"z"];
    for key in keys {
        for ts in [10, 20, 30] {
            e.put_at(key, &[ts as u8], ts, 0).unwrap();
        }
    }
    let scope = CompactionScope::Only(vec![KeyRange::prefix(b"k1"), KeyRange::new("z", "zz")]);
    e.compact(25, &scope).unwrap();
    let counts: BTreeMap<Vec<u8>, usize> = dump(e).into_iter().map(|(k, v)| (k, v.len())).collect();
    let want: BTreeMap<Vec<u8>, usize> = [
        (&b"a"[..], 3usize),
        (b"k", 3),
        (b"k1", 2),
        (b"k10", 2),
        (b"z", 2),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_vec(), n))
    .collect();
    assert_eq!(counts, want);
    assert!(e.min_retained_ts().unwrap() >= 25);
    for key in keys {
        assert_eq!(e.get_at(key, 25).unwrap(), Some(vec![20u8]), "{key:?}");
    }
}

/// `CompactionScope::AllExcept` leaves the excluded ranges alone.
pub fn compaction_scope_all_except_leaves_excluded_ranges<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    let keys: [&[u8]; 4] = [b"data1", b"meta\0lock", b"meta\0lock\0x", b"metadata"];
    for key in keys {
        e.put_at(key, b"v10", 10, 0).unwrap();
        e.delete_at(key, 20).unwrap();
        e.put_at(key, b"v30", 30, 0).unwrap();
    }
    let scope = CompactionScope::AllExcept(vec![KeyRange::prefix(b"meta\0")]);
    e.compact(35, &scope).unwrap();
    let versions = dump(e);
    assert_eq!(versions[&b"meta\0lock".to_vec()].len(), 3);
    assert_eq!(versions[&b"meta\0lock\0x".to_vec()].len(), 3);
    assert_eq!(
        versions[&b"data1".to_vec()],
        vec![Version::value(30, "v30")]
    );
    assert_eq!(
        versions[&b"metadata".to_vec()],
        vec![Version::value(30, "v30")]
    );
}

/// The watermark only moves up: lower values are no-ops, for `set_min_retained_ts` and
/// for `compact` alike; writes below it are still accepted.
pub fn watermark_is_monotonic_and_never_lowered<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    assert_eq!(e.min_retained_ts().unwrap(), 0);
    e.put_at(b"k", b"v", 10, 0).unwrap();
    e.set_min_retained_ts(20).unwrap();
    e.set_min_retained_ts(10).unwrap();
    assert_eq!(e.min_retained_ts().unwrap(), 20);
    e.compact(15, &CompactionScope::All).unwrap();
    assert_eq!(e.min_retained_ts().unwrap(), 20);
    assert!(is_compacted(&expect_err(e.get_at(b"k", 19)), 19, 20));
    e.set_min_retained_ts(20).unwrap();
    assert_eq!(e.min_retained_ts().unwrap(), 20);
    e.compact(30, &CompactionScope::All).unwrap();
    assert_eq!(e.min_retained_ts().unwrap(), 30);
    e.put_at(b"k", b"below", 25, 0).unwrap();
    assert_eq!(e.get_at(b"k", 30).unwrap(), Some(b"below".to_vec()));
    let scope = CompactionScope::Only(vec![KeyRange::new("x", "y")]);
    e.compact(40, &scope).unwrap();
    assert_eq!(
        e.min_retained_ts().unwrap(),
        40,
        "a scoped compaction raises it too"
    );
}

/// Compacting repeatedly, and with nothing to do, is harmless.
pub fn repeated_compaction_is_idempotent<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    e.compact(5, &CompactionScope::All).unwrap();
    for i in 0..50u64 {
        let key = format!("key{:02}", i % 10);
        e.put_at(key.as_bytes(), &i.to_be_bytes(), 10 + i, 0)
            .unwrap();
    }
    e.compact(40, &CompactionScope::All).unwrap();
    let first = dump(e);
    e.compact(40, &CompactionScope::All).unwrap();
    assert_eq!(dump(e), first);
    for i in 0..10u64 {
        let key = format!("key{i:02}");
        let newest = (0..50).filter(|j| j % 10 == i).max().unwrap_or(0);
        assert_eq!(
            e.get_at(key.as_bytes(), u64::MAX).unwrap(),
            Some(newest.to_be_bytes().to_vec())
        );
        // Anchor at or below 40, then everything newer.
        let expected = (0..50).filter(|j| j % 10 == i && 10 + j > 40).count() + 1;
        assert_eq!(first[key.as_bytes()].len(), expected, "{key}");
    }
}

/// Compaction of many keys (more than any sensible batch) removes exactly what the
/// rule says and keeps every read at the watermark.
pub fn compaction_of_many_keys_keeps_reads_at_the_watermark<H: Harness>(harness: &H) {
    let fx = Fixture::new(harness);
    let e = fx.engine();
    let n = 6000u32;
    for ts in [10u64, 20] {
        let muts: Vec<crate::Mutation> = (0..n)
            .map(|i| crate::Mutation::put(format!("k{i:05}"), format!("{i}@{ts}")))
            .collect();
        e.write(&crate::WriteBatch::new(&muts, ts)).unwrap();
    }
    let before = e.scan_at(&KeyRange::all(), n as usize, 20).unwrap();
    let stats = e.compact(20, &CompactionScope::All).unwrap();
    assert_eq!(stats.versions_removed, u64::from(n));
    assert_eq!(e.scan_at(&KeyRange::all(), n as usize, 20).unwrap(), before);
    assert_eq!(dump(e).values().map(Vec::len).sum::<usize>(), n as usize);
}
