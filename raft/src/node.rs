//! [`RaftNode`]: the groups hosted by one node, their directories, and the routing of
//! incoming Raft RPCs by group id.
//!
//! Each group has its own engine instance and directory; the groups' Raft logs share
//! one log per node (the default, `LogStorage::Shared`):
//!
//! ```text
//! <data-dir>/log/                    the node's shared Raft log (`LogStorage::Shared`)
//! <data-dir>/group-<id>/engine/      the engine's files (whatever the backend keeps)
//! <data-dir>/group-<id>/log/         the group's own log files (`LogStorage::Files`)
//! <data-dir>/group-<id>/snapshots/   the current snapshot file (and transfers in progress)
//! ```
//!
//! All groups share the node's [`Transport`] (one connection per peer node).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use elastickv_engine_api::{EngineError, MvccEngine};
use parking_lot::RwLock;

use crate::network::{encode, RemoteFailure};
use crate::shared_log::SharedLog;
use crate::transport::{RaftRequest, RaftService, Transport};
use crate::{Applier, Group, GroupConfig, GroupId, LogStorage, NodeId, RaftError, Result};

/// The groups of one node over engine type `E` and applier `A`.
pub struct RaftNode<E: MvccEngine, A: Applier<E>> {
    id: NodeId,
    data_dir: PathBuf,
    transport: Arc<dyn Transport>,
    groups: RwLock<HashMap<GroupId, Hosted<E, A>>>,
    /// The shared log, once a group needed it.
    shared_log: RwLock<Option<Arc<SharedLog>>>,
    /// Held while the shared log is being opened.
    opening_shared_log: tokio::sync::Mutex<()>,
}

/// A group and whether this node opened (and so must close) its engine.
struct Hosted<E: MvccEngine, A: Applier<E>> {
    group: Arc<Group<E, A>>,
    owns_engine: bool,
}

/// How long stopping a group waits for its background tasks to let go of an engine the
/// node opened, so that the engine can be reopened at once.
const ENGINE_RELEASE_TIMEOUT: Duration = Duration::from_secs(10);

/// Stops `hosted`; when the node opened its engine, also waits (bounded) until every
/// task of the stopped group has dropped its handle, so the engine is closed on return.
async fn stop<E: MvccEngine, A: Applier<E>>(hosted: Hosted<E, A>) -> Result<()> {
    let result = hosted.group.shutdown().await;
    let engine: Weak<E> = Arc::downgrade(hosted.group.engine());
    let group = hosted.group.id();
    drop(hosted.group);
    if hosted.owns_engine {
        // Replication tasks and in-flight storage calls end shortly after Raft stops;
        // there is no completion signal for them, so check at a short interval.
        let deadline = tokio::time::Instant::now() + ENGINE_RELEASE_TIMEOUT;
        while engine.strong_count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if engine.strong_count() > 0 {
            tracing::warn!(group, "engine still in use after the group stopped");
        }
    }
    result
}

impl<E: MvccEngine, A: Applier<E>> std::fmt::Debug for RaftNode<E, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftNode")
            .field("id", &self.id)
            .field("data_dir", &self.data_dir)
            .field("groups", &self.group_ids())
            .finish()
    }
}

impl<E: MvccEngine, A: Applier<E>> RaftNode<E, A> {
    /// A node with no groups yet, keeping its data under `data_dir`.
    pub fn new(id: NodeId, data_dir: impl Into<PathBuf>, transport: Arc<dyn Transport>) -> Self {
        RaftNode {
            id,
            data_dir: data_dir.into(),
            transport,
            groups: RwLock::new(HashMap::new()),
            shared_log: RwLock::new(None),
            opening_shared_log: tokio::sync::Mutex::new(()),
        }
    }

    /// The node's shared Raft log, if it is open (a group with
    /// [`LogStorage::Shared`] opened it).
    pub fn shared_log(&self) -> Option<Arc<SharedLog>> {
        self.shared_log.read().clone()
    }

