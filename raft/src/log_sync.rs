//! Group commit for the log: one synced write makes many appends durable.
//!
//! openraft 0.9 calls `append` once per client write and calls it again as soon as the
//! previous call returned, learning about durability later through a callback. So an
//! append only parks its encoded entries in [`PendingLog`] (where log readers see them
//! at once) and queues its callback here. The sync thread repeatedly takes
//! every queued callback and every parked entry, writes all those entries in one synced
//! write (to the log files, or to the engine), and only then reports the callbacks
//! flushed. While one sync runs, the next batch accumulates: concurrent proposals share
//! syncs, and no entry is reported flushed before it is on stable storage.
//!
//! A thread rather than a Tokio task handing each write to the blocking pool: the
//! write blocks anyway, and each hand-off to the pool and back cost two thread wake-ups
//! per sync (see `docs/benchmarks.md`). A group whose log is in its own files or in the
//! engine has a thread of its own. The groups of a node's [`SharedLog`] share one
//! thread instead: it takes every group's queued callbacks and parked entries at once
//! and writes them as one batch of the shared log. With a thread per group, the groups'
//! threads met in the shared log, where all but one waited for the one that synced and
//! were then woken one by one: at 256 clients on three groups that was half of the
//! leader's futex calls (`docs/benchmarks.md`).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use elastickv_engine_api::{Durability, EngineError, MvccEngine, RawOp};
use openraft::storage::IOFlushed;
use parking_lot::Mutex;
use std::sync::mpsc;
use tokio::sync::oneshot;

use crate::layout::Layout;
use crate::log_file::LogFiles;
use crate::log_store::{Entries, LogCounters};
use crate::shared_log::SharedLog;
use crate::{GroupId, TypeConfig};

/// Entries appended but not yet written to the log: index -> encoded entry.
pub(crate) type PendingLog = Arc<Mutex<BTreeMap<u64, Arc<[u8]>>>>;

/// One group's parked entries, consecutive, in index order.
type Batch = crate::shared_log::GroupEntries;

/// Something waiting for the next sync.
enum SyncWaiter {
    /// An append's completion callback.
    Append(IOFlushed<TypeConfig>),
    /// A caller that needs every earlier append durable before it proceeds.
    Barrier(oneshot::Sender<Result<(), String>>),
}

/// What a sync thread receives: a group's waiter.
type Message = (Arc<dyn SyncMember>, SyncWaiter);

/// A group's part of a sync thread's work.
trait SyncMember: Send + Sync {
    /// The entries parked now.
    fn parked(&self) -> Batch;
    /// The group, when its entries go to the node's shared log (written together with
    /// the other groups' by the shared log's thread).
    fn shared_group(&self) -> Option<GroupId>;
    /// Keeps the group's engine open while a write of its entries runs: stopping a group
    /// waits for its engine to be released, so no write of a stopped group can overlap
    /// the reopened group's. `None`: the group is closed.
    fn hold(&self) -> Option<Arc<dyn Send + Sync>>;
    /// Writes `batch` durably, alone (a log in the group's own files or in the engine).
    fn write_alone(&self, batch: &Batch) -> Result<(), String>;
    /// `batch` is durable: it leaves the parked entries (unless replaced meanwhile).
    fn written(&self, batch: &Batch);
}

/// The handle appends use to queue their callbacks.
#[derive(Clone)]
pub(crate) struct LogSyncer {
    tx: mpsc::Sender<Message>,
    member: Arc<dyn SyncMember>,
}

impl std::fmt::Debug for LogSyncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogSyncer")
    }
}

/// The sync thread of a node's shared log, which every group in it uses.
#[derive(Clone)]
pub(crate) struct SharedSyncer {
    tx: mpsc::Sender<Message>,
}

impl std::fmt::Debug for SharedSyncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedSyncer")
    }
}

impl SharedSyncer {
    /// Starts the thread writing the groups' appends to `log`. It holds the log weakly
    /// and ends once every handle is dropped.
    pub(crate) fn start(log: Weak<SharedLog>) -> Self {
        SharedSyncer {
            tx: spawn(Some(log)),
        }
    }
}

