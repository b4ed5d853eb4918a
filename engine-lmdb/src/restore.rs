//! Restore for LMDB: stage the new image in bounded transactions, then switch.
//!
//! A single write transaction cannot hold a restore on LMDB: if the image does not fit
//! the map, the transaction dies with `MDB_MAP_FULL`, the map can only grow between
//! transactions, and the snapshot stream, already consumed, cannot be replayed. So the
//! image goes into the second `versions` database in chunks of bounded size (each
//! chunk can be redone in a grown map, see `write.rs`), and a synced transaction then
//! makes it the live one, applies the final metadata and frees the old image. The first
//! chunk also clears the staging database and the last chunk is the switching
//! transaction, so a small image takes a single transaction. Until the switch, readers
//! and the live data are untouched, so a failed or interrupted restore leaves the
//! previous content intact.

use std::sync::PoisonError;

use elastickv_engine_api::ordered::{
    apply_table_op, OrderedStore, OrderedWrite, Table, TableOp, VersionSink,
};
use elastickv_engine_api::{Durability, Result};

use crate::store::{LmdbStore, Tables, LIVE_VERSIONS_KEY};
use crate::write::LmdbWrite;

/// A chunk is committed after this many entries...
const CHUNK_ENTRIES: usize = 4096;
/// ...or this many bytes of keys and values, whichever comes first. A chunk's changes
/// are kept in memory until it commits, for replay on a full map.
const CHUNK_BYTES: usize = 16 * 1024 * 1024;

pub(crate) fn replace_versions(
    store: &LmdbStore,
    fill: &mut dyn FnMut(&mut VersionSink<'_>) -> Result<()>,
    finish: &[TableOp],
) -> Result<()> {
    // Only restores switch the live database, so while this is held the staging
    // database stays the same one.
    let _restoring = store
        .restoring
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let mut first = store.begin_write()?;
    let tables = first.tables();
    first.clear_db(tables.staging())?;
    // The first chunk also clears the staging database and the last one also switches,
    // so a small image takes a single transaction.
    let mut chunk = Some(first);
    if let Err(e) = stage(store, tables, &mut chunk, fill) {
        drop(chunk);
        // Free the partial image now rather than at the next restore or open.
        if let Ok(mut cleanup) = store.begin_write() {
            if cleanup.clear_db(tables.staging()).is_ok() {
                let _ = cleanup.commit(Durability::Buffered);
            }
        }
        return Err(e);
    }
    let mut switch = match chunk.take() {
        Some(last) => last,
        None => store.begin_write()?,
    };
    let staging_index = 1 - tables.live;
    switch.put_db(
        tables.dbs.layout,
        LIVE_VERSIONS_KEY,
        staging_index.to_string().as_bytes(),
    )?;
    switch.clear_db(tables.db(Table::Versions))?;
    for op in finish {
        apply_table_op(&mut switch, op)?;
    }
    switch.commit(Durability::Sync)
}

/// Streams the image into the staging database, committing a chunk whenever it is
/// full; the chunk still open at the end is left in `chunk` for the caller.
fn stage<'a>(
    store: &'a LmdbStore,
    tables: Tables,
    chunk: &mut Option<LmdbWrite<'a>>,
    fill: &mut dyn FnMut(&mut VersionSink<'_>) -> Result<()>,
) -> Result<()> {
    let staging = tables.staging();
    let (mut entries, mut bytes) = (0usize, 0usize);
    fill(&mut |key, value| {
        let write = match chunk {
            Some(write) => write,
            None => chunk.insert(store.begin_write()?),
        };
        write.put_db(staging, key, value)?;
        entries += 1;
        bytes += key.len() + value.len();
        if entries >= CHUNK_ENTRIES || bytes >= CHUNK_BYTES {
            (entries, bytes) = (0, 0);
            if let Some(full) = chunk.take() {
                full.commit(Durability::Buffered)?;
            }
        }
        Ok(())
    })
}
