//! [`RocksSnapshot`]: an owned RocksDB snapshot that outlives the call that took it.

use std::ops::Bound;
use std::sync::Arc;

use elastickv_engine_api::ordered::{Direction, OrderedRead, Table, Visitor};
use elastickv_engine_api::Result;

use crate::store::Db;
use crate::view::{Reader, Tables};

/// A point-in-time view of the whole store, owned and `'static`: a RocksDB snapshot,
/// the column-family handles of the generation it belongs to, and a reference count on
/// the database that keeps it open for as long as the snapshot lives.
///
/// Writers continue while it is read: RocksDB keeps every version the snapshot can see
/// until it is dropped. A restore that replaces the versions generation meanwhile
/// drops the old column family, which RocksDB keeps readable through the handle held
/// here (a dropped column family stays readable until its last handle is destroyed).
/// Holding a snapshot for long therefore pins disk space; stream it and drop it.
pub struct RocksSnapshot {
    // Field order matters: fields are dropped in declaration order, so `reader` (the
    // RocksDB snapshot and the column-family handles, all borrowing the database) is
    // released before `_db`, which may be the last reference and close the database.
    reader: Reader<'static>,
    _db: Arc<Db>,
}

impl std::fmt::Debug for RocksSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksSnapshot")
            .field(
                "sequence",
                &self.reader.snapshot.as_ref().map(|s| s.sequence_number()),
            )
            .finish_non_exhaustive()
    }
}

impl RocksSnapshot {
    /// Takes a snapshot of `db` reading the versions of the column family
    /// `versions_cf`. The caller makes sure no generation switch happens meanwhile.
    pub(crate) fn take(db: &Arc<Db>, versions_cf: &str) -> Result<Self> {
        let owner = Arc::clone(db);
        #[allow(unsafe_code)]
        // SAFETY: `pinned` points into the heap allocation of the `Arc<Db>` that
        // `owner` keeps alive, and `owner` is stored in the returned value next to
        // everything that borrows through `pinned` (the RocksDB snapshot and the
        // column-family handles in `reader`). The database therefore outlives every
        // use of the reference:
        // * moving the `RocksSnapshot` moves the `Arc`, not the database it points to;
        // * `reader` is declared before `_db`, so on drop the snapshot is released and
        //   the handles destroyed while the database is still open;
        // * the `'static` lifetime never escapes: `reader` is private, and every method
        //   of this type only lends it for the duration of a call, returning owned data
        //   (visitors get slices valid only during the callback).
        let pinned: &'static Db = unsafe { &*Arc::as_ptr(&owner) };
        let tables = Tables {
            versions: pinned
                .cf_handle(versions_cf)
                .ok_or_else(|| crate::store::missing_column_family(versions_cf))?,
            meta: crate::store::table_handle(pinned, Table::Meta)?,
            raw: crate::store::table_handle(pinned, Table::Raw)?,
        };
        let snapshot = pinned.snapshot();
        Ok(RocksSnapshot {
            reader: Reader {
                db: pinned,
                tables,
                snapshot: Some(snapshot),
                bulk: true,
            },
            _db: owner,
        })
    }
}

impl OrderedRead for RocksSnapshot {
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
