//! An in-memory [`ShardClient`]: several shards in one process, each an engine plus the
//! state machine behind a mutex that orders applies (standing in for a Raft group), with
//! failure injection: fail or time out a chosen command kind on a chosen shard, before
//! or after applying, or at random.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use elastickv_engine_api::{CompactionStats, KeyRange, MvccEngine, Timestamp};

use crate::command::{Command, CommandKind, CommandOutput};
use crate::gc::compact_txn_data;
use crate::lock::LockInfo;
use crate::reads::{PointRead, ScanRead};
use crate::shard_client::{GroupId, RouteTable, ShardClient, ShardError};
use crate::TxnStateMachine;

/// When an injected fault strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultPoint {
    /// The command is not applied.
    BeforeApply,
    /// The command is applied, but its result is lost.
    AfterApply,
}

/// What the caller sees when a fault strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultEffect {
    /// A failure: `Unavailable` before applying, `Ambiguous` after.
    Fail,
    /// A timeout: always `Ambiguous` (the caller cannot know whether it applied).
    Timeout,
}

/// One injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// The shard it strikes (`None`: any).
    pub group: Option<GroupId>,
    /// The command kind it strikes (`None`: any).
    pub kind: Option<CommandKind>,
    /// Before or after applying.
    pub point: FaultPoint,
    /// Failure or timeout.
    pub effect: FaultEffect,
    /// How many matching commands it strikes before disappearing.
    pub times: u32,
}

#[derive(Debug, Default)]
struct FaultState {
    planned: Vec<Fault>,
    /// Per mille of commands and reads that fail at random.
    random_per_mille: u32,
    rng: u64,
}

impl FaultState {
    fn next_random(&mut self) -> u64 {
        // xorshift64: deterministic for a given seed.
        let mut x = self.rng.max(1);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    fn take(
        &mut self,
        group: GroupId,
        kind: Option<CommandKind>,
    ) -> Option<(FaultPoint, FaultEffect)> {
        if let Some(i) = self.planned.iter().position(|f| {
            f.times > 0
                && f.group.is_none_or(|g| g == group)
                && (f.kind.is_none() || f.kind == kind)
        }) {
            let fault = &mut self.planned[i];
            fault.times -= 1;
            let hit = (fault.point, fault.effect);
            if fault.times == 0 {
                self.planned.remove(i);
            }
            return Some(hit);
        }
        if self.random_per_mille > 0 && self.next_random() % 1000 < u64::from(self.random_per_mille)
        {
            let r = self.next_random();
            let point = if r & 1 == 0 {
                FaultPoint::BeforeApply
            } else {
                FaultPoint::AfterApply
            };
            let effect = if r & 2 == 0 {
                FaultEffect::Fail
            } else {
                FaultEffect::Timeout
            };
            return Some((point, effect));
        }
        None
    }
}

struct Shard<E: MvccEngine> {
    machine: TxnStateMachine<E>,
    /// Applies take it exclusively (which also orders them), reads shared, so the
    /// one-phase check against `max_read_ts` is atomic with respect to reads.
    order: parking_lot::RwLock<()>,
    /// The highest read timestamp served.
    max_read_ts: std::sync::atomic::AtomicU64,
}

impl<E: MvccEngine> Shard<E> {
    fn begin_read(&self, read_ts: Timestamp) -> parking_lot::RwLockReadGuard<'_, ()> {
        let guard = self.order.read();
        self.max_read_ts
            .fetch_max(read_ts, std::sync::atomic::Ordering::SeqCst);
        guard
    }
}

/// Several in-memory shards behind one [`ShardClient`].
pub struct MemShards<E: MvccEngine> {
    routes: RouteTable,
    shards: BTreeMap<GroupId, Shard<E>>,
    faults: parking_lot::Mutex<FaultState>,
}

