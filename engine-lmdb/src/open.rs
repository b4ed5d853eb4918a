//! Opening and creating the LMDB environment.

use std::path::Path;

use elastickv_engine_api::{EngineError, Result};
use heed::types::Bytes;
use heed::{CommitOrAbort, Env, EnvFlags, EnvOpenOptions, WithoutTls};

use crate::error::{from_heed, ENGINE};
use crate::store::Dbs;
use crate::{LmdbOptions, CREATING_DIR, DATA_FILE};

/// The two `versions` databases: one is live, the other is where a restore stages the
/// incoming image before the transaction that switches them (see `restore.rs`).
const VERSIONS_DBS: [&str; 2] = ["versions.0", "versions.1"];
/// The database recording which `versions` database is live.
const LAYOUT_DB: &str = "layout";

/// The granularity of the map sizes this engine asks for: heed requires multiples of
/// the OS page size, and 64 KiB is a multiple of every common one (4, 16, 64 KiB).
const MAP_GRANULE: usize = 64 * 1024;

pub(crate) fn open_environment(dir: &Path, options: &LmdbOptions) -> Result<Env<WithoutTls>> {
    let map_size = options
        .initial_map_size
        .max(MAP_GRANULE)
        .div_ceil(MAP_GRANULE)
        * MAP_GRANULE;
    let mut builder = EnvOpenOptions::new().read_txn_without_tls();
    builder
        .map_size(map_size)
        .max_dbs(8)
        .max_readers(options.max_readers);
    // SAFETY: NO_META_SYNC is one of the flags heed marks unsafe because it weakens
    // durability. LMDB documents that it "maintains database integrity, but a system
    // crash may undo the last committed transaction"; synced writes get their
    // durability back from `force_sync` after the commit (see `LmdbWrite::commit`).
    #[allow(unsafe_code)]
    unsafe {
        builder.flags(EnvFlags::NO_META_SYNC);
    }
    // SAFETY: the environment is opened once per process (heed refuses a second open
    // of the same path with `EnvAlreadyOpened`), nothing else maps or truncates its
    // files, and the engine never uses NO_LOCK, so LMDB's lock file protects it.
    #[allow(unsafe_code)]
    let env = unsafe { builder.open(dir) };
    env.map_err(|e| match e {
        heed::Error::EnvAlreadyOpened => EngineError::backend(
            ENGINE,
            format!("{} is already open in this process", dir.display()),
        ),
        other => from_heed(other),
    })
}

/// Builds a new environment with its databases in a scratch subdirectory, then moves
/// its data file into `dir`: LMDB writes a new data file in several steps, and a crash
/// between them could leave one it refuses to open.
pub(crate) fn create_environment(dir: &Path, options: &LmdbOptions) -> Result<()> {
    let scratch = dir.join(CREATING_DIR);
    if scratch.exists() {
        // The leftover of an interrupted creation: nothing in it was ever acknowledged.
        std::fs::remove_dir_all(&scratch)?;
    }
    std::fs::create_dir(&scratch)?;
    let env = open_environment(&scratch, options)?;
    create_databases(&env, false, &scratch)?;
    // Closes the environment (this was its only handle) before its file moves.
    env.prepare_for_closing().wait();
    std::fs::rename(scratch.join(DATA_FILE), dir.join(DATA_FILE))?;
    std::fs::remove_dir_all(&scratch)?;
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

/// Creates the databases (or opens them), refusing an environment that elastickv did
/// not create.
pub(crate) fn create_databases(env: &Env<WithoutTls>, existed: bool, dir: &Path) -> Result<Dbs> {
    let wtxn = env.write_txn().map_err(from_heed)?;
    let outcome = env
        .create_databases_and_commit(wtxn, |opener, wtxn| -> heed::Result<_> {
            if existed
                && opener
                    .open_database::<Bytes, Bytes>(wtxn, Some("meta"))?
                    .is_none()
            {
                let main = opener.open_database::<Bytes, Bytes>(wtxn, None)?;
                if let Some(main) = main {
                    if !main.is_empty(wtxn)? {
                        return Ok(CommitOrAbort::Abort(()));
                    }
                }
            }
            let mut create = |name| opener.create_database::<Bytes, Bytes>(wtxn, Some(name));
            let dbs = (
                create(VERSIONS_DBS[0])?,
                create(VERSIONS_DBS[1])?,
                create("meta")?,
                create("raw")?,
                create(LAYOUT_DB)?,
            );
            Ok(CommitOrAbort::Commit(dbs))
        })
        .map_err(from_heed)?;
    let CommitOrAbort::Commit((v0, v1, meta, raw, layout)) = outcome else {
        return Err(EngineError::Incompatible(format!(
            "{} holds an LMDB environment that elastickv did not create",
            dir.display()
        )));
    };
    env.force_sync().map_err(from_heed)?;
    Ok(Dbs {
        versions: [v0, v1],
        meta,
        raw,
        layout,
    })
}
