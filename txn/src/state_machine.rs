//! The deterministic state machine: [`TxnStateMachine::apply`] turns one [`Command`]
//! into exactly one atomic engine write (TXN.md 3).
//!
//! Applying never reads a clock: every timestamp comes from the command, so the same
//! command log gives byte-identical engines on every replica. Every command is fully
//! validated and checked before the write is built; a refused command writes nothing
//! (except the caller's extra raw operations, such as Raft's applied log id, which are
//! written even then so "what was applied" never lags behind the log).
//!
//! The conflict and lock checks are made while planning, and the write that follows
//! asks the engine for no check of its own: commands are applied by one caller at a
//! time, in order, and nothing else writes versions to a group's engine, so the store a
//! plan was checked against is the store it is written to (in a group of commands, see
//! [`crate::group`], every earlier command whose keys meet it is written first).

use std::sync::Arc;

use elastickv_engine_api::{
    Durability, Limits, Mutation, MvccEngine, RawOp, Timestamp, WriteBatch,
};

use crate::command::{Command, CommandOutput};
use crate::error::TxnError;
use crate::keys::{self, check_user_key, check_value};
use crate::lock::{Record, StoredLock};
use crate::recent::RecentWrites;

/// The timestamp every read of "the current state" of internal records uses.
pub(crate) const LATEST: Timestamp = u64::MAX;

/// What a validated command will write.
#[derive(Debug)]
pub(crate) struct Plan {
    /// The version timestamp of every mutation.
    pub ts: Timestamp,
    /// Engine-key mutations.
    pub mutations: Vec<Mutation>,
    /// The command's answer once written.
    pub output: CommandOutput,
}

impl Plan {
    pub fn new(ts: Timestamp, output: CommandOutput) -> Self {
        Plan {
            ts,
            mutations: Vec::new(),
            output,
        }
    }

    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.mutations.push(Mutation::Put {
            key,
            value,
            expire_at: 0,
        });
    }

    pub fn delete(&mut self, key: Vec<u8>) {
        self.mutations.push(Mutation::Delete { key });
    }
}

/// The transactional state machine over one engine (one shard / Raft group).
///
/// `apply` must be called in log order by one caller at a time (Raft's apply loop, or
/// the in-memory shard's mutex); reads may run concurrently with it.
pub struct TxnStateMachine<E: MvccEngine> {
    engine: Arc<E>,
    /// What planning asks of the store, for recently written and never-locked keys
    /// (shared by clones: planning is one caller at a time whichever clone it uses).
    recent: Arc<RecentWrites>,
}

impl<E: MvccEngine> std::fmt::Debug for TxnStateMachine<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxnStateMachine")
            .field("engine", &self.engine.name())
            .finish()
    }
}

impl<E: MvccEngine> Clone for TxnStateMachine<E> {
    fn clone(&self) -> Self {
        TxnStateMachine {
            engine: self.engine.clone(),
            recent: Arc::clone(&self.recent),
        }
    }
}

impl<E: MvccEngine> TxnStateMachine<E> {
    /// A state machine over `engine`.
    pub fn new(engine: Arc<E>) -> Self {
        Self::with_recent_writes(engine, crate::recent::DEFAULT_CAPACITY)
    }

    /// A state machine over `engine` whose planning remembers up to `capacity` recently
    /// written keys (`0`: none; every check reads the engine). Answers never depend on
    /// it, only how often the engine is read (see [`crate::recent`]).
    pub fn with_recent_writes(engine: Arc<E>, capacity: usize) -> Self {
        TxnStateMachine {
            engine,
            recent: Arc::new(RecentWrites::new(capacity)),
        }
    }

    pub(crate) fn recent(&self) -> &RecentWrites {
        &self.recent
    }

    /// Drops what planning remembers of recent writes. Call it after replacing the
    /// engine's content behind the state machine's back (a snapshot restore); it is read
    /// from the store again when next needed.
    pub fn forget_recent_writes(&self) {
        self.recent.forget();
    }

