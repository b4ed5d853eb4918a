//! Reads and write transactions over the column families of one generation.

use std::ops::Bound;
use std::sync::{Arc, MutexGuard};

use elastickv_engine_api::ordered::{Direction, OrderedRead, OrderedWrite, Table, Visitor};
use elastickv_engine_api::{Durability, Result};
use rocksdb::{BoundColumnFamily, ReadOptions, SnapshotWithThreadMode, WriteBatch, WriteOptions};

use crate::error::from_rocks;
use crate::store::Db;

/// Read-ahead used by whole-table scans of a snapshot (the snapshot stream).
const BULK_READAHEAD: usize = 2 * 1024 * 1024;

/// Handles of the three tables as seen by one view: `versions` is the column family of
/// the generation that was active when the view was opened.
pub(crate) struct Tables<'a> {
    pub(crate) versions: Arc<BoundColumnFamily<'a>>,
    pub(crate) meta: Arc<BoundColumnFamily<'a>>,
    pub(crate) raw: Arc<BoundColumnFamily<'a>>,
}

impl<'a> Tables<'a> {
    fn get(&self, table: Table) -> &Arc<BoundColumnFamily<'a>> {
        match table {
            Table::Versions => &self.versions,
            Table::Meta => &self.meta,
            Table::Raw => &self.raw,
        }
    }
}

/// The read path shared by read views, write transactions and snapshots: point reads
/// and bounded scans of one column family, either at a RocksDB snapshot or at the
/// latest committed state.
pub(crate) struct Reader<'a> {
    pub(crate) db: &'a Db,
    pub(crate) tables: Tables<'a>,
    /// `None` reads the latest committed state (write transactions: nobody else
    /// writes while one is open, so that state is stable).
    pub(crate) snapshot: Option<SnapshotWithThreadMode<'a, Db>>,
    /// Whole-table scans (snapshot streaming): read ahead and keep the block cache for
    /// the working set.
    pub(crate) bulk: bool,
}

impl Reader<'_> {
    fn read_options(&self) -> ReadOptions {
        let mut opts = ReadOptions::default();
        if let Some(snapshot) = &self.snapshot {
            opts.set_snapshot(snapshot);
        }
        if self.bulk {
            opts.fill_cache(false);
            opts.set_readahead_size(BULK_READAHEAD);
        }
        opts
    }

    /// The greatest key stored in `table` (committed state of this reader).
    fn last_key(&self, table: Table) -> Result<Option<Vec<u8>>> {
        let mut iter = self
            .db
            .raw_iterator_cf_opt(self.tables.get(table), self.read_options());
        iter.seek_to_last();
        let last = iter.key().map(<[u8]>::to_vec);
        iter.status().map_err(from_rocks)?;
        Ok(last)
    }
}

/// The smallest key greater than `key`: `key ++ [0]`.
fn successor(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 1);
    out.extend_from_slice(key);
    out.push(0);
    out
}

impl OrderedRead for Reader<'_> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let value = self
            .db
            .get_pinned_cf_opt(self.tables.get(table), key, &self.read_options())
            .map_err(from_rocks)?;
        Ok(value.map(|v| v.to_vec()))
    }

    fn scan(
        &self,
        table: Table,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        direction: Direction,
        visit: &mut Visitor<'_>,
    ) -> Result<()> {
        // RocksDB's iterate bounds are [lower, upper): translate the other bound kinds
        // to their exact equivalents, so the iterator itself never leaves the range
        // (it then stops at the bound instead of reading the next key beyond it).
        let lower = match lower {
            Bound::Included(k) => Some(k.to_vec()),
            Bound::Excluded(k) => Some(successor(k)),
            Bound::Unbounded => None,
        };
        let upper = match upper {
            Bound::Excluded(k) => Some(k.to_vec()),
            Bound::Included(k) => Some(successor(k)),
            Bound::Unbounded => None,
        };
        if let (Some(lo), Some(hi)) = (&lower, &upper) {
            if lo >= hi {
                return Ok(());
            }
        }
        let mut opts = self.read_options();
        if let Some(lo) = lower {
            opts.set_iterate_lower_bound(lo);
        }
        if let Some(hi) = upper {
            opts.set_iterate_upper_bound(hi);
        }
        let mut iter = self.db.raw_iterator_cf_opt(self.tables.get(table), opts);
        // With iterate bounds set, RocksDB positions SeekToFirst at the lower bound and
        // SeekToLast at the last key below the upper bound.
        match direction {
            Direction::Forward => iter.seek_to_first(),
            Direction::Reverse => iter.seek_to_last(),
        }
        while let Some((key, value)) = iter.item() {
            if !visit(key, value)? {
                return Ok(());
            }
            match direction {
                Direction::Forward => iter.next(),
                Direction::Reverse => iter.prev(),
            }
        }
        // An invalid iterator means either the end of the range or an error.
        iter.status().map_err(from_rocks)
    }
}

