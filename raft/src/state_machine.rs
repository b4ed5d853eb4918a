//! The state machine: committed entries applied to the engine through the group's
//! [`Applier`], with the applied log id and membership written in the same atomic
//! engine write as each entry's effects.
//!
//! State-machine writes are buffered: the log is durable, and the applied id travels
//! with the data, so a crash loses a suffix of applied entries that the log replays.
//! Before a snapshot is taken (after which the log may be purged) one synced write
//! makes everything applied so far durable.

use std::any::Any;
use std::io::{BufReader, Seek, SeekFrom};
use std::sync::Arc;

use elastickv_engine_api::{Durability, EngineError, MvccEngine, RawOp};
use futures_util::StreamExt;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb};
use serde::{Deserialize, Serialize};

use crate::applier::{Applier, ApplyEntry};
use crate::apply_thread::ApplyThread;
use crate::layout::{decode, encode, Layout, Slot};
use crate::log_store::{blocking, storage_error};
use crate::snapshot::{SnapshotBuilder, SnapshotStore, FILE_BUFFER};
use crate::snapshot_file::SnapshotFile;
use crate::types::Reply;
use crate::types::{Snapshot, StorageError};
use crate::{Entry, LogId, SnapshotMeta, StoredMembership, TypeConfig};

/// The state machine of one group.
#[derive(Debug)]
pub struct StateMachine<E: MvccEngine, A> {
    engine: Arc<E>,
    applier: Arc<A>,
    layout: Layout,
    applied: Option<LogId>,
    membership: StoredMembership,
    snapshots: Arc<SnapshotStore<E>>,
    /// Where [`StateMachine::apply`] runs (see [`crate::apply_thread`]).
    thread: Arc<ApplyThread>,
}

/// What has been applied, as stored in the raw keyspace with every apply.
///
/// An entry carries a batch of commands, each applied in its own atomic engine write;
/// after command `k` of entry `X` (not the last) the state is `{complete: <entry before
/// X>, partial: (X, k + 1)}`, after the last it is `{complete: X, partial: None}`. When
/// a crash left a partial state, opening the state machine applies the rest of entry `X`
/// (read from the log) before openraft starts, so every command takes effect exactly
/// once and openraft and snapshots only ever see whole entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ApplyState {
    pub(crate) complete: Option<LogId>,
    pub(crate) partial: Option<(LogId, u32)>,
}

impl ApplyState {
    fn complete(log_id: Option<LogId>) -> Self {
        ApplyState {
            complete: log_id,
            partial: None,
        }
    }
}

fn encoding_error(e: String) -> EngineError {
    EngineError::InvalidArgument(format!("raft state encoding: {e}"))
}

/// The raw operations recording `state` (and `membership`, when given).
fn apply_state_ops(
    layout: &Layout,
    state: &ApplyState,
    membership: Option<&StoredMembership>,
) -> Result<Vec<RawOp>, EngineError> {
    let mut ops = Vec::with_capacity(2);
    ops.push(RawOp::put(
        layout.slot(Slot::Applied),
        encode(state).map_err(encoding_error)?,
    ));
    if let Some(membership) = membership {
        ops.push(RawOp::put(
            layout.slot(Slot::Membership),
            encode(membership).map_err(encoding_error)?,
        ));
    }
    Ok(ops)
}

impl<E: MvccEngine, A: Applier<E>> StateMachine<E, A> {
    /// The index of the entry a crash left partly applied, if any: [`open`](Self::open)
    /// needs that entry from the log.
    pub(crate) fn partly_applied(engine: &E, layout: &Layout) -> Result<Option<u64>, EngineError> {
        let state: ApplyState = match engine.raw_get(&layout.slot(Slot::Applied))? {
            Some(bytes) => decode(&bytes).map_err(EngineError::corrupted)?,
            None => return Ok(None),
        };
        Ok(state.partial.map(|(log_id, _)| log_id.index))
    }

