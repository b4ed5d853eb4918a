//! What every case starts from: an engine opened in a fresh temporary directory, and
//! ways to look at its whole content.

use std::collections::BTreeMap;

use super::Harness;
use crate::{EngineError, EngineSnapshot, MvccEngine, Version};

/// An engine under test in its own temporary directory, which is removed on drop.
#[derive(Debug)]
pub struct Fixture<'h, H: Harness> {
    harness: &'h H,
    // Declared before `dir` so the engine is dropped before its directory is removed.
    engine: Option<H::Engine>,
    dir: tempfile::TempDir,
}

impl<'h, H: Harness> Fixture<'h, H> {
    /// Opens a new engine in a new, empty temporary directory.
    ///
    /// # Panics
    /// If the directory cannot be created or the engine cannot be opened.
    pub fn new(harness: &'h H) -> Self {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let engine = harness
            .open(dir.path())
            .expect("open the engine in an empty directory");
        Fixture {
            harness,
            engine: Some(engine),
            dir,
        }
    }

    /// The engine.
    pub fn engine(&self) -> &H::Engine {
        self.engine.as_ref().expect("the engine is open")
    }

    /// True when the harness declares the engine persistent.
    pub fn persistent(&self) -> bool {
        self.harness.persistent()
    }

    /// Drops the engine and opens it again on the same directory.
    ///
    /// # Panics
    /// If the engine cannot be reopened.
    pub fn reopen(&mut self) -> &H::Engine {
        drop(self.engine.take());
        let engine = self
            .harness
            .open(self.dir.path())
            .expect("reopen the engine on its directory");
        self.engine.insert(engine)
    }

    /// Opens a second, independent engine in its own temporary directory.
    pub fn another(&self) -> Fixture<'h, H> {
        Fixture::new(self.harness)
    }
}

/// Every version an engine holds, per key, newest first, read through a snapshot.
pub fn dump<E: MvccEngine>(engine: &E) -> BTreeMap<Vec<u8>, Vec<Version>> {
    let snapshot = engine.snapshot().expect("take a snapshot");
    dump_snapshot(&snapshot)
}

/// Every version a snapshot holds, per key, newest first. Checks the visiting order.
pub fn dump_snapshot<S: EngineSnapshot>(snapshot: &S) -> BTreeMap<Vec<u8>, Vec<Version>> {
    let mut out: BTreeMap<Vec<u8>, Vec<Version>> = BTreeMap::new();
    let mut last: Option<(Vec<u8>, u64)> = None;
    snapshot
        .for_each_version(&mut |key, version| {
            if let Some((last_key, last_ts)) = &last {
                let in_order = last_key.as_slice() < key
                    || (last_key.as_slice() == key && *last_ts > version.ts);
                assert!(
                    in_order,
                    "for_each_version must visit keys ascending and ts descending"
                );
            }
            last = Some((key.to_vec(), version.ts));
            out.entry(key.to_vec()).or_default().push(version.clone());
            Ok(true)
        })
        .expect("visit the snapshot");
    out
}

/// The engine's snapshot as a stream, in the portable format.
pub fn stream_of<E: MvccEngine>(engine: &E) -> Vec<u8> {
    let mut out = Vec::new();
    engine
        .snapshot()
        .expect("take a snapshot")
        .write_to(&mut out)
        .expect("stream the snapshot");
    out
}

/// The error of a call that must fail.
///
/// # Panics
/// If the call succeeded.
#[track_caller]
pub fn expect_err<T: std::fmt::Debug>(result: crate::Result<T>) -> EngineError {
    match result {
        Ok(value) => panic!("expected an error, got Ok({value:?})"),
        Err(err) => err,
    }
}

/// The pairs of a scan, as (key, value) tuples of byte vectors, for compact assertions.
pub fn pairs(scan: Vec<crate::KvPair>) -> Vec<(Vec<u8>, Vec<u8>)> {
    scan.into_iter().map(|p| (p.key, p.value)).collect()
}

/// Builds the expected result of a scan from string slices.
pub fn expected(items: &[(&[u8], &[u8])]) -> Vec<(Vec<u8>, Vec<u8>)> {
    items
        .iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect()
}
