//! The replicated commands (TXN.md 3), their results, and their versioned encoding.
//!
//! Encoding: one format-version byte ([`COMMAND_FORMAT`]), one tag byte naming the
//! command, then its fields as LEB128 varints and length-prefixed byte strings.

use elastickv_engine_api::{Mutation, Timestamp};

use crate::codec::{Decoder, Encoder};
use crate::error::TxnError;

/// The format version written as the first byte of every encoded command.
pub const COMMAND_FORMAT: u8 = 1;

/// A command of the transactional state machine. Timestamps are chosen by the proposer
/// and carried inside the command: applying never reads a clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Independent raw (non-transactional) writes at `ts`, each with its own result;
    /// a write to a locked key is refused with `Locked`, the others still apply.
    RawBatch {
        /// The version timestamp of every write.
        ts: Timestamp,
        /// The writes.
        writes: Vec<Mutation>,
    },
    /// A single-group transaction: conflict-checks writes and read keys against
    /// `start_ts`, refuses locked keys, writes everything at `commit_ts`.
    OnePhase {
        /// The transaction's snapshot.
        start_ts: Timestamp,
        /// The commit timestamp (> start_ts).
        commit_ts: Timestamp,
        /// The writes.
        mutations: Vec<Mutation>,
        /// Keys read by a serializable transaction (checked, not written).
        read_keys: Vec<Vec<u8>>,
    },
    /// Phase one of two-phase commit on one group: checks and locks every key.
    Prewrite {
        /// The transaction's primary key (its status lives on its group).
        primary: Vec<u8>,
        /// The transaction's snapshot.
        start_ts: Timestamp,
        /// The absolute timestamp after which others may roll the locks back.
        lock_expiry: Timestamp,
        /// How many keys the whole transaction writes (kept on the primary lock).
        txn_size: u64,
        /// This group's writes.
        mutations: Vec<Mutation>,
        /// This group's read keys (serializable): checked and lock-only locked.
        read_keys: Vec<Vec<u8>>,
    },
    /// Phase two: makes the listed keys' intents visible at `commit_ts`; on the primary
    /// this is the commit point.
    Commit {
        /// The primary key.
        primary: Vec<u8>,
        /// The transaction's start_ts.
        start_ts: Timestamp,
        /// The commit timestamp.
        commit_ts: Timestamp,
        /// Keys of this group to commit.
        keys: Vec<Vec<u8>>,
    },
    /// Removes the transaction's locks and intents from the listed keys; on the primary
    /// writes a rollback record.
    Rollback {
        /// The primary key.
        primary: Vec<u8>,
        /// The transaction's start_ts.
        start_ts: Timestamp,
        /// Keys of this group to roll back.
        keys: Vec<Vec<u8>>,
    },
    /// Asks the primary's group whether the transaction committed, rolled back or is
    /// still pending, rolling it back first when its lock expired before `caller_ts` or
    /// is missing without a commit record.
    CheckTxnStatus {
        /// The primary key.
        primary: Vec<u8>,
        /// The transaction's start_ts.
        start_ts: Timestamp,
        /// The caller's current timestamp, compared with the lock expiry.
        caller_ts: Timestamp,
    },
    /// Persists the timestamp oracle's ceiling (kept at the maximum ever applied).
    TsoCeiling {
        /// The new ceiling.
        ceiling: Timestamp,
    },
    /// Sets (`Some`) or deletes (`None`) a cluster-metadata entry, versioned at `ts`.
    MetaPut {
        /// The proposer's timestamp: the entry's version.
        ts: Timestamp,
        /// The entry's name.
        key: Vec<u8>,
        /// The new value, or `None` to delete.
        value: Option<Vec<u8>>,
    },
    /// Raises the GC fence to `safe_point` and drops up to `limit` commit/rollback
    /// records of transactions that started and finished at or before it, from `cursor`.
    PurgeTxnRecords {
        /// Every lock of a transaction older than this is resolved.
        safe_point: Timestamp,
        /// Where to resume (from a previous output; empty to start).
        cursor: Vec<u8>,
        /// Most records examined by this command.
        limit: u32,
    },
}

