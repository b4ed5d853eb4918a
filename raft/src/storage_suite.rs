//! openraft's own storage conformance suite (`openraft::testing::Suite`) run against
//! this crate's log store and state machine, on the in-memory and the redb engine, with
//! the log in the engine, in the group's own files and in the node's shared log.

use std::sync::Arc;

use elastickv_engine_api::{EngineError, MvccEngine};
use elastickv_engine_mem::MemEngine;
use elastickv_engine_redb::{open_redb, RedbEngine, RedbOptions};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::{ErrorSubject, ErrorVerb};
use tempfile::TempDir;

use crate::applier::{Applied, Applier, ApplyEntry};
use crate::layout::Layout;
use crate::log_store::{LogCounters, LogStore};
use crate::shared_log::SharedLog;
use crate::snapshot::SnapshotStore;
use crate::state_machine::StateMachine;
use crate::{LogStorage, TypeConfig};

/// An applier that accepts every command and writes nothing but the apply state.
struct Accept;

impl<E: MvccEngine> Applier<E> for Accept {
    type Response = ();

    fn apply(&self, _engine: &E, _entry: ApplyEntry<'_>) -> Result<Applied<()>, EngineError> {
        Ok(Applied {
            response: (),
            wrote_apply_state: false,
        })
    }
}

struct Builder<E> {
    open: fn(&std::path::Path) -> Result<E, EngineError>,
    log: LogStorage,
}

impl<E: MvccEngine> StoreBuilder<TypeConfig, LogStore<E>, StateMachine<E, Accept>, TempDir>
    for Builder<E>
{
    async fn build(
        &self,
    ) -> Result<(TempDir, LogStore<E>, StateMachine<E, Accept>), openraft::StorageError<TypeConfig>>
    {
        let failed = |e: &dyn std::fmt::Display| {
            openraft::StorageError::from_io_error(
                ErrorSubject::Store,
                ErrorVerb::Write,
                std::io::Error::other(e.to_string()),
            )
        };
        let dir = tempfile::tempdir().map_err(|e| failed(&e))?;
        let engine = Arc::new((self.open)(&dir.path().join("engine")).map_err(|e| failed(&e))?);
        let layout = Layout::new(3);
        let shared = match self.log {
            LogStorage::Shared => {
                Some(SharedLog::open(&dir.path().join("shared")).map_err(|e| failed(&e))?)
            }
            _ => None,
        };
        let log = LogStore::open(
            Arc::clone(&engine),
            3,
            Arc::new(LogCounters::default()),
            self.log,
            &dir.path().join("log"),
            shared,
        )
        .await
        .map_err(|e| failed(&e))?;
        let snapshots = SnapshotStore::open(
            &dir.path().join("snapshots"),
            Arc::clone(&engine),
            layout.clone(),
        )
        .map_err(|e| failed(&e))?;
        let machine =
            StateMachine::open(engine, Arc::new(Accept), layout, Arc::new(snapshots), None)
                .map_err(|e| failed(&e))?;
        Ok((dir, log, machine))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite_passes_on_the_mem_engine_with_the_log_in_the_engine() {
    Suite::test_all(Builder {
        open: |_| Ok(MemEngine::new()),
        log: LogStorage::Engine,
    })
    .await
    .expect("storage suite");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite_passes_on_the_mem_engine_with_log_files() {
    Suite::test_all(Builder {
        open: |_| Ok(MemEngine::new()),
        log: LogStorage::Files,
    })
    .await
    .expect("storage suite");
}

fn open_small_redb(dir: &std::path::Path) -> Result<RedbEngine, EngineError> {
    open_redb(
        dir,
        RedbOptions {
            cache_size: 4 * 1024 * 1024,
            ..RedbOptions::default()
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite_passes_on_the_redb_engine_with_log_files() {
    Suite::test_all(Builder {
        open: open_small_redb,
        log: LogStorage::Files,
    })
    .await
    .expect("storage suite");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite_passes_on_the_redb_engine_with_the_log_in_the_engine() {
    Suite::test_all(Builder {
        open: open_small_redb,
        log: LogStorage::Engine,
    })
    .await
    .expect("storage suite");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite_passes_on_the_mem_engine_with_the_shared_log() {
    Suite::test_all(Builder {
        open: |_| Ok(MemEngine::new()),
        log: LogStorage::Shared,
    })
    .await
    .expect("storage suite");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite_passes_on_the_redb_engine_with_the_shared_log() {
    Suite::test_all(Builder {
        open: open_small_redb,
        log: LogStorage::Shared,
    })
    .await
    .expect("storage suite");
}
