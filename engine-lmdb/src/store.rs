//! [`LmdbStore`]: the [`OrderedStore`] primitive over one LMDB environment.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use elastickv_engine_api::ordered::{OrderedStore, OrderedWrite, Table, TableOp, VersionSink};
use elastickv_engine_api::{EngineError, Result};
use heed::types::Bytes;
use heed::{Env, RoTxn, WithoutTls};

use crate::error::{from_heed, ENGINE};
use crate::map::{grown_size, GatePass, MapGate, PassKind};
use crate::open::{create_databases, create_environment, open_environment};
use crate::read::LmdbRead;
use crate::write::LmdbWrite;
use crate::{claim_directory, LmdbOptions, DATA_FILE};

/// A database handle of the environment.
pub(crate) type Db = heed::Database<'static, Bytes, Bytes>;

/// The layout key naming the live `versions` database (`0` or `1`; absent means `0`).
pub(crate) const LIVE_VERSIONS_KEY: &[u8] = b"live_versions";

/// LMDB's limit on one value (`MAXDATASIZE` in `mdb.c`: values are sized by a 32-bit
/// length on overflow pages).
const LMDB_MAX_VALUE: u64 = 0xffff_ffff;

/// Every database of the environment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Dbs {
    pub(crate) versions: [Db; 2],
    pub(crate) meta: Db,
    pub(crate) raw: Db,
    pub(crate) layout: Db,
}

/// The databases one transaction sees as the engine's three tables.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tables {
    /// Index of the live `versions` database.
    pub(crate) live: usize,
    pub(crate) dbs: Dbs,
}

impl Tables {
    /// Resolves the live `versions` database as `txn` sees it.
    pub(crate) fn resolve(dbs: Dbs, txn: &RoTxn<'_>) -> Result<Tables> {
        let live = match dbs.layout.get(txn, LIVE_VERSIONS_KEY).map_err(from_heed)? {
            None | Some(b"0") => 0,
            Some(b"1") => 1,
            Some(other) => {
                return Err(EngineError::corrupted(format!(
                    "lmdb layout names versions database {:?}",
                    String::from_utf8_lossy(other)
                )))
            }
        };
        Ok(Tables { live, dbs })
    }

    /// The database behind `table`.
    pub(crate) fn db(&self, table: Table) -> Db {
        match table {
            Table::Versions => self.dbs.versions[self.live],
            Table::Meta => self.dbs.meta,
            Table::Raw => self.dbs.raw,
        }
    }

    /// The `versions` database a restore fills.
    pub(crate) fn staging(&self) -> Db {
        self.dbs.versions[1 - self.live]
    }
}

/// The engine's storage primitive on LMDB: the tables of [`Table`] as named databases
/// of one environment, with a memory map that grows as the data does.
pub struct LmdbStore {
    pub(crate) env: Env<WithoutTls>,
    pub(crate) dbs: Dbs,
    /// Serializes this process's writers, including across the abort-grow-retry of a
    /// write that filled the map (LMDB's own writer lock is released by the abort).
    pub(crate) writer: Mutex<()>,
    /// Held by `replace_versions` for its whole run: one restore stages at a time.
    pub(crate) restoring: Mutex<()>,
    pub(crate) gate: Arc<MapGate>,
    /// Set if remapping failed: LMDB is then left without a map and must not be used.
    broken: AtomicBool,
    path: PathBuf,
    page_size: usize,
    max_map_size: usize,
    grow_wait: Duration,
    pub(crate) max_key_size: usize,
}

impl fmt::Debug for LmdbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LmdbStore")
            .field("path", &self.path)
            .field("map_size", &self.map_size())
            .field("max_map_size", &self.max_map_size)
            .finish_non_exhaustive()
    }
}

impl LmdbStore {
    /// Opens (or creates) the LMDB environment in `dir` with its databases. Most
    /// callers want [`crate::open_lmdb`], which also wraps the store in the MVCC layer.
    pub fn open(dir: &Path, options: &LmdbOptions) -> Result<Self> {
        let existed = claim_directory(dir, DATA_FILE)?;
        if !existed {
            create_environment(dir, options)?;
        }
        let env = open_environment(dir, options)?;
        // Reader slots of killed processes would otherwise pin old pages forever.
        env.clear_stale_readers().map_err(from_heed)?;
        let dbs = create_databases(&env, existed, dir)?;
        let store = LmdbStore {
            page_size: env.unnamed_database_stat().page_size as usize,
            max_key_size: env.max_key_size(),
            max_map_size: options.max_map_size.max(env.info().map_size),
            env,
            dbs,
            writer: Mutex::new(()),
            restoring: Mutex::new(()),
            gate: Arc::new(MapGate::default()),
            broken: AtomicBool::new(false),
            path: dir.to_path_buf(),
            grow_wait: options.grow_wait,
        };
        store.discard_staging()?;
        store.grow_if_crowded();
        Ok(store)
    }

    /// The directory of the environment.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current size of the memory map, in bytes.
    pub fn map_size(&self) -> usize {
        // `mdb_env_info` reads the meta pages through the map, so it must not run
        // while the map is being replaced: hold a pass (or be the only grower).
        let _pass = self.gate.enter(PassKind::View);
        self.env.info().map_size
    }

