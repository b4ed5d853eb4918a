//! The engines compiled into the benchmarks (one cargo feature each, all on by default).

use std::path::Path;

/// An engine to benchmark: its name and how to open one in a directory.
#[derive(Debug)]
pub struct EngineUnderTest<E> {
    /// The name used in benchmark ids and the report ("mem", "redb", ...).
    pub name: &'static str,
    /// Opens a fresh engine in an empty directory (the mem engine ignores it).
    pub open: fn(&Path) -> E,
    /// Waits for the engine's background work (RocksDB's flushes and compactions)
    /// before a phase of measurements, so that no phase pays for the writes of the one
    /// before it; nothing to do for the other engines.
    pub settle: fn(&E),
}

/// The in-memory reference engine.
#[cfg(feature = "engine-mem")]
pub fn mem() -> EngineUnderTest<elastickv_engine_mem::MemEngine> {
    EngineUnderTest {
        name: "mem",
        open: |_| elastickv_engine_mem::MemEngine::new(),
        settle: |_| {},
    }
}

/// redb with default options.
#[cfg(feature = "engine-redb")]
pub fn redb() -> EngineUnderTest<elastickv_engine_redb::RedbEngine> {
    EngineUnderTest {
        name: "redb",
        open: |dir| {
            elastickv_engine_redb::open_redb(dir, elastickv_engine_redb::RedbOptions::default())
                .expect("open redb")
        },
        settle: |_| {},
    }
}

/// LMDB with default options.
#[cfg(feature = "engine-lmdb")]
pub fn lmdb() -> EngineUnderTest<elastickv_engine_lmdb::LmdbEngine> {
    EngineUnderTest {
        name: "lmdb",
        open: |dir| {
            elastickv_engine_lmdb::open_lmdb(dir, elastickv_engine_lmdb::LmdbOptions::default())
                .expect("open lmdb")
        },
        settle: |_| {},
    }
}

/// RocksDB with default options.
#[cfg(feature = "engine-rocks")]
pub fn rocks() -> EngineUnderTest<elastickv_engine_rocks::RocksEngine> {
    EngineUnderTest {
        name: "rocks",
        open: |dir| {
            elastickv_engine_rocks::open_rocks(dir, elastickv_engine_rocks::RocksOptions::default())
                .expect("open rocks")
        },
        settle: |e| e.store().settle().expect("settle rocks"),
    }
}
