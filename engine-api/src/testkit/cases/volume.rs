//! Volume cases: large values, many versions of one key, 100k keys, reopen with
//! everything at once, and snapshots/restores over populated stores. These were the
//! persistent engines' own tests; they run for every engine now.

use std::path::Path;
use std::sync::Arc;

use crate::stream::SnapshotWriter;
use crate::testkit::Harness;
use crate::{
    CompactionScope, Durability, EngineError, EngineSnapshot, KeyRange, Mutation, MvccEngine,
    RawKeyspace, RawOp, RetentionController, Version, WriteBatch,
};

fn open<H: Harness>(harness: &H, dir: &Path) -> H::Engine {
    harness.open(dir).expect("open the engine under test")
}

fn big_value(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

/// Values of several MiB (up to the default limit) survive a reopen and a snapshot round trip (persistent engines).
pub fn values_of_several_mib_survive_reopen_and_a_snapshot_round_trip<H: Harness>(harness: &H) {
    if !harness.persistent() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sizes = [3 << 20, 8 << 20, (32 << 20) - 9];
    {
        let engine = open(harness, dir.path());
        for (i, size) in sizes.iter().enumerate() {
            engine
                .put_at(
                    format!("big{i}").as_bytes(),
                    &big_value(*size, i as u8),
                    10 + i as u64,
                    0,
                )
                .unwrap();
        }
        let too_big = vec![0u8; engine.limits().max_value_size + 1];
        assert!(matches!(
            engine.put_at(b"huge", &too_big, 20, 0),
            Err(EngineError::ValueTooLarge { .. })
        ));
    }
    let engine = open(harness, dir.path());
    for (i, size) in sizes.iter().enumerate() {
        let found = engine.get_at(format!("big{i}").as_bytes(), 100).unwrap();
        assert_eq!(
            found.as_deref(),
            Some(big_value(*size, i as u8).as_slice()),
            "big{i}"
        );
    }
    let mut stream = Vec::new();
    engine.snapshot().unwrap().write_to(&mut stream).unwrap();
    let copy_dir = tempfile::tempdir().unwrap();
    let copy = open(harness, copy_dir.path());
    copy.restore(&mut stream.as_slice()).unwrap();
    let all = KeyRange::all();
    assert_eq!(
        copy.scan_at(&all, 10, 100).unwrap(),
        engine.scan_at(&all, 10, 100).unwrap()
    );
}

/// Thousands of versions of one key read, scan and compact correctly.
pub fn thousands_of_versions_of_one_key_read_scan_and_compact_correctly<H: Harness>(harness: &H) {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(harness, dir.path());
    // Most versions arrive in one restore (as a Raft snapshot would bring them); the
    // newest go through the write path.
    const LOADED: u64 = 5000;
    const VERSIONS: u64 = 5200;
    let mut stream = Vec::new();
    let mut writer = SnapshotWriter::new(&mut stream, LOADED, 0).unwrap();
    writer.push(b"hos", &Version::value(1, "before")).unwrap();
    for ts in (2..=LOADED).rev() {
        writer
            .push(b"hot", &Version::value(ts, format!("v{ts}")))
            .unwrap();
    }
    writer.push(b"hot\0", &Version::value(1, "after")).unwrap();
    writer.finish().unwrap();
    engine.restore(&mut stream.as_slice()).unwrap();
    for ts in LOADED + 1..=VERSIONS {
        let m = [Mutation::put("hot", format!("v{ts}"))];
        let durability = if ts == VERSIONS {
            Durability::Sync
        } else {
            Durability::Buffered
        };
        engine
            .write(&WriteBatch::new(&m, ts).with_durability(durability))
            .unwrap();
    }
    for ts in [
        2,
        3,
        777,
        2500,
        LOADED,
        LOADED + 1,
        VERSIONS - 1,
        VERSIONS,
        u64::MAX,
    ] {
        let expected = format!("v{}", ts.min(VERSIONS));
        assert_eq!(
            engine.get_at(b"hot", ts).unwrap(),
            Some(expected.into_bytes()),
            "ts {ts}"
        );
    }
    assert_eq!(engine.get_at(b"hot", 1).unwrap(), None);
    // At ts 1 the scan must skip all newer versions of "hot" and still find its
    // neighbours, forwards and backwards.
    let keys = |pairs: Vec<crate::KvPair>| pairs.into_iter().map(|p| p.key).collect::<Vec<_>>();
    let all = KeyRange::all();
    assert_eq!(
        keys(engine.scan_at(&all, 10, 1).unwrap()),
        vec![b"hos".to_vec(), b"hot\0".to_vec()]
    );
    assert_eq!(
        keys(engine.reverse_scan_at(&all, 10, 1).unwrap()),
        vec![b"hot\0".to_vec(), b"hos".to_vec()]
    );
    assert_eq!(keys(engine.scan_at(&all, 10, 3000).unwrap()).len(), 3);

    let stats = engine.compact(5100, &CompactionScope::All).unwrap();
    assert_eq!(
        stats.versions_removed,
        5100 - 2,
        "versions 2..5100 but the anchor at 5100"
    );
    assert!(matches!(
        engine.get_at(b"hot", 5099),
        Err(EngineError::ReadTsCompacted {
            read_ts: 5099,
            min_retained: 5100
        })
    ));
    assert_eq!(
        engine.get_at(b"hot", 5100).unwrap(),
        Some(b"v5100".to_vec())
    );
    assert_eq!(
        engine.get_at(b"hot", 5150).unwrap(),
        Some(b"v5150".to_vec())
    );
    assert_eq!(
        engine.get_at(b"hos", 5100).unwrap(),
        Some(b"before".to_vec())
    );
    assert_eq!(engine.latest_commit_ts(b"hot").unwrap(), Some(VERSIONS));
    if !harness.persistent() {
        return;
    }
    drop(engine);
    let engine = open(harness, dir.path());
    assert_eq!(engine.min_retained_ts().unwrap(), 5100);
    assert_eq!(
        engine.get_at(b"hot", 5101).unwrap(),
        Some(b"v5101".to_vec())
    );
    let mut image = Vec::new();
    let stats = engine.snapshot().unwrap().write_to(&mut image).unwrap();
    assert_eq!((stats.keys, stats.versions), (3, 2 + (VERSIONS - 5100 + 1)));
}

/// A hundred thousand keys written in batches scan and read back.
pub fn a_hundred_thousand_keys_written_in_batches_scan_and_read_back<H: Harness>(harness: &H) {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(harness, dir.path());
    const KEYS: usize = 100_000;
    const BATCH: usize = 2_000;
    let key = |i: usize| format!("key/{i:08}").into_bytes();
    for (n, start) in (0..KEYS).step_by(BATCH).enumerate() {
        let m: Vec<Mutation> = (start..start + BATCH)
            .map(|i| Mutation::put(key(i), i.to_be_bytes()))
            .collect();
        engine
            .write(&WriteBatch::new(&m, 1 + n as u64).with_durability(Durability::Buffered))
            .unwrap();
    }
    let ts = u64::MAX;
    let pairs = engine.scan_at(&KeyRange::all(), usize::MAX, ts).unwrap();
    assert_eq!(pairs.len(), KEYS);
    for (i, pair) in pairs.iter().enumerate() {
        assert_eq!(
            (pair.key.as_slice(), pair.value.as_slice()),
            (key(i).as_slice(), &i.to_be_bytes()[..])
        );
    }
    let last = engine.reverse_scan_at(&KeyRange::all(), 3, ts).unwrap();
    assert_eq!(
        last.iter().map(|p| p.key.clone()).collect::<Vec<_>>(),
        vec![key(KEYS - 1), key(KEYS - 2), key(KEYS - 3)]
    );
    for i in 0..KEYS {
        assert_eq!(
            engine.get_at(&key(i), ts).unwrap(),
            Some(i.to_be_bytes().to_vec()),
            "key {i}"
        );
    }
    let range = KeyRange::new(key(500), key(1500));
    assert_eq!(engine.scan_at(&range, usize::MAX, ts).unwrap().len(), 1000);
    assert_eq!(engine.last_commit_ts().unwrap(), (KEYS / BATCH) as u64);
}

/// Reopening continues with the data, counters, watermark and raw keyspace (persistent engines).
pub fn reopening_continues_with_data_counters_watermark_and_raw_keyspace<H: Harness>(harness: &H) {
    if !harness.persistent() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = open(harness, dir.path());
        let m = [Mutation::put("a", "1"), Mutation::put("b", "2")];
        let raw = [RawOp::put("raft/applied", 7u64.to_be_bytes())];
        engine
            .write(&WriteBatch::new(&m, 10).with_raw(&raw))
            .unwrap();
        engine.delete_at(b"b", 20).unwrap();
        engine.set_min_retained_ts(15).unwrap();
        // A buffered write followed by a synced one is durable too.
        let m = [Mutation::put("c", "3")];
        engine
            .write(&WriteBatch::new(&m, 25).with_durability(Durability::Buffered))
            .unwrap();
        engine
            .raw_write(&[RawOp::put("raft/vote", "n1")], Durability::Sync)
            .unwrap();
    }
    {
        let engine = open(harness, dir.path());
        assert_eq!(engine.last_commit_ts().unwrap(), 25);
        assert_eq!(engine.min_retained_ts().unwrap(), 15);
        assert_eq!(engine.get_at(b"a", 30).unwrap(), Some(b"1".to_vec()));
        assert_eq!(engine.get_at(b"b", 15).unwrap(), Some(b"2".to_vec()));
        assert_eq!(engine.get_at(b"b", 30).unwrap(), None);
        assert_eq!(engine.get_at(b"c", 30).unwrap(), Some(b"3".to_vec()));
        assert_eq!(
            engine.raw_get(b"raft/applied").unwrap(),
            Some(7u64.to_be_bytes().to_vec())
        );
        assert_eq!(engine.raw_get(b"raft/vote").unwrap(), Some(b"n1".to_vec()));
        engine.put_at(b"d", b"4", 40, 0).unwrap();
    }
    let engine = open(harness, dir.path());
    assert_eq!(engine.last_commit_ts().unwrap(), 40);
    assert_eq!(engine.scan_at(&KeyRange::all(), 10, 40).unwrap().len(), 3);
}

