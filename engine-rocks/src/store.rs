//! [`RocksStore`]: the [`OrderedStore`] over one RocksDB database.
//!
//! Layout: the `meta` and `raw` column families hold the tables of those names; the
//! `versions` table lives in a *generation* column family `versions.<n>`, and the
//! default column family holds this backend's own metadata, the active generation
//! (absent means 0). A restore fills generation `n + 1` and then switches to it in one
//! synced write batch, so the switch is atomic and the previous generation is intact
//! until then.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use elastickv_engine_api::ordered::{
    apply_table_op, OrderedStore, OrderedWrite, Table, TableOp, VersionSink,
};
use elastickv_engine_api::{Durability, EngineError, Result};
use rocksdb::{
    BoundColumnFamily, ColumnFamilyDescriptor, MultiThreaded, Options, WriteBatch, WriteOptions,
    DEFAULT_COLUMN_FAMILY_NAME,
};

use crate::error::from_rocks;
use crate::layout::claim_directory;
use crate::options::RocksOptions;
use crate::snapshot::RocksSnapshot;
use crate::view::{Reader, RocksRead, RocksWrite, Tables};
use crate::ENGINE_NAME;

/// The RocksDB handle type used throughout: column families can be created and
/// dropped through a shared reference.
pub(crate) type Db = rocksdb::DBWithThreadMode<MultiThreaded>;

/// Prefix of the versions generation column families.
const VERSIONS_PREFIX: &str = "versions.";
/// Key (in the default column family) of the active versions generation, a big-endian
/// `u64`.
const ACTIVE_GENERATION: &[u8] = b"active_versions_generation";

/// The longest key stored in any column family. RocksDB itself has no small limit;
/// this leaves room for the largest user key the shared layer accepts (16 KiB, which
/// its escaping can double) plus the timestamp suffix.
pub const MAX_STORED_KEY_SIZE: usize = 64 * 1024;
/// The longest value stored. RocksDB encodes lengths in 32 bits and keeps whole values
/// in memtables and blocks; the shared layer caps user values far lower (32 MiB).
pub const MAX_STORED_VALUE_SIZE: usize = 1024 * 1024 * 1024;

fn versions_cf_name(generation: u64) -> String {
    format!("{VERSIONS_PREFIX}{generation}")
}

fn parse_generation(name: &str) -> Option<u64> {
    name.strip_prefix(VERSIONS_PREFIX)?.parse().ok()
}

pub(crate) fn missing_column_family(name: &str) -> EngineError {
    EngineError::corrupted(format!("the rocksdb column family {name:?} is missing"))
}

/// The handle of a fixed table's column family (not `Versions`, whose column family
/// depends on the generation).
pub(crate) fn table_handle(db: &Db, table: Table) -> Result<Arc<BoundColumnFamily<'_>>> {
    let name = table.name();
    db.cf_handle(name)
        .ok_or_else(|| missing_column_family(name))
}

/// A byte-ordered store in one RocksDB database (see the module documentation for the
/// layout). Wrap it in [`elastickv_engine_api::ordered::OrderedMvcc`], or open the
/// whole engine with [`crate::open_rocks`].
pub struct RocksStore {
    db: Arc<Db>,
    path: PathBuf,
    /// Serializes write transactions (and restores, which hold it throughout).
    writer: Mutex<()>,
    /// The active versions generation. Read views take the handle and the RocksDB
    /// snapshot under the read lock; a restore switches generations under the write
    /// lock, so a view never pairs one generation's handle with the other's state.
    active: RwLock<u64>,
    cf_options: Options,
    restore_batch_bytes: usize,
}

impl std::fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksStore")
            .field("path", &self.path)
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

