//! Versions and the visibility rule (ENGINE.md sections 1 and 2), written once.

use crate::Timestamp;

/// What a version holds: a live value or a deletion marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionKind {
    /// A live value.
    Value(Vec<u8>),
    /// A deletion: the key is absent at this version's timestamp.
    Tombstone,
}

/// One version of a key: what was written at `ts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// The commit timestamp of the write.
    pub ts: Timestamp,
    /// The value, or a tombstone.
    pub kind: VersionKind,
    /// The read timestamp from which the value is expired; `0` means no TTL.
    pub expire_at: Timestamp,
}

impl Version {
    /// A live value without TTL.
    pub fn value(ts: Timestamp, value: impl Into<Vec<u8>>) -> Self {
        Version {
            ts,
            kind: VersionKind::Value(value.into()),
            expire_at: 0,
        }
    }

    /// A tombstone.
    pub fn tombstone(ts: Timestamp) -> Self {
        Version {
            ts,
            kind: VersionKind::Tombstone,
            expire_at: 0,
        }
    }

    /// The value this version shows to a read at `read_ts`, assuming it is the newest
    /// version with `ts <= read_ts`: `None` for a tombstone or an expired value.
    pub fn visible_value(&self, read_ts: Timestamp) -> Option<&[u8]> {
        is_visible(&self.kind, self.expire_at, read_ts)
    }
}

/// The visibility rule applied to the newest version at or below `read_ts`: a tombstone
/// hides the key, and so does a value whose `expire_at != 0 && expire_at <= read_ts`.
/// There is never a fall-back to an older version.
pub fn is_visible(kind: &VersionKind, expire_at: Timestamp, read_ts: Timestamp) -> Option<&[u8]> {
    match kind {
        VersionKind::Tombstone => None,
        VersionKind::Value(_) if expire_at != 0 && expire_at <= read_ts => None,
        VersionKind::Value(v) => Some(v),
    }
}

/// True when a version with this kind and expiry hides the key from every read at
/// `ts >= at`: a tombstone, or a value already expired at `at`.
pub fn hides_from(kind: &VersionKind, expire_at: Timestamp, at: Timestamp) -> bool {
    match kind {
        VersionKind::Tombstone => true,
        VersionKind::Value(_) => expire_at != 0 && expire_at <= at,
    }
}

/// A key and the value visible at the read timestamp, as returned by scans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvPair {
    /// The user key.
    pub key: Vec<u8>,
    /// The visible value.
    pub value: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_judged_against_the_read_timestamp() {
        let v = Version {
            ts: 10,
            kind: VersionKind::Value(b"x".to_vec()),
            expire_at: 20,
        };
        assert_eq!(v.visible_value(19), Some(&b"x"[..]));
        assert_eq!(v.visible_value(20), None);
        assert!(Version::tombstone(5).visible_value(9).is_none());
        assert!(hides_from(&v.kind, v.expire_at, 20));
        assert!(!hides_from(&v.kind, v.expire_at, 19));
    }
}