    /// The shared log for a group keeping its log as `storage`: opened on first use, and
    /// also for another `storage` when it exists (the group may have entries to move
    /// out of it).
    async fn shared_log_for(&self, storage: LogStorage) -> Result<Option<Arc<SharedLog>>> {
        let dir = self.data_dir.join("log");
        let _opening = self.opening_shared_log.lock().await;
        if let Some(log) = self.shared_log() {
            return Ok(Some(log));
        }
        if storage != LogStorage::Shared && !dir.is_dir() {
            return Ok(None);
        }
        let log = tokio::task::spawn_blocking(move || SharedLog::open(&dir))
            .await
            .map_err(|e| RaftError::Io(std::io::Error::other(e.to_string())))??;
        *self.shared_log.write() = Some(Arc::clone(&log));
        Ok(Some(log))
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The directory of group `group`: `<data-dir>/group-<id>`.
    pub fn group_dir(&self, group: GroupId) -> PathBuf {
        self.data_dir.join(format!("group-{group}"))
    }

    /// Opens (or creates) group `group`: opens its engine with `open_engine` on
    /// `<group dir>/engine`, builds its applier with `make_applier`, and starts Raft over
    /// them. Reopening after a restart resumes from the persisted log, vote and state.
    pub async fn open_group(
        &self,
        group: GroupId,
        config: GroupConfig,
        open_engine: impl FnOnce(&Path) -> std::result::Result<E, EngineError>,
        make_applier: impl FnOnce(&Arc<E>) -> A,
    ) -> Result<Arc<Group<E, A>>> {
        if self.groups.read().contains_key(&group) {
            return Err(RaftError::GroupExists(group));
        }
        let dir = self.group_dir(group);
        let engine_dir = dir.join("engine");
        std::fs::create_dir_all(&dir)?;
        let engine = Arc::new(open_engine(&engine_dir)?);
        let applier = Arc::new(make_applier(&engine));
        self.host(group, engine, applier, config, true).await
    }

    /// Starts group `group` over an engine the caller opened (for example an in-memory
    /// engine kept across a simulated restart). Stopping the group leaves that engine to
    /// the caller.
    pub async fn start_group(
        &self,
        group: GroupId,
        engine: Arc<E>,
        applier: Arc<A>,
        config: GroupConfig,
    ) -> Result<Arc<Group<E, A>>> {
        self.host(group, engine, applier, config, false).await
    }

    async fn host(
        &self,
        group: GroupId,
        engine: Arc<E>,
        applier: Arc<A>,
        config: GroupConfig,
        owns_engine: bool,
    ) -> Result<Arc<Group<E, A>>> {
        let shared_log = self.shared_log_for(config.log_storage).await?;
        let started = Group::start(
            self.id,
            group,
            engine,
            applier,
            &self.group_dir(group),
            shared_log,
            Arc::clone(&self.transport),
            config,
        )
        .await?;
        let started = Arc::new(started);
        let mut groups = self.groups.write();
        if groups.contains_key(&group) {
            return Err(RaftError::GroupExists(group));
        }
        groups.insert(
            group,
            Hosted {
                group: Arc::clone(&started),
                owns_engine,
            },
        );
        Ok(started)
    }

    /// The group `group`, if this node hosts it.
    pub fn group(&self, group: GroupId) -> Option<Arc<Group<E, A>>> {
        self.groups.read().get(&group).map(|h| Arc::clone(&h.group))
    }

    /// The ids of the hosted groups, ascending.
    pub fn group_ids(&self) -> Vec<GroupId> {
        let mut ids: Vec<GroupId> = self.groups.read().keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Stops group `group` and forgets it. An engine opened by [`RaftNode::open_group`]
    /// is closed when this returns (unless the caller still holds the group or engine).
    pub async fn close_group(&self, group: GroupId) -> Result<()> {
        let removed = self.groups.write().remove(&group);
        match removed {
            Some(hosted) => stop(hosted).await,
            None => Err(RaftError::NoSuchGroup(group)),
        }
    }

    /// Stops every group (see [`RaftNode::close_group`]).
    pub async fn shutdown(&self) -> Result<()> {
        let groups: Vec<_> = self.groups.write().drain().map(|(_, g)| g).collect();
        let mut first_error = None;
        for hosted in groups {
            if let Err(e) = stop(hosted).await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Answers a Raft RPC received from the transport (the entry point of a server's
    /// Raft service): routes it to the group named in the request.
    pub async fn handle(&self, request: RaftRequest) -> Vec<u8> {
        match self.group(request.group) {
            Some(group) => group.handle_rpc(request.kind, &request.body).await,
            None => encode(&Err::<(), _>(RemoteFailure::NoSuchGroup(request.group))),
        }
    }
}

#[async_trait]
impl<E: MvccEngine, A: Applier<E>> RaftService for RaftNode<E, A> {
    async fn handle(&self, request: RaftRequest) -> Vec<u8> {
        RaftNode::handle(self, request).await
    }
}
