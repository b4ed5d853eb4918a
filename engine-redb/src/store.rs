//! [`RedbStore`]: the [`OrderedStore`] primitive over one redb database.

use std::cell::OnceCell;
use std::fmt;
use std::ops::Bound;
use std::path::{Path, PathBuf};

use elastickv_engine_api::ordered::{
    apply_table_op, Direction, OrderedRead, OrderedStore, OrderedWrite, Table, TableOp,
    VersionSink, Visitor,
};
use elastickv_engine_api::{Durability, Result};
use redb::{
    AccessGuard, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable, StorageError,
    TableDefinition, TableError, WriteTransaction,
};

use crate::error::{from_redb, ENGINE};
use crate::{claim_directory, RedbOptions, CREATING_FILE, DATA_FILE};

/// redb's limit on one key or one value (3 GiB, `MAX_VALUE_LENGTH` in redb's page
/// store). A key and its value together may hold at most 3.75 GiB, which the MVCC
/// layer's own limits (16 KiB keys, 32 MiB values) stay far below.
const REDB_MAX_ITEM: u64 = 3 * 1024 * 1024 * 1024;

type Bytes = &'static [u8];

fn definition(table: Table) -> TableDefinition<'static, Bytes, Bytes> {
    TableDefinition::new(table.name())
}

fn index(table: Table) -> usize {
    match table {
        Table::Versions => 0,
        Table::Meta => 1,
        Table::Raw => 2,
    }
}

/// True when no key can lie between `lower` and `upper`. Checked before asking redb
/// for a range, so inverted ranges visit nothing whatever redb does with them.
fn range_is_empty(lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> bool {
    match (lower, upper) {
        (Bound::Included(l), Bound::Included(u)) => l > u,
        (Bound::Included(l) | Bound::Excluded(l), Bound::Excluded(u))
        | (Bound::Excluded(l), Bound::Included(u)) => l >= u,
        _ => false,
    }
}

type Entry<'a> =
    std::result::Result<(AccessGuard<'a, Bytes>, AccessGuard<'a, Bytes>), StorageError>;

fn visit_all<'a>(entries: impl Iterator<Item = Entry<'a>>, visit: &mut Visitor<'_>) -> Result<()> {
    for entry in entries {
        let (key, value) = entry.map_err(from_redb)?;
        if !visit(key.value(), value.value())? {
            break;
        }
    }
    Ok(())
}

/// Scans a redb table (read-only or inside a write transaction) for [`OrderedRead::scan`].
fn scan_table<T: ReadableTable<Bytes, Bytes>>(
    table: &T,
    lower: Bound<&[u8]>,
    upper: Bound<&[u8]>,
    direction: Direction,
    visit: &mut Visitor<'_>,
) -> Result<()> {
    if range_is_empty(lower, upper) {
        return Ok(());
    }
    let range = table.range::<&[u8]>((lower, upper)).map_err(from_redb)?;
    match direction {
        Direction::Forward => visit_all(range, visit),
        Direction::Reverse => visit_all(range.rev(), visit),
    }
}

fn builder(options: &RedbOptions) -> redb::Builder {
    let mut builder = redb::Builder::new();
    builder.set_cache_size(options.cache_size);
    builder
}

/// Builds a new database file with its tables under a scratch name, then renames it to
/// `path`: redb writes a new file in several steps, and a crash between them would
/// leave a file it refuses to open ("not a redb database").
fn create_database_file(dir: &Path, path: &Path, options: &RedbOptions) -> Result<()> {
    let scratch = dir.join(CREATING_FILE);
    if scratch.exists() {
        // The leftover of an interrupted creation: nothing in it was ever acknowledged.
        std::fs::remove_file(&scratch)?;
    }
    {
        let db = builder(options).create(&scratch).map_err(from_redb)?;
        let txn = db.begin_write().map_err(from_redb)?;
        for table in Table::ALL {
            txn.open_table(definition(table)).map_err(from_redb)?;
        }
        // Durability::Immediate (the default): the file is synced before the rename.
        txn.commit().map_err(from_redb)?;
    }
    std::fs::rename(&scratch, path)?;
    sync_directory(dir)
}