    /// Opens the state machine. `partial_entry` is the log's entry at
    /// [`partly_applied`](Self::partly_applied)'s index, if there is one.
    pub(crate) fn open(
        engine: Arc<E>,
        applier: Arc<A>,
        layout: Layout,
        snapshots: Arc<SnapshotStore<E>>,
        partial_entry: Option<Entry>,
    ) -> Result<Self, EngineError> {
        let mut state: ApplyState = match engine.raw_get(&layout.slot(Slot::Applied))? {
            Some(bytes) => decode(&bytes).map_err(EngineError::corrupted)?,
            None => ApplyState::default(),
        };
        if let Some((log_id, done)) = state.partial {
            // A crash interrupted a batch entry: finish it now, from the log, so that
            // openraft (and any snapshot) only ever sees whole entries applied. The
            // entry comes from the group's log; a log kept in the engine by an older
            // version is read there.
            let entry = match partial_entry.filter(|e| e.log_id.index == log_id.index) {
                Some(entry) => entry,
                None => {
                    let bytes =
                        engine
                            .raw_get(&layout.log_key(log_id.index))?
                            .ok_or_else(|| {
                                EngineError::corrupted(format!(
                    "entry {log_id} is partly applied ({done} commands) but missing from the log"
                ))
                            })?;
                    decode(&bytes).map_err(EngineError::corrupted)?
                }
            };
            if entry.log_id != log_id {
                return Err(EngineError::corrupted(format!(
                    "entry {log_id} is partly applied but the log holds {}",
                    entry.log_id
                )));
            }
            apply_all(engine.as_ref(), applier.as_ref(), &layout, &[entry], state)?;
            tracing::info!(%log_id, done, "finished a partly applied entry");
            state = ApplyState::complete(Some(log_id));
        }
        let membership = match engine.raw_get(&layout.slot(Slot::Membership))? {
            Some(bytes) => decode(&bytes).map_err(EngineError::corrupted)?,
            None => StoredMembership::default(),
        };
        Ok(StateMachine {
            engine,
            applier,
            thread: crate::apply_thread::for_state_machine(),
            layout,
            applied: state.complete,
            membership,
            snapshots,
        })
    }
}

/// What [`apply_all`] leaves behind.
struct ApplyOutcome {
    replies: Vec<Reply>,
    membership: Option<StoredMembership>,
}

/// A command of a normal entry waiting to be applied with the ones after it.
struct Waiting<'a> {
    /// Where its response goes: the entry's reply, and its position there.
    reply: usize,
    position: usize,
    log_id: LogId,
    payload: &'a [u8],
    /// The apply state once it is applied.
    apply_state: Vec<RawOp>,
}

