//! What is LMDB's own: the memory map that grows with the data, the key-size limit set
//! by the page size, and the single writer.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use elastickv_engine_api::{
    Durability, EngineError, EngineSnapshot, KeyRange, Mutation, MvccEngine, RawKeyspace, RawOp,
    WriteBatch,
};
use elastickv_engine_lmdb::{open_lmdb, LmdbEngine, LmdbOptions};

const TINY_MAP: usize = 64 * 1024;

fn open_with(dir: &Path, options: LmdbOptions) -> LmdbEngine {
    open_lmdb(dir, options).expect("open LMDB engine")
}

fn tiny(grow_wait: Duration) -> LmdbOptions {
    LmdbOptions {
        initial_map_size: TINY_MAP,
        grow_wait,
        ..LmdbOptions::default()
    }
}

fn value(i: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i * 7 + j) as u8).collect()
}

#[test]
fn the_map_grows_from_a_tiny_start_to_hold_far_more_data() {
    let dir = tempfile::tempdir().unwrap();
    let options = tiny(Duration::from_secs(60));
    {
        let engine = open_with(dir.path(), options.clone());
        for batch in 0..160 {
            let m: Vec<Mutation> = (0..64)
                .map(|i| Mutation::put(format!("k{batch:03}/{i:02}"), value(batch * 64 + i, 4096)))
                .collect();
            let durability = if batch % 40 == 39 {
                Durability::Sync
            } else {
                Durability::Buffered
            };
            engine
                .write(&WriteBatch::new(&m, 1 + batch as u64).with_durability(durability))
                .unwrap();
        }
        assert!(
            engine.store().map_size() >= 40 << 20,
            "40 MiB of values in a map of {} bytes",
            engine.store().map_size()
        );
    }
    // Reopening with the same tiny setting keeps the data and keeps growing.
    let engine = open_with(dir.path(), options);
    let pairs = engine
        .scan_at(&KeyRange::all(), usize::MAX, u64::MAX)
        .unwrap();
    assert_eq!(pairs.len(), 160 * 64);
    for (n, pair) in pairs.iter().enumerate() {
        assert_eq!(
            pair.value,
            value(n, 4096),
            "{:?}",
            String::from_utf8_lossy(&pair.key)
        );
    }
    engine.put_at(b"more", &value(1, 1 << 20), 1000, 0).unwrap();
    assert_eq!(
        engine.get_at(b"more", 1000).unwrap(),
        Some(value(1, 1 << 20))
    );
}

#[test]
fn one_write_larger_than_the_whole_map_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_with(dir.path(), tiny(Duration::from_secs(60)));
    engine.put_at(b"small", b"first", 1, 0).unwrap();
    let m = [
        Mutation::put("big", value(3, 20 << 20)),
        Mutation::put("small", "second"),
    ];
    let raw = [RawOp::put("applied", 2u64.to_be_bytes())];
    engine
        .write(&WriteBatch::new(&m, 2).with_raw(&raw))
        .unwrap();
    assert_eq!(engine.get_at(b"big", 2).unwrap(), Some(value(3, 20 << 20)));
    assert_eq!(
        engine.get_at(b"small", 2).unwrap(),
        Some(b"second".to_vec())
    );
    assert_eq!(engine.get_at(b"small", 1).unwrap(), Some(b"first".to_vec()));
    assert_eq!(
        engine.raw_get(b"applied").unwrap(),
        Some(2u64.to_be_bytes().to_vec())
    );
    assert_eq!(engine.last_commit_ts().unwrap(), 2);
}