/// Starts a sync thread; `shared`: the shared log its groups write to.
fn spawn(shared: Option<Weak<SharedLog>>) -> mpsc::Sender<Message> {
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("ekv-log-sync".to_string())
        .stack_size(256 * 1024)
        .spawn(move || run(&rx, shared.as_ref()));
    if let Err(e) = spawned {
        // Without its thread every append fails (its callback reports the error).
        tracing::error!(error = %e, "could not start a log sync thread");
    }
    tx
}

impl LogSyncer {
    /// Starts syncing one group's log: on the shared log's thread when the entries are
    /// in the node's shared log, else on a thread of the group's own. The thread holds
    /// the engine weakly, so it never keeps a closed group's engine open.
    pub(crate) fn start<E: MvccEngine>(
        engine: &Arc<E>,
        layout: &Layout,
        entries: &Entries,
        pending: PendingLog,
        counters: Arc<LogCounters>,
    ) -> Self {
        let (files, shared) = match entries {
            Entries::Engine => (None, None),
            Entries::Files(files) => (Some(Arc::downgrade(files)), files.shared()),
        };
        let member = Arc::new(Member {
            engine: Arc::downgrade(engine),
            files,
            shared_group: shared.as_ref().map(|(_, group)| *group),
            layout: layout.clone(),
            pending,
            counters,
        });
        let tx = match shared {
            Some((log, _)) => log.syncer().tx,
            None => spawn(None),
        };
        LogSyncer { tx, member }
    }

    fn send(&self, waiter: SyncWaiter) -> Result<(), SyncWaiter> {
        self.tx
            .send((Arc::clone(&self.member), waiter))
            .map_err(|mpsc::SendError((_, waiter))| waiter)
    }

    /// Reports `callback` once every entry parked before this call is durable.
    pub(crate) fn flushed_later(&self, callback: IOFlushed<TypeConfig>) {
        if let Err(SyncWaiter::Append(callback)) = self.send(SyncWaiter::Append(callback)) {
            callback.io_completed(Err(std::io::Error::other("log sync thread stopped")));
        }
    }

    /// Waits until every entry parked before this call is durable.
    pub(crate) async fn barrier(&self) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.send(SyncWaiter::Barrier(tx))
            .map_err(|_| "log sync thread stopped".to_string())?;
        rx.await
            .map_err(|_| "log sync thread stopped".to_string())?
    }
}

/// One group's log as its sync thread sees it.
struct Member<E> {
    engine: Weak<E>,
    /// The log files, when the entries are kept there.
    files: Option<Weak<dyn LogFiles>>,
    /// The group, when the files are its part of the node's shared log.
    shared_group: Option<GroupId>,
    layout: Layout,
    pending: PendingLog,
    counters: Arc<LogCounters>,
}

impl<E: MvccEngine> SyncMember for Member<E> {
    fn parked(&self) -> Batch {
        self.pending
            .lock()
            .iter()
            .map(|(index, bytes)| (*index, Arc::clone(bytes)))
            .collect()
    }

    fn shared_group(&self) -> Option<GroupId> {
        self.shared_group
    }

    fn hold(&self) -> Option<Arc<dyn Send + Sync>> {
        let engine: Arc<dyn Send + Sync> = self.engine.upgrade()?;
        Some(engine)
    }

    fn write_alone(&self, batch: &Batch) -> Result<(), String> {
        let Some(engine) = self.engine.upgrade() else {
            return Err("engine closed".to_string());
        };
        match &self.files {
            Some(files) => {
                let Some(files) = files.upgrade() else {
                    return Err("log closed".to_string());
                };
                files.append(batch).map_err(EngineError::Io)
            }
            None => {
                let ops: Vec<RawOp> = batch
                    .iter()
                    .map(|(index, bytes)| RawOp::put(self.layout.log_key(*index), bytes.to_vec()))
                    .collect();
                engine.raw_write(&ops, Durability::Sync)
            }
        }
        .map_err(|e| e.to_string())
    }

    fn written(&self, batch: &Batch) {
        let mut pending = self.pending.lock();
        for (index, bytes) in batch {
            if pending.get(index).is_some_and(|b| Arc::ptr_eq(b, bytes)) {
                pending.remove(index);
            }
        }
        drop(pending);
        self.counters.append_syncs.fetch_add(1, Ordering::Relaxed);
    }
}

