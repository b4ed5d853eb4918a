//! Commit: one `OnePhase` command when one group is involved, Percolator two-phase
//! commit otherwise (TXN.md 5).
//!
//! Two-phase: prewrite the primary's group, then the other groups in parallel; take
//! commit_ts from the TSO only after every prewrite succeeded; commit the primary (the
//! commit point); then commit the secondaries in parallel, retried, without failing the
//! transaction. A failed prewrite rolls back what was prewritten. An ambiguous failure
//! of the primary commit is settled with `CheckTxnStatus`; secondaries are rolled back
//! only once the transaction is known not to have committed.

use std::collections::BTreeMap;
use std::sync::Arc;

use elastickv_engine_api::{Mutation, Timestamp};
use tokio::task::JoinSet;

use crate::command::{Command, CommandOutput, TxnStatus};
use crate::error::TxnError;
use crate::lock::LockInfo;
use crate::resolve::{resolve_locks, StatusCache};
use crate::shard_client::{GroupId, ShardClient, ShardError};
use crate::transaction::{Isolation, Transaction};
use crate::transaction_error::TransactionError;
use crate::ts::add_millis;

/// The keys one group holds for this transaction.
#[derive(Debug, Default, Clone)]
struct GroupPart {
    mutations: Vec<Mutation>,
    read_keys: Vec<Vec<u8>>,
}

impl GroupPart {
    fn keys(&self) -> Vec<Vec<u8>> {
        self.mutations
            .iter()
            .map(|m| m.key().to_vec())
            .chain(self.read_keys.iter().cloned())
            .collect()
    }
}

/// How the primary commit ended.
enum PrimaryOutcome {
    Committed,
    Aborted(TransactionError),
    Unknown(String),
}

impl<C: ShardClient> Transaction<C> {
    /// Commits the transaction and returns its commit timestamp (the start_ts for a
    /// transaction that wrote nothing).
    pub async fn commit(mut self) -> Result<Timestamp, TransactionError> {
        self.ensure_active()?;
        self.finished = true;
        if self.writes.is_empty() {
            return Ok(self.start_ts);
        }
        let client = self.coordinator.client.clone();
        let mut parts: BTreeMap<GroupId, GroupPart> = BTreeMap::new();
        for (key, value) in &self.writes {
            let mutation = match value {
                Some(v) => Mutation::put(key.clone(), v.clone()),
                None => Mutation::delete(key.clone()),
            };
            parts
                .entry(client.route_key(key))
                .or_default()
                .mutations
                .push(mutation);
        }
        if self.isolation == Isolation::Serializable {
            for key in self.reads.iter().filter(|k| !self.writes.contains_key(*k)) {
                parts
                    .entry(client.route_key(key))
                    .or_default()
                    .read_keys
                    .push(key.clone());
            }
        }
        let reserved = self.reserved_commit_ts.take();
        let result = if parts.len() == 1 {
            self.commit_one_phase(parts.into_values().next().unwrap_or_default(), reserved)
                .await
        } else {
            self.commit_two_phase(parts).await
        };
        if let Err(TransactionError::Locked(lock)) = &result {
            self.help_resolve(lock).await;
        }
        result
    }

    /// After losing to a lock, settles it if its owner is gone (expired or finished), so
    /// that the caller's retry does not meet it again. Failures are left to the retry.
    async fn help_resolve(&self, lock: &LockInfo) {
        let coordinator = &self.coordinator;
        let Ok(now) = coordinator.tso.timestamp().await else {
            return;
        };
        let mut cache = StatusCache::default();
        let locks = std::slice::from_ref(lock);
        if let Err(e) = resolve_locks(coordinator.client.as_ref(), locks, now, &mut cache).await {
            tracing::debug!(error = %e, "could not resolve a conflicting lock");
        }
    }