    /// The engine underneath (for snapshots, compaction and the Raft layer).
    pub fn engine(&self) -> &Arc<E> {
        &self.engine
    }

    /// Applies `command` with a synced write and no extra raw operations.
    pub fn apply(&self, command: &Command) -> Result<CommandOutput, TxnError> {
        self.apply_with(command, &[], Durability::Sync)
    }

    /// Applies `command` in one atomic engine write that also carries `raw` (for example
    /// the applied log id), with the given durability. When the command is refused,
    /// `raw` is still written (alone) and the refusal is returned.
    pub fn apply_with(
        &self,
        command: &Command,
        raw: &[RawOp],
        durability: Durability,
    ) -> Result<CommandOutput, TxnError> {
        let limits = self.engine.limits();
        let outcome = self
            .plan(command, &limits, &Fence::default())
            .and_then(|plan| {
                if let Err(e) = self.write_plan(&plan, raw, durability) {
                    // Nothing, or (a storage failure) anything, may have been written.
                    self.recent.forget();
                    return Err(e);
                }
                self.recent.record(&plan.mutations, plan.ts);
                Ok(plan.output)
            });
        if outcome.is_err() && !raw.is_empty() {
            self.engine
                .write(&WriteBatch::raw_only(raw).with_durability(durability))?;
        }
        outcome
    }

    fn write_plan(
        &self,
        plan: &Plan,
        raw: &[RawOp],
        durability: Durability,
    ) -> Result<(), TxnError> {
        if plan.mutations.is_empty() && raw.is_empty() {
            return Ok(());
        }
        let batch = WriteBatch::new(&plan.mutations, plan.ts)
            .with_raw(raw)
            .with_durability(durability);
        Ok(self.engine.write(&batch)?)
    }

    /// Checks `command` against the store and says what it will write. `fence` holds the
    /// GC fence once read (it changes only when a `PurgeTxnRecords` is applied).
    pub(crate) fn plan(
        &self,
        command: &Command,
        limits: &Limits,
        fence: &Fence,
    ) -> Result<Plan, TxnError> {
        match command {
            Command::RawBatch { ts, writes } => self.plan_raw(*ts, writes, limits),
            Command::OnePhase {
                start_ts,
                commit_ts,
                mutations,
                read_keys,
            } => self.plan_one_phase(*start_ts, *commit_ts, mutations, read_keys, limits, fence),
            Command::Prewrite {
                primary,
                start_ts,
                lock_expiry,
                txn_size,
                mutations,
                read_keys,
            } => self.plan_prewrite(
                &crate::two_phase::PrewriteArgs {
                    primary,
                    start_ts: *start_ts,
                    lock_expiry: *lock_expiry,
                    txn_size: *txn_size,
                    mutations,
                    read_keys,
                },
                limits,
                fence,
            ),
            Command::Commit {
                primary,
                start_ts,
                commit_ts,
                keys,
            } => self.plan_commit(primary, *start_ts, *commit_ts, keys, limits),
            Command::Rollback {
                primary,
                start_ts,
                keys,
            } => self.plan_rollback(primary, *start_ts, keys, limits),
            Command::CheckTxnStatus {
                primary,
                start_ts,
                caller_ts,
            } => self.plan_check_status(primary, *start_ts, *caller_ts, limits),
            Command::TsoCeiling { ceiling } => self.plan_tso_ceiling(*ceiling),
            Command::MetaPut { ts, key, value } => plan_meta(*ts, key, value.as_deref(), limits),
            Command::PurgeTxnRecords {
                safe_point,
                cursor,
                limit,
            } => self.plan_purge(*safe_point, cursor, *limit),
        }
    }

