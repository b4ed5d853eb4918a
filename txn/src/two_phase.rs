//! Percolator commands on one group: Prewrite, Commit, Rollback, CheckTxnStatus.
//!
//! Lock-record versions: a prewrite writes the lock (and a large value's intent) at
//! start_ts; a commit tombstones them at commit_ts; a rollback tombstones them at
//! start_ts, replacing the lock version. A commit record is written at commit_ts and a
//! rollback record at start_ts, both under the primary's record key.

use std::collections::HashSet;

use elastickv_engine_api::{Limits, Mutation, MvccEngine, Timestamp};

use crate::command::{CommandOutput, TxnStatus};
use crate::error::TxnError;
use crate::keys::{self, check_user_key};
use crate::lock::{LockKind, Record, StoredLock, INLINE_VALUE_LIMIT};
use crate::state_machine::{
    check_keys, check_mutations, check_ts_newer, check_txn_ts, check_write_ts, Fence, Plan, LATEST,
};
use crate::TxnStateMachine;

/// The fields of a Prewrite command.
#[derive(Debug)]
pub(crate) struct PrewriteArgs<'a> {
    pub primary: &'a [u8],
    pub start_ts: Timestamp,
    pub lock_expiry: Timestamp,
    pub txn_size: u64,
    pub mutations: &'a [Mutation],
    pub read_keys: &'a [Vec<u8>],
}

impl<E: MvccEngine> TxnStateMachine<E> {
    pub(crate) fn plan_prewrite(
        &self,
        args: &PrewriteArgs<'_>,
        limits: &Limits,
        fence: &Fence,
    ) -> Result<Plan, TxnError> {
        let start_ts = args.start_ts;
        check_write_ts(start_ts, "start_ts")?;
        check_user_key(limits, args.primary)?;
        check_mutations(args.mutations, limits)?;
        check_keys(args.read_keys, limits)?;
        if args.mutations.is_empty() && args.read_keys.is_empty() {
            return Err(TxnError::InvalidCommand("prewrite of no keys".into()));
        }
        self.check_fence(start_ts, fence)?;
        match self.record(args.primary, start_ts)? {
            Some(Record::RolledBack) => return Err(TxnError::AlreadyRolledBack { start_ts }),
            Some(Record::Committed(commit_ts)) => {
                return Err(TxnError::AlreadyCommitted {
                    start_ts,
                    commit_ts,
                })
            }
            None => {}
        }
        let mut plan = Plan::new(start_ts, CommandOutput::Applied);
        let written: HashSet<&[u8]> = args.mutations.iter().map(Mutation::key).collect();
        let lock_only = args
            .read_keys
            .iter()
            .filter(|k| !written.contains(k.as_slice()));
        let targets = args
            .mutations
            .iter()
            .map(|m| (m.key(), Some(m)))
            .chain(lock_only.map(|k| (k.as_slice(), None)));
        let mut seen = HashSet::new();
        for (key, mutation) in targets {
            if !seen.insert(key) {
                continue;
            }
            let (lock, newer_lock) = self.lock_check(key, start_ts)?;
            if let Some(lock) = &lock {
                if lock.start_ts == start_ts {
                    continue; // a repeated prewrite of this key: already done
                }
                return Err(TxnError::Locked(Box::new(lock.info(key))));
            }
            // A newer data version is a write-write (or read-write) conflict; a newer
            // lock version means another transaction locked the key after we started,
            // and a lock written below it would be hidden from everyone reading "now".
            self.check_newer(&keys::data_key(key), key, start_ts)?;
            if let Some(lock_ts) = newer_lock {
                check_ts_newer(lock_ts, key, start_ts)?;
            }
            let mut lock = StoredLock {
                primary: args.primary.to_vec(),
                start_ts,
                lock_expiry: args.lock_expiry,
                kind: LockKind::LockOnly,
                txn_size: args.txn_size,
                expire_at: 0,
                inline: None,
            };
            match mutation {
                Some(Mutation::Put {
                    value, expire_at, ..
                }) => {
                    lock.kind = LockKind::Put;
                    lock.expire_at = *expire_at;
                    if value.len() <= INLINE_VALUE_LIMIT {
                        lock.inline = Some(value.clone());
                    } else {
                        plan.put(keys::intent_key(key), value.clone());
                    }
                }
                Some(Mutation::Delete { .. }) => lock.kind = LockKind::Delete,
                None => {}
            }
            plan.put(keys::lock_key(key), lock.encode());
        }
        Ok(plan)
    }