/// The kind of a command, for metrics and failure injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandKind {
    /// [`Command::RawBatch`].
    RawBatch,
    /// [`Command::OnePhase`].
    OnePhase,
    /// [`Command::Prewrite`].
    Prewrite,
    /// [`Command::Commit`].
    Commit,
    /// [`Command::Rollback`].
    Rollback,
    /// [`Command::CheckTxnStatus`].
    CheckTxnStatus,
    /// [`Command::TsoCeiling`].
    TsoCeiling,
    /// [`Command::MetaPut`].
    MetaPut,
    /// [`Command::PurgeTxnRecords`].
    PurgeTxnRecords,
}

/// The status of a transaction as answered by `CheckTxnStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnStatus {
    /// Committed at this timestamp.
    Committed(Timestamp),
    /// Rolled back (possibly by this very check).
    RolledBack,
    /// Still locked and not expired.
    Pending {
        /// When its primary lock expires.
        lock_expiry: Timestamp,
    },
}

/// What applying a command produced (when it was not refused as a whole).
#[derive(Debug)]
pub enum CommandOutput {
    /// One result per write of a `RawBatch`, in order.
    Raw(Vec<Result<(), TxnError>>),
    /// The command took effect (or was an idempotent repeat).
    Applied,
    /// The answer of `CheckTxnStatus`.
    Status(TxnStatus),
    /// The result of `PurgeTxnRecords`.
    Purged {
        /// Records dropped.
        purged: u64,
        /// Where to continue, or `None` when every old record was examined.
        next_cursor: Option<Vec<u8>>,
    },
}

const TAG_RAW: u8 = 1;
const TAG_ONE_PHASE: u8 = 2;
const TAG_PREWRITE: u8 = 3;
const TAG_COMMIT: u8 = 4;
const TAG_ROLLBACK: u8 = 5;
const TAG_CHECK: u8 = 6;
const TAG_TSO: u8 = 7;
const TAG_META: u8 = 8;
const TAG_PURGE: u8 = 9;

impl Command {
    /// The command's kind.
    pub fn kind(&self) -> CommandKind {
        match self {
            Command::RawBatch { .. } => CommandKind::RawBatch,
            Command::OnePhase { .. } => CommandKind::OnePhase,
            Command::Prewrite { .. } => CommandKind::Prewrite,
            Command::Commit { .. } => CommandKind::Commit,
            Command::Rollback { .. } => CommandKind::Rollback,
            Command::CheckTxnStatus { .. } => CommandKind::CheckTxnStatus,
            Command::TsoCeiling { .. } => CommandKind::TsoCeiling,
            Command::MetaPut { .. } => CommandKind::MetaPut,
            Command::PurgeTxnRecords { .. } => CommandKind::PurgeTxnRecords,
        }
    }