    fn plan_raw(
        &self,
        ts: Timestamp,
        writes: &[Mutation],
        limits: &Limits,
    ) -> Result<Plan, TxnError> {
        check_write_ts(ts, "raw write ts")?;
        let mut plan = Plan::new(ts, CommandOutput::Applied);
        let mut results = Vec::with_capacity(writes.len());
        for write in writes {
            let result = self.check_raw_write(write, limits);
            if result.is_ok() {
                plan.mutations.push(to_data_mutation(write));
            }
            results.push(result);
        }
        plan.output = CommandOutput::Raw(results);
        Ok(plan)
    }

    fn check_raw_write(&self, write: &Mutation, limits: &Limits) -> Result<(), TxnError> {
        check_mutation(write, limits)?;
        if let Some(lock) = self.planned_lock(write.key())? {
            return Err(TxnError::Locked(Box::new(lock.info(write.key()))));
        }
        Ok(())
    }

    fn plan_one_phase(
        &self,
        start_ts: Timestamp,
        commit_ts: Timestamp,
        mutations: &[Mutation],
        read_keys: &[Vec<u8>],
        limits: &Limits,
        fence: &Fence,
    ) -> Result<Plan, TxnError> {
        check_txn_ts(start_ts, commit_ts)?;
        check_mutations(mutations, limits)?;
        check_keys(read_keys, limits)?;
        self.check_fence(start_ts, fence)?;
        for m in mutations {
            let key = m.key();
            let (lock, newer_lock) = self.lock_check(key, start_ts)?;
            if let Some(lock) = lock {
                return Err(TxnError::Locked(Box::new(lock.info(key))));
            }
            self.check_newer(&keys::data_key(key), key, start_ts)?;
            if let Some(lock_ts) = newer_lock {
                check_ts_newer(lock_ts, key, start_ts)?;
            }
        }
        for key in read_keys {
            if let Some(lock) = self.planned_lock(key)? {
                if lock.kind != crate::lock::LockKind::LockOnly {
                    return Err(TxnError::Locked(Box::new(lock.info(key))));
                }
            }
            self.check_newer(&keys::data_key(key), key, start_ts)?;
        }
        let mut plan = Plan::new(commit_ts, CommandOutput::Applied);
        plan.mutations = mutations.iter().map(to_data_mutation).collect();
        Ok(plan)
    }

    fn plan_tso_ceiling(&self, ceiling: Timestamp) -> Result<Plan, TxnError> {
        check_write_ts(ceiling, "tso ceiling")?;
        let mut plan = Plan::new(ceiling, CommandOutput::Applied);
        if ceiling > self.tso_ceiling()? {
            plan.put(
                keys::TSO_CEILING_KEY.to_vec(),
                ceiling.to_be_bytes().to_vec(),
            );
        }
        Ok(plan)
    }

    fn plan_purge(
        &self,
        safe_point: Timestamp,
        cursor: &[u8],
        limit: u32,
    ) -> Result<Plan, TxnError> {
        check_write_ts(safe_point, "gc safe point")?;
        let mut plan = Plan::new(safe_point, CommandOutput::Applied);
        if safe_point > self.gc_fence()? {
            plan.put(
                keys::GC_FENCE_KEY.to_vec(),
                safe_point.to_be_bytes().to_vec(),
            );
        }
        let mut purged = 0;
        let mut next_cursor = None;
        if limit > 0 {
            let range = keys::records_before(safe_point, cursor);
            let page = self.engine.scan_at(&range, limit as usize, LATEST)?;
            for pair in &page {
                let done_at = match Record::decode(&pair.value)? {
                    Record::Committed(commit_ts) => commit_ts,
                    Record::RolledBack => keys::parse_record_key(&pair.key).map_or(0, |(ts, _)| ts),
                };
                if done_at <= safe_point {
                    plan.delete(pair.key.clone());
                    purged += 1;
                }
            }
            if page.len() == limit as usize {
                next_cursor = page.last().map(|p| {
                    let mut next = p.key.clone();
                    next.push(0);
                    next
                });
            }
        }
        plan.output = CommandOutput::Purged {
            purged,
            next_cursor,
        };
        Ok(plan)
    }

