//! The LMDB engine beyond the conformance kit: its data directory (refusing
//! foreign directories, interrupted creation, double open, other engines' stores).
//! Volume tests (large values, many versions, 100k keys) are kit cases now.

use std::path::Path;

use elastickv_engine_api::ordered::{OrderedStore, OrderedWrite, Table};
use elastickv_engine_api::{Durability, EngineError, MvccEngine};
use elastickv_engine_lmdb::{open_lmdb, LmdbEngine, LmdbOptions, DATA_FILE};

fn open(dir: &Path) -> LmdbEngine {
    open_lmdb(dir, LmdbOptions::default()).expect("open LMDB engine")
}

fn expect_incompatible(result: elastickv_engine_api::Result<LmdbEngine>, mentions: &str) {
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
        open_lmdb(rocks.path(), LmdbOptions::default()),
        "MANIFEST-000005",
    );

    let redb = tempfile::tempdir().unwrap();
    std::fs::write(redb.path().join("elastickv.redb"), b"redb").unwrap();
    expect_incompatible(
        open_lmdb(redb.path(), LmdbOptions::default()),
        "elastickv.redb",
    );

    let file = tempfile::NamedTempFile::new().unwrap();
    expect_incompatible(
        open_lmdb(file.path(), LmdbOptions::default()),
        "not a directory",
    );

    // Refusing touched nothing.
    assert!(!rocks.path().join(DATA_FILE).exists());
    assert_eq!(
        std::fs::read(redb.path().join("elastickv.redb")).unwrap(),
        b"redb"
    );
}

#[test]
fn a_creation_interrupted_by_a_crash_is_started_over() {
    let dir = tempfile::tempdir().unwrap();
    // What a crash while building the new environment leaves behind.
    let scratch = dir.path().join("elastickv-lmdb.creating");
    std::fs::create_dir(&scratch).unwrap();
    std::fs::write(scratch.join("data.mdb"), vec![0x5a; 8192]).unwrap();
    std::fs::write(dir.path().join("lock.mdb"), vec![0u8; 8192]).unwrap();
    let engine = open(dir.path());
    engine.put_at(b"k", b"v", 1, 0).unwrap();
    drop(engine);
    assert!(!scratch.exists());
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
    match open_lmdb(dir.path(), LmdbOptions::default()) {
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
    stamp_marker(other.path(), "redb:1");
    expect_incompatible(open_lmdb(other.path(), LmdbOptions::default()), "redb");

    let newer = tempfile::tempdir().unwrap();
    stamp_marker(newer.path(), "lmdb:99");
    expect_incompatible(
        open_lmdb(newer.path(), LmdbOptions::default()),
        "format version 99",
    );

    let garbage = tempfile::tempdir().unwrap();
    std::fs::write(garbage.path().join(DATA_FILE), vec![0x5a; 64 * 1024]).unwrap();
    assert!(open_lmdb(garbage.path(), LmdbOptions::default()).is_err());
}