/// A sync thread: takes every queued waiter, writes the parked entries of their groups,
/// reports to the waiters; again until every handle is dropped.
fn run(rx: &mpsc::Receiver<Message>, shared: Option<&Weak<SharedLog>>) {
    while let Ok(first) = rx.recv() {
        if shared.is_some() {
            // Give the other groups, whose appends may be about to come (a leader
            // replicates every group at about the same time), one chance to join this
            // batch before it is taken.
            std::thread::yield_now();
        }
        // The groups with waiters, in the order they came, each with its waiters.
        let mut work: Vec<(Arc<dyn SyncMember>, Vec<SyncWaiter>)> = Vec::new();
        for (member, waiter) in
            std::iter::once(first).chain(std::iter::from_fn(|| rx.try_recv().ok()))
        {
            match work
                .iter_mut()
                .find(|(m, _)| std::ptr::addr_eq(Arc::as_ptr(m), Arc::as_ptr(&member)))
            {
                Some((_, waiters)) => waiters.push(waiter),
                None => work.push((member, vec![waiter])),
            }
        }
        // Every waiter's entries were parked before it was queued, so they are in
        // these batches (or were written by an earlier, already synced one).
        let batches: Vec<Batch> = work.iter().map(|(member, _)| member.parked()).collect();
        let results = write(&work, &batches, shared);
        for ((member, waiters), (batch, result)) in
            work.into_iter().zip(batches.iter().zip(results))
        {
            if result.is_ok() && !batch.is_empty() {
                member.written(batch);
            }
            for waiter in waiters {
                match waiter {
                    SyncWaiter::Append(callback) => {
                        callback.io_completed(result.clone().map_err(std::io::Error::other))
                    }
                    SyncWaiter::Barrier(tx) => {
                        // The waiter may have given up; nothing to report then.
                        let _ = tx.send(result.clone());
                    }
                }
            }
        }
    }
}

/// Writes each group's batch durably: the shared log's groups in one batch of it, the
/// others one by one. Returns the outcome per group.
fn write(
    work: &[(Arc<dyn SyncMember>, Vec<SyncWaiter>)],
    batches: &[Batch],
    shared: Option<&Weak<SharedLog>>,
) -> Vec<Result<(), String>> {
    let mut results: Vec<Result<(), String>> = vec![Ok(()); work.len()];
    // Positions (in `work`) of the groups going to the shared log, with their engines
    // held until the write is done.
    let mut together = Vec::new();
    let mut held = Vec::new();
    for (position, ((member, _), batch)) in work.iter().zip(batches).enumerate() {
        if batch.is_empty() {
            continue;
        }
        match member.shared_group() {
            Some(group) => match member.hold() {
                Some(engine) => {
                    held.push(engine);
                    together.push((position, group));
                }
                None => results[position] = Err("engine closed".to_string()),
            },
            None => results[position] = member.write_alone(batch),
        }
    }
    if together.is_empty() {
        return results;
    }
    match shared.and_then(Weak::upgrade) {
        Some(log) => {
            let appends = together
                .iter()
                .map(|&(position, group)| (group, batches[position].clone()))
                .collect();
            for (&(position, _), outcome) in together.iter().zip(log.append_groups(appends)) {
                results[position] = outcome.map_err(|e| e.to_string());
            }
        }
        None => {
            for &(position, _) in &together {
                results[position] = Err("log closed".to_string());
            }
        }
    }
    drop(held);
    results
}

#[cfg(test)]
mod tests {
    use elastickv_engine_mem::MemEngine;

    use super::*;

    fn payload(group: GroupId, index: u64) -> Arc<[u8]> {
        Arc::from(format!("group {group} entry {index}").into_bytes())
    }

    /// One group of a shared log as its sync thread sees it, with what the test checks.
    struct Group {
        files: Arc<dyn LogFiles>,
        pending: PendingLog,
        counters: Arc<LogCounters>,
        member: Arc<dyn SyncMember>,
    }

    fn group(log: &Arc<SharedLog>, engine: &Arc<MemEngine>, id: GroupId) -> Group {
        let files: Arc<dyn LogFiles> = Arc::new(log.attach(id, None).expect("attach"));
        let pending = PendingLog::default();
        pending
            .lock()
            .extend((1..=2).map(|index| (index, payload(id, index))));
        let counters = Arc::new(LogCounters::default());
        let member = Arc::new(Member {
            engine: Arc::downgrade(engine),
            files: Some(Arc::downgrade(&files)),
            shared_group: files.shared().map(|(_, group)| group),
            layout: Layout::new(id),
            pending: Arc::clone(&pending),
            counters: Arc::clone(&counters),
        });
        Group {
            files,
            pending,
            counters,
            member,
        }
    }