    /// The lock currently present on `key`, if any.
    pub(crate) fn present_lock(&self, key: &[u8]) -> Result<Option<StoredLock>, TxnError> {
        match self.engine.get_at(&keys::lock_key(key), LATEST)? {
            Some(bytes) => Ok(Some(StoredLock::decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// The commit or rollback record of `(primary, start_ts)`, if any.
    pub(crate) fn record(
        &self,
        primary: &[u8],
        start_ts: Timestamp,
    ) -> Result<Option<Record>, TxnError> {
        match self
            .engine
            .get_at(&keys::record_key(primary, start_ts), LATEST)?
        {
            Some(bytes) => Ok(Some(Record::decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// For planning: the lock present on `key`, and the ts of the newest version of
    /// its lock key if newer than `start_ts`. From memory where [`RecentWrites`] knows;
    /// else one engine read where the key was never locked, two otherwise.
    pub(crate) fn lock_check(
        &self,
        key: &[u8],
        start_ts: Timestamp,
    ) -> Result<(Option<StoredLock>, Option<Timestamp>), TxnError> {
        let lock_key = keys::lock_key(key);
        if self.recent.may_be_locked(self.engine.as_ref(), &lock_key)? == Some(false) {
            return Ok((None, self.newer_version(&lock_key, start_ts)?));
        }
        match self.engine.latest_commit_ts(&lock_key)? {
            None => Ok((None, None)),
            Some(ts) => Ok((self.present_lock(key)?, Some(ts).filter(|t| *t > start_ts))),
        }
    }

    /// For planning: the lock present on `key` (from memory when it knows there is none).
    pub(crate) fn planned_lock(&self, key: &[u8]) -> Result<Option<StoredLock>, TxnError> {
        let lock_key = keys::lock_key(key);
        if self.recent.may_be_locked(self.engine.as_ref(), &lock_key)? == Some(false) {
            return Ok(None);
        }
        self.present_lock(key)
    }

    /// For planning: the ts of `engine_key`'s newest version if newer than `start_ts`.
    fn newer_version(
        &self,
        engine_key: &[u8],
        start_ts: Timestamp,
    ) -> Result<Option<Timestamp>, TxnError> {
        if let Some(known) =
            self.recent
                .newer_version(self.engine.as_ref(), engine_key, start_ts)?
        {
            return Ok(known);
        }
        Ok(self
            .engine
            .latest_commit_ts(engine_key)?
            .filter(|ts| *ts > start_ts))
    }

    /// For planning: fails with `WriteConflict` when `engine_key` has a version newer
    /// than `start_ts`.
    pub(crate) fn check_newer(
        &self,
        engine_key: &[u8],
        key: &[u8],
        start_ts: Timestamp,
    ) -> Result<(), TxnError> {
        match self.newer_version(engine_key, start_ts)? {
            Some(ts) => check_ts_newer(ts, key, start_ts),
            None => Ok(()),
        }
    }

    /// Fails with `StartTsTooOld` below the GC fence (read through `fence`).
    pub(crate) fn check_fence(&self, start_ts: Timestamp, fence: &Fence) -> Result<(), TxnError> {
        let fence = match fence.0.get() {
            Some(known) => known,
            None => {
                let read = self.gc_fence()?;
                fence.0.set(Some(read));
                read
            }
        };
        if start_ts < fence {
            return Err(TxnError::StartTsTooOld { start_ts, fence });
        }
        Ok(())
    }

    fn system_value(&self, key: &[u8]) -> Result<Timestamp, TxnError> {
        match self.engine.get_at(key, LATEST)? {
            None => Ok(0),
            Some(bytes) => {
                let raw: [u8; 8] = bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| TxnError::Decode("system value: expected 8 bytes".into()))?;
                Ok(u64::from_be_bytes(raw))
            }
        }
    }

    /// The highest TSO ceiling ever applied (0 when none).
    pub fn tso_ceiling(&self) -> Result<Timestamp, TxnError> {
        self.system_value(keys::TSO_CEILING_KEY)
    }

    /// The GC fence: prewrites and one-phase commits below it are refused (0 when none).
    pub fn gc_fence(&self) -> Result<Timestamp, TxnError> {
        self.system_value(keys::GC_FENCE_KEY)
    }

    /// The current value of a metadata entry.
    pub fn meta(&self, key: &[u8]) -> Result<Option<Vec<u8>>, TxnError> {
        Ok(self.engine.get_at(&keys::meta_key(key), LATEST)?)
    }
}

/// Fails with `WriteConflict` when a version at `ts` of `key` is newer than `start_ts`.
pub(crate) fn check_ts_newer(
    ts: Timestamp,
    key: &[u8],
    start_ts: Timestamp,
) -> Result<(), TxnError> {
    if ts > start_ts {
        return Err(TxnError::WriteConflict {
            key: key.to_vec(),
            start_ts,
            conflict_ts: ts,
        });
    }
    Ok(())
}

/// The GC fence as planning read it: read from the store at most once while it cannot
/// change (one command, or the commands of a group up to a `PurgeTxnRecords`).
#[derive(Debug, Default)]
pub(crate) struct Fence(std::cell::Cell<Option<Timestamp>>);

fn plan_meta(
    ts: Timestamp,
    key: &[u8],
    value: Option<&[u8]>,
    limits: &Limits,
) -> Result<Plan, TxnError> {
    check_write_ts(ts, "metadata ts")?;
    check_user_key(limits, key)?;
    let mut plan = Plan::new(ts, CommandOutput::Applied);
    match value {
        Some(v) => {
            check_value(limits, v)?;
            plan.put(keys::meta_key(key), v.to_vec());
        }
        None => plan.delete(keys::meta_key(key)),
    }
    Ok(plan)
}

/// The user mutation rewritten onto the data prefix.
pub(crate) fn to_data_mutation(m: &Mutation) -> Mutation {
    match m {
        Mutation::Put {
            key,
            value,
            expire_at,
        } => Mutation::Put {
            key: keys::data_key(key),
            value: value.clone(),
            expire_at: *expire_at,
        },
        Mutation::Delete { key } => Mutation::Delete {
            key: keys::data_key(key),
        },
    }
}

pub(crate) fn check_write_ts(ts: Timestamp, what: &str) -> Result<(), TxnError> {
    if ts == 0 || ts == u64::MAX {
        return Err(TxnError::InvalidCommand(format!(
            "{what} must be in 1..u64::MAX, got {ts}"
        )));
    }
    Ok(())
}

pub(crate) fn check_txn_ts(start_ts: Timestamp, commit_ts: Timestamp) -> Result<(), TxnError> {
    check_write_ts(start_ts, "start_ts")?;
    check_write_ts(commit_ts, "commit_ts")?;
    if commit_ts <= start_ts {
        return Err(TxnError::InvalidCommand(format!(
            "commit_ts {commit_ts} must be greater than start_ts {start_ts}"
        )));
    }
    Ok(())
}

pub(crate) fn check_mutation(m: &Mutation, limits: &Limits) -> Result<(), TxnError> {
    check_user_key(limits, m.key())?;
    if let Mutation::Put { value, .. } = m {
        check_value(limits, value)?;
    }
    Ok(())
}

/// Validates every mutation and refuses duplicate keys, before anything is written.
pub(crate) fn check_mutations(mutations: &[Mutation], limits: &Limits) -> Result<(), TxnError> {
    let mut seen = std::collections::HashSet::with_capacity(mutations.len());
    for m in mutations {
        check_mutation(m, limits)?;
        if !seen.insert(m.key()) {
            return Err(TxnError::InvalidCommand(format!(
                "duplicate key {} in mutations",
                elastickv_engine_api::display_key(m.key())
            )));
        }
    }
    Ok(())
}

pub(crate) fn check_keys(keys: &[Vec<u8>], limits: &Limits) -> Result<(), TxnError> {
    keys.iter().try_for_each(|k| check_user_key(limits, k))
}