impl RocksStore {
    /// Opens (or creates) the store in `dir`. See [`crate::open_rocks`] for what is
    /// refused.
    pub fn open(dir: &Path, options: &RocksOptions) -> Result<RocksStore> {
        claim_directory(dir)?;
        let db_options = options.db_options();
        let cf_options = options.column_family_options(&options.block_cache());
        let mut names = if dir.join("CURRENT").is_file() {
            Db::list_cf(&db_options, dir).map_err(from_rocks)?
        } else {
            Vec::new()
        };
        for required in [
            DEFAULT_COLUMN_FAMILY_NAME,
            Table::Meta.name(),
            Table::Raw.name(),
        ] {
            if !names.iter().any(|n| n == required) {
                names.push(required.to_owned());
            }
        }
        if !names.iter().any(|n| parse_generation(n).is_some()) {
            names.push(versions_cf_name(0));
        }
        let descriptors = names
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(name, cf_options.clone()));
        let db = Db::open_cf_descriptors(&db_options, dir, descriptors).map_err(from_rocks)?;

        let stored = db
            .get_pinned(ACTIVE_GENERATION)
            .map_err(from_rocks)?
            .map(|bytes| {
                <[u8; 8]>::try_from(bytes.as_ref())
                    .map(u64::from_be_bytes)
                    .map_err(|_| {
                        EngineError::corrupted("the active versions generation is not 8 bytes")
                    })
            })
            .transpose()?;
        let active = stored.unwrap_or(0);
        let active_name = versions_cf_name(active);
        if db.cf_handle(&active_name).is_none() {
            if stored.is_some() {
                return Err(missing_column_family(&active_name));
            }
            db.create_cf(&active_name, &cf_options)
                .map_err(from_rocks)?;
        }
        // Any other generation is what an interrupted restore left behind: either the
        // new one before its switch, or the old one after it.
        for name in &names {
            if parse_generation(name).is_some_and(|g| g != active) {
                db.drop_cf(name).map_err(from_rocks)?;
            }
        }
        Ok(RocksStore {
            db: Arc::new(db),
            path: dir.to_path_buf(),
            writer: Mutex::new(()),
            active: RwLock::new(active),
            cf_options,
            restore_batch_bytes: options.restore_batch_bytes.max(1),
        })
    }

    /// The directory of the database.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The active versions generation (0 until the first restore; each restore adds 1).
    pub fn generation(&self) -> u64 {
        *self.active.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Names of the column families of the database, as stored on disk.
    pub fn column_families(&self) -> Result<Vec<String>> {
        Db::list_cf(&Options::default(), &self.path).map_err(from_rocks)
    }

    /// Flushes every memtable to SST files and waits for it (for benchmarks and tools;
    /// durability never needs it).
    pub fn flush(&self) -> Result<()> {
        let generation = self.generation();
        let tables = self.tables(generation)?;
        for cf in [&tables.versions, &tables.meta, &tables.raw] {
            self.db.flush_cf(cf).map_err(from_rocks)?;
        }
        Ok(())
    }

    /// Flushes every memtable and waits until RocksDB's background flushes and
    /// compactions are done, so that what comes next is measured without them (for
    /// benchmarks; correctness never needs it).
    pub fn settle(&self) -> Result<()> {
        let mut options = rocksdb::WaitForCompactOptions::default();
        options.set_flush(true);
        self.db.wait_for_compact(&options).map_err(from_rocks)
    }

    fn tables(&self, generation: u64) -> Result<Tables<'_>> {
        let versions_name = versions_cf_name(generation);
        Ok(Tables {
            versions: self
                .db
                .cf_handle(&versions_name)
                .ok_or_else(|| missing_column_family(&versions_name))?,
            meta: table_handle(&self.db, Table::Meta)?,
            raw: table_handle(&self.db, Table::Raw)?,
        })
    }

    /// Writes the streamed versions into the (empty) column family `name` in batches
    /// of about `restore_batch_bytes`, then flushes it so it is on disk before it can
    /// become active.
    fn fill_generation(
        &self,
        name: &str,
        fill: &mut dyn FnMut(&mut VersionSink<'_>) -> Result<()>,
    ) -> Result<()> {
        let cf = self
            .db
            .cf_handle(name)
            .ok_or_else(|| missing_column_family(name))?;
        // The new generation is unreachable until the switch, and flushed before it:
        // the WAL would only write it twice.
        let mut opts = WriteOptions::default();
        opts.disable_wal(true);
        let mut batch = WriteBatch::default();
        fill(&mut |key, value| {
            batch.put_cf(&cf, key, value);
            if batch.size_in_bytes() >= self.restore_batch_bytes {
                let full = std::mem::take(&mut batch);
                self.db.write_opt(full, &opts).map_err(from_rocks)?;
            }
            Ok(())
        })?;
        if !batch.is_empty() {
            self.db.write_opt(batch, &opts).map_err(from_rocks)?;
        }
        self.db.flush_cf(&cf).map_err(from_rocks)
    }
}

