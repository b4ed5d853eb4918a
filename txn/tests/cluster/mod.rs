//! Shared test setup: three in-memory shards, a TSO on a manual clock, a coordinator,
//! and a recording shard-client wrapper.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use elastickv_engine_api::{KeyRange, MvccEngine, Timestamp};
use elastickv_engine_mem::MemEngine;
use elastickv_txn::ts::ManualClock;
use elastickv_txn::tso::{MemCeilingStore, TimestampOracle, TimestampSource, TsoConfig, TsoError};
use elastickv_txn::{
    Command, CommandOutput, Coordinator, CoordinatorConfig, GroupId, LockInfo, LockResolver,
    LockResolverConfig, MemShards, PointRead, RouteTable, ScanRead, ShardClient, ShardError,
};

pub type Shards = MemShards<MemEngine>;

/// Group 1 owns keys below "h", group 2 ["h", "p"), group 3 from "p".
pub fn routes() -> RouteTable {
    RouteTable::new(vec![
        (b"".to_vec(), 1),
        (b"h".to_vec(), 2),
        (b"p".to_vec(), 3),
    ])
}

pub fn shards() -> Arc<Shards> {
    Arc::new(MemShards::new(
        routes(),
        vec![
            (1, MemEngine::new()),
            (2, MemEngine::new()),
            (3, MemEngine::new()),
        ],
    ))
}

pub const START_MILLIS: u64 = 1_700_000_000_000;

/// A TSO on a manual clock.
pub async fn tso(clock: Arc<ManualClock>) -> Arc<TimestampOracle<MemCeilingStore>> {
    let oracle = TimestampOracle::start(
        Arc::new(MemCeilingStore::new()),
        clock,
        TsoConfig::default(),
    )
    .await
    .expect("start the TSO");
    Arc::new(oracle)
}

pub struct Cluster<C: ShardClient = Shards> {
    pub shards: Arc<Shards>,
    pub client: Arc<C>,
    pub clock: Arc<ManualClock>,
    pub tso: Arc<dyn TimestampSource>,
    pub coord: Coordinator<C>,
}

pub fn config() -> CoordinatorConfig {
    CoordinatorConfig {
        lock_ttl: Duration::from_secs(3),
        ..CoordinatorConfig::default()
    }
}

pub async fn cluster() -> Cluster {
    let shards = shards();
    let clock = Arc::new(ManualClock::new(START_MILLIS));
    let tso: Arc<dyn TimestampSource> = tso(clock.clone()).await;
    let coord = Coordinator::new(shards.clone(), tso.clone(), config());
    Cluster {
        client: shards.clone(),
        shards,
        clock,
        tso,
        coord,
    }
}

/// A cluster whose coordinator talks through a [`Recording`] wrapper.
pub async fn recorded_cluster() -> Cluster<Recording> {
    let shards = shards();
    let clock = Arc::new(ManualClock::new(START_MILLIS));
    let log = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let oracle = tso(clock.clone()).await;
    let tso: Arc<dyn TimestampSource> = Arc::new(RecordingTso {
        inner: oracle,
        log: log.clone(),
    });
    let client = Arc::new(Recording {
        inner: shards.clone(),
        log,
        expire_primary_before_commit: parking_lot::Mutex::new(None),
    });
    let coord = Coordinator::new(client.clone(), tso.clone(), config());
    Cluster {
        shards,
        client,
        clock,
        tso,
        coord,
    }
}

/// What the recording wrapper saw, in order.
#[derive(Debug, Clone)]
pub enum Event {
    Timestamp(Timestamp),
    Applied {
        group: GroupId,
        command: Command,
        ok: bool,
    },
}

#[derive(Debug)]
pub struct RecordingTso {
    inner: Arc<TimestampOracle<MemCeilingStore>>,
    log: Arc<parking_lot::Mutex<Vec<Event>>>,
}