#[test]
fn a_restore_larger_than_the_map_grows_it() {
    let source_dir = tempfile::tempdir().unwrap();
    let source = open_with(source_dir.path(), LmdbOptions::default());
    for batch in 0..6u64 {
        let m: Vec<Mutation> = (0..500)
            .map(|i| Mutation::put(format!("r{batch}/{i:03}"), value(i, 10 * 1024)))
            .collect();
        source
            .write(&WriteBatch::new(&m, 10 + batch).with_durability(Durability::Buffered))
            .unwrap();
    }
    let mut stream = Vec::new();
    source.snapshot().unwrap().write_to(&mut stream).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let engine = open_with(dir.path(), tiny(Duration::from_secs(60)));
    engine.put_at(b"old", b"gone after restore", 1, 0).unwrap();
    let stats = engine.restore(&mut stream.as_slice()).unwrap();
    assert_eq!(stats.keys, 3000);
    let all = KeyRange::all();
    assert_eq!(
        engine.scan_at(&all, usize::MAX, u64::MAX).unwrap(),
        source.scan_at(&all, usize::MAX, u64::MAX).unwrap()
    );
    assert_eq!(engine.get_at(b"old", 1).unwrap(), None);
    assert_eq!(engine.last_commit_ts().unwrap(), 15);
    // A second restore switches back to the other versions database.
    engine.restore(&mut stream.as_slice()).unwrap();
    assert_eq!(engine.scan_at(&all, 5, u64::MAX).unwrap().len(), 5);
}

#[test]
fn a_writer_that_fills_the_map_waits_for_a_snapshot_streamed_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(open_with(dir.path(), tiny(Duration::from_secs(120))));
    let m: Vec<Mutation> = (0..50)
        .map(|i| Mutation::put(format!("s{i:02}"), value(i, 100)))
        .collect();
    engine.write(&WriteBatch::new(&m, 5)).unwrap();
    let expected = engine.scan_at(&KeyRange::all(), usize::MAX, 5).unwrap();
    let snapshot = engine.snapshot().unwrap();
    let writer = {
        let engine = Arc::clone(&engine);
        std::thread::spawn(move || {
            for ts in 6..10u64 {
                let m = [Mutation::put(
                    format!("s{:02}", ts % 50),
                    value(ts as usize, 4 << 20),
                )];
                engine.write(&WriteBatch::new(&m, ts)).unwrap();
            }
        })
    };
    let mut stream = Vec::new();
    snapshot.write_to(&mut stream).unwrap();
    drop(snapshot);
    writer.join().unwrap();
    assert_eq!(engine.get_at(b"s09", 9).unwrap(), Some(value(9, 4 << 20)));
    let copy_dir = tempfile::tempdir().unwrap();
    let copy = open_with(copy_dir.path(), LmdbOptions::default());
    copy.restore(&mut stream.as_slice()).unwrap();
    assert_eq!(
        copy.scan_at(&KeyRange::all(), usize::MAX, u64::MAX)
            .unwrap(),
        expected
    );
}

#[test]
fn a_full_map_fails_in_bounded_time_while_the_writing_thread_holds_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_with(dir.path(), tiny(Duration::from_millis(50)));
    engine.put_at(b"kept", b"yes", 1, 0).unwrap();
    let snapshot = engine.snapshot().unwrap();
    let big = value(1, 8 << 20);
    match engine.put_at(b"big", &big, 2, 0) {
        Err(EngineError::Backend {
            engine: "lmdb",
            message,
        }) => {
            assert!(message.contains("grow_wait"), "{message}")
        }
        other => panic!("expected the map-full error, got {other:?}"),
    }
    // The failed write left nothing behind, and reads still work.
    assert_eq!(engine.get_at(b"big", 2).unwrap(), None);
    assert_eq!(engine.last_commit_ts().unwrap(), 1);
    drop(snapshot);
    engine.put_at(b"big", &big, 2, 0).unwrap();
    assert_eq!(engine.get_at(b"big", 2).unwrap(), Some(big));
    assert_eq!(engine.get_at(b"kept", 2).unwrap(), Some(b"yes".to_vec()));
}

