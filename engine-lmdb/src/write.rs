//! [`LmdbWrite`]: LMDB's write transaction, made to survive a full map.
//!
//! When LMDB runs out of map space (`MDB_MAP_FULL`) the transaction is dead and must be
//! aborted; the map can only grow while no transaction is open. So the write keeps a
//! log of the changes it made: on a full map it aborts, grows the map, begins a new
//! transaction and replays the log, then carries on as if nothing happened. This is
//! exact because the writer lock is held throughout, so the new transaction starts
//! from the same committed state the first one did.

use std::fmt;
use std::ops::Bound;
use std::sync::MutexGuard;

use elastickv_engine_api::ordered::{Direction, OrderedRead, OrderedWrite, Table, Visitor};
use elastickv_engine_api::{Durability, EngineError, Result};
use heed::{RoTxn, RwTxn};

use crate::error::{from_heed, is_map_full};
use crate::map::{GatePass, PassKind};
use crate::read::{get_in, scan_in, storable_bounds};
use crate::store::{Db, LmdbStore, Tables};

/// One change, borrowed while it is applied.
#[derive(Debug, Clone, Copy)]
enum Change<'k> {
    Put(Db, &'k [u8], &'k [u8]),
    Delete(Db, &'k [u8]),
    DeleteRange(Db, Bound<&'k [u8]>, Bound<&'k [u8]>),
    Clear(Db),
}

/// One change, kept for replay.
#[derive(Debug)]
enum Logged {
    Put(Db, Vec<u8>, Vec<u8>),
    Delete(Db, Vec<u8>),
    DeleteRange(Db, Bound<Vec<u8>>, Bound<Vec<u8>>),
    Clear(Db),
}

impl Change<'_> {
    fn apply(self, txn: &mut RwTxn<'_>) -> heed::Result<()> {
        match self {
            Change::Put(db, key, value) => db.put(txn, key, value),
            Change::Delete(db, key) => db.delete(txn, key).map(drop),
            Change::DeleteRange(db, lower, upper) => {
                db.delete_range(txn, &(lower, upper)).map(drop)
            }
            Change::Clear(db) => db.clear(txn),
        }
    }

    fn size(&self) -> usize {
        match self {
            Change::Put(_, key, value) => key.len() + value.len(),
            Change::Delete(_, key) => key.len(),
            Change::DeleteRange(..) => 0,
            Change::Clear(_) => 0,
        }
    }

    fn to_logged(self) -> Logged {
        match self {
            Change::Put(db, key, value) => Logged::Put(db, key.to_vec(), value.to_vec()),
            Change::Delete(db, key) => Logged::Delete(db, key.to_vec()),
            Change::DeleteRange(db, lower, upper) => {
                Logged::DeleteRange(db, lower.map(<[u8]>::to_vec), upper.map(<[u8]>::to_vec))
            }
            Change::Clear(db) => Logged::Clear(db),
        }
    }
}

impl Logged {
    fn as_change(&self) -> Change<'_> {
        match self {
            Logged::Put(db, key, value) => Change::Put(*db, key, value),
            Logged::Delete(db, key) => Change::Delete(*db, key),
            Logged::DeleteRange(db, lower, upper) => Change::DeleteRange(
                *db,
                lower.as_ref().map(Vec::as_slice),
                upper.as_ref().map(Vec::as_slice),
            ),
            Logged::Clear(db) => Change::Clear(*db),
        }
    }
}

/// The LMDB write transaction of [`LmdbStore`]. One is open at a time per store:
/// [`elastickv_engine_api::ordered::OrderedStore::begin_write`] waits for the previous
/// one to commit or drop.
pub struct LmdbWrite<'a> {
    store: &'a LmdbStore,
    // Field order is drop order: the transaction ends before its pass, and both before
    // the writer lock is released.
    txn: Option<RwTxn<'a>>,
    pass: Option<GatePass>,
    tables: Tables,
    log: Vec<Logged>,
    log_bytes: usize,
    _writer: MutexGuard<'a, ()>,
}

impl fmt::Debug for LmdbWrite<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LmdbWrite")
            .field("changes", &self.log.len())
            .finish_non_exhaustive()
    }
}

impl<'a> LmdbWrite<'a> {
    /// Begins the write transaction; `writer` is the store's writer lock.
    pub(crate) fn begin(store: &'a LmdbStore, writer: MutexGuard<'a, ()>) -> Result<Self> {
        let pass = store.pass(PassKind::View)?;
        let txn = store.env.write_txn().map_err(from_heed)?;
        let tables = Tables::resolve(store.dbs, &txn)?;
        Ok(LmdbWrite {
            store,
            txn: Some(txn),
            pass: Some(pass),
            tables,
            log: Vec::new(),
            log_bytes: 0,
            _writer: writer,
        })
    }