/// Makes a rename inside `dir` durable.
fn sync_directory(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// The engine's storage primitive on redb: the three tables of
/// [`Table`] in one database file.
pub struct RedbStore {
    db: redb::Database,
    path: PathBuf,
    quick_repair: bool,
}

impl fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .field("quick_repair", &self.quick_repair)
            .finish_non_exhaustive()
    }
}

impl RedbStore {
    /// Opens (or creates) the database file in `dir` and makes sure the three tables
    /// exist. Most callers want [`crate::open_redb`], which also wraps the store in
    /// the MVCC layer.
    pub fn open(dir: &Path, options: &RedbOptions) -> Result<Self> {
        let path = dir.join(DATA_FILE);
        if !claim_directory(dir, DATA_FILE)? {
            create_database_file(dir, &path, options)?;
        }
        let db = builder(options).open(&path).map_err(from_redb)?;
        let store = RedbStore {
            db,
            path,
            quick_repair: options.quick_repair,
        };
        store.create_missing_tables()?;
        Ok(store)
    }

    /// The path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn create_missing_tables(&self) -> Result<()> {
        let read = self.db.begin_read().map_err(from_redb)?;
        let mut missing = false;
        for table in Table::ALL {
            match read.open_table(definition(table)) {
                Ok(_) => {}
                Err(TableError::TableDoesNotExist(_)) => missing = true,
                Err(e) => return Err(from_redb(e)),
            }
        }
        drop(read);
        if missing {
            let txn = self.db.begin_write().map_err(from_redb)?;
            for table in Table::ALL {
                txn.open_table(definition(table)).map_err(from_redb)?;
            }
            txn.commit().map_err(from_redb)?;
        }
        Ok(())
    }

    fn begin(&self) -> Result<RedbRead> {
        Ok(RedbRead {
            txn: self.db.begin_read().map_err(from_redb)?,
            tables: Default::default(),
        })
    }
}

/// A redb read transaction: the read view and the snapshot of [`RedbStore`]. It owns
/// its transaction, so it can outlive the call that made it and move to another
/// thread; redb keeps every page it sees until it is dropped, while writers continue.
pub struct RedbRead {
    txn: ReadTransaction,
    tables: [OnceCell<ReadOnlyTable<Bytes, Bytes>>; 3],
}

impl fmt::Debug for RedbRead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbRead").finish_non_exhaustive()
    }
}

impl RedbRead {
    fn table(&self, table: Table) -> Result<&ReadOnlyTable<Bytes, Bytes>> {
        let cell = &self.tables[index(table)];
        if let Some(open) = cell.get() {
            return Ok(open);
        }
        let open = self.txn.open_table(definition(table)).map_err(from_redb)?;
        Ok(cell.get_or_init(|| open))
    }
}

impl OrderedRead for RedbRead {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let found = self.table(table)?.get(key).map_err(from_redb)?;
        Ok(found.map(|value| value.value().to_vec()))
    }

    fn scan(
        &self,
        table: Table,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        direction: Direction,
        visit: &mut Visitor<'_>,
    ) -> Result<()> {
        scan_table(self.table(table)?, lower, upper, direction, visit)
    }
}

/// A redb write transaction. redb allows one at a time: [`OrderedStore::begin_write`]
/// waits for the previous one to commit or drop.
pub struct RedbWrite<'a> {
    txn: WriteTransaction,
    store: &'a RedbStore,
}

impl fmt::Debug for RedbWrite<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbWrite").finish_non_exhaustive()
    }
}

impl RedbWrite<'_> {
    fn table(&self, table: Table) -> Result<redb::Table<'_, Bytes, Bytes>> {
        self.txn.open_table(definition(table)).map_err(from_redb)
    }
}