    pub(crate) fn plan_commit(
        &self,
        primary: &[u8],
        start_ts: Timestamp,
        commit_ts: Timestamp,
        keys_to_commit: &[Vec<u8>],
        limits: &Limits,
    ) -> Result<Plan, TxnError> {
        check_txn_ts(start_ts, commit_ts)?;
        check_user_key(limits, primary)?;
        check_keys(keys_to_commit, limits)?;
        let mut plan = Plan::new(commit_ts, CommandOutput::Applied);
        let has_primary = keys_to_commit.iter().any(|k| k.as_slice() == primary);
        let mut write_record = false;
        if has_primary {
            match self.record(primary, start_ts)? {
                Some(Record::RolledBack) => return Err(TxnError::AlreadyRolledBack { start_ts }),
                Some(Record::Committed(ts)) if ts != commit_ts => {
                    return Err(TxnError::AlreadyCommitted {
                        start_ts,
                        commit_ts: ts,
                    })
                }
                Some(Record::Committed(_)) => {} // a repeated commit: succeeds
                None => {
                    let ours = self
                        .planned_lock(primary)?
                        .filter(|l| l.start_ts == start_ts);
                    if ours.is_none() {
                        return Err(TxnError::LockNotFound {
                            key: primary.to_vec(),
                            start_ts,
                        });
                    }
                    write_record = true;
                }
            }
        }
        let mut seen = HashSet::new();
        for key in keys_to_commit {
            if !seen.insert(key.as_slice()) {
                continue;
            }
            let Some(lock) = self.planned_lock(key)?.filter(|l| l.start_ts == start_ts) else {
                continue; // already committed (or never locked here): nothing to do
            };
            match lock.kind {
                LockKind::Put => {
                    let value = match lock.inline {
                        Some(v) => v,
                        None => {
                            let intent = self.engine().get_at(&keys::intent_key(key), LATEST)?;
                            plan.delete(keys::intent_key(key));
                            intent.ok_or_else(|| {
                                TxnError::Decode(format!(
                                    "missing intent of a locked key at {start_ts}"
                                ))
                            })?
                        }
                    };
                    plan.mutations.push(Mutation::Put {
                        key: keys::data_key(key),
                        value,
                        expire_at: lock.expire_at,
                    });
                }
                LockKind::Delete => plan.delete(keys::data_key(key)),
                LockKind::LockOnly => {}
            }
            plan.delete(keys::lock_key(key));
        }
        if write_record {
            plan.put(
                keys::record_key(primary, start_ts),
                Record::Committed(commit_ts).encode(),
            );
        }
        Ok(plan)
    }

    pub(crate) fn plan_rollback(
        &self,
        primary: &[u8],
        start_ts: Timestamp,
        keys_to_roll_back: &[Vec<u8>],
        limits: &Limits,
    ) -> Result<Plan, TxnError> {
        check_write_ts(start_ts, "start_ts")?;
        check_user_key(limits, primary)?;
        check_keys(keys_to_roll_back, limits)?;
        let record = self.record(primary, start_ts)?;
        if let Some(Record::Committed(commit_ts)) = record {
            return Err(TxnError::AlreadyCommitted {
                start_ts,
                commit_ts,
            });
        }
        let mut plan = Plan::new(start_ts, CommandOutput::Applied);
        let mut seen = HashSet::new();
        for key in keys_to_roll_back {
            if seen.insert(key.as_slice()) {
                self.remove_lock(&mut plan, key, start_ts)?;
            }
        }
        let has_primary = keys_to_roll_back.iter().any(|k| k.as_slice() == primary);
        if has_primary && record.is_none() {
            plan.put(
                keys::record_key(primary, start_ts),
                Record::RolledBack.encode(),
            );
        }
        Ok(plan)
    }

    pub(crate) fn plan_check_status(
        &self,
        primary: &[u8],
        start_ts: Timestamp,
        caller_ts: Timestamp,
        limits: &Limits,
    ) -> Result<Plan, TxnError> {
        check_write_ts(start_ts, "start_ts")?;
        check_user_key(limits, primary)?;
        let mut plan = Plan::new(start_ts, CommandOutput::Status(TxnStatus::RolledBack));
        match self.record(primary, start_ts)? {
            Some(Record::Committed(ts)) => {
                plan.output = CommandOutput::Status(TxnStatus::Committed(ts));
                return Ok(plan);
            }
            Some(Record::RolledBack) => return Ok(plan),
            None => {}
        }
        if let Some(lock) = self
            .planned_lock(primary)?
            .filter(|l| l.start_ts == start_ts)
        {
            if lock.lock_expiry > caller_ts {
                plan.output = CommandOutput::Status(TxnStatus::Pending {
                    lock_expiry: lock.lock_expiry,
                });
                return Ok(plan);
            }
            self.remove_lock(&mut plan, primary, start_ts)?;
        }
        // Expired, or missing without a commit record: roll back *durably*, so that a
        // late prewrite or commit of this primary fails instead of succeeding.
        plan.put(
            keys::record_key(primary, start_ts),
            Record::RolledBack.encode(),
        );
        Ok(plan)
    }

    /// Adds to `plan` the removal of `key`'s lock (and intent) if it belongs to the
    /// transaction `start_ts`. The plan's ts is start_ts, so the lock version itself is
    /// replaced by the tombstone.
    fn remove_lock(
        &self,
        plan: &mut Plan,
        key: &[u8],
        start_ts: Timestamp,
    ) -> Result<(), TxnError> {
        if let Some(lock) = self.planned_lock(key)?.filter(|l| l.start_ts == start_ts) {
            if lock.kind == LockKind::Put && lock.inline.is_none() {
                plan.delete(keys::intent_key(key));
            }
            plan.delete(keys::lock_key(key));
        }
        Ok(())
    }
}