impl<E: MvccEngine> std::fmt::Debug for MemShards<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemShards")
            .field("routes", &self.routes)
            .field("groups", &self.shards.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl<E: MvccEngine> MemShards<E> {
    /// Shards over the given engines, routed by `routes` (every routed group must have an
    /// engine; requests to a group without one fail with `Unavailable`).
    pub fn new(routes: RouteTable, engines: Vec<(GroupId, E)>) -> Self {
        let shards = engines
            .into_iter()
            .map(|(group, engine)| {
                let shard = Shard {
                    machine: TxnStateMachine::new(Arc::new(engine)),
                    order: parking_lot::RwLock::new(()),
                    max_read_ts: std::sync::atomic::AtomicU64::new(0),
                };
                (group, shard)
            })
            .collect();
        MemShards {
            routes,
            shards,
            faults: parking_lot::Mutex::new(FaultState::default()),
        }
    }

    /// The state machine of `group`.
    pub fn machine(&self, group: GroupId) -> Option<&TxnStateMachine<E>> {
        self.shards.get(&group).map(|s| &s.machine)
    }

    /// Adds a planned fault.
    pub fn inject(&self, fault: Fault) {
        self.faults.lock().planned.push(fault);
    }

    /// Makes `per_mille` of all commands and reads fail at random (a deterministic
    /// sequence for a given `seed`); `0` turns random faults off.
    pub fn set_random_faults(&self, per_mille: u32, seed: u64) {
        let mut faults = self.faults.lock();
        faults.random_per_mille = per_mille;
        faults.rng = seed;
    }

    /// Removes every planned and random fault.
    pub fn clear_faults(&self) {
        let mut faults = self.faults.lock();
        faults.planned.clear();
        faults.random_per_mille = 0;
    }

    /// Compacts every shard's transactional data at `safe_point` (what each replica's GC
    /// task does in a real cluster).
    pub fn compact_all(&self, safe_point: Timestamp) -> Result<Vec<CompactionStats>, ShardError> {
        self.shards
            .values()
            .map(|s| {
                compact_txn_data(s.machine.engine().as_ref(), safe_point)
                    .map_err(|e| ShardError::Rejected(e.into()))
            })
            .collect()
    }

    fn shard(&self, group: GroupId) -> Result<&Shard<E>, ShardError> {
        self.shards
            .get(&group)
            .ok_or_else(|| ShardError::Unavailable(format!("no shard for group {group}")))
    }

    fn read_fault(&self, group: GroupId) -> Result<(), ShardError> {
        match self.faults.lock().take(group, None) {
            Some(_) => Err(ShardError::Unavailable(format!(
                "injected read failure on group {group}"
            ))),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl<E: MvccEngine> ShardClient for MemShards<E> {
    fn route_key(&self, key: &[u8]) -> GroupId {
        self.routes.route_key(key)
    }

    fn route_range(&self, range: &KeyRange) -> Vec<(GroupId, KeyRange)> {
        self.routes.route_range(range)
    }

    fn groups(&self) -> Vec<GroupId> {
        self.shards.keys().copied().collect()
    }

    async fn apply(&self, group: GroupId, command: Command) -> Result<CommandOutput, ShardError> {
        let shard = self.shard(group)?;
        let fault = self.faults.lock().take(group, Some(command.kind()));
        if let Some((FaultPoint::BeforeApply, effect)) = fault {
            return Err(match effect {
                FaultEffect::Fail => {
                    ShardError::Unavailable(format!("injected failure on group {group}"))
                }
                FaultEffect::Timeout => {
                    ShardError::Ambiguous(format!("injected timeout on group {group}"))
                }
            });
        }
        let result = {
            let _ordered = shard.order.write();
            if let Command::OnePhase { commit_ts, .. } = &command {
                let max_read_ts = shard.max_read_ts.load(std::sync::atomic::Ordering::SeqCst);
                if *commit_ts <= max_read_ts {
                    return Err(ShardError::CommitTsTooOld {
                        commit_ts: *commit_ts,
                        max_read_ts,
                    });
                }
            }
            shard.machine.apply(&command)
        };
        if fault.is_some() {
            return Err(ShardError::Ambiguous(format!(
                "injected fault after applying on group {group}"
            )));
        }
        result.map_err(ShardError::Rejected)
    }

    async fn read_point(
        &self,
        group: GroupId,
        key: Vec<u8>,
        read_ts: Timestamp,
    ) -> Result<PointRead, ShardError> {
        self.read_fault(group)?;
        let shard = self.shard(group)?;
        let _read = shard.begin_read(read_ts);
        Ok(shard.machine.read_point(&key, read_ts)?)
    }

    async fn read_scan(
        &self,
        group: GroupId,
        range: KeyRange,
        limit: usize,
        read_ts: Timestamp,
    ) -> Result<ScanRead, ShardError> {
        self.read_fault(group)?;
        Ok(self
            .shard(group)?
            .machine
            .read_scan(&range, limit, read_ts)?)
    }

    async fn scan_locks(
        &self,
        group: GroupId,
        range: KeyRange,
        limit: usize,
    ) -> Result<Vec<LockInfo>, ShardError> {
        self.read_fault(group)?;
        Ok(self.shard(group)?.machine.scan_locks(&range, limit)?)
    }
}