/// Applies `entries` in order (blocking), starting from `state`. The commands of
/// consecutive normal entries go to the applier together ([`Applier::apply_many`]);
/// blank and membership entries write their apply state between them.
fn apply_all<E: MvccEngine, A: Applier<E>>(
    engine: &E,
    applier: &A,
    layout: &Layout,
    entries: &[Entry],
    state: ApplyState,
) -> Result<ApplyOutcome, EngineError> {
    let mut replies: Vec<Reply> = Vec::with_capacity(entries.len());
    let mut last_membership = None;
    let mut complete = state.complete;
    let mut waiting: Vec<Waiting<'_>> = Vec::new();
    for entry in entries {
        let log_id = entry.log_id;
        match &entry.payload {
            EntryPayload::Blank => {
                apply_waiting(engine, applier, &mut waiting, &mut replies)?;
                let ops = apply_state_ops(layout, &ApplyState::complete(Some(log_id)), None)?;
                engine.raw_write(&ops, Durability::Buffered)?;
                replies.push(Reply::default());
            }
            EntryPayload::Membership(membership) => {
                apply_waiting(engine, applier, &mut waiting, &mut replies)?;
                let stored = StoredMembership::new(Some(log_id), membership.clone());
                let ops =
                    apply_state_ops(layout, &ApplyState::complete(Some(log_id)), Some(&stored))?;
                engine.raw_write(&ops, Durability::Buffered)?;
                last_membership = Some(stored);
                replies.push(Reply::default());
            }
            EntryPayload::Normal(batch) if batch.0.is_empty() => {
                apply_waiting(engine, applier, &mut waiting, &mut replies)?;
                let ops = apply_state_ops(layout, &ApplyState::complete(Some(log_id)), None)?;
                engine.raw_write(&ops, Durability::Buffered)?;
                replies.push(Reply::default());
            }
            EntryPayload::Normal(batch) => {
                let count = batch.0.len();
                let skip = match state.partial {
                    Some((id, done)) if id == log_id => done as usize,
                    _ => 0,
                };
                // Commands applied before a crash answer `()`: their proposers are gone.
                let done: Arc<dyn Any + Send + Sync> = Arc::new(());
                let reply = replies.len();
                replies.push(Reply(vec![done; count]));
                for (position, command) in batch.0.iter().enumerate().skip(skip) {
                    let after = if position + 1 == count {
                        ApplyState::complete(Some(log_id))
                    } else {
                        ApplyState {
                            complete,
                            partial: Some((log_id, position as u32 + 1)),
                        }
                    };
                    waiting.push(Waiting {
                        reply,
                        position,
                        log_id,
                        payload: command,
                        apply_state: apply_state_ops(layout, &after, None)?,
                    });
                }
            }
        }
        complete = Some(log_id);
    }
    apply_waiting(engine, applier, &mut waiting, &mut replies)?;
    Ok(ApplyOutcome {
        replies,
        membership: last_membership,
    })
}

/// Hands the waiting commands to the applier at once and files their responses.
fn apply_waiting<E: MvccEngine, A: Applier<E>>(
    engine: &E,
    applier: &A,
    waiting: &mut Vec<Waiting<'_>>,
    replies: &mut [Reply],
) -> Result<(), EngineError> {
    let Some(last) = waiting.last() else {
        return Ok(());
    };
    let entries: Vec<ApplyEntry<'_>> = waiting
        .iter()
        .map(|w| ApplyEntry {
            index: w.log_id.index,
            position: w.position as u32,
            term: w.log_id.leader_id.term,
            payload: w.payload,
            apply_state: &w.apply_state,
        })
        .collect();
    let applied = applier.apply_many(engine, &entries)?;
    if applied.len() != entries.len() {
        return Err(EngineError::InvalidArgument(format!(
            "the applier answered {} of {} commands",
            applied.len(),
            entries.len()
        )));
    }
    // Each command's apply state supersedes the earlier ones': the stored state must end
    // as the last command left it, whether or not the applier wrote it.
    if applied.last().is_some_and(|a| !a.wrote_apply_state) {
        engine.raw_write(&last.apply_state, Durability::Buffered)?;
    }
    for (w, a) in waiting.iter().zip(applied) {
        replies[w.reply].0[w.position] = Arc::new(a.response);
    }
    waiting.clear();
    Ok(())
}

/// Batches of committed commands up to this many bytes are applied on openraft's
/// state-machine task itself rather than on the group's apply thread.
pub(crate) const APPLY_HERE_MAX_BYTES: usize = 2048;

/// Whether `entries` are few enough to apply on the calling task. Handing a batch to
/// the apply thread and its result back costs two thread wake-ups: with one client, a
/// probe timed apply's start to its end at 118 to 200 µs (p50 on a follower, on every
/// engine, mem included), mostly those wake-ups, and at 53 µs with one put applied
/// here (RocksDB). A small batch holds the Tokio worker about that long; larger ones
/// (many commands, under load) still go to the thread, so that no worker is held for
/// milliseconds.
fn applies_here(entries: &[Entry]) -> bool {
    let mut bytes = 0usize;
    for entry in entries {
        bytes += match &entry.payload {
            EntryPayload::Normal(batch) => batch.0.iter().map(|c| c.len() + 16).sum(),
            // Membership changes and blank entries write little, but rarely matter.
            EntryPayload::Membership(_) | EntryPayload::Blank => 64,
        };
        if bytes > APPLY_HERE_MAX_BYTES {
            return false;
        }
    }
    true
}