/// A consistent read view: a RocksDB snapshot taken together with the handle of the
/// active versions generation.
pub struct RocksRead<'a> {
    pub(crate) reader: Reader<'a>,
}

impl std::fmt::Debug for RocksRead<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksRead").finish_non_exhaustive()
    }
}

impl OrderedRead for RocksRead<'_> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.reader.get(table, key)
    }

    fn scan(
        &self,
        table: Table,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        direction: Direction,
        visit: &mut Visitor<'_>,
    ) -> Result<()> {
        self.reader.scan(table, lower, upper, direction, visit)
    }
}

/// The exclusive write transaction: changes accumulate in one RocksDB `WriteBatch`
/// that [`OrderedWrite::commit`] writes atomically. Reads see the committed state
/// (not the batch), which the contract allows.
pub struct RocksWrite<'a> {
    reader: Reader<'a>,
    batch: WriteBatch,
    /// The greatest key put into each table by this batch (Versions, Meta, Raw), so an
    /// unbounded range delete can be given an exact end key.
    greatest_put: [Option<Vec<u8>>; 3],
    /// Serializes write transactions; released when the transaction ends.
    _writer: MutexGuard<'a, ()>,
}

impl std::fmt::Debug for RocksWrite<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksWrite")
            .field("pending_ops", &self.batch.len())
            .field("pending_bytes", &self.batch.size_in_bytes())
            .finish_non_exhaustive()
    }
}

fn slot(table: Table) -> usize {
    match table {
        Table::Versions => 0,
        Table::Meta => 1,
        Table::Raw => 2,
    }
}

impl<'a> RocksWrite<'a> {
    pub(crate) fn new(db: &'a Db, tables: Tables<'a>, writer: MutexGuard<'a, ()>) -> Self {
        RocksWrite {
            reader: Reader {
                db,
                tables,
                snapshot: None,
                bulk: false,
            },
            batch: WriteBatch::default(),
            greatest_put: [None, None, None],
            _writer: writer,
        }
    }

    /// Adds a raw put to the default column family (backend-private metadata) to the
    /// batch.
    pub(crate) fn put_private(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let default = self
            .reader
            .db
            .cf_handle(rocksdb::DEFAULT_COLUMN_FAMILY_NAME)
            .ok_or_else(|| {
                crate::store::missing_column_family(rocksdb::DEFAULT_COLUMN_FAMILY_NAME)
            })?;
        self.batch.put_cf(&default, key, value);
        Ok(())
    }
}

impl OrderedRead for RocksWrite<'_> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.reader.get(table, key)
    }

    fn scan(
        &self,
        table: Table,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        direction: Direction,
        visit: &mut Visitor<'_>,
    ) -> Result<()> {
        self.reader.scan(table, lower, upper, direction, visit)
    }
}

impl OrderedWrite for RocksWrite<'_> {
    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<()> {
        self.batch.put_cf(self.reader.tables.get(table), key, value);
        let greatest = &mut self.greatest_put[slot(table)];
        if greatest.as_deref().is_none_or(|g| key > g) {
            *greatest = Some(key.to_vec());
        }
        Ok(())
    }

    fn delete(&mut self, table: Table, key: &[u8]) -> Result<()> {
        self.batch.delete_cf(self.reader.tables.get(table), key);
        Ok(())
    }

    fn delete_range(&mut self, table: Table, lower: &[u8], upper: Option<&[u8]>) -> Result<()> {
        let end = match upper {
            Some(upper) => upper.to_vec(),
            // A RocksDB range deletion needs an end key. The greatest key that can
            // exist when this batch reaches it is the greatest committed key or the
            // greatest key this batch put before (the writer is exclusive), so the
            // successor of the larger of the two covers everything up to the end.
            None => {
                let committed = self.reader.last_key(table)?;
                let batched = self.greatest_put[slot(table)].clone();
                match committed.max(batched) {
                    Some(last) => successor(&last),
                    None => return Ok(()),
                }
            }
        };
        if lower < end.as_slice() {
            self.batch
                .delete_range_cf(self.reader.tables.get(table), lower, end.as_slice());
        }
        Ok(())
    }

    fn commit(self, durability: Durability) -> Result<()> {
        let db = self.reader.db;
        if self.batch.is_empty() {
            // Nothing to write; a synced commit still promises that everything before
            // it is durable, which syncing the WAL provides.
            if durability == Durability::Sync {
                db.flush_wal(true).map_err(from_rocks)?;
            }
            return Ok(());
        }
        let mut opts = WriteOptions::default();
        // Sync: the WAL is fsynced before the write returns. Buffered: the WAL record is
        // handed to the OS (it survives a killed process) but not fsynced; a power loss
        // may drop a suffix of such writes, which point-in-time WAL recovery turns into
        // a clean prefix. See docs/engines/rocksdb.md.
        opts.set_sync(durability == Durability::Sync);
        db.write_opt(self.batch, &opts).map_err(from_rocks)
    }
}
