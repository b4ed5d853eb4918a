//! A snapshot taken from each of the four engines restores into each of the four (16
//! pairs), and every read afterwards is identical to the source's.

use std::path::Path;

use elastickv_engine_api::{
    CompactionScope, Durability, EngineSnapshot, Mutation, MvccEngine, RawOp, WriteBatch,
};
use elastickv_engine_interop::{image, reads_at};

/// Writes a store exercising every kind of version: prefix-related keys, many versions,
/// tombstones, TTLs, a large value, a compaction watermark, and raw-keyspace data
/// (which a snapshot must NOT carry).
fn populate<E: MvccEngine>(engine: &E) {
    let keys: [&[u8]; 7] = [b"k", b"k\0", b"k1", b"k10", b"k\xff", b"\0", b"\xff\xff"];
    for (i, key) in keys.iter().enumerate() {
        for v in 1..=4u64 {
            engine
                .put_at(key, format!("{i}-v{v}").as_bytes(), v * 10 + i as u64, 0)
                .unwrap();
        }
    }
    engine.delete_at(b"k1", 100).unwrap();
    engine.put_at(b"ttl", b"short-lived", 60, 75).unwrap();
    engine
        .put_at(b"big", &vec![0xabu8; 3 << 20], 70, 0)
        .unwrap();
    let batch: Vec<Mutation> = (0..500u32)
        .map(|i| Mutation::put(format!("bulk/{i:05}"), i.to_be_bytes()))
        .collect();
    engine
        .write(&WriteBatch::new(&batch, 80).with_durability(Durability::Buffered))
        .unwrap();
    engine.compact(25, &CompactionScope::All).unwrap();
    engine
        .raw_write(&[RawOp::put("raw-only", "source")], Durability::Sync)
        .unwrap();
}

fn check_pair<S: MvccEngine, T: MvccEngine>(source: &S, target: &T) {
    let mut stream = Vec::new();
    source.snapshot().unwrap().write_to(&mut stream).unwrap();
    target
        .raw_write(&[RawOp::put("raw-only", "target")], Durability::Sync)
        .unwrap();
    target
        .put_at(b"stale", b"replaced by restore", 5, 0)
        .unwrap();
    target.restore(&mut stream.as_slice()).unwrap();

    let pair = format!("{} -> {}", source.name(), target.name());
    let src = image(source).unwrap();
    let dst = image(target).unwrap();
    assert_eq!(
        (src.last_commit_ts, src.min_retained_ts),
        (dst.last_commit_ts, dst.min_retained_ts),
        "{pair}: counters differ"
    );
    assert_eq!(src.versions, dst.versions, "{pair}: versions differ");
    assert_eq!(
        target.min_retained_ts().unwrap(),
        src.min_retained_ts,
        "{pair}: watermark"
    );
    assert_eq!(
        target.last_commit_ts().unwrap(),
        src.last_commit_ts,
        "{pair}: last_commit_ts"
    );
    let keys: Vec<Vec<u8>> = {
        let mut k: Vec<Vec<u8>> = src.versions.iter().map(|(k, _)| k.clone()).collect();
        k.dedup();
        k
    };
    for ts in [25, 30, 45, 74, 75, 99, 100, u64::MAX] {
        assert_eq!(
            reads_at(source, &keys, ts).unwrap(),
            reads_at(target, &keys, ts).unwrap(),
            "{pair}: reads at {ts} differ"
        );
    }
    // The raw keyspace belongs to the node (Raft log), not to the snapshot.
    assert_eq!(
        target.raw_get(b"raw-only").unwrap(),
        Some(b"target".to_vec()),
        "{pair}: raw keyspace"
    );
    // The restored stream re-streams to the same bytes: the format is canonical.
    let mut again = Vec::new();
    target.snapshot().unwrap().write_to(&mut again).unwrap();
    assert_eq!(stream, again, "{pair}: re-streamed snapshot differs");
}

type Opener<E> = fn(&Path) -> E;

fn mem(_: &Path) -> elastickv_engine_mem::MemEngine {
    elastickv_engine_mem::MemEngine::new()
}
fn redb(dir: &Path) -> elastickv_engine_redb::RedbEngine {
    elastickv_engine_redb::open_redb(dir, Default::default()).unwrap()
}
fn lmdb(dir: &Path) -> elastickv_engine_lmdb::LmdbEngine {
    elastickv_engine_lmdb::open_lmdb(dir, Default::default()).unwrap()
}

fn rocks(dir: &Path) -> elastickv_engine_rocks::RocksEngine {
    elastickv_engine_rocks::open_rocks(dir, Default::default()).unwrap()
}

fn from<S: MvccEngine>(open_source: Opener<S>) {
    let dir = tempfile::tempdir().unwrap();
    let source_dir = dir.path().join("source");
    std::fs::create_dir_all(&source_dir).unwrap();
    let source = open_source(&source_dir);
    populate(&source);
    let target_dir = |name: &str| {
        let path = dir.path().join(name);
        std::fs::create_dir_all(&path).unwrap();
        path
    };
    check_pair(&source, &mem(&target_dir("mem")));
    check_pair(&source, &redb(&target_dir("redb")));
    check_pair(&source, &lmdb(&target_dir("lmdb")));
    check_pair(&source, &rocks(&target_dir("rocks")));
}

#[test]
fn mem_snapshot_restores_into_every_engine() {
    from(mem);
}

#[test]
fn redb_snapshot_restores_into_every_engine() {
    from(redb);
}

#[test]
fn lmdb_snapshot_restores_into_every_engine() {
    from(lmdb);
}

#[test]
fn rocks_snapshot_restores_into_every_engine() {
    from(rocks);
}
