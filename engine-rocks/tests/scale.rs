//! Sizes beyond the kit's: multi-MiB values, thousands of versions of one key, and a
//! store of 100k+ keys.

mod harness;

use elastickv_engine_api::testkit::Harness;
use elastickv_engine_api::{
    CompactionScope, EngineSnapshot, KeyRange, Mutation, MvccEngine, RetentionController,
    WriteBatch,
};
use harness::Rocks;

fn large_value(seed: u8, len: usize) -> Vec<u8> {
    // Not constant, so compression cannot make it small.
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ seed)
        .collect()
}

#[test]
fn multi_mib_values_round_trip_through_reopen_and_restore() {
    let dir = tempfile::tempdir().unwrap();
    let sizes = [3 * 1024 * 1024, 8 * 1024 * 1024, 31 * 1024 * 1024];
    let values: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &len)| large_value(i as u8, len))
        .collect();
    {
        let engine = Rocks.open(dir.path()).unwrap();
        for (i, value) in values.iter().enumerate() {
            engine
                .put_at(format!("big{i}").as_bytes(), value, 10 + i as u64, 0)
                .unwrap();
        }
        // An older version of one of them stays readable below the newer one.
        engine.put_at(b"big0", b"small", 5, 0).unwrap();
    }
    let engine = Rocks.open(dir.path()).unwrap();
    for (i, value) in values.iter().enumerate() {
        let got = engine
            .get_at(format!("big{i}").as_bytes(), u64::MAX)
            .unwrap();
        assert_eq!(
            got.as_deref(),
            Some(value.as_slice()),
            "big{i} after reopen"
        );
    }
    assert_eq!(engine.get_at(b"big0", 5).unwrap(), Some(b"small".to_vec()));

    let mut stream = Vec::new();
    engine.snapshot().unwrap().write_to(&mut stream).unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    let other = Rocks.open(other_dir.path()).unwrap();
    let stats = other.restore(&mut stream.as_slice()).unwrap();
    assert_eq!(stats.keys, 3);
    assert_eq!(stats.versions, 4);
    for (i, value) in values.iter().enumerate() {
        let got = other
            .get_at(format!("big{i}").as_bytes(), u64::MAX)
            .unwrap();
        assert_eq!(
            got.as_deref(),
            Some(value.as_slice()),
            "big{i} after restore"
        );
    }
}

#[test]
fn thousands_of_versions_of_one_key_read_and_compact_correctly() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Rocks.open(dir.path()).unwrap();
    const VERSIONS: u64 = 5000;
    for ts in 1..=VERSIONS {
        if ts % 100 == 0 {
            engine.delete_at(b"hot", ts).unwrap();
        } else {
            engine
                .put_at(b"hot", format!("v{ts}").as_bytes(), ts, 0)
                .unwrap();
        }
    }
    // Neighbours that share the prefix must not be disturbed by skipping versions.
    engine.put_at(b"hot\0", b"after", 7, 0).unwrap();
    engine.put_at(b"ho", b"before", 7, 0).unwrap();

    for ts in [1, 99, 100, 101, 2500, 4999, 5000] {
        let expected = (ts % 100 != 0).then(|| format!("v{ts}").into_bytes());
        assert_eq!(engine.get_at(b"hot", ts).unwrap(), expected, "read at {ts}");
    }
    let scan = engine.scan_at(&KeyRange::all(), 10, 4321).unwrap();
    let keys: Vec<&[u8]> = scan.iter().map(|p| p.key.as_slice()).collect();
    assert_eq!(keys, [&b"ho"[..], b"hot", b"hot\0"]);
    assert_eq!(scan[1].value, b"v4321");
    let reverse = engine.reverse_scan_at(&KeyRange::all(), 10, 4321).unwrap();
    assert_eq!(reverse.len(), 3);
    assert_eq!(reverse[1].value, b"v4321");

    let stats = engine.compact(4550, &CompactionScope::All).unwrap();
    // Versions 1..=4549 are older than the anchor (4550 itself is a tombstone, which
    // may go too).
    assert!(stats.versions_removed >= 4549, "{stats:?}");
    assert_eq!(engine.min_retained_ts().unwrap(), 4550);
    assert_eq!(engine.get_at(b"hot", 4550).unwrap(), None);
    assert_eq!(
        engine.get_at(b"hot", 4551).unwrap(),
        Some(b"v4551".to_vec())
    );
    assert_eq!(engine.get_at(b"hot", u64::MAX).unwrap(), None);
    assert_eq!(
        engine.get_at(b"hot", 4999).unwrap(),
        Some(b"v4999".to_vec())
    );
    assert!(engine.get_at(b"hot", 4549).is_err());
    assert_eq!(
        engine.get_at(b"hot\0", 4600).unwrap(),
        Some(b"after".to_vec())
    );

    drop(engine);
    let engine = Rocks.open(dir.path()).unwrap();
    assert_eq!(engine.min_retained_ts().unwrap(), 4550);
    let mut remaining = 0;
    engine
        .snapshot()
        .unwrap()
        .for_each_version(&mut |key, _| {
            if key == b"hot" {
                remaining += 1;
            }
            Ok(true)
        })
        .unwrap();
    assert!(remaining <= 451, "{remaining} versions of the hot key left");
}

#[test]
fn a_hundred_thousand_keys_scan_in_order_and_survive_reopen() {
    const KEYS: usize = 120_000;
    const BATCH: usize = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let key = |i: usize| format!("user/{i:08}").into_bytes();
    {
        let engine = Rocks.open(dir.path()).unwrap();
        for (n, chunk) in (0..KEYS).collect::<Vec<_>>().chunks(BATCH).enumerate() {
            let mutations: Vec<Mutation> = chunk
                .iter()
                .map(|&i| Mutation::put(key(i), format!("value-{i}")))
                .collect();
            engine
                .write(&WriteBatch::new(&mutations, 1 + n as u64))
                .unwrap();
        }
        assert_eq!(engine.last_commit_ts().unwrap(), (KEYS / BATCH) as u64);
    }
    let engine = Rocks.open(dir.path()).unwrap();
    let all = engine
        .scan_at(&KeyRange::all(), usize::MAX, u64::MAX)
        .unwrap();
    assert_eq!(all.len(), KEYS);
    assert!(all.windows(2).all(|w| w[0].key < w[1].key));
    assert_eq!(all[12_345].key, key(12_345));
    assert_eq!(all[12_345].value, b"value-12345");

    // A read below a key's only version sees nothing; pages continue where they stop.
    let first_batch_only = engine.scan_at(&KeyRange::all(), usize::MAX, 1).unwrap();
    assert_eq!(first_batch_only.len(), BATCH);
    let page = engine
        .scan_at(&KeyRange::from(key(99_998)), 5, u64::MAX)
        .unwrap();
    let page_keys: Vec<Vec<u8>> = page.into_iter().map(|p| p.key).collect();
    assert_eq!(page_keys, (99_998..100_003).map(key).collect::<Vec<_>>());
    let tail = engine
        .reverse_scan_at(&KeyRange::all(), 3, u64::MAX)
        .unwrap();
    let tail_keys: Vec<Vec<u8>> = tail.into_iter().map(|p| p.key).collect();
    assert_eq!(tail_keys, [key(KEYS - 1), key(KEYS - 2), key(KEYS - 3)]);
    for i in [0, 1, 65_535, KEYS - 1] {
        assert_eq!(
            engine.get_at(&key(i), u64::MAX).unwrap(),
            Some(format!("value-{i}").into_bytes())
        );
    }
}
