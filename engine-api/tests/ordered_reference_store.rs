//! A complete, minimal `OrderedStore`, wrapped in `OrderedMvcc` and run through the whole
//! conformance kit. It validates the shared MVCC layer that the persistent backends use,
//! and shows in one file what a byte-ordered backend has to provide.
//!
//! The store keeps one `BTreeMap` per table. Committed state is an immutable
//! `Arc<Tables>`: read views and snapshots hold an `Arc` (so they are consistent and
//! cheap), and the single writer works on a private copy that `commit` publishes.
//! "Durability" is a registry keyed by directory, so dropping the engine and opening the
//! same directory again finds the committed state, like a file would.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};

use elastickv_engine_api::ordered::{
    Direction, OrderedMvcc, OrderedRead, OrderedStore, OrderedWrite, Table, Visitor,
};
use elastickv_engine_api::testkit::Harness;
use elastickv_engine_api::{Durability, EngineError, Result};

type Tree = BTreeMap<Vec<u8>, Vec<u8>>;

#[derive(Debug, Clone, Default)]
struct Tables {
    versions: Tree,
    meta: Tree,
    raw: Tree,
}

impl Tables {
    fn table(&self, table: Table) -> &Tree {
        match table {
            Table::Versions => &self.versions,
            Table::Meta => &self.meta,
            Table::Raw => &self.raw,
        }
    }

    fn table_mut(&mut self, table: Table) -> &mut Tree {
        match table {
            Table::Versions => &mut self.versions,
            Table::Meta => &mut self.meta,
            Table::Raw => &mut self.raw,
        }
    }
}

/// True when no key can lie between the bounds (`BTreeMap::range` panics on those).
fn is_empty_range(lower: Bound<&[u8]>, upper: Bound<&[u8]>) -> bool {
    match (lower, upper) {
        (Bound::Included(l), Bound::Included(u)) => l > u,
        (Bound::Included(l) | Bound::Excluded(l), Bound::Excluded(u))
        | (Bound::Excluded(l), Bound::Included(u)) => l >= u,
        _ => false,
    }
}

fn scan_tree(
    tree: &Tree,
    lower: Bound<&[u8]>,
    upper: Bound<&[u8]>,
    direction: Direction,
    visit: &mut Visitor<'_>,
) -> Result<()> {
    if is_empty_range(lower, upper) {
        return Ok(());
    }
    let range = tree.range::<[u8], _>((lower, upper));
    let entries: Box<dyn Iterator<Item = (&Vec<u8>, &Vec<u8>)>> = match direction {
        Direction::Forward => Box::new(range),
        Direction::Reverse => Box::new(range.rev()),
    };
    for (key, value) in entries {
        if !visit(key, value)? {
            break;
        }
    }
    Ok(())
}

/// A consistent view: the committed tables at the time it was opened.
#[derive(Debug)]
struct View(Arc<Tables>);

impl OrderedRead for View {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.0.table(table).get(key).cloned())
    }

    fn scan(
        &self,
        table: Table,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        direction: Direction,
        visit: &mut Visitor<'_>,
    ) -> Result<()> {
        scan_tree(self.0.table(table), lower, upper, direction, visit)
    }
}

#[derive(Debug, Default)]
struct Shared {
    committed: RwLock<Arc<Tables>>,
    writer: Mutex<()>,
}

/// The exclusive writer: a private copy of the tables, published on commit.
#[derive(Debug)]
struct WriteTxn<'a> {
    shared: &'a Shared,
    _exclusive: MutexGuard<'a, ()>,
    tables: Tables,
}

impl OrderedRead for WriteTxn<'_> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.tables.table(table).get(key).cloned())
    }

    fn scan(
        &self,
        table: Table,
        lower: Bound<&[u8]>,
        upper: Bound<&[u8]>,
        direction: Direction,
        visit: &mut Visitor<'_>,
    ) -> Result<()> {
        scan_tree(self.tables.table(table), lower, upper, direction, visit)
    }
}

impl OrderedWrite for WriteTxn<'_> {
    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<()> {
        self.tables
            .table_mut(table)
            .insert(key.to_vec(), value.to_vec());
        Ok(())
    }

    fn delete(&mut self, table: Table, key: &[u8]) -> Result<()> {
        self.tables.table_mut(table).remove(key);
        Ok(())
    }

    fn delete_range(&mut self, table: Table, lower: &[u8], upper: Option<&[u8]>) -> Result<()> {
        let upper = upper.map_or(Bound::Unbounded, Bound::Excluded);
        if is_empty_range(Bound::Included(lower), upper) {
            return Ok(());
        }
        let tree = self.tables.table_mut(table);
        let doomed: Vec<Vec<u8>> = tree
            .range::<[u8], _>((Bound::Included(lower), upper))
            .map(|(k, _)| k.clone())
            .collect();
        for key in doomed {
            tree.remove(&key);
        }
        Ok(())
    }

    fn commit(self, _durability: Durability) -> Result<()> {
        let mut committed = self
            .shared
            .committed
            .write()
            .map_err(|_| EngineError::Closed)?;
        *committed = Arc::new(self.tables);
        Ok(())
    }
}

/// The reference `OrderedStore`.
#[derive(Debug)]
struct ReferenceStore {
    shared: Arc<Shared>,
}

impl ReferenceStore {
    fn committed(&self) -> Result<Arc<Tables>> {
        Ok(self
            .shared
            .committed
            .read()
            .map_err(|_| EngineError::Closed)?
            .clone())
    }
}

impl OrderedStore for ReferenceStore {
    type Read<'a> = View;
    type Write<'a> = WriteTxn<'a>;
    type Snapshot = View;

    fn name(&self) -> &'static str {
        "reference-ordered"
    }

    fn max_stored_key_size(&self) -> usize {
        1 << 20
    }

    fn max_stored_value_size(&self) -> usize {
        64 << 20
    }

    fn read(&self) -> Result<View> {
        Ok(View(self.committed()?))
    }

    fn begin_write(&self) -> Result<WriteTxn<'_>> {
        let exclusive = self.shared.writer.lock().map_err(|_| EngineError::Closed)?;
        let tables = (*self.committed()?).clone();
        Ok(WriteTxn {
            shared: &self.shared,
            _exclusive: exclusive,
            tables,
        })
    }

    fn snapshot(&self) -> Result<View> {
        self.read()
    }
}

/// Opens the store of a directory: the same shared state for the same directory, as
/// long as the directory exists.
struct ReferenceHarness;

fn registry() -> &'static Mutex<HashMap<PathBuf, Arc<Shared>>> {
    static STORES: OnceLock<Mutex<HashMap<PathBuf, Arc<Shared>>>> = OnceLock::new();
    STORES.get_or_init(Mutex::default)
}

impl Harness for ReferenceHarness {
    type Engine = OrderedMvcc<ReferenceStore>;

    fn open(&self, dir: &Path) -> Result<Self::Engine> {
        let shared = {
            let mut stores = registry().lock().map_err(|_| EngineError::Closed)?;
            // Forget the stores of removed test directories.
            stores.retain(|path, _| path.exists());
            stores.entry(dir.to_path_buf()).or_default().clone()
        };
        // Small compaction batches so the kit's compaction cases cross batch borders.
        Ok(OrderedMvcc::open(ReferenceStore { shared })?.with_compaction_batch(64))
    }

    fn persistent(&self) -> bool {
        true
    }
}

elastickv_engine_api::conformance_tests!(ReferenceHarness);