impl OrderedRead for RedbWrite<'_> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let open = self.table(table)?;
        let found = open.get(key).map_err(from_redb)?;
        Ok(found.map(|value| value.value().to_vec()))
    }

    fn scan(
        &self,
        table: Table,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        direction: Direction,
        visit: &mut Visitor<'_>,
    ) -> Result<()> {
        scan_table(&self.table(table)?, lower, upper, direction, visit)
    }
}

impl OrderedWrite for RedbWrite<'_> {
    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<()> {
        self.table(table)?.insert(key, value).map_err(from_redb)?;
        Ok(())
    }

    fn delete(&mut self, table: Table, key: &[u8]) -> Result<()> {
        self.table(table)?.remove(key).map_err(from_redb)?;
        Ok(())
    }

    fn delete_range(&mut self, table: Table, lower: &[u8], upper: Option<&[u8]>) -> Result<()> {
        let upper = upper.map_or(Bound::Unbounded, Bound::Excluded);
        if range_is_empty(Bound::Included(lower), upper) {
            return Ok(());
        }
        self.table(table)?
            .retain_in::<&[u8], _>((Bound::Included(lower), upper), |_, _| false)
            .map_err(from_redb)
    }

    fn commit(mut self, durability: Durability) -> Result<()> {
        let level = match durability {
            Durability::Sync => redb::Durability::Immediate,
            Durability::Buffered => redb::Durability::None,
        };
        self.txn.set_durability(level).map_err(from_redb)?;
        self.txn.set_quick_repair(self.store.quick_repair);
        self.txn.commit().map_err(from_redb)
    }
}

impl OrderedStore for RedbStore {
    type Read<'a> = RedbRead;
    type Write<'a> = RedbWrite<'a>;
    type Snapshot = RedbRead;

    fn name(&self) -> &'static str {
        ENGINE
    }

    fn max_stored_key_size(&self) -> usize {
        usize::try_from(REDB_MAX_ITEM).unwrap_or(usize::MAX)
    }

    fn max_stored_value_size(&self) -> usize {
        usize::try_from(REDB_MAX_ITEM).unwrap_or(usize::MAX)
    }

    fn read(&self) -> Result<RedbRead> {
        self.begin()
    }

    fn begin_write(&self) -> Result<RedbWrite<'_>> {
        Ok(RedbWrite {
            txn: self.db.begin_write().map_err(from_redb)?,
            store: self,
        })
    }

    fn snapshot(&self) -> Result<RedbRead> {
        self.begin()
    }

    /// Drops the whole `versions` table and refills a fresh one in the same write
    /// transaction: redb frees the old tree's pages instead of deleting entry by entry,
    /// and the bulk insert keeps one table handle open. redb transactions spill to the
    /// file, so memory stays bounded; the one synced commit makes the switch atomic.
    fn replace_versions(
        &self,
        fill: &mut dyn FnMut(&mut VersionSink<'_>) -> Result<()>,
        finish: &[TableOp],
    ) -> Result<()> {
        let mut write = self.begin_write()?;
        write
            .txn
            .delete_table(definition(Table::Versions))
            .map_err(from_redb)?;
        {
            let mut versions = write.table(Table::Versions)?;
            fill(&mut |key, value| {
                versions.insert(key, value).map_err(from_redb)?;
                Ok(())
            })?;
        }
        for op in finish {
            apply_table_op(&mut write, op)?;
        }
        write.commit(Durability::Sync)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverted_and_touching_bounds_are_empty() {
        use Bound::{Excluded, Included, Unbounded};
        assert!(range_is_empty(Included(b"b"), Excluded(b"a")));
        assert!(range_is_empty(Included(b"a"), Excluded(b"a")));
        assert!(range_is_empty(Excluded(b"a"), Included(b"a")));
        assert!(!range_is_empty(Included(b"a"), Included(b"a")));
        assert!(!range_is_empty(Included(b"a"), Unbounded));
        assert!(!range_is_empty(Unbounded, Excluded(b"a")));
    }
}