/// A snapshot streams a consistent image while writers continue.
pub fn a_snapshot_streams_a_consistent_image_while_writers_continue<H: Harness>(harness: &H) {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(open(harness, dir.path()));
    let keys: Vec<Vec<u8>> = (0..500).map(|i| format!("k{i:04}").into_bytes()).collect();
    let m: Vec<Mutation> = keys
        .iter()
        .map(|k| Mutation::put(k.clone(), "before"))
        .collect();
    engine.write(&WriteBatch::new(&m, 10)).unwrap();
    let expected = engine.scan_at(&KeyRange::all(), usize::MAX, 10).unwrap();
    let snapshot = engine.snapshot().unwrap();

    let writer = {
        let engine = Arc::clone(&engine);
        let keys = keys.clone();
        std::thread::spawn(move || {
            for (n, key) in keys.iter().enumerate() {
                let ts = 11 + n as u64;
                let m = [
                    Mutation::put(key.clone(), format!("after{ts}")),
                    Mutation::delete(keys[(n + 1) % keys.len()].clone()),
                ];
                engine
                    .write(&WriteBatch::new(&m, ts).with_durability(Durability::Buffered))
                    .unwrap();
            }
            engine.compact(300, &CompactionScope::All).unwrap();
        })
    };
    // Stream on another thread, as a Raft snapshot transfer would.
    let streamer = std::thread::spawn(move || {
        let mut stream = Vec::new();
        let stats = snapshot.write_to(&mut stream).unwrap();
        (stream, stats)
    });
    let (stream, stats) = streamer.join().unwrap();
    writer.join().unwrap();
    assert_eq!(stats.keys, 500);
    assert_eq!(stats.versions, 500);

    let copy_dir = tempfile::tempdir().unwrap();
    let copy = open(harness, copy_dir.path());
    copy.restore(&mut stream.as_slice()).unwrap();
    assert_eq!(copy.last_commit_ts().unwrap(), 10);
    assert_eq!(
        copy.scan_at(&KeyRange::all(), usize::MAX, u64::MAX)
            .unwrap(),
        expected
    );
    assert_ne!(
        engine
            .scan_at(&KeyRange::all(), usize::MAX, u64::MAX)
            .unwrap(),
        expected
    );
}