#[async_trait]
impl TimestampSource for RecordingTso {
    async fn timestamps(&self, count: u32) -> Result<Timestamp, TsoError> {
        let first = self.inner.timestamps(count).await?;
        let mut log = self.log.lock();
        for ts in first..first + u64::from(count.max(1)) {
            log.push(Event::Timestamp(ts));
        }
        Ok(first)
    }
}

/// Delegates to the shards, recording every command in apply order, and can roll a
/// transaction's primary back (as an impatient resolver would) just before its commit.
#[derive(Debug)]
pub struct Recording {
    pub inner: Arc<Shards>,
    pub log: Arc<parking_lot::Mutex<Vec<Event>>>,
    /// `Some(primary)`: the next Commit that includes `primary` finds it rolled back.
    pub expire_primary_before_commit: parking_lot::Mutex<Option<Vec<u8>>>,
}

impl Recording {
    pub fn events(&self) -> Vec<Event> {
        self.log.lock().clone()
    }
}

#[async_trait]
impl ShardClient for Recording {
    fn route_key(&self, key: &[u8]) -> GroupId {
        self.inner.route_key(key)
    }
    fn route_range(&self, range: &KeyRange) -> Vec<(GroupId, KeyRange)> {
        self.inner.route_range(range)
    }
    fn groups(&self) -> Vec<GroupId> {
        self.inner.groups()
    }
    async fn apply(&self, group: GroupId, command: Command) -> Result<CommandOutput, ShardError> {
        if let Command::Commit {
            primary,
            start_ts,
            keys,
            ..
        } = &command
        {
            let armed = self.expire_primary_before_commit.lock().clone();
            if armed.as_deref() == Some(primary.as_slice()) && keys.contains(primary) {
                *self.expire_primary_before_commit.lock() = None;
                let check = Command::CheckTxnStatus {
                    primary: primary.clone(),
                    start_ts: *start_ts,
                    caller_ts: u64::MAX - 1,
                };
                self.apply(group, check).await?;
            }
        }
        let result = self.inner.apply(group, command.clone()).await;
        self.log.lock().push(Event::Applied {
            group,
            command,
            ok: result.is_ok(),
        });
        result
    }
    async fn read_point(
        &self,
        group: GroupId,
        key: Vec<u8>,
        read_ts: Timestamp,
    ) -> Result<PointRead, ShardError> {
        self.inner.read_point(group, key, read_ts).await
    }
    async fn read_scan(
        &self,
        group: GroupId,
        range: KeyRange,
        limit: usize,
        read_ts: Timestamp,
    ) -> Result<ScanRead, ShardError> {
        self.inner.read_scan(group, range, limit, read_ts).await
    }
    async fn scan_locks(
        &self,
        group: GroupId,
        range: KeyRange,
        limit: usize,
    ) -> Result<Vec<LockInfo>, ShardError> {
        self.inner.scan_locks(group, range, limit).await
    }
}

/// Every lock present on any shard.
pub fn all_locks(shards: &Shards) -> Vec<LockInfo> {
    [1, 2, 3]
        .iter()
        .flat_map(|g| {
            shards
                .machine(*g)
                .expect("shard")
                .scan_locks(&KeyRange::all(), usize::MAX)
                .expect("locks")
        })
        .collect()
}

/// Live engine keys with `prefix` on `group`.
pub fn live_records(shards: &Shards, group: GroupId, prefix: u8) -> usize {
    shards
        .machine(group)
        .expect("shard")
        .engine()
        .scan_at(&KeyRange::prefix(&[prefix]), usize::MAX, u64::MAX)
        .expect("scan")
        .len()
}

/// Rolls back or commits every expired lock on every group until none is left to visit.
pub async fn resolve_everything<C: ShardClient>(client: Arc<C>, tso: Arc<dyn TimestampSource>) {
    for group in client.groups() {
        let mut resolver = LockResolver::new(
            client.clone(),
            tso.clone(),
            group,
            LockResolverConfig::default(),
        );
        loop {
            let round = resolver.run_round().await.expect("resolver round");
            if round.wrapped {
                break;
            }
        }
    }
}