impl OrderedStore for RocksStore {
    type Read<'a> = RocksRead<'a>;
    type Write<'a> = RocksWrite<'a>;
    type Snapshot = RocksSnapshot;

    fn name(&self) -> &'static str {
        ENGINE_NAME
    }

    fn max_stored_key_size(&self) -> usize {
        MAX_STORED_KEY_SIZE
    }

    fn max_stored_value_size(&self) -> usize {
        MAX_STORED_VALUE_SIZE
    }

    fn read(&self) -> Result<RocksRead<'_>> {
        let active = self.active.read().unwrap_or_else(PoisonError::into_inner);
        let tables = self.tables(*active)?;
        let snapshot = self.db.snapshot();
        drop(active);
        Ok(RocksRead {
            reader: Reader {
                db: &self.db,
                tables,
                snapshot: Some(snapshot),
                bulk: false,
            },
        })
    }

    fn begin_write(&self) -> Result<RocksWrite<'_>> {
        let writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        // Only a restore changes the generation, and it holds `writer`.
        let tables = self.tables(self.generation())?;
        Ok(RocksWrite::new(&self.db, tables, writer))
    }

    fn snapshot(&self) -> Result<RocksSnapshot> {
        let active = self.active.read().unwrap_or_else(PoisonError::into_inner);
        RocksSnapshot::take(&self.db, &versions_cf_name(*active))
    }

    /// Fills generation `n + 1` in bounded batches (memory bounded by
    /// [`RocksOptions::restore_batch_bytes`] plus the memtable), flushes it, then
    /// switches to it together with `finish` in one synced write batch, and drops
    /// generation `n`. A failed fill drops the new generation; the old one was never
    /// touched. A crash at any point leaves either generation active, and the next open
    /// drops the other.
    fn replace_versions(
        &self,
        fill: &mut dyn FnMut(&mut VersionSink<'_>) -> Result<()>,
        finish: &[TableOp],
    ) -> Result<()> {
        let writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let old = self.generation();
        let new = old
            .checked_add(1)
            .ok_or_else(|| EngineError::corrupted("versions generation counter exhausted"))?;
        let new_name = versions_cf_name(new);
        // Not expected (open drops every inactive generation), but a stale column
        // family must not leak old entries into the new generation.
        if self.db.cf_handle(&new_name).is_some() {
            self.db.drop_cf(&new_name).map_err(from_rocks)?;
        }
        self.db
            .create_cf(&new_name, &self.cf_options)
            .map_err(from_rocks)?;
        if let Err(err) = self.fill_generation(&new_name, fill) {
            // Best effort: if this fails too, the next open drops the leftover.
            let _ = self.db.drop_cf(&new_name);
            return Err(err);
        }

        let prepared = self.tables(new).and_then(|tables| {
            let mut txn = RocksWrite::new(&self.db, tables, writer);
            for op in finish {
                apply_table_op(&mut txn, op)?;
            }
            txn.put_private(ACTIVE_GENERATION, &new.to_be_bytes())?;
            Ok(txn)
        });
        let txn = match prepared {
            Ok(txn) => txn,
            Err(err) => {
                let _ = self.db.drop_cf(&new_name);
                return Err(err);
            }
        };
        {
            let mut active = self.active.write().unwrap_or_else(PoisonError::into_inner);
            // If this write fails its outcome on disk is unknown, so neither generation
            // is dropped here: the next open keeps whichever one is active.
            txn.commit(Durability::Sync)?;
            *active = new;
        }
        // Views opened before the switch keep reading the old generation through their
        // handles; RocksDB deletes its files once the last handle is gone. A failure
        // here only leaves garbage that the next open removes.
        let _ = self.db.drop_cf(&versions_cf_name(old));
        Ok(())
    }
}
