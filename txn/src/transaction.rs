//! The client-side coordinator (TXN.md 5): begin, lock-aware reads at start_ts with
//! buffered writes, and commit (see [`crate::commit`]) through an abstract
//! [`ShardClient`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use elastickv_engine_api::{KeyRange, KvPair, Timestamp};

use crate::resolve::{Backoff, LockAwareReader};
use crate::shard_client::ShardClient;
use crate::transaction_error::TransactionError;
use crate::tso::TimestampSource;

/// The isolation level of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// Snapshot isolation: reads see the snapshot at start_ts; write-write conflicts
    /// abort. Write skew is possible.
    #[default]
    Snapshot,
    /// Serializable: additionally, every key read is conflict-checked and lock-only
    /// locked at commit, so write skew is impossible. (Scans protect the keys they
    /// returned, not the gaps between them.)
    Serializable,
}

/// Coordinator settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoordinatorConfig {
    /// How long a prewrite lock lives before others may roll it back.
    pub lock_ttl: Duration,
    /// How readers wait for pending locks.
    pub read_backoff: Backoff,
    /// Attempts to commit the primary (and each secondary group) before giving up.
    pub commit_attempts: u32,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            lock_ttl: Duration::from_secs(3),
            read_backoff: Backoff::default(),
            commit_attempts: 5,
        }
    }
}

/// The start timestamps of running transactions, for the GC safe point.
#[derive(Debug, Default)]
pub struct ActiveTxns {
    running: parking_lot::Mutex<BTreeMap<Timestamp, usize>>,
}

impl ActiveTxns {
    /// The oldest running transaction's start_ts.
    pub fn oldest(&self) -> Option<Timestamp> {
        self.running.lock().keys().next().copied()
    }

    fn register(self: &Arc<Self>, start_ts: Timestamp) -> Registration {
        *self.running.lock().entry(start_ts).or_default() += 1;
        Registration {
            active: self.clone(),
            start_ts,
        }
    }
}

/// Removes a transaction from [`ActiveTxns`] when dropped.
#[derive(Debug)]
struct Registration {
    active: Arc<ActiveTxns>,
    start_ts: Timestamp,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut running = self.active.running.lock();
        if let Some(n) = running.get_mut(&self.start_ts) {
            *n -= 1;
            if *n == 0 {
                running.remove(&self.start_ts);
            }
        }
    }
}

/// Starts transactions. Cheap to clone.
#[derive(Debug)]
pub struct Coordinator<C: ShardClient> {
    pub(crate) client: Arc<C>,
    pub(crate) tso: Arc<dyn TimestampSource>,
    pub(crate) config: CoordinatorConfig,
    active: Arc<ActiveTxns>,
}

impl<C: ShardClient> Clone for Coordinator<C> {
    fn clone(&self) -> Self {
        Coordinator {
            client: self.client.clone(),
            tso: self.tso.clone(),
            config: self.config,
            active: self.active.clone(),
        }
    }
}

impl<C: ShardClient> Coordinator<C> {
    /// A coordinator over `client`, taking timestamps from `tso`.
    pub fn new(client: Arc<C>, tso: Arc<dyn TimestampSource>, config: CoordinatorConfig) -> Self {
        Coordinator {
            client,
            tso,
            config,
            active: Arc::new(ActiveTxns::default()),
        }
    }

    /// The running transactions (for [`crate::GcDriver`]).
    pub fn active(&self) -> &Arc<ActiveTxns> {
        &self.active
    }

    /// The shard client.
    pub fn client(&self) -> &Arc<C> {
        &self.client
    }

    /// Begins a transaction: its start_ts comes from the TSO.
    pub async fn begin(&self, isolation: Isolation) -> Result<Transaction<C>, TransactionError> {
        let start_ts = self.tso.timestamp().await?;
        Ok(Transaction {
            coordinator: self.clone(),
            start_ts,
            isolation,
            writes: BTreeMap::new(),
            reads: BTreeSet::new(),
            finished: false,
            reserved_commit_ts: None,
            _registration: self.active.register(start_ts),
        })
    }

    /// Begins a transaction meant to commit right away, such as the API's single-key
    /// `Put`: one oracle request reserves both its start_ts and the commit_ts of its
    /// first one-phase commit attempt (the next timestamp), which saves a round trip to
    /// the oracle. Reads are allowed and happen at start_ts, as usual: no commit can
    /// fall between the two timestamps. A two-phase commit ignores the reservation (its
    /// commit_ts must be taken after its prewrites), and so does a retry.
    pub async fn begin_short(
        &self,
        isolation: Isolation,
    ) -> Result<Transaction<C>, TransactionError> {
        let start_ts = self.tso.timestamps(2).await?;
        let mut txn = self.resume(start_ts, isolation, []);
        txn.reserved_commit_ts = Some(start_ts + 1);
        Ok(txn)
    }