    /// The command's binary encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::with_version(COMMAND_FORMAT);
        match self {
            Command::RawBatch { ts, writes } => {
                e.u8(TAG_RAW);
                e.u64(*ts);
                put_mutations(&mut e, writes);
            }
            Command::OnePhase {
                start_ts,
                commit_ts,
                mutations,
                read_keys,
            } => {
                e.u8(TAG_ONE_PHASE);
                e.u64(*start_ts);
                e.u64(*commit_ts);
                put_mutations(&mut e, mutations);
                put_keys(&mut e, read_keys);
            }
            Command::Prewrite {
                primary,
                start_ts,
                lock_expiry,
                txn_size,
                mutations,
                read_keys,
            } => {
                e.u8(TAG_PREWRITE);
                e.bytes(primary);
                e.u64(*start_ts);
                e.u64(*lock_expiry);
                e.u64(*txn_size);
                put_mutations(&mut e, mutations);
                put_keys(&mut e, read_keys);
            }
            Command::Commit {
                primary,
                start_ts,
                commit_ts,
                keys,
            } => {
                e.u8(TAG_COMMIT);
                e.bytes(primary);
                e.u64(*start_ts);
                e.u64(*commit_ts);
                put_keys(&mut e, keys);
            }
            Command::Rollback {
                primary,
                start_ts,
                keys,
            } => {
                e.u8(TAG_ROLLBACK);
                e.bytes(primary);
                e.u64(*start_ts);
                put_keys(&mut e, keys);
            }
            Command::CheckTxnStatus {
                primary,
                start_ts,
                caller_ts,
            } => {
                e.u8(TAG_CHECK);
                e.bytes(primary);
                e.u64(*start_ts);
                e.u64(*caller_ts);
            }
            Command::TsoCeiling { ceiling } => {
                e.u8(TAG_TSO);
                e.u64(*ceiling);
            }
            Command::MetaPut { ts, key, value } => {
                e.u8(TAG_META);
                e.u64(*ts);
                e.bytes(key);
                e.opt_bytes(value.as_deref());
            }
            Command::PurgeTxnRecords {
                safe_point,
                cursor,
                limit,
            } => {
                e.u8(TAG_PURGE);
                e.u64(*safe_point);
                e.bytes(cursor);
                e.u64(u64::from(*limit));
            }
        }
        e.finish()
    }

    /// Decodes a command; any malformed input yields [`TxnError::Decode`].
    pub fn decode(bytes: &[u8]) -> Result<Command, TxnError> {
        let mut d = Decoder::with_version(bytes, COMMAND_FORMAT, "command")?;
        let command = match d.u8()? {
            TAG_RAW => Command::RawBatch {
                ts: d.u64()?,
                writes: get_mutations(&mut d)?,
            },
            TAG_ONE_PHASE => Command::OnePhase {
                start_ts: d.u64()?,
                commit_ts: d.u64()?,
                mutations: get_mutations(&mut d)?,
                read_keys: get_keys(&mut d)?,
            },
            TAG_PREWRITE => Command::Prewrite {
                primary: d.bytes()?.to_vec(),
                start_ts: d.u64()?,
                lock_expiry: d.u64()?,
                txn_size: d.u64()?,
                mutations: get_mutations(&mut d)?,
                read_keys: get_keys(&mut d)?,
            },
            TAG_COMMIT => Command::Commit {
                primary: d.bytes()?.to_vec(),
                start_ts: d.u64()?,
                commit_ts: d.u64()?,
                keys: get_keys(&mut d)?,
            },
            TAG_ROLLBACK => Command::Rollback {
                primary: d.bytes()?.to_vec(),
                start_ts: d.u64()?,
                keys: get_keys(&mut d)?,
            },
            TAG_CHECK => Command::CheckTxnStatus {
                primary: d.bytes()?.to_vec(),
                start_ts: d.u64()?,
                caller_ts: d.u64()?,
            },
            TAG_TSO => Command::TsoCeiling { ceiling: d.u64()? },
            TAG_META => Command::MetaPut {
                ts: d.u64()?,
                key: d.bytes()?.to_vec(),
                value: d.opt_bytes()?.map(<[u8]>::to_vec),
            },
            TAG_PURGE => Command::PurgeTxnRecords {
                safe_point: d.u64()?,
                cursor: d.bytes()?.to_vec(),
                limit: u32::try_from(d.u64()?)
                    .map_err(|_| TxnError::Decode("command: purge limit too large".into()))?,
            },
            other => return Err(TxnError::Decode(format!("command: unknown tag {other}"))),
        };
        d.end()?;
        Ok(command)
    }
}

fn put_mutations(e: &mut Encoder, mutations: &[Mutation]) {
    e.len(mutations.len());
    for m in mutations {
        match m {
            Mutation::Put {
                key,
                value,
                expire_at,
            } => {
                e.u8(0);
                e.bytes(key);
                e.bytes(value);
                e.u64(*expire_at);
            }
            Mutation::Delete { key } => {
                e.u8(1);
                e.bytes(key);
            }
        }
    }
}

fn get_mutations(d: &mut Decoder<'_>) -> Result<Vec<Mutation>, TxnError> {
    let n = d.count(2)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(match d.u8()? {
            0 => Mutation::Put {
                key: d.bytes()?.to_vec(),
                value: d.bytes()?.to_vec(),
                expire_at: d.u64()?,
            },
            1 => Mutation::Delete {
                key: d.bytes()?.to_vec(),
            },
            other => {
                return Err(TxnError::Decode(format!(
                    "command: unknown mutation {other}"
                )))
            }
        });
    }
    Ok(out)
}

fn put_keys(e: &mut Encoder, keys: &[Vec<u8>]) {
    e.len(keys.len());
    for k in keys {
        e.bytes(k);
    }
}

fn get_keys(d: &mut Decoder<'_>) -> Result<Vec<Vec<u8>>, TxnError> {
    let n = d.count(1)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(d.bytes()?.to_vec());
    }
    Ok(out)
}
