//! The background lock resolver (TXN.md 6): on a group, page through *all* lock records
//! with a cursor that persists across rounds, and resolve every expired lock through
//! `CheckTxnStatus` on its primary's group. Work per round is bounded; an error ends the
//! round with the cursor left at the failed page, so it is retried next round.

use std::sync::Arc;
use std::time::Duration;

use elastickv_engine_api::KeyRange;
use tokio::sync::watch;

use crate::resolve::{resolve_locks, StatusCache};
use crate::shard_client::{GroupId, ShardClient, ShardError};
use crate::tso::{TimestampSource, TsoError};

/// Lock resolver settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockResolverConfig {
    /// Time between rounds.
    pub interval: Duration,
    /// Locks read per page.
    pub page_size: usize,
    /// Most locks examined per round.
    pub max_locks_per_round: usize,
}

impl Default for LockResolverConfig {
    fn default() -> Self {
        LockResolverConfig {
            interval: Duration::from_secs(10),
            page_size: 100,
            max_locks_per_round: 1_000,
        }
    }
}

/// What one round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ResolverRound {
    /// Locks examined.
    pub examined: usize,
    /// Expired locks whose transaction was settled (committed or rolled back).
    pub resolved: usize,
    /// True when the round reached the end of the lock keyspace (the cursor wrapped).
    pub wrapped: bool,
}

/// Why a round stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ResolverError {
    /// A shard request failed.
    #[error(transparent)]
    Shard(#[from] ShardError),
    /// No timestamp was available.
    #[error(transparent)]
    Tso(#[from] TsoError),
}

/// Resolves expired locks of one group.
#[derive(Debug)]
pub struct LockResolver<C: ShardClient> {
    client: Arc<C>,
    tso: Arc<dyn TimestampSource>,
    group: GroupId,
    config: LockResolverConfig,
    /// The next user key to examine; empty = from the beginning.
    cursor: Vec<u8>,
}

impl<C: ShardClient> LockResolver<C> {
    /// A resolver for `group`.
    pub fn new(
        client: Arc<C>,
        tso: Arc<dyn TimestampSource>,
        group: GroupId,
        config: LockResolverConfig,
    ) -> Self {
        LockResolver {
            client,
            tso,
            group,
            config,
            cursor: Vec::new(),
        }
    }

    /// The key the next round starts from.
    pub fn cursor(&self) -> &[u8] {
        &self.cursor
    }

    /// One bounded round.
    pub async fn run_round(&mut self) -> Result<ResolverRound, ResolverError> {
        let mut round = ResolverRound::default();
        let now = self.tso.timestamp().await?;
        let mut cache = StatusCache::default();
        let page_size = self.config.page_size.max(1);
        while round.examined < self.config.max_locks_per_round.max(1) {
            let want = page_size
                .min(self.config.max_locks_per_round - round.examined)
                .max(1);
            let page = self
                .client
                .scan_locks(self.group, KeyRange::from(self.cursor.clone()), want)
                .await?;
            let expired: Vec<_> = page
                .iter()
                .filter(|l| l.lock_expiry <= now)
                .cloned()
                .collect();
            let pending = resolve_locks(self.client.as_ref(), &expired, now, &mut cache).await?;
            round.examined += page.len();
            round.resolved += expired.len() - pending.len();
            match page.last() {
                Some(last) if page.len() == want => {
                    let mut next = last.key.clone();
                    next.push(0);
                    self.cursor = next;
                }
                _ => {
                    self.cursor.clear();
                    round.wrapped = true;
                    break;
                }
            }
        }
        Ok(round)
    }

    /// Runs rounds every `interval` until `shutdown` becomes `true` (or its sender is
    /// dropped); stops promptly, also in the middle of a wait.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            match self.run_round().await {
                Ok(round) => tracing::debug!(group = self.group, ?round, "lock resolver round"),
                Err(e) => {
                    tracing::warn!(group = self.group, error = %e, "lock resolver round failed; retrying next round")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.interval) => {}
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    }
}
