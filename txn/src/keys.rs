//! The key layout the transaction layer gives the engine (TXN.md 2).
//!
//! Every engine key starts with one byte naming its record type, followed by the user
//! key (or the record's own fields), so user data and internal records can never collide
//! and no user key is refused for "looking internal":
//!
//! | prefix | record | engine key | version ts |
//! |---|---|---|---|
//! | `d` | user data | `d ++ key` | commit_ts |
//! | `i` | intent (large staged value) | `i ++ key` | start_ts (tombstoned at commit / rollback) |
//! | `l` | lock | `l ++ key` | start_ts (tombstoned at commit_ts, or at start_ts on rollback) |
//! | `m` | cluster metadata | `m ++ name` | the command's ts |
//! | `s` | system values (TSO ceiling, GC fence) | `s ++ name` | the value itself |
//! | `t` | commit / rollback record | `t ++ be64(start_ts) ++ primary` | commit_ts / start_ts |
//!
//! Within one prefix the byte order of engine keys is the byte order of user keys, so
//! scans over user data are order-preserving (the engines encode keys memcomparably,
//! ENGINE.md 10). Transaction records sort by `start_ts` first, so GC finds old records
//! with one range scan.

use elastickv_engine_api::{prefix_successor, KeyRange, Limits, Timestamp};

use crate::error::TxnError;

/// Prefix of user data.
pub const DATA: u8 = b'd';
/// Prefix of intents (staged values too large to inline in the lock).
pub const INTENT: u8 = b'i';
/// Prefix of locks.
pub const LOCK: u8 = b'l';
/// Prefix of cluster metadata (route catalog, ...).
pub const META: u8 = b'm';
/// Prefix of system values kept by the state machine itself.
pub const SYSTEM: u8 = b's';
/// Prefix of commit and rollback records.
pub const RECORD: u8 = b't';

/// Engine-key bytes a record adds to the longest user key: the record key's prefix and
/// start_ts. User keys are limited to the engine's key limit minus this.
pub const KEY_OVERHEAD: usize = 1 + 8;

/// The system key of the persisted TSO ceiling.
pub const TSO_CEILING_KEY: &[u8] = b"stso-ceiling";
/// The system key of the GC fence: no prewrite or one-phase commit below it.
pub const GC_FENCE_KEY: &[u8] = b"sgc-fence";

/// `prefix ++ key`.
pub fn prefixed(prefix: u8, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 1);
    out.push(prefix);
    out.extend_from_slice(key);
    out
}

/// The engine key of a user key's data.
pub fn data_key(key: &[u8]) -> Vec<u8> {
    prefixed(DATA, key)
}

/// The engine key of a user key's lock.
pub fn lock_key(key: &[u8]) -> Vec<u8> {
    prefixed(LOCK, key)
}

/// The engine key of a user key's intent.
pub fn intent_key(key: &[u8]) -> Vec<u8> {
    prefixed(INTENT, key)
}

/// The engine key of a metadata entry.
pub fn meta_key(name: &[u8]) -> Vec<u8> {
    prefixed(META, name)
}

/// The engine key of the commit / rollback record of the transaction `(primary,
/// start_ts)`.
pub fn record_key(primary: &[u8], start_ts: Timestamp) -> Vec<u8> {
    let mut out = Vec::with_capacity(primary.len() + KEY_OVERHEAD);
    out.push(RECORD);
    out.extend_from_slice(&start_ts.to_be_bytes());
    out.extend_from_slice(primary);
    out
}

/// Splits a record key into `(start_ts, primary)`.
pub fn parse_record_key(key: &[u8]) -> Option<(Timestamp, &[u8])> {
    let rest = key.strip_prefix(&[RECORD])?;
    if rest.len() < 8 {
        return None;
    }
    let (ts, primary) = rest.split_at(8);
    Some((u64::from_be_bytes(ts.try_into().ok()?), primary))
}

/// The user key inside an engine key of the given prefix.
pub fn strip(prefix: u8, key: &[u8]) -> Option<&[u8]> {
    key.strip_prefix(&[prefix])
}

/// The engine range holding the records of `prefix` for the user keys in `range`.
pub fn range_in(prefix: u8, range: &KeyRange) -> KeyRange {
    KeyRange {
        start: prefixed(prefix, &range.start),
        end: match &range.end {
            Some(end) => Some(prefixed(prefix, end)),
            None => prefix_successor(&[prefix]),
        },
    }
}

/// Every engine key of one prefix.
pub fn whole(prefix: u8) -> KeyRange {
    KeyRange::prefix(&[prefix])
}

/// The records of transactions with `start_ts < before`, from `cursor` (an engine
/// record key, inclusive) on.
pub fn records_before(before: Timestamp, cursor: &[u8]) -> KeyRange {
    let start = if cursor.is_empty() {
        vec![RECORD]
    } else {
        cursor.to_vec()
    };
    let mut end = vec![RECORD];
    end.extend_from_slice(&before.to_be_bytes());
    KeyRange {
        start,
        end: Some(end),
    }
}

/// Checks a user key against the engine's limits (non-empty, short enough to become a
/// record key).
pub fn check_user_key(limits: &Limits, key: &[u8]) -> Result<(), TxnError> {
    if key.is_empty() {
        return Err(TxnError::InvalidCommand("empty user key".into()));
    }
    let limit = limits.max_key_size.saturating_sub(KEY_OVERHEAD);
    if key.len() > limit {
        return Err(TxnError::KeyTooLarge {
            size: key.len(),
            limit,
        });
    }
    Ok(())
}

/// Checks a value against the engine's limits.
pub fn check_value(limits: &Limits, value: &[u8]) -> Result<(), TxnError> {
    if value.len() > limits.max_value_size {
        return Err(TxnError::ValueTooLarge {
            size: value.len(),
            limit: limits.max_value_size,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_keys_never_collide_with_records() {
        // A user key that looks like a record key still lands in the data prefix.
        let tricky = record_key(b"p", 5);
        assert_ne!(data_key(&tricky), tricky);
        assert_eq!(strip(DATA, &data_key(&tricky)), Some(&tricky[..]));
        assert_eq!(
            parse_record_key(&record_key(b"pk", 7)),
            Some((7, &b"pk"[..]))
        );
        assert_eq!(parse_record_key(b"t123"), None);
        let prefixes = [DATA, INTENT, LOCK, META, SYSTEM, RECORD];
        for (i, a) in prefixes.iter().enumerate() {
            for b in &prefixes[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn prefixed_ranges_preserve_user_key_order() {
        let keys: [&[u8]; 6] = [b"k", b"k\0", b"k1", b"k10", b"k\xff", b"l"];
        for w in keys.windows(2) {
            assert!(data_key(w[0]) < data_key(w[1]));
        }
        let r = range_in(DATA, &KeyRange::new("k", "k1"));
        assert!(r.contains(&data_key(b"k\0")) && !r.contains(&data_key(b"k1")));
        let all = range_in(LOCK, &KeyRange::all());
        assert!(all.contains(&lock_key(b"\xff\xff")) && !all.contains(&meta_key(b"a")));
        let old = records_before(10, b"");
        assert!(old.contains(&record_key(b"z", 9)) && !old.contains(&record_key(b"a", 10)));
    }
}
