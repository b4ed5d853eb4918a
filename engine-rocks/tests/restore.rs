//! Snapshots and restores specific to the RocksDB layout: versions generations, failed
//! and interrupted restores, and snapshots streamed while the store keeps changing.

mod harness;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use elastickv_engine_api::testkit::fixture::dump;
use elastickv_engine_api::testkit::Harness;
use elastickv_engine_api::{
    Durability, EngineError, EngineSnapshot, KeyRange, MvccEngine, RawKeyspace, RawOp,
};
use elastickv_engine_rocks::{RocksEngine, RocksStore};
use harness::{test_options, Rocks};

fn generations(store: &RocksStore) -> Vec<String> {
    let mut names: Vec<String> = store
        .column_families()
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with("versions."))
        .collect();
    names.sort();
    names
}

fn fill(engine: &RocksEngine, prefix: &str, keys: usize, ts: u64) {
    for i in 0..keys {
        engine
            .put_at(
                format!("{prefix}{i:04}").as_bytes(),
                format!("{prefix}-{i}").as_bytes(),
                ts,
                0,
            )
            .unwrap();
    }
}

fn stream(engine: &RocksEngine) -> Vec<u8> {
    let mut out = Vec::new();
    engine.snapshot().unwrap().write_to(&mut out).unwrap();
    out
}

#[test]
fn restore_switches_to_a_new_generation_and_drops_the_old_one() {
    let source_dir = tempfile::tempdir().unwrap();
    let source = Rocks.open(source_dir.path()).unwrap();
    fill(&source, "new", 500, 40);
    let image = stream(&source);

    let dir = tempfile::tempdir().unwrap();
    let engine = Rocks.open(dir.path()).unwrap();
    fill(&engine, "old", 300, 7);
    engine
        .raw_write(&[RawOp::put("raft/vote", "3")], Durability::Sync)
        .unwrap();
    assert_eq!(engine.store().generation(), 0);
    assert_eq!(generations(engine.store()), ["versions.0"]);

    engine
        .restore_with(&mut image.as_slice(), &[RawOp::put("raft/applied", "99")])
        .unwrap();
    assert_eq!(engine.store().generation(), 1);
    assert_eq!(generations(engine.store()), ["versions.1"]);
    assert_eq!(dump(&engine), dump(&source));
    assert_eq!(engine.last_commit_ts().unwrap(), 40);
    // The raw keyspace is kept, plus the operations applied with the switch.
    assert_eq!(engine.raw_get(b"raft/vote").unwrap(), Some(b"3".to_vec()));
    assert_eq!(
        engine.raw_get(b"raft/applied").unwrap(),
        Some(b"99".to_vec())
    );

    drop(engine);
    let engine = Rocks.open(dir.path()).unwrap();
    assert_eq!(engine.store().generation(), 1);
    assert_eq!(dump(&engine), dump(&source));
    assert_eq!(engine.last_commit_ts().unwrap(), 40);
}

#[test]
fn a_corrupt_stream_leaves_the_old_data_and_no_leftover_generation() {
    let source_dir = tempfile::tempdir().unwrap();
    let source = Rocks.open(source_dir.path()).unwrap();
    // Enough data for several stream blocks, so the corruption is met mid-restore,
    // after part of the new generation has been written.
    for i in 0..2000 {
        source
            .put_at(format!("k{i:05}").as_bytes(), &[b'x'; 200], 50, 0)
            .unwrap();
    }
    let mut corrupt = stream(&source);
    let at = corrupt.len() * 3 / 4;
    corrupt[at] ^= 0x55;
    let truncated = stream(&source)[..at].to_vec();

    let dir = tempfile::tempdir().unwrap();
    let engine = Rocks.open(dir.path()).unwrap();
    fill(&engine, "old", 100, 9);
    engine
        .raw_write(&[RawOp::put("raft/vote", "1")], Durability::Sync)
        .unwrap();
    let before = dump(&engine);

    for bad in [&corrupt, &truncated] {
        let err = engine
            .restore_with(&mut bad.as_slice(), &[RawOp::put("raft/applied", "7")])
            .unwrap_err();
        assert!(matches!(err, EngineError::Corrupted(_)), "{err:?}");
        assert_eq!(dump(&engine), before);
        assert_eq!(engine.last_commit_ts().unwrap(), 9);
        assert_eq!(engine.raw_get(b"raft/applied").unwrap(), None);
        assert_eq!(engine.store().generation(), 0);
        assert_eq!(generations(engine.store()), ["versions.0"]);
    }
    // Writes go on as before.
    engine.put_at(b"old0000", b"again", 10, 0).unwrap();
    drop(engine);
    let engine = Rocks.open(dir.path()).unwrap();
    assert_eq!(generations(engine.store()), ["versions.0"]);
    assert_eq!(
        engine.get_at(b"old0000", 10).unwrap(),
        Some(b"again".to_vec())
    );
    assert_eq!(
        engine.get_at(b"old0099", 10).unwrap(),
        Some(b"old-99".to_vec())
    );
}