    /// Takes a pass of `kind`, failing if the environment became unusable.
    pub(crate) fn pass(&self, kind: PassKind) -> Result<GatePass> {
        let pass = self.gate.enter(kind);
        if self.broken.load(Ordering::SeqCst) {
            return Err(EngineError::Closed);
        }
        Ok(pass)
    }

    /// Empties the staging `versions` database, which holds something only if a
    /// restore was interrupted.
    fn discard_staging(&self) -> Result<()> {
        let mut write = self.begin_write()?;
        let staging = write.tables().staging();
        if !staging.is_empty(write.txn()?).map_err(from_heed)? {
            write.clear_db(staging)?;
            write.commit(elastickv_engine_api::Durability::Sync)?;
        }
        Ok(())
    }

    fn resize(&self, size: usize) -> heed::Result<()> {
        // SAFETY: called only from `MapGate::exclusive`/`try_exclusive`, which run it
        // while no gate pass is out; every transaction of this store is created after
        // taking a pass and dropped before releasing it, so no transaction of this
        // process is open, as `mdb_env_set_mapsize` requires.
        #[allow(unsafe_code)]
        let result = unsafe { self.env.resize(size) };
        if result.is_err() {
            // LMDB unmapped the old map and failed to map the new one.
            self.broken.store(true, Ordering::SeqCst);
        }
        result
    }

    /// Grows the map by at least `needed` bytes (usually doubling it), waiting for open
    /// transactions to end. The caller holds the writer lock and no pass.
    pub(crate) fn grow_map(&self, needed: usize) -> Result<()> {
        // Only the writer-lock holder resizes, so the map cannot change under this.
        let current = self.env.info().map_size;
        let Some(target) = grown_size(current, needed, self.max_map_size, self.page_size) else {
            return Err(EngineError::backend(
                ENGINE,
                format!(
                    "the LMDB map is full at its maximum size of {} bytes (LmdbOptions::max_map_size)",
                    self.max_map_size
                ),
            ));
        };
        match self.gate.exclusive(self.grow_wait, || self.resize(target)) {
            Some(result) => result.map_err(from_heed),
            None => Err(EngineError::backend(
                ENGINE,
                format!(
                    "the LMDB map is full ({current} bytes); growing it to {target} bytes needs a \
                     moment without open transactions, but snapshots or reads stayed open for \
                     {:?} (LmdbOptions::grow_wait)",
                    self.grow_wait
                ),
            )),
        }
    }

    /// Doubles the map, if nothing is open right now, once more than half of it is
    /// used, so that writers rarely meet a full map. Never waits. The caller holds the
    /// writer lock (or is opening the store), so the map cannot change under it.
    pub(crate) fn grow_if_crowded(&self) {
        let info = self.env.info();
        let used = (info.last_page_number + 1).saturating_mul(self.page_size);
        if used.saturating_mul(2) <= info.map_size {
            return;
        }
        if let Some(target) = grown_size(info.map_size, 0, self.max_map_size, self.page_size) {
            // Failure to remap marks the store broken; otherwise a busy moment just
            // postpones growth to a later commit or to the writer that fills the map.
            let _ = self.gate.try_exclusive(|| self.resize(target));
        }
    }

    fn open_read(&self, kind: PassKind) -> Result<LmdbRead<'_>> {
        let pass = self.pass(kind)?;
        let txn = self.env.read_txn().map_err(from_heed)?;
        let tables = Tables::resolve(self.dbs, &txn)?;
        Ok(LmdbRead {
            txn,
            tables,
            max_key: self.max_key_size,
            _pass: pass,
        })
    }
}

impl Drop for LmdbStore {
    fn drop(&mut self) {
        // Buffered commits leave LMDB's last meta page unsynced; flush it on a clean
        // close. An error here cannot be reported and loses at most buffered writes.
        if !self.broken.load(Ordering::SeqCst) {
            let _ = self.env.force_sync();
        }
    }
}

impl OrderedStore for LmdbStore {
    type Read<'a> = LmdbRead<'a>;
    type Write<'a> = LmdbWrite<'a>;
    type Snapshot = LmdbRead<'static>;

    fn name(&self) -> &'static str {
        ENGINE
    }

    /// LMDB's key limit for this environment: with heed's `longer-keys` feature it is
    /// set by the page size (1982 bytes with 4 KiB pages) rather than 511 bytes.
    fn max_stored_key_size(&self) -> usize {
        self.max_key_size
    }

    fn max_stored_value_size(&self) -> usize {
        usize::try_from(LMDB_MAX_VALUE).unwrap_or(usize::MAX)
    }

    fn read(&self) -> Result<LmdbRead<'_>> {
        self.open_read(PassKind::View)
    }

    fn begin_write(&self) -> Result<LmdbWrite<'_>> {
        let writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        LmdbWrite::begin(self, writer)
    }

    fn snapshot(&self) -> Result<LmdbRead<'static>> {
        let pass = self.pass(PassKind::Snapshot)?;
        let txn = self.env.clone().static_read_txn().map_err(from_heed)?;
        let tables = Tables::resolve(self.dbs, &txn)?;
        Ok(LmdbRead {
            txn,
            tables,
            max_key: self.max_key_size,
            _pass: pass,
        })
    }

    fn replace_versions(
        &self,
        fill: &mut dyn FnMut(&mut VersionSink<'_>) -> Result<()>,
        finish: &[TableOp],
    ) -> Result<()> {
        crate::restore::replace_versions(self, fill, finish)
    }
}