impl<E: MvccEngine, A: Applier<E>> StateMachine<E, A> {
    /// Applies `entries` (committed, in order) and returns each one's reply.
    async fn apply_entries(&mut self, entries: Vec<Entry>) -> Result<Vec<Reply>, StorageError> {
        let Some(last) = entries.last().map(|e| e.log_id) else {
            return Ok(Vec::new());
        };
        let state = ApplyState::complete(self.applied);
        let outcome = if applies_here(&entries) {
            let (engine, applier) = (self.engine.as_ref(), self.applier.as_ref());
            self.thread
                .run_here(|| apply_all(engine, applier, &self.layout, &entries, state))
        } else {
            let engine = Arc::clone(&self.engine);
            let applier = Arc::clone(&self.applier);
            let layout = self.layout.clone();
            self.thread
                .run(move || apply_all(engine.as_ref(), applier.as_ref(), &layout, &entries, state))
                .await
        }
        .map_err(|e| storage_error(ErrorSubject::Apply(last), ErrorVerb::Write, e))?;
        self.applied = Some(last);
        if let Some(membership) = outcome.membership {
            self.membership = membership;
        }
        Ok(outcome.replies)
    }
}

impl<E: MvccEngine, A: Applier<E>> RaftStateMachine<TypeConfig> for StateMachine<E, A> {
    type SnapshotData = SnapshotFile;
    type SnapshotBuilder = SnapshotBuilder<E>;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.applied, self.membership.clone()))
    }

    async fn apply<S>(&mut self, mut stream: S) -> Result<(), StorageError>
    where
        S: futures_util::Stream<Item = Result<EntryResponder<TypeConfig>, StorageError>>
            + Unpin
            + Send,
    {
        let mut entries: Vec<Entry> = Vec::new();
        let mut responders = Vec::new();
        while let Some(item) = stream.next().await {
            let (entry, responder) = item?;
            entries.push(entry);
            responders.push(responder);
        }
        let replies = self.apply_entries(entries).await?;
        for (responder, reply) in responders.into_iter().zip(replies) {
            if let Some(responder) = responder {
                responder.send(reply);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        let capture = (|| -> Result<_, EngineError> {
            // Everything applied so far becomes durable before the log can be purged.
            let state = ApplyState::complete(self.applied);
            let ops = apply_state_ops(&self.layout, &state, None)?;
            self.engine.raw_write(&ops, Durability::Sync)?;
            let image = self.engine.snapshot()?;
            let meta = SnapshotMeta {
                last_log_id: self.applied,
                last_membership: self.membership.clone(),
            };
            Ok((image, meta))
        })();
        SnapshotBuilder {
            store: Arc::clone(&self.snapshots),
            capture: parking_lot::Mutex::new(Some(capture.map_err(|e| e.to_string()))),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotFile,
    ) -> Result<(), StorageError> {
        let subject = || ErrorSubject::Snapshot(Some(meta.signature()));
        let (mut file, path) = snapshot.into_std().await;
        let engine = Arc::clone(&self.engine);
        let applier = Arc::clone(&self.applier);
        let store = Arc::clone(&self.snapshots);
        let layout = self.layout.clone();
        let owned_meta = meta.clone();
        let stats = blocking(move || {
            file.sync_all()?;
            file.seek(SeekFrom::Start(0))?;
            let ops = apply_state_ops(
                &layout,
                &ApplyState::complete(owned_meta.last_log_id),
                Some(&owned_meta.last_membership),
            )?;
            let mut reader = BufReader::with_capacity(FILE_BUFFER, file);
            let stats = engine.restore_with(&mut reader, &ops)?;
            // The log may be purged up to the snapshot next: make the restore durable.
            engine.raw_write(&ops, Durability::Sync)?;
            applier.restored(engine.as_ref())?;
            drop(reader);
            store.make_current(&owned_meta, &path)?;
            Ok(stats)
        })
        .await
        .map_err(|e| storage_error(subject(), ErrorVerb::Write, e))?;
        tracing::info!(meta = %meta, keys = stats.keys, bytes = stats.bytes, "installed snapshot");
        self.applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        self.snapshots.current().await
    }
}

#[cfg(test)]
mod tests {
    use crate::types::LeaderId as CommittedLeaderId;
    use elastickv_engine_api::{Mutation, RawKeyspace, WriteBatch};
    use elastickv_engine_mem::MemEngine;
    use openraft::vote::RaftLeaderId;
    use parking_lot::Mutex;

    use super::*;
    use crate::{Applied, CommandBatch};

    /// Writes one key per command and records what it applied; fails once at
    /// `fail_at` (a crash in the middle of a batch).
    #[derive(Default)]
    struct Recording {
        fail_at: Mutex<Option<u32>>,
        applied: Mutex<Vec<(u64, u32)>>,
        /// How many commands each `apply_many` call got.
        calls: Mutex<Vec<usize>>,
        /// The thread each `apply_many` call ran on.
        threads: Mutex<Vec<Option<String>>>,
    }

    impl Applier<MemEngine> for Recording {
        type Response = ();

        fn apply(
            &self,
            engine: &MemEngine,
            entry: ApplyEntry<'_>,
        ) -> Result<Applied<()>, EngineError> {
            if self
                .fail_at
                .lock()
                .take_if(|p| *p == entry.position)
                .is_some()
            {
                return Err(EngineError::Io(std::io::Error::other("simulated crash")));
            }
            let mutation = [Mutation::put(format!("k{}", entry.position), "v")];
            let ts = (entry.index << 16) | u64::from(entry.position);
            engine.write(
                &WriteBatch::new(&mutation, ts)
                    .with_raw(entry.apply_state)
                    .with_durability(Durability::Buffered),
            )?;
            self.applied.lock().push((entry.index, entry.position));
            Ok(Applied {
                response: (),
                wrote_apply_state: true,
            })
        }

        fn apply_many(
            &self,
            engine: &MemEngine,
            entries: &[ApplyEntry<'_>],
        ) -> Result<Vec<Applied<()>>, EngineError> {
            self.calls.lock().push(entries.len());
            self.threads
                .lock()
                .push(std::thread::current().name().map(str::to_string));
            entries.iter().map(|e| self.apply(engine, *e)).collect()
        }
    }

    fn stored_state(engine: &MemEngine, layout: &Layout) -> ApplyState {
        let bytes = engine
            .raw_get(&layout.slot(Slot::Applied))
            .expect("raw read")
            .expect("apply state present");
        decode(&bytes).expect("decode")
    }

    /// Applies `entry` from `start` with the applier failing at command `fail_at`: the
    /// crash in the middle of an entry.
    fn crash_while_applying(
        engine: &MemEngine,
        applier: &Recording,
        layout: &Layout,
        entry: &Entry,
        fail_at: u32,
        start: ApplyState,
    ) {
        *applier.fail_at.lock() = Some(fail_at);
        let crashed = apply_all(engine, applier, layout, std::slice::from_ref(entry), start);
        assert!(crashed.is_err());
    }

    /// Opens a state machine over `engine` and `applier` (clones of the handles).
    fn open_machine(
        engine: &Arc<MemEngine>,
        applier: &Arc<Recording>,
        layout: &Layout,
        snapshots: Arc<SnapshotStore<MemEngine>>,
        partial_entry: Option<Entry>,
    ) -> Result<StateMachine<MemEngine, Recording>, EngineError> {
        StateMachine::open(
            Arc::clone(engine),
            Arc::clone(applier),
            layout.clone(),
            snapshots,
            partial_entry,
        )
    }

    fn snapshot_store(
        dir: &tempfile::TempDir,
        engine: &Arc<MemEngine>,
        layout: &Layout,
    ) -> Arc<SnapshotStore<MemEngine>> {
        Arc::new(
            SnapshotStore::open(dir.path(), Arc::clone(engine), layout.clone()).expect("store"),
        )
    }

    #[test]
    fn opening_finishes_a_partly_applied_entry_from_the_log() {
        let engine = Arc::new(MemEngine::new());
        let layout = Layout::new(0);
        let applier = Arc::new(Recording::default());
        let entry = Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), 1),
            payload: EntryPayload::Normal(CommandBatch(vec![vec![1]; 3])),
        };
        engine
            .raw_write(
                &[RawOp::put(
                    layout.log_key(1),
                    encode(&entry).expect("encode"),
                )],
                Durability::Sync,
            )
            .expect("log write");
        crash_while_applying(&engine, &applier, &layout, &entry, 1, ApplyState::default());
        let dir = tempfile::tempdir().expect("temp dir");
        let snapshots = snapshot_store(&dir, &engine, &layout);
        let machine = open_machine(&engine, &applier, &layout, snapshots, None).expect("open");
        assert_eq!(machine.applied, Some(entry.log_id));
        assert_eq!(*applier.applied.lock(), vec![(1, 0), (1, 1), (1, 2)]);
        assert_eq!(
            stored_state(&engine, &layout),
            ApplyState::complete(Some(entry.log_id))
        );
    }

    /// With the log in files (the default), the partly applied entry is handed in from
    /// the log: nothing of the log is in the engine.
    #[test]
    fn opening_finishes_a_partly_applied_entry_handed_in_from_a_file_log() {
        let engine = Arc::new(MemEngine::new());
        let layout = Layout::new(0);
        let applier = Arc::new(Recording::default());
        let entry = Entry {
            log_id: LogId::new(CommittedLeaderId::new(2, 1), 7),
            payload: EntryPayload::Normal(CommandBatch(vec![vec![1]; 3])),
        };
        crash_while_applying(&engine, &applier, &layout, &entry, 2, ApplyState::default());
        assert_eq!(
            StateMachine::<MemEngine, Recording>::partly_applied(&engine, &layout).unwrap(),
            Some(7)
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let snapshots = snapshot_store(&dir, &engine, &layout);
        // Without the entry, opening fails and names it.
        let missing = open_machine(&engine, &applier, &layout, Arc::clone(&snapshots), None)
            .err()
            .expect("the entry is needed");
        assert!(
            missing.to_string().contains("missing from the log"),
            "{missing}"
        );
        let machine =
            open_machine(&engine, &applier, &layout, snapshots, Some(entry.clone())).expect("open");
        assert_eq!(machine.applied, Some(entry.log_id));
        assert_eq!(*applier.applied.lock(), vec![(7, 0), (7, 1), (7, 2)]);
        assert_eq!(
            stored_state(&engine, &layout),
            ApplyState::complete(Some(entry.log_id))
        );
        assert_eq!(
            StateMachine::<MemEngine, Recording>::partly_applied(&engine, &layout).unwrap(),
            None
        );
    }

    /// A small batch is applied on the calling task, a large one on the group's apply
    /// thread; either way every command is applied once, in order, and answered.
    #[tokio::test]
    async fn small_batches_apply_here_and_large_ones_on_the_apply_thread() {
        let engine = Arc::new(MemEngine::new());
        let layout = Layout::new(0);
        let applier = Arc::new(Recording::default());
        let dir = tempfile::tempdir().expect("temp dir");
        let snapshots = snapshot_store(&dir, &engine, &layout);
        let mut machine = open_machine(&engine, &applier, &layout, snapshots, None).expect("open");
        let leader = CommittedLeaderId::new(1, 1);
        let entry = |index, commands, bytes| Entry {
            log_id: LogId::new(leader, index),
            payload: EntryPayload::Normal(CommandBatch(vec![vec![7; bytes]; commands])),
        };
        let small = vec![entry(1, 2, 100), entry(2, 1, 100)];
        let large = vec![entry(3, 3, APPLY_HERE_MAX_BYTES)];
        assert!(applies_here(&small));
        assert!(!applies_here(&large));
        assert!(
            !applies_here(&[entry(4, 40, 100)]),
            "many small commands add up"
        );
        let here = std::thread::current().name().map(str::to_string);
        for batch in [small, large] {
            let sizes: Vec<usize> = machine
                .apply_entries(batch)
                .await
                .expect("apply")
                .iter()
                .map(|r| r.0.len())
                .collect();
            assert!(sizes.iter().all(|n| *n > 0), "{sizes:?}");
        }
        assert_eq!(
            *applier.applied.lock(),
            vec![(1, 0), (1, 1), (2, 0), (3, 0), (3, 1), (3, 2)]
        );
        let threads = applier.threads.lock().clone();
        assert_eq!(threads.len(), 2, "{threads:?}");
        assert_eq!(threads[0], here, "the small batch on the calling thread");
        assert_eq!(
            threads[1].as_deref(),
            Some("ekv-apply"),
            "the large one on its own"
        );
        assert_eq!(machine.applied, Some(LogId::new(leader, 3)));
        assert_eq!(
            stored_state(&engine, &layout),
            ApplyState::complete(Some(LogId::new(leader, 3)))
        );
    }

    /// The commands of consecutive normal entries reach the applier in one call; a blank
    /// entry (or a membership change) comes between calls; every command gets its answer
    /// in its entry's reply, and the stored state ends at the last entry.
    #[test]
    fn consecutive_entries_are_applied_in_one_call() {
        let engine = MemEngine::new();
        let layout = Layout::new(0);
        let applier = Recording::default();
        let leader = CommittedLeaderId::new(1, 1);
        let normal = |index, commands| Entry {
            log_id: LogId::new(leader, index),
            payload: EntryPayload::Normal(CommandBatch(vec![vec![1]; commands])),
        };
        let entries = [
            normal(1, 2),
            normal(2, 3),
            Entry {
                log_id: LogId::new(leader, 3),
                payload: EntryPayload::Blank,
            },
            normal(4, 1),
            normal(5, 0),
            normal(6, 2),
        ];
        let outcome =
            apply_all(&engine, &applier, &layout, &entries, ApplyState::default()).expect("apply");
        assert_eq!(*applier.calls.lock(), vec![5, 1, 2]);
        let sizes: Vec<usize> = outcome.replies.iter().map(|r| r.0.len()).collect();
        assert_eq!(sizes, vec![2, 3, 0, 1, 0, 2]);
        assert_eq!(
            *applier.applied.lock(),
            vec![
                (1, 0),
                (1, 1),
                (2, 0),
                (2, 1),
                (2, 2),
                (4, 0),
                (6, 0),
                (6, 1)
            ]
        );
        assert_eq!(
            stored_state(&engine, &layout),
            ApplyState::complete(Some(LogId::new(leader, 6)))
        );
    }

    #[test]
    fn a_batch_interrupted_midway_resumes_after_its_last_applied_command() {
        let engine = MemEngine::new();
        let layout = Layout::new(0);
        let applier = Recording::default();
        let before = LogId::new(CommittedLeaderId::new(1, 1), 4);
        let entry = Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), 5),
            payload: EntryPayload::Normal(CommandBatch(vec![vec![1]; 4])),
        };
        let start = ApplyState::complete(Some(before));
        crash_while_applying(&engine, &applier, &layout, &entry, 2, start);
        let state = stored_state(&engine, &layout);
        assert_eq!(
            state,
            ApplyState {
                complete: Some(before),
                partial: Some((entry.log_id, 2)),
            }
        );
        // After the restart openraft re-applies the entry from `complete`.
        let outcome = apply_all(
            &engine,
            &applier,
            &layout,
            std::slice::from_ref(&entry),
            state,
        )
        .expect("re-apply");
        assert_eq!(outcome.replies.len(), 1);
        assert_eq!(outcome.replies[0].0.len(), 4);
        assert_eq!(
            *applier.applied.lock(),
            vec![(5, 0), (5, 1), (5, 2), (5, 3)]
        );
        assert_eq!(
            stored_state(&engine, &layout),
            ApplyState::complete(Some(entry.log_id))
        );
    }
}