/// A corrupt restore over a populated store leaves the previous content.
pub fn a_corrupt_restore_leaves_the_previous_content<H: Harness>(harness: &H) {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(harness, dir.path());
    let source_dir = tempfile::tempdir().unwrap();
    let source = open(harness, source_dir.path());
    let m: Vec<Mutation> = (0..3000)
        .map(|i| Mutation::put(format!("s{i}"), vec![7u8; 300]))
        .collect();
    source.write(&WriteBatch::new(&m, 50)).unwrap();
    let mut stream = Vec::new();
    source.snapshot().unwrap().write_to(&mut stream).unwrap();

    engine.put_at(b"mine", b"kept", 5, 0).unwrap();
    let truncated = &stream[..stream.len() * 2 / 3];
    assert!(matches!(
        engine.restore(&mut &truncated[..]),
        Err(EngineError::Corrupted(_))
    ));
    assert_eq!(engine.get_at(b"mine", 5).unwrap(), Some(b"kept".to_vec()));
    assert_eq!(engine.get_at(b"s1", 60).unwrap(), None);
    assert_eq!(engine.last_commit_ts().unwrap(), 5);
    engine.restore(&mut stream.as_slice()).unwrap();
    assert_eq!(engine.get_at(b"mine", 60).unwrap(), None);
    assert_eq!(
        engine
            .scan_at(&KeyRange::all(), usize::MAX, 60)
            .unwrap()
            .len(),
        3000
    );
}
