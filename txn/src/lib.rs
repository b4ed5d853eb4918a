//! # elastickv-txn: transactions over any engine
//!
//! Turns any [`elastickv_engine_api::MvccEngine`] into a transactional key-value state
//! machine (TXN.md; `docs/transactions.md` explains the protocol as implemented). It is
//! generic over the engine and knows nothing of Raft or gRPC:
//!
//! * [`ts`] and [`tso`]: hybrid-logical timestamps and the timestamp oracle with a
//!   persisted ceiling;
//! * [`keys`]: the key layout (user data and transaction records never collide);
//! * [`Command`]: the replicated commands and their versioned binary encoding;
//! * [`TxnStateMachine`]: deterministic `apply(command)`, one atomic engine write per
//!   command, and local lock-aware reads;
//! * [`ShardClient`]: the async routing/transport abstraction, with [`MemShards`] (several
//!   in-memory shards with failure injection) for tests;
//! * [`Coordinator`] / [`Transaction`]: one-phase and Percolator two-phase commit,
//!   snapshot isolation or serializable;
//! * [`LockResolver`] and [`GcDriver`]: background lock resolution and garbage collection.
#![deny(missing_docs)]

mod codec;
mod command;
mod commit;
mod error;
pub mod gc;
mod group;
pub mod keys;
mod lock;
mod lock_resolver;
mod mem_shards;
mod reads;
mod recent;
mod resolve;
mod shard_client;
mod state_machine;
mod transaction;
mod transaction_error;
pub mod ts;
pub mod tso;
mod two_phase;

pub use command::{Command, CommandKind, CommandOutput, TxnStatus, COMMAND_FORMAT};
pub use error::TxnError;
pub use gc::{GcConfig, GcDriver, GcRound};
pub use lock::{LockInfo, LockKind, INLINE_VALUE_LIMIT};
pub use lock_resolver::{LockResolver, LockResolverConfig, ResolverError, ResolverRound};
pub use mem_shards::{Fault, FaultEffect, FaultPoint, MemShards};
pub use reads::{PointRead, ScanRead};
pub use recent::DEFAULT_CAPACITY as DEFAULT_RECENT_WRITES;
pub use resolve::{resolve_locks, txn_status, Backoff, LockAwareReader, StatusCache};
pub use shard_client::{GroupId, RouteTable, ShardClient, ShardError};
pub use state_machine::TxnStateMachine;
pub use transaction::{ActiveTxns, Coordinator, CoordinatorConfig, Isolation, Transaction};
pub use transaction_error::TransactionError;
pub use ts::Timestamp;