    /// Continues a transaction whose start_ts was handed out earlier (by
    /// [`Coordinator::begin`] here or elsewhere): the stateless form a server API uses,
    /// where the client keeps the start_ts and its writes and sends them at commit.
    /// `read_keys` are the keys a serializable transaction read (checked at commit).
    ///
    /// The start_ts is registered in [`Coordinator::active`] only from now on, so the
    /// GC safe point may already have passed it: reads then fail with a compaction
    /// error and the commit with `StartTsTooOld`, never with wrong data.
    pub fn resume(
        &self,
        start_ts: Timestamp,
        isolation: Isolation,
        read_keys: impl IntoIterator<Item = Vec<u8>>,
    ) -> Transaction<C> {
        let reads = match isolation {
            Isolation::Serializable => read_keys.into_iter().collect(),
            Isolation::Snapshot => BTreeSet::new(),
        };
        Transaction {
            coordinator: self.clone(),
            start_ts,
            isolation,
            writes: BTreeMap::new(),
            reads,
            finished: false,
            reserved_commit_ts: None,
            _registration: self.active.register(start_ts),
        }
    }

    /// The timestamp source transactions take their timestamps from.
    pub fn tso(&self) -> &Arc<dyn TimestampSource> {
        &self.tso
    }

    /// The coordinator's settings.
    pub fn config(&self) -> &CoordinatorConfig {
        &self.config
    }

    /// A lock-aware read of the latest committed state (a one-read transaction).
    pub async fn get_latest(&self, key: &[u8]) -> Result<Option<Vec<u8>>, TransactionError> {
        let read_ts = self.tso.timestamp().await?;
        let mut reader = LockAwareReader::new(
            self.client.as_ref(),
            self.tso.as_ref(),
            self.config.read_backoff,
        );
        reader.get(key, read_ts).await
    }
}

/// One transaction: reads at start_ts, writes buffered until commit.
#[derive(Debug)]
pub struct Transaction<C: ShardClient> {
    pub(crate) coordinator: Coordinator<C>,
    pub(crate) start_ts: Timestamp,
    pub(crate) isolation: Isolation,
    /// Buffered writes: `Some(value)` puts, `None` deletes.
    pub(crate) writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    /// Keys read from the store (serializable only).
    pub(crate) reads: BTreeSet<Vec<u8>>,
    pub(crate) finished: bool,
    /// The commit_ts of the first one-phase attempt, taken with the start_ts
    /// ([`Coordinator::begin_short`]).
    pub(crate) reserved_commit_ts: Option<Timestamp>,
    _registration: Registration,
}

impl<C: ShardClient> Transaction<C> {
    /// The transaction's start (snapshot) timestamp.
    pub fn start_ts(&self) -> Timestamp {
        self.start_ts
    }

    /// The isolation level.
    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    pub(crate) fn ensure_active(&self) -> Result<(), TransactionError> {
        if self.finished {
            return Err(TransactionError::Finished);
        }
        Ok(())
    }

    fn reader(&self) -> LockAwareReader<'_, C> {
        let c = &self.coordinator;
        LockAwareReader::new(c.client.as_ref(), c.tso.as_ref(), c.config.read_backoff)
    }

    /// The value of `key`: this transaction's own write if any, else the snapshot.
    pub async fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, TransactionError> {
        self.ensure_active()?;
        if let Some(buffered) = self.writes.get(key) {
            return Ok(buffered.clone());
        }
        let value = self.reader().get(key, self.start_ts).await?;
        if self.isolation == Isolation::Serializable {
            self.reads.insert(key.to_vec());
        }
        Ok(value)
    }

    /// Up to `limit` pairs of `range`, ascending, including this transaction's writes.
    pub async fn scan(
        &mut self,
        range: &KeyRange,
        limit: usize,
    ) -> Result<Vec<KvPair>, TransactionError> {
        self.ensure_active()?;
        let buffered: Vec<(&Vec<u8>, &Option<Vec<u8>>)> =
            self.writes.range::<[u8], _>(range.bounds()).collect();
        let deletes = buffered.iter().filter(|(_, v)| v.is_none()).count();
        let fetched = self
            .reader()
            .scan(range, limit.saturating_add(deletes), self.start_ts)
            .await?;
        if self.isolation == Isolation::Serializable {
            self.reads.extend(fetched.iter().map(|p| p.key.clone()));
        }
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> =
            fetched.into_iter().map(|p| (p.key, p.value)).collect();
        for (key, value) in self.writes.range::<[u8], _>(range.bounds()) {
            match value {
                Some(v) => merged.insert(key.clone(), v.clone()),
                None => merged.remove(key),
            };
        }
        Ok(merged
            .into_iter()
            .take(limit)
            .map(|(key, value)| KvPair { key, value })
            .collect())
    }

    /// Buffers a put.
    pub fn put(
        &mut self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
    ) -> Result<(), TransactionError> {
        self.ensure_active()?;
        self.writes.insert(key.into(), Some(value.into()));
        Ok(())
    }

    /// Buffers a delete.
    pub fn delete(&mut self, key: impl Into<Vec<u8>>) -> Result<(), TransactionError> {
        self.ensure_active()?;
        self.writes.insert(key.into(), None);
        Ok(())
    }

    /// Abandons the transaction. Nothing was sent to the shards before commit, so there
    /// is nothing to undo.
    pub async fn rollback(mut self) -> Result<(), TransactionError> {
        self.ensure_active()?;
        self.finished = true;
        Ok(())
    }
}