    async fn commit_one_phase(
        &self,
        part: GroupPart,
        mut reserved: Option<Timestamp>,
    ) -> Result<Timestamp, TransactionError> {
        let client = &self.coordinator.client;
        let group = match part.mutations.first() {
            Some(m) => client.route_key(m.key()),
            None => return Ok(self.start_ts),
        };
        let mut last_error = String::new();
        for _ in 0..self.coordinator.config.commit_attempts.max(1) {
            // Taken as late as possible; the group refuses it if a read at or above it
            // was already served, and then a fresh one is taken.
            let commit_ts = match reserved.take() {
                Some(ts) => ts,
                None => self.coordinator.tso.timestamp().await?,
            };
            let command = Command::OnePhase {
                start_ts: self.start_ts,
                commit_ts,
                mutations: part.mutations.clone(),
                read_keys: part.read_keys.clone(),
            };
            match client.apply(group, command).await {
                Ok(_) => return Ok(commit_ts),
                Err(e @ ShardError::CommitTsTooOld { .. }) => last_error = e.to_string(),
                Err(ShardError::Ambiguous(reason)) => {
                    return Err(TransactionError::Undetermined {
                        start_ts: self.start_ts,
                        reason,
                    })
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(TransactionError::Unavailable(last_error))
    }

    async fn commit_two_phase(
        &self,
        parts: BTreeMap<GroupId, GroupPart>,
    ) -> Result<Timestamp, TransactionError> {
        let coordinator = &self.coordinator;
        let client = coordinator.client.clone();
        // The smallest written key: the BTreeMap of writes is ordered.
        let primary = self.writes.keys().next().cloned().unwrap_or_default();
        let primary_group = client.route_key(&primary);
        let now = coordinator.tso.timestamp().await?;
        let ttl_millis = u64::try_from(coordinator.config.lock_ttl.as_millis()).unwrap_or(u64::MAX);
        let lock_expiry = add_millis(now, ttl_millis);
        let txn_size = self.writes.len() as u64;
        let prewrite = |part: &GroupPart| Command::Prewrite {
            primary: primary.clone(),
            start_ts: self.start_ts,
            lock_expiry,
            txn_size,
            mutations: part.mutations.clone(),
            read_keys: part.read_keys.clone(),
        };

        // 1. The primary's group first: once it is locked, nobody else can commit it.
        let primary_part = parts.get(&primary_group).cloned().unwrap_or_default();
        if let Err(e) = client.apply(primary_group, prewrite(&primary_part)).await {
            self.roll_back(&primary, &parts).await;
            return Err(e.into());
        }
        // 2. The other groups in parallel.
        let others: Vec<(GroupId, Command)> = parts
            .iter()
            .filter(|(g, _)| **g != primary_group)
            .map(|(g, part)| (*g, prewrite(part)))
            .collect();
        if let Some(e) = apply_all(&client, others)
            .await
            .into_iter()
            .find_map(|(_, r)| r.err())
        {
            self.roll_back(&primary, &parts).await;
            return Err(e.into());
        }
        // 3. commit_ts only now, after every prewrite succeeded.
        let commit_ts = match coordinator.tso.timestamp().await {
            Ok(ts) => ts,
            Err(e) => {
                self.roll_back(&primary, &parts).await;
                return Err(e.into());
            }
        };
        // 4. The commit point.
        match self
            .commit_primary(&primary, primary_group, &primary_part, commit_ts)
            .await
        {
            PrimaryOutcome::Committed => {}
            PrimaryOutcome::Aborted(e) => {
                self.roll_back(&primary, &parts).await;
                return Err(e);
            }
            PrimaryOutcome::Unknown(reason) => {
                // It may have committed: never roll anything back; resolvers settle it.
                return Err(TransactionError::Undetermined {
                    start_ts: self.start_ts,
                    reason,
                });
            }
        }
        // 5. Secondaries: failures are not failures of the transaction.
        let secondaries: Vec<(GroupId, Command)> = parts
            .iter()
            .filter(|(g, _)| **g != primary_group)
            .map(|(g, part)| {
                let command = Command::Commit {
                    primary: primary.clone(),
                    start_ts: self.start_ts,
                    commit_ts,
                    keys: part.keys(),
                };
                (*g, command)
            })
            .collect();
        self.commit_secondaries(secondaries).await;
        Ok(commit_ts)
    }

    async fn commit_primary(
        &self,
        primary: &[u8],
        group: GroupId,
        part: &GroupPart,
        commit_ts: Timestamp,
    ) -> PrimaryOutcome {
        let client = &self.coordinator.client;
        let command = Command::Commit {
            primary: primary.to_vec(),
            start_ts: self.start_ts,
            commit_ts,
            keys: part.keys(),
        };
        let mut last_error = String::new();
        for _ in 0..self.coordinator.config.commit_attempts.max(1) {
            match client.apply(group, command.clone()).await {
                Ok(_) => return PrimaryOutcome::Committed,
                Err(ShardError::Rejected(TxnError::AlreadyCommitted { .. })) => {
                    return PrimaryOutcome::Committed
                }
                Err(ShardError::Rejected(e)) => {
                    return PrimaryOutcome::Aborted(ShardError::Rejected(e).into())
                }
                Err(e @ ShardError::CommitTsTooOld { .. }) => last_error = e.to_string(),
                Err(ShardError::Unavailable(m)) => last_error = m,
                Err(ShardError::Ambiguous(m)) => {
                    last_error = m;
                    // caller_ts = start_ts: our own lock is never considered expired.
                    let check = Command::CheckTxnStatus {
                        primary: primary.to_vec(),
                        start_ts: self.start_ts,
                        caller_ts: self.start_ts,
                    };
                    match client.apply(group, check).await {
                        Ok(CommandOutput::Status(TxnStatus::Committed(_))) => {
                            return PrimaryOutcome::Committed
                        }
                        Ok(CommandOutput::Status(TxnStatus::RolledBack)) => {
                            return PrimaryOutcome::Aborted(TransactionError::Aborted(
                                "the primary was rolled back".into(),
                            ))
                        }
                        Ok(_) => {} // still pending: our commit did not apply; try again
                        Err(e) => last_error = e.to_string(),
                    }
                }
            }
        }
        PrimaryOutcome::Unknown(last_error)
    }

    async fn commit_secondaries(&self, mut pending: Vec<(GroupId, Command)>) {
        let client = self.coordinator.client.clone();
        for _ in 0..self.coordinator.config.commit_attempts.max(1) {
            if pending.is_empty() {
                return;
            }
            let results = apply_all(&client, pending.clone()).await;
            let failed: Vec<GroupId> = results
                .into_iter()
                .filter(|(_, r)| {
                    matches!(
                        r,
                        Err(ShardError::Unavailable(_) | ShardError::Ambiguous(_))
                    )
                })
                .map(|(g, _)| g)
                .collect();
            pending.retain(|(g, _)| failed.contains(g));
        }
        if !pending.is_empty() {
            tracing::warn!(
                start_ts = self.start_ts,
                groups = pending.len(),
                "secondary commits left to the lock resolver"
            );
        }
    }

    /// Rolls back every group (primary first, writing the rollback record), best effort:
    /// locks left behind expire and are resolved by readers or the lock resolver.
    async fn roll_back(&self, primary: &[u8], parts: &BTreeMap<GroupId, GroupPart>) {
        let client = self.coordinator.client.clone();
        let primary_group = client.route_key(primary);
        let rollback = |part: &GroupPart| Command::Rollback {
            primary: primary.to_vec(),
            start_ts: self.start_ts,
            keys: part.keys(),
        };
        let primary_part = parts.get(&primary_group).cloned().unwrap_or_default();
        let mut primary_rollback = rollback(&primary_part);
        if let Command::Rollback { keys, .. } = &mut primary_rollback {
            if !keys.iter().any(|k| k.as_slice() == primary) {
                keys.push(primary.to_vec());
            }
        }
        if let Err(e) = client.apply(primary_group, primary_rollback).await {
            tracing::warn!(start_ts = self.start_ts, error = %e, "rollback of the primary failed");
        }
        let others: Vec<(GroupId, Command)> = parts
            .iter()
            .filter(|(g, _)| **g != primary_group)
            .map(|(g, part)| (*g, rollback(part)))
            .collect();
        for (group, result) in apply_all(&client, others).await {
            if let Err(e) = result {
                tracing::warn!(start_ts = self.start_ts, group, error = %e, "rollback failed");
            }
        }
    }
}

/// Sends each command to its group concurrently and collects the results.
async fn apply_all<C: ShardClient>(
    client: &Arc<C>,
    commands: Vec<(GroupId, Command)>,
) -> Vec<(GroupId, Result<CommandOutput, ShardError>)> {
    let mut tasks = JoinSet::new();
    let mut groups = std::collections::HashMap::new();
    for (group, command) in commands {
        let client = client.clone();
        let handle = tasks.spawn(async move { (group, client.apply(group, command).await) });
        groups.insert(handle.id(), group);
    }
    let mut out = Vec::new();
    while let Some(joined) = tasks.join_next_with_id().await {
        match joined {
            Ok((_, result)) => out.push(result),
            Err(e) => {
                // The task died (a panicking client): the command may have been sent.
                let group = groups.get(&e.id()).copied().unwrap_or_default();
                out.push((
                    group,
                    Err(ShardError::Ambiguous(format!("task failed: {e}"))),
                ));
            }
        }
    }
    out
}
