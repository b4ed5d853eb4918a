//! The timestamp oracle (TXN.md 1): serves timestamps from memory and persists, through
//! an abstract [`CeilingStore`] (Raft in production), a ceiling a little ahead of what it
//! has handed out. A new oracle starts above the last persisted ceiling, so timestamps
//! never go backwards across fail-over.
//!
//! Concurrent requests that find the ceiling exhausted queue behind one extension: the
//! first persists a new ceiling and every waiter is then served from memory.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;

use crate::ts::{add_millis, Clock, Timestamp};

/// Why a timestamp could not be produced.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TsoError {
    /// The ceiling could not be loaded or persisted (for example no Raft leader).
    #[error("timestamp ceiling store failed: {0}")]
    Store(String),
    /// The timestamp space is exhausted (never in practice: 2^48 ms is ~8900 years).
    #[error("timestamp space exhausted")]
    Exhausted,
}

/// Where the oracle persists its ceiling. The raft/server layers implement it by
/// proposing [`crate::Command::TsoCeiling`] to the default group and reading it back with
/// [`crate::TxnStateMachine::tso_ceiling`].
#[async_trait]
pub trait CeilingStore: Send + Sync + fmt::Debug + 'static {
    /// The last persisted ceiling (0 when none).
    async fn load(&self) -> Result<Timestamp, TsoError>;
    /// Persists `ceiling`; when this returns `Ok`, a later `load` returns at least it.
    async fn persist(&self, ceiling: Timestamp) -> Result<(), TsoError>;
}

/// Anything that hands out fresh timestamps: the oracle itself, or a client of a remote
/// one. Every timestamp returned is greater than every timestamp returned before it by
/// any caller (strictly increasing in real time).
#[async_trait]
pub trait TimestampSource: Send + Sync + fmt::Debug + 'static {
    /// One fresh timestamp.
    async fn timestamp(&self) -> Result<Timestamp, TsoError> {
        self.timestamps(1).await
    }

    /// `count` fresh consecutive timestamps (0 counts as 1), in one request: returns
    /// the first, and `first..first + count` are all the caller's.
    async fn timestamps(&self, count: u32) -> Result<Timestamp, TsoError>;
}

/// An in-memory [`CeilingStore`] for tests, able to fail on demand.
#[derive(Debug, Default)]
pub struct MemCeilingStore {
    ceiling: AtomicU64,
    persists: AtomicU64,
    fail: AtomicBool,
}

impl MemCeilingStore {
    /// An empty store (ceiling 0).
    pub fn new() -> Self {
        Self::default()
    }

    /// How many times a ceiling was persisted.
    pub fn persist_count(&self) -> u64 {
        self.persists.load(Ordering::SeqCst)
    }

    /// The persisted ceiling.
    pub fn ceiling(&self) -> Timestamp {
        self.ceiling.load(Ordering::SeqCst)
    }

    /// Makes every later `load`/`persist` fail (`true`) or succeed (`false`).
    pub fn set_failing(&self, failing: bool) {
        self.fail.store(failing, Ordering::SeqCst);
    }
}

#[async_trait]
impl CeilingStore for MemCeilingStore {
    async fn load(&self) -> Result<Timestamp, TsoError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(TsoError::Store("injected failure".into()));
        }
        Ok(self.ceiling())
    }

    async fn persist(&self, ceiling: Timestamp) -> Result<(), TsoError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(TsoError::Store("injected failure".into()));
        }
        self.ceiling.fetch_max(ceiling, Ordering::SeqCst);
        self.persists.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// Oracle settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TsoConfig {
    /// How far ahead of the handed-out timestamps the persisted ceiling runs, in ms.
    pub window_millis: u64,
}

impl Default for TsoConfig {
    fn default() -> Self {
        TsoConfig {
            window_millis: 3_000,
        }
    }
}

#[derive(Debug)]
struct Allocation {
    last: Timestamp,
    ceiling: Timestamp,
}

/// The timestamp oracle. Cheap to share (`Arc`); all methods take `&self`.
#[derive(Debug)]
pub struct TimestampOracle<S: CeilingStore> {
    store: Arc<S>,
    clock: Arc<dyn Clock>,
    config: TsoConfig,
    alloc: parking_lot::Mutex<Allocation>,
    extending: tokio::sync::Mutex<()>,
}

impl<S: CeilingStore> TimestampOracle<S> {
    /// Starts an oracle (for example on a new default-group leader): everything it hands
    /// out is above the ceiling persisted by any previous oracle.
    pub async fn start(
        store: Arc<S>,
        clock: Arc<dyn Clock>,
        config: TsoConfig,
    ) -> Result<Self, TsoError> {
        let ceiling = store.load().await?;
        Ok(TimestampOracle {
            store,
            clock,
            config,
            alloc: parking_lot::Mutex::new(Allocation {
                last: ceiling,
                ceiling,
            }),
            extending: tokio::sync::Mutex::new(()),
        })
    }

