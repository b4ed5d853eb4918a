//! Size limits and input validation, shared by every engine so that all of them refuse
//! the same inputs with the same errors, before anything is written.

use crate::{EngineError, Mutation, RawOp, Result, WriteBatch};

/// The sizes an engine accepts. Inputs over a limit are refused with a specific error,
/// never truncated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest user key, in bytes (MVCC and raw keyspace alike).
    pub max_key_size: usize,
    /// Longest value, in bytes.
    pub max_value_size: usize,
    /// Most entries (mutations + read-set keys + raw operations) in one atomic write.
    pub max_batch_entries: usize,
}

impl Limits {
    /// Limits suitable for most engines: 16 KiB keys, 32 MiB values, 100 000 entries
    /// per batch.
    pub const DEFAULT: Limits = Limits {
        max_key_size: 16 * 1024,
        max_value_size: 32 * 1024 * 1024,
        max_batch_entries: 100_000,
    };

    /// Checks a key used for a point operation: non-empty and within `max_key_size`.
    pub fn check_key(&self, key: &[u8], context: &'static str) -> Result<()> {
        if key.is_empty() {
            return Err(EngineError::EmptyKey { context });
        }
        self.check_key_size(key)
    }

    /// Checks only the length of a key (scan bounds may be empty).
    pub fn check_key_size(&self, key: &[u8]) -> Result<()> {
        if key.len() > self.max_key_size {
            return Err(EngineError::KeyTooLarge {
                size: key.len(),
                limit: self.max_key_size,
            });
        }
        Ok(())
    }

    /// Checks a value's length.
    pub fn check_value(&self, value: &[u8]) -> Result<()> {
        if value.len() > self.max_value_size {
            return Err(EngineError::ValueTooLarge {
                size: value.len(),
                limit: self.max_value_size,
            });
        }
        Ok(())
    }

    /// Validates a whole write batch. Engines call this before touching storage, so a
    /// bad entry anywhere in the batch rejects all of it.
    pub fn check_batch(&self, batch: &WriteBatch<'_>) -> Result<()> {
        let entries = batch.mutations.len() + batch.read_set.len() + batch.raw.len();
        if entries > self.max_batch_entries {
            return Err(EngineError::BatchTooLarge {
                size: entries,
                limit: self.max_batch_entries,
            });
        }
        if !batch.mutations.is_empty() && batch.commit_ts == 0 {
            return Err(EngineError::InvalidArgument(
                "commit_ts 0 is reserved: mutations need a non-zero commit timestamp".into(),
            ));
        }
        if batch.commit_ts == u64::MAX && !batch.mutations.is_empty() {
            return Err(EngineError::InvalidArgument(
                "commit_ts u64::MAX is reserved for reads of the latest state".into(),
            ));
        }
        for mutation in batch.mutations {
            match mutation {
                Mutation::Put { key, value, .. } => {
                    self.check_key(key, "mutation key")?;
                    self.check_value(value)?;
                }
                Mutation::Delete { key } => self.check_key(key, "mutation key")?,
            }
        }
        if batch.conflict_start_ts.is_some() {
            for key in batch.read_set {
                self.check_key(key, "read-set key")?;
            }
        }
        self.check_raw_ops(batch.raw)
    }

    /// Validates raw keyspace operations.
    pub fn check_raw_ops(&self, ops: &[RawOp]) -> Result<()> {
        for op in ops {
            match op {
                RawOp::Put { key, value } => {
                    self.check_key(key, "raw key")?;
                    self.check_value(value)?;
                }
                RawOp::Delete { key } => self.check_key(key, "raw key")?,
                RawOp::DeleteRange { range } => {
                    self.check_key_size(&range.start)?;
                    if let Some(end) = &range.end {
                        self.check_key_size(end)?;
                    }
                }
            }
        }
        Ok(())
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_mutation_anywhere_rejects_the_batch() {
        let limits = Limits {
            max_key_size: 4,
            max_value_size: 4,
            max_batch_entries: 3,
        };
        let muts = [Mutation::put("a", "1"), Mutation::put("abcde", "1")];
        let err = limits.check_batch(&WriteBatch::new(&muts, 1)).unwrap_err();
        assert!(matches!(
            err,
            EngineError::KeyTooLarge { size: 5, limit: 4 }
        ));
        let muts = [Mutation::put("a", "12345")];
        let err = limits.check_batch(&WriteBatch::new(&muts, 1)).unwrap_err();
        assert!(matches!(
            err,
            EngineError::ValueTooLarge { size: 5, limit: 4 }
        ));
        let muts = [Mutation::delete("")];
        let err = limits.check_batch(&WriteBatch::new(&muts, 1)).unwrap_err();
        assert!(matches!(err, EngineError::EmptyKey { .. }));
        let muts = vec![Mutation::delete("a"); 4];
        let err = limits.check_batch(&WriteBatch::new(&muts, 1)).unwrap_err();
        assert!(matches!(
            err,
            EngineError::BatchTooLarge { size: 4, limit: 3 }
        ));
        let muts = [Mutation::delete("a")];
        assert!(limits.check_batch(&WriteBatch::new(&muts, 0)).is_err());
        assert!(limits.check_batch(&WriteBatch::new(&muts, 1)).is_ok());
    }
}
