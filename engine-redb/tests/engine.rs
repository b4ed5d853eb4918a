//! The redb engine beyond the conformance kit: its data directory (refusing
//! foreign directories, interrupted creation, double open, other engines' stores).
//! Volume tests (large values, many versions, 100k keys) are kit cases now.

use std::path::Path;

use elastickv_engine_api::ordered::{OrderedStore, OrderedWrite, Table};
use elastickv_engine_api::{Durability, EngineError, MvccEngine};
use elastickv_engine_redb::{open_redb, RedbEngine, RedbOptions, DATA_FILE};

fn open(dir: &Path) -> RedbEngine {
    open_redb(dir, RedbOptions::default()).expect("open redb engine")
}

fn expect_incompatible(result: elastickv_engine_api::Result<RedbEngine>, mentions: &str) {
    match result {
        Err(EngineError::Incompatible(message)) => {
            assert!(
                message.contains(mentions),
                "{message:?} should mention {mentions:?}"
            )
        }
        Err(other) => panic!("expected Incompatible mentioning {mentions:?}, got {other}"),
        Ok(_) => panic!("expected Incompatible mentioning {mentions:?}, but the store opened"),
    }
}

#[test]
fn directories_of_other_engines_and_unrelated_files_are_refused() {
    let rocks = tempfile::tempdir().unwrap();
    for file in ["CURRENT", "MANIFEST-000005", "000004.log"] {
        std::fs::write(rocks.path().join(file), b"rocksdb").unwrap();
    }
    expect_incompatible(
        open_redb(rocks.path(), RedbOptions::default()),
        "MANIFEST-000005",
    );

    let lmdb = tempfile::tempdir().unwrap();
    std::fs::write(lmdb.path().join("data.mdb"), b"lmdb").unwrap();
    std::fs::write(lmdb.path().join("lock.mdb"), b"lmdb").unwrap();
    expect_incompatible(open_redb(lmdb.path(), RedbOptions::default()), "data.mdb");

    let file = tempfile::NamedTempFile::new().unwrap();
    expect_incompatible(
        open_redb(file.path(), RedbOptions::default()),
        "not a directory",
    );

    // Refusing touched nothing.
    assert!(!rocks.path().join(DATA_FILE).exists());
    assert_eq!(
        std::fs::read(lmdb.path().join("data.mdb")).unwrap(),
        b"lmdb"
    );
}

#[test]
fn a_creation_interrupted_by_a_crash_is_started_over() {
    let dir = tempfile::tempdir().unwrap();
    // What a crash while building the new database file leaves behind.
    std::fs::write(dir.path().join("elastickv.redb.creating"), vec![0x5a; 8192]).unwrap();
    let engine = open(dir.path());
    engine.put_at(b"k", b"v", 1, 0).unwrap();
    drop(engine);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec![DATA_FILE.to_string()]);
    assert_eq!(
        open(dir.path()).get_at(b"k", 1).unwrap(),
        Some(b"v".to_vec())
    );
}

#[test]
fn a_second_open_of_an_open_directory_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine.put_at(b"k", b"v", 1, 0).unwrap();
    match open_redb(dir.path(), RedbOptions::default()) {
        Err(EngineError::Backend { message, .. }) => assert!(message.contains("open"), "{message}"),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("the directory was opened twice"),
    }
    assert_eq!(engine.get_at(b"k", 1).unwrap(), Some(b"v".to_vec()));
    drop(engine);
    assert_eq!(
        open(dir.path()).get_at(b"k", 1).unwrap(),
        Some(b"v".to_vec())
    );
}

/// Rewrites the format marker the MVCC layer keeps, as another engine or a newer
/// version of this one would have left it.
fn stamp_marker(dir: &Path, marker: &str) {
    let engine = open(dir);
    let mut txn = engine.store().begin_write().unwrap();
    txn.put(Table::Meta, b"format", marker.as_bytes()).unwrap();
    txn.commit(Durability::Sync).unwrap();
}

#[test]
fn a_store_of_another_engine_or_a_newer_format_is_refused() {
    let other = tempfile::tempdir().unwrap();
    stamp_marker(other.path(), "lmdb:1");
    expect_incompatible(open_redb(other.path(), RedbOptions::default()), "lmdb");

    let newer = tempfile::tempdir().unwrap();
    stamp_marker(newer.path(), "redb:99");
    expect_incompatible(
        open_redb(newer.path(), RedbOptions::default()),
        "format version 99",
    );

    let garbage = tempfile::tempdir().unwrap();
    std::fs::write(garbage.path().join(DATA_FILE), vec![0x5a; 64 * 1024]).unwrap();
    assert!(open_redb(garbage.path(), RedbOptions::default()).is_err());
}