#[test]
fn open_drops_generations_left_by_an_interrupted_restore() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = Rocks.open(dir.path()).unwrap();
        fill(&engine, "kept", 50, 3);
    }
    // What a crash during a restore leaves: a half-filled next generation.
    {
        let mut opts = rocksdb::Options::default();
        opts.create_missing_column_families(true);
        let names = rocksdb::DB::list_cf(&opts, dir.path()).unwrap();
        let mut db = rocksdb::DB::open_cf(&opts, dir.path(), &names).unwrap();
        db.create_cf("versions.1", &opts).unwrap();
        let cf = db.cf_handle("versions.1").unwrap();
        db.put_cf(cf, b"garbage", b"garbage").unwrap();
        db.flush_cf(cf).unwrap();
        drop(db);
    }
    let engine = Rocks.open(dir.path()).unwrap();
    assert_eq!(engine.store().generation(), 0);
    assert_eq!(generations(engine.store()), ["versions.0"]);
    let all = engine
        .scan_at(&KeyRange::all(), usize::MAX, u64::MAX)
        .unwrap();
    assert_eq!(all.len(), 50);
    // The next restore reuses the generation number cleanly.
    let image = stream(&engine);
    engine.restore(&mut image.as_slice()).unwrap();
    assert_eq!(generations(engine.store()), ["versions.1"]);
    assert_eq!(
        engine
            .scan_at(&KeyRange::all(), usize::MAX, u64::MAX)
            .unwrap(),
        all
    );
}

#[test]
fn a_snapshot_streams_its_point_in_time_while_writers_continue() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(Rocks.open(dir.path()).unwrap());
    fill(&engine, "k", 2000, 10);
    let expected = dump(&*engine);
    let snapshot = engine.snapshot().unwrap();
    assert_eq!(snapshot.last_commit_ts(), 10);

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let engine = Arc::clone(&engine);
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut ts = 11;
            while !stop.load(Ordering::SeqCst) || ts < 200 {
                let key = format!("k{:04}", ts % 2000);
                if ts % 3 == 0 {
                    engine.delete_at(key.as_bytes(), ts).unwrap();
                } else {
                    engine.put_at(key.as_bytes(), b"changed", ts, 0).unwrap();
                }
                engine
                    .put_at(format!("n{ts}").as_bytes(), b"new", ts, 0)
                    .unwrap();
                ts += 1;
            }
            ts
        })
    };
    // Streamed in pieces while the writer runs.
    let mut image = Vec::new();
    snapshot.write_to(&mut image).unwrap();
    stop.store(true, Ordering::SeqCst);
    let last_ts = writer.join().unwrap();
    assert!(engine.last_commit_ts().unwrap() >= last_ts - 1);

    let restored_dir = tempfile::tempdir().unwrap();
    let restored = Rocks.open(restored_dir.path()).unwrap();
    restored.restore(&mut image.as_slice()).unwrap();
    assert_eq!(dump(&restored), expected);
    assert_eq!(restored.last_commit_ts().unwrap(), 10);
}

#[test]
fn a_snapshot_outlives_a_restore_that_replaces_its_generation() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Rocks.open(dir.path()).unwrap();
    fill(&engine, "before", 100, 5);
    let expected = dump(&engine);
    let snapshot = engine.snapshot().unwrap();

    let other_dir = tempfile::tempdir().unwrap();
    let other = Rocks.open(other_dir.path()).unwrap();
    fill(&other, "after", 10, 8);
    engine.restore(&mut stream(&other).as_slice()).unwrap();
    assert_eq!(generations(engine.store()), ["versions.1"]);
    assert_eq!(dump(&engine), dump(&other));

    // The old generation's column family is dropped, but the snapshot still reads it.
    let mut image = Vec::new();
    snapshot.write_to(&mut image).unwrap();
    drop(snapshot);
    let check_dir = tempfile::tempdir().unwrap();
    let check = Rocks.open(check_dir.path()).unwrap();
    check.restore(&mut image.as_slice()).unwrap();
    assert_eq!(dump(&check), expected);
}

#[test]
fn a_snapshot_keeps_the_database_open_after_the_engine_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let engine = harness::Rocks.open(dir.path()).unwrap();
    fill(&engine, "k", 20, 4);
    let expected = dump(&engine);
    let snapshot = engine.snapshot().unwrap();
    drop(engine);
    let moved = std::thread::spawn(move || {
        let mut image = Vec::new();
        snapshot.write_to(&mut image).unwrap();
        image
    })
    .join()
    .unwrap();
    // The snapshot is gone, so the directory can be opened again.
    let engine = elastickv_engine_rocks::open_rocks(dir.path(), test_options()).unwrap();
    assert_eq!(dump(&engine), expected);
    let check_dir = tempfile::tempdir().unwrap();
    let check = Rocks.open(check_dir.path()).unwrap();
    check.restore(&mut moved.as_slice()).unwrap();
    assert_eq!(dump(&check), expected);
}