    #[test]
    fn the_groups_of_a_shared_log_are_written_in_one_sync() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = SharedLog::open(dir.path()).expect("open");
        let engine = Arc::new(MemEngine::new());
        let groups: Vec<Group> = (1..=3).map(|id| group(&log, &engine, id)).collect();
        let (tx, rx) = mpsc::channel();
        let mut answers = Vec::new();
        for g in &groups {
            // Two waiters for each group: both are answered by the one write.
            for _ in 0..2 {
                let (answer, answered) = oneshot::channel();
                tx.send((Arc::clone(&g.member), SyncWaiter::Barrier(answer)))
                    .expect("send");
                answers.push(answered);
            }
        }
        drop(tx);
        let before = log.syncs();
        run(&rx, Some(&Arc::downgrade(&log)));
        assert_eq!(log.syncs() - before, 1, "one sync for the three groups");
        for mut answered in answers {
            assert_eq!(answered.try_recv().expect("answered"), Ok(()));
        }
        for (id, g) in (1..=3).zip(&groups) {
            assert!(
                g.pending.lock().is_empty(),
                "group {id}'s entries left the parked ones"
            );
            assert_eq!(g.counters.append_syncs.load(Ordering::Relaxed), 1);
            let read = g.files.read(1, 3, 10).expect("read");
            assert_eq!(read, vec![payload(id, 1).to_vec(), payload(id, 2).to_vec()]);
        }
    }

    #[test]
    fn a_closed_group_fails_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = SharedLog::open(dir.path()).expect("open");
        let open = Arc::new(MemEngine::new());
        let closed = Arc::new(MemEngine::new());
        let kept = group(&log, &open, 1);
        let gone = group(&log, &closed, 2);
        drop(closed);
        let (tx, rx) = mpsc::channel();
        let mut answers = Vec::new();
        for g in [&gone, &kept] {
            let (answer, answered) = oneshot::channel();
            tx.send((Arc::clone(&g.member), SyncWaiter::Barrier(answer)))
                .expect("send");
            answers.push(answered);
        }
        drop(tx);
        run(&rx, Some(&Arc::downgrade(&log)));
        assert_eq!(
            answers[0].try_recv().expect("answered"),
            Err("engine closed".to_string())
        );
        assert_eq!(answers[1].try_recv().expect("answered"), Ok(()));
        assert_eq!(
            gone.pending.lock().len(),
            2,
            "nothing of the closed group was written"
        );
        assert!(gone.files.read(1, 3, 10).expect("read").is_empty());
        assert_eq!(kept.files.read(1, 3, 10).expect("read").len(), 2);
    }

    #[test]
    fn a_shared_log_group_syncs_through_the_shared_thread() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = SharedLog::open(dir.path()).expect("open");
        let engine = Arc::new(MemEngine::new());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let groups: Vec<(LogSyncer, PendingLog, Arc<dyn LogFiles>)> = (1..=2)
            .map(|id| {
                let files: Arc<dyn LogFiles> = Arc::new(log.attach(id, None).expect("attach"));
                let pending = PendingLog::default();
                pending.lock().insert(1, payload(id, 1));
                let syncer = LogSyncer::start(
                    &engine,
                    &Layout::new(id),
                    &Entries::Files(Arc::clone(&files)),
                    Arc::clone(&pending),
                    Arc::new(LogCounters::default()),
                );
                (syncer, pending, files)
            })
            .collect();
        let before = log.syncs();
        // (A group of the shared log given to a thread of its own would fail here: only
        // the shared log's thread writes such groups.)
        for (id, (syncer, pending, files)) in (1..=2).zip(&groups) {
            runtime.block_on(syncer.barrier()).expect("barrier");
            assert!(pending.lock().is_empty());
            assert_eq!(
                files.read(1, 2, 10).expect("read"),
                vec![payload(id, 1).to_vec()]
            );
        }
        assert_eq!(
            log.syncs() - before,
            2,
            "one sync of the shared log per barrier"
        );
    }
}