    /// The databases this transaction sees as tables.
    pub(crate) fn tables(&self) -> Tables {
        self.tables
    }

    /// The open transaction, for reads.
    pub(crate) fn txn(&self) -> Result<&RoTxn<'a>> {
        // `None` only while a full map is being handled, which never returns here
        // without either a new transaction or an error that ends this write.
        self.txn.as_ref().map(|t| &***t).ok_or(EngineError::Closed)
    }

    pub(crate) fn put_db(&mut self, db: Db, key: &[u8], value: &[u8]) -> Result<()> {
        self.change(Change::Put(db, key, value))
    }

    pub(crate) fn clear_db(&mut self, db: Db) -> Result<()> {
        self.change(Change::Clear(db))
    }

    fn change(&mut self, change: Change<'_>) -> Result<()> {
        loop {
            let txn = self.txn.as_mut().ok_or(EngineError::Closed)?;
            match change.apply(txn) {
                Ok(()) => {
                    self.log_bytes += change.size();
                    self.log.push(change.to_logged());
                    return Ok(());
                }
                Err(e) if is_map_full(&e) => self.grow_and_replay(change.size())?,
                Err(e) => return Err(from_heed(e)),
            }
        }
    }

    /// Aborts the transaction, grows the map by enough for the changes so far plus
    /// `extra` bytes, and redoes the changes in a new transaction.
    fn grow_and_replay(&mut self, extra: usize) -> Result<()> {
        loop {
            self.txn = None;
            self.pass = None;
            // A B-tree write touches several pages per change; ask for generous room.
            self.store
                .grow_map(self.log_bytes.saturating_add(extra).saturating_mul(2))?;
            self.pass = Some(self.store.pass(PassKind::View)?);
            let mut txn = self.store.env.write_txn().map_err(from_heed)?;
            let replayed = self
                .log
                .iter()
                .try_for_each(|l| l.as_change().apply(&mut txn));
            match replayed {
                Ok(()) => {
                    self.txn = Some(txn);
                    return Ok(());
                }
                Err(e) if is_map_full(&e) => continue,
                Err(e) => return Err(from_heed(e)),
            }
        }
    }
}

impl OrderedRead for LmdbWrite<'_> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        get_in(
            self.txn()?,
            self.tables.db(table),
            key,
            self.store.max_key_size,
        )
    }

    fn scan(
        &self,
        table: Table,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        direction: Direction,
        visit: &mut Visitor<'_>,
    ) -> Result<()> {
        let max = self.store.max_key_size;
        scan_in(
            self.txn()?,
            self.tables.db(table),
            lower,
            upper,
            direction,
            visit,
            max,
        )
    }
}

impl OrderedWrite for LmdbWrite<'_> {
    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<()> {
        self.put_db(self.tables.db(table), key, value)
    }

    fn delete(&mut self, table: Table, key: &[u8]) -> Result<()> {
        if key.is_empty() || key.len() > self.store.max_key_size {
            // No such key can be stored, so there is nothing to remove.
            return Ok(());
        }
        self.change(Change::Delete(self.tables.db(table), key))
    }

    fn delete_range(&mut self, table: Table, lower: &[u8], upper: Option<&[u8]>) -> Result<()> {
        let upper = upper.map_or(Bound::Unbounded, Bound::Excluded);
        let max = self.store.max_key_size;
        let Some((lower, upper)) = storable_bounds(Bound::Included(lower), upper, max) else {
            return Ok(());
        };
        self.change(Change::DeleteRange(self.tables.db(table), lower, upper))
    }

    /// Commits. The environment runs with `MDB_NOMETASYNC`: every commit fsyncs its
    /// data pages, and the meta page that makes it current is flushed by the next
    /// commit or sync. A synced write therefore follows its commit with
    /// `mdb_env_sync`; a buffered one does not, so a system crash may undo the last
    /// buffered commits, never corrupting the environment or reordering commits.
    fn commit(mut self, durability: Durability) -> Result<()> {
        loop {
            let txn = self.txn.take().ok_or(EngineError::Closed)?;
            match txn.commit() {
                Ok(()) => break,
                // LMDB aborted the transaction; redo it in a larger map.
                Err(e) if is_map_full(&e) => self.grow_and_replay(0)?,
                Err(e) => return Err(from_heed(e)),
            }
        }
        self.pass = None;
        if durability == Durability::Sync {
            self.store.env.force_sync().map_err(from_heed)?;
        }
        self.store.grow_if_crowded();
        Ok(())
    }
}
