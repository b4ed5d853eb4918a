//! Locks and commit/rollback records as stored in the engine, and their encoding.

use elastickv_engine_api::Timestamp;

use crate::codec::{Decoder, Encoder};
use crate::error::TxnError;

/// Values up to this size are stored inside the lock; larger ones get an intent record.
pub const INLINE_VALUE_LIMIT: usize = 255;

const LOCK_FORMAT: u8 = 1;
const RECORD_FORMAT: u8 = 1;

/// What a lock will do to its key when its transaction commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockKind {
    /// Writes a value.
    Put,
    /// Writes a tombstone.
    Delete,
    /// Writes nothing: it only keeps writers away from a key a serializable transaction
    /// read. Readers ignore such locks.
    LockOnly,
}

/// A lock as reported to readers, resolvers and in [`TxnError::Locked`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockInfo {
    /// The locked user key.
    pub key: Vec<u8>,
    /// The primary key of the owning transaction (where its status lives).
    pub primary: Vec<u8>,
    /// The owning transaction's start_ts.
    pub start_ts: Timestamp,
    /// The absolute timestamp after which the lock may be rolled back by others.
    pub lock_expiry: Timestamp,
    /// What the lock does on commit.
    pub kind: LockKind,
    /// Number of keys the transaction writes (meaningful on the primary).
    pub txn_size: u64,
}

/// A lock record's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredLock {
    pub primary: Vec<u8>,
    pub start_ts: Timestamp,
    pub lock_expiry: Timestamp,
    pub kind: LockKind,
    pub txn_size: u64,
    /// TTL of the staged value (puts only).
    pub expire_at: Timestamp,
    /// The staged value when small enough; `None` for a put means "in the intent".
    pub inline: Option<Vec<u8>>,
}

impl StoredLock {
    pub fn info(&self, key: &[u8]) -> LockInfo {
        LockInfo {
            key: key.to_vec(),
            primary: self.primary.clone(),
            start_ts: self.start_ts,
            lock_expiry: self.lock_expiry,
            kind: self.kind,
            txn_size: self.txn_size,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::with_version(LOCK_FORMAT);
        e.u8(match self.kind {
            LockKind::Put => 0,
            LockKind::Delete => 1,
            LockKind::LockOnly => 2,
        });
        e.bytes(&self.primary);
        e.u64(self.start_ts);
        e.u64(self.lock_expiry);
        e.u64(self.txn_size);
        e.u64(self.expire_at);
        e.opt_bytes(self.inline.as_deref());
        e.finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, TxnError> {
        let mut d = Decoder::with_version(bytes, LOCK_FORMAT, "lock")?;
        let kind = match d.u8()? {
            0 => LockKind::Put,
            1 => LockKind::Delete,
            2 => LockKind::LockOnly,
            other => return Err(TxnError::Decode(format!("lock: unknown kind {other}"))),
        };
        let lock = StoredLock {
            kind,
            primary: d.bytes()?.to_vec(),
            start_ts: d.u64()?,
            lock_expiry: d.u64()?,
            txn_size: d.u64()?,
            expire_at: d.u64()?,
            inline: d.opt_bytes()?.map(<[u8]>::to_vec),
        };
        d.end()?;
        Ok(lock)
    }
}

/// The outcome a transaction record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Record {
    Committed(Timestamp),
    RolledBack,
}

impl Record {
    pub fn encode(self) -> Vec<u8> {
        let mut e = Encoder::with_version(RECORD_FORMAT);
        match self {
            Record::Committed(ts) => {
                e.u8(1);
                e.u64(ts);
            }
            Record::RolledBack => e.u8(2),
        }
        e.finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, TxnError> {
        let mut d = Decoder::with_version(bytes, RECORD_FORMAT, "record")?;
        let record = match d.u8()? {
            1 => Record::Committed(d.u64()?),
            2 => Record::RolledBack,
            other => return Err(TxnError::Decode(format!("record: unknown kind {other}"))),
        };
        d.end()?;
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_and_records_round_trip() {
        let lock = StoredLock {
            primary: b"p".to_vec(),
            start_ts: 5,
            lock_expiry: 99,
            kind: LockKind::Put,
            txn_size: 3,
            expire_at: 0,
            inline: Some(b"v".to_vec()),
        };
        assert_eq!(StoredLock::decode(&lock.encode()).unwrap(), lock);
        for r in [Record::Committed(7), Record::RolledBack] {
            assert_eq!(Record::decode(&r.encode()).unwrap(), r);
        }
        assert!(StoredLock::decode(&[]).is_err());
        assert!(Record::decode(&[RECORD_FORMAT, 9]).is_err());
    }
}
