//! MVCC for byte-ordered key-value backends, written once.
//!
//! A backend with ordered tables and atomic transactions (redb, LMDB, RocksDB, ...)
//! implements the small [`OrderedStore`] trait: three tables, a read view, an exclusive
//! write transaction, a point-in-time snapshot and an atomic bulk replace.
//! [`OrderedMvcc`] turns any such store into a full [`MvccEngine`](crate::MvccEngine),
//! using the shared key encoding ([`crate::encoding`]), validation ([`crate::Limits`])
//! and snapshot stream ([`crate::stream`]). Every MVCC rule lives here, so every
//! byte-ordered backend behaves identically and passes the same conformance kit.

mod engine;
mod maintenance;

use std::ops::Bound;

pub use engine::{OrderedMvcc, OrderedSnapshot};

use crate::{Durability, Result};

/// The three tables of an ordered store. A backend maps each to a table, named
/// database or column family, all inside one database so one transaction covers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    /// MVCC versions, keyed by [`crate::encoding::encode_version_key`].
    Versions,
    /// The MVCC layer's own metadata (format marker, `last_commit_ts`, watermark).
    Meta,
    /// The raw keyspace handed to the Raft layer, keys stored as given.
    Raw,
}

impl Table {
    /// Every table.
    pub const ALL: [Table; 3] = [Table::Versions, Table::Meta, Table::Raw];

    /// A stable name, for backends that name their tables.
    pub fn name(self) -> &'static str {
        match self {
            Table::Versions => "versions",
            Table::Meta => "meta",
            Table::Raw => "raw",
        }
    }
}

/// Iteration direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Ascending byte order.
    Forward,
    /// Descending byte order.
    Reverse,
}

/// The visitor of [`OrderedRead::scan`]: receives each key and value (borrowed from
/// the backend, valid only during the call) and returns `false` to stop.
pub type Visitor<'v> = dyn FnMut(&[u8], &[u8]) -> Result<bool> + 'v;

/// Reads from a consistent view of the store.
pub trait OrderedRead {
    /// The value stored under `key` in `table`.
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Visits the entries of `table` between `lower` and `upper` in `direction`,
    /// until the visitor returns `false` or the range ends. An empty or inverted range
    /// visits nothing.
    fn scan(
        &self,
        table: Table,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        direction: Direction,
        visit: &mut Visitor<'_>,
    ) -> Result<()>;
}

/// An exclusive write transaction. Dropping it without [`OrderedWrite::commit`] discards
/// every change.
///
/// Reads through a write transaction see at least everything committed before it
/// began. Whether they also see the transaction's own uncommitted changes is up to the
/// backend: [`OrderedMvcc`] never depends on it.
pub trait OrderedWrite: OrderedRead {
    /// Sets `key` to `value` in `table`.
    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<()>;

    /// Removes `key` from `table` if present.
    fn delete(&mut self, table: Table, key: &[u8]) -> Result<()>;

    /// Removes every key of `table` in `[lower, upper)` (`upper == None`: to the end).
    fn delete_range(&mut self, table: Table, lower: &[u8], upper: Option<&[u8]>) -> Result<()>;

    /// Makes every change durable as one atomic unit, synced or buffered
    /// (ENGINE.md section 9).
    fn commit(self, durability: Durability) -> Result<()>
    where
        Self: Sized;
}

/// The sink [`OrderedStore::replace_versions`] hands to its `fill` callback: receives
/// the new `Versions` entries in ascending key order.
pub type VersionSink<'s> = dyn FnMut(&[u8], &[u8]) -> Result<()> + 's;

/// A change applied to one table during [`OrderedStore::replace_versions`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableOp {
    /// The table changed.
    pub table: Table,
    /// The change.
    pub op: crate::RawOp,
}

/// A byte-ordered, transactional backend: what a backend crate implements to get the
/// whole MVCC engine from [`OrderedMvcc`].
pub trait OrderedStore: Send + Sync + 'static {
    /// A consistent read view (a read transaction).
    type Read<'a>: OrderedRead
    where
        Self: 'a;
    /// An exclusive write transaction.
    type Write<'a>: OrderedWrite
    where
        Self: 'a;
    /// An owned point-in-time view that outlives the call and can be read while
    /// writers continue.
    type Snapshot: OrderedRead + Send + 'static;

    /// The engine's stable name ("redb", "lmdb", "rocks", ...).
    fn name(&self) -> &'static str;

    /// The longest key the backend can store in any table, in bytes.
    fn max_stored_key_size(&self) -> usize;

    /// The longest value the backend can store, in bytes.
    fn max_stored_value_size(&self) -> usize;

    /// Opens a read view of the latest committed state.
    fn read(&self) -> Result<Self::Read<'_>>;

    /// Begins the write transaction. At most one is open at a time: this call waits
    /// until the previous one is committed or dropped.
    fn begin_write(&self) -> Result<Self::Write<'_>>;

    /// Takes a point-in-time snapshot from the backend's native facility.
    fn snapshot(&self) -> Result<Self::Snapshot>;

    /// Replaces the whole `Versions` table atomically: `fill` streams the new entries
    /// (ascending) into the sink it is given; then `finish` is applied, and the switch
    /// becomes durable (synced) as one atomic step. If `fill` or anything else fails,
    /// the previous content is left intact. Memory use must not grow with the number of
    /// entries beyond what the backend's transaction needs.
    ///
    /// The default implementation does all of it in one write transaction, which suits
    /// backends whose transactions spill to disk (redb, LMDB). Backends that buffer a
    /// transaction in memory (RocksDB write batches) override it.
    fn replace_versions(
        &self,
        fill: &mut dyn FnMut(&mut VersionSink<'_>) -> Result<()>,
        finish: &[TableOp],
    ) -> Result<()> {
        let mut txn = self.begin_write()?;
        txn.delete_range(Table::Versions, &[], None)?;
        fill(&mut |key, value| txn.put(Table::Versions, key, value))?;
        for op in finish {
            apply_table_op(&mut txn, op)?;
        }
        txn.commit(Durability::Sync)
    }
}

/// Applies one [`TableOp`] through a write transaction.
pub fn apply_table_op<W: OrderedWrite + ?Sized>(txn: &mut W, op: &TableOp) -> Result<()> {
    apply_raw_op(txn, op.table, &op.op)
}

/// Applies one [`crate::RawOp`] to `table` through a write transaction.
pub fn apply_raw_op<W: OrderedWrite + ?Sized>(
    txn: &mut W,
    table: Table,
    op: &crate::RawOp,
) -> Result<()> {
    match op {
        crate::RawOp::Put { key, value } => txn.put(table, key, value),
        crate::RawOp::Delete { key } => txn.delete(table, key),
        crate::RawOp::DeleteRange { range } => {
            if range.is_empty() {
                return Ok(());
            }
            txn.delete_range(table, &range.start, range.end.as_deref())
        }
    }
}