    /// Reserves `count` consecutive timestamps and returns the first (callers that need
    /// many at once batch them in one request). `count == 0` is treated as 1.
    pub async fn reserve(&self, count: u32) -> Result<Timestamp, TsoError> {
        let count = u64::from(count.max(1));
        if let Some(first) = self.try_serve(count)? {
            return Ok(first);
        }
        // Only one extension at a time; whoever waited here re-checks first, so one
        // persisted ceiling serves every request that queued behind it.
        let _extension = self.extending.lock().await;
        if let Some(first) = self.try_serve(count)? {
            return Ok(first);
        }
        let target = {
            let alloc = self.alloc.lock();
            let base = alloc.last.max(self.clock.now_ts());
            add_millis(base.saturating_add(count), self.config.window_millis)
        };
        if target == u64::MAX {
            return Err(TsoError::Exhausted);
        }
        self.store.persist(target).await?;
        {
            let mut alloc = self.alloc.lock();
            alloc.ceiling = alloc.ceiling.max(target);
        }
        self.try_serve(count)?.ok_or(TsoError::Exhausted)
    }

    /// The ceiling this oracle has persisted (or inherited).
    pub fn ceiling(&self) -> Timestamp {
        self.alloc.lock().ceiling
    }

    fn try_serve(&self, count: u64) -> Result<Option<Timestamp>, TsoError> {
        let now = self.clock.now_ts();
        let mut alloc = self.alloc.lock();
        let first = alloc
            .last
            .checked_add(1)
            .ok_or(TsoError::Exhausted)?
            .max(now);
        let last = first.checked_add(count - 1).ok_or(TsoError::Exhausted)?;
        if last <= alloc.ceiling {
            alloc.last = last;
            return Ok(Some(first));
        }
        Ok(None)
    }
}

#[async_trait]
impl<S: CeilingStore> TimestampSource for TimestampOracle<S> {
    async fn timestamps(&self, count: u32) -> Result<Timestamp, TsoError> {
        self.reserve(count).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ts::{compose, ManualClock};

    fn clock(ms: u64) -> Arc<ManualClock> {
        Arc::new(ManualClock::new(ms))
    }

    #[tokio::test]
    async fn timestamps_strictly_increase_and_follow_the_clock() {
        let c = clock(1_000);
        let tso = TimestampOracle::start(
            Arc::new(MemCeilingStore::new()),
            c.clone(),
            TsoConfig::default(),
        )
        .await
        .unwrap();
        let a = tso.timestamp().await.unwrap();
        let b = tso.timestamp().await.unwrap();
        assert!(a >= compose(1_000, 0) && b > a);
        c.advance(10);
        let d = tso.timestamp().await.unwrap();
        assert!(d >= compose(1_010, 0));
        c.set(0); // the clock going backwards never makes timestamps go backwards
        assert!(tso.timestamp().await.unwrap() > d);
        let first = tso.reserve(5).await.unwrap();
        assert!(tso.timestamp().await.unwrap() >= first + 5);
    }

    #[tokio::test]
    async fn new_oracle_starts_above_the_persisted_ceiling() {
        let store = Arc::new(MemCeilingStore::new());
        let c = clock(1_000);
        let old = TimestampOracle::start(store.clone(), c.clone(), TsoConfig::default())
            .await
            .unwrap();
        let mut handed_out = 0;
        for _ in 0..100 {
            handed_out = old.timestamp().await.unwrap();
        }
        assert!(store.ceiling() >= handed_out);
        // Fail-over to a node whose clock is far behind.
        let new = TimestampOracle::start(store.clone(), clock(1), TsoConfig::default())
            .await
            .unwrap();
        assert!(new.timestamp().await.unwrap() > handed_out);
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_ceiling_extension() {
        let store = Arc::new(MemCeilingStore::new());
        let tso = Arc::new(
            TimestampOracle::start(store.clone(), clock(5_000), TsoConfig::default())
                .await
                .unwrap(),
        );
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..64 {
            let tso = tso.clone();
            tasks.spawn(async move { tso.timestamp().await.unwrap() });
        }
        let mut all = Vec::new();
        while let Some(ts) = tasks.join_next().await {
            all.push(ts.unwrap());
        }
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 64);
        assert_eq!(store.persist_count(), 1);
    }

    #[tokio::test]
    async fn a_failing_store_fails_the_request_not_the_oracle() {
        let store = Arc::new(MemCeilingStore::new());
        let tso = TimestampOracle::start(store.clone(), clock(7), TsoConfig::default())
            .await
            .unwrap();
        store.set_failing(true);
        assert!(matches!(tso.timestamp().await, Err(TsoError::Store(_))));
        store.set_failing(false);
        assert!(tso.timestamp().await.is_ok());
    }
}