#[test]
fn the_map_never_grows_past_its_maximum() {
    let dir = tempfile::tempdir().unwrap();
    let options = LmdbOptions {
        initial_map_size: 1 << 20,
        max_map_size: 4 << 20,
        ..LmdbOptions::default()
    };
    let engine = open_with(dir.path(), options);
    engine.put_at(b"small", b"fits", 1, 0).unwrap();
    match engine.put_at(b"big", &value(0, 8 << 20), 2, 0) {
        Err(EngineError::Backend { message, .. }) => {
            assert!(message.contains("max_map_size"), "{message}")
        }
        other => panic!("expected the map-full error, got {other:?}"),
    }
    assert!(engine.store().map_size() <= 4 << 20);
    engine.put_at(b"small", b"still fits", 3, 0).unwrap();
    assert_eq!(
        engine.get_at(b"small", 3).unwrap(),
        Some(b"still fits".to_vec())
    );
}

#[test]
fn keys_up_to_the_declared_limit_are_stored_and_longer_ones_refused() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open_with(dir.path(), LmdbOptions::default());
    let limit = engine.limits().max_key_size;
    // Without heed's longer-keys feature LMDB keys stop at 511 bytes, which would
    // leave 250-byte user keys.
    assert!(limit > 250, "max key size {limit}");
    // Zero bytes take two bytes each in the encoding: the worst case.
    let zeros = vec![0u8; limit];
    let ffs = vec![0xffu8; limit];
    engine.put_at(&zeros, b"zeros", 1, 0).unwrap();
    engine.put_at(&ffs, b"ffs", 1, 0).unwrap();
    engine
        .raw_write(&[RawOp::put(ffs.clone(), "raw")], Durability::Sync)
        .unwrap();
    assert_eq!(engine.get_at(&zeros, 1).unwrap(), Some(b"zeros".to_vec()));
    let all = KeyRange::all();
    let keys: Vec<Vec<u8>> = engine
        .scan_at(&all, 10, 1)
        .unwrap()
        .into_iter()
        .map(|p| p.key)
        .collect();
    assert_eq!(keys, vec![zeros.clone(), ffs.clone()]);
    let keys: Vec<Vec<u8>> = engine
        .reverse_scan_at(&all, 10, 1)
        .unwrap()
        .into_iter()
        .map(|p| p.key)
        .collect();
    assert_eq!(keys, vec![ffs.clone(), zeros.clone()]);
    assert_eq!(
        engine
            .scan_at(&KeyRange::from(ffs.clone()), 10, 1)
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        engine
            .raw_scan(&KeyRange::from(ffs.clone()), 10)
            .unwrap()
            .len(),
        1
    );
    let longer = vec![1u8; limit + 1];
    for result in [
        engine.put_at(&longer, b"x", 2, 0),
        engine.raw_write(&[RawOp::put(longer.clone(), "x")], Durability::Sync),
    ] {
        assert!(
            matches!(result, Err(EngineError::KeyTooLarge { .. })),
            "{result:?}"
        );
    }
}

#[test]
fn concurrent_writers_wait_for_each_other_instead_of_failing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(open_with(dir.path(), tiny(Duration::from_secs(60))));
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let engine = Arc::clone(&engine);
            std::thread::spawn(move || {
                for i in 0..50u64 {
                    let m = [Mutation::put(
                        format!("t{t}/{i:02}"),
                        value(i as usize, 20_000),
                    )];
                    let durability = if i % 10 == 9 {
                        Durability::Sync
                    } else {
                        Durability::Buffered
                    };
                    engine
                        .write(&WriteBatch::new(&m, 1 + t * 100 + i).with_durability(durability))
                        .unwrap();
                    // Readers and snapshots interleave with the writers and map growth.
                    let snapshot = engine.snapshot().unwrap();
                    assert!(snapshot.last_commit_ts() >= 1);
                    assert!(engine
                        .get_at(format!("t{t}/{i:02}").as_bytes(), u64::MAX)
                        .unwrap()
                        .is_some());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(
        engine
            .scan_at(&KeyRange::all(), usize::MAX, u64::MAX)
            .unwrap()
            .len(),
        200
    );
}
