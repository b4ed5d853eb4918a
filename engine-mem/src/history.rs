//! One key's versions, newest first, and the visibility rule applied to them.

use std::sync::Arc;

use elastickv_engine_api::Timestamp;

/// One version. Values are shared (`Arc`), so copying a history to change it never
/// copies value bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemVersion {
    pub(crate) ts: Timestamp,
    /// `None` is a tombstone.
    pub(crate) value: Option<Arc<[u8]>>,
    pub(crate) expire_at: Timestamp,
}

impl MemVersion {
    /// The value a read at `read_ts` sees when this is the newest version at or below it.
    pub(crate) fn visible_at(&self, read_ts: Timestamp) -> Option<&[u8]> {
        match &self.value {
            Some(_) if self.expire_at != 0 && self.expire_at <= read_ts => None,
            Some(value) => Some(value),
            None => None,
        }
    }

    /// True when this version hides its key from every read at or above `at`.
    fn hides_from(&self, at: Timestamp) -> bool {
        match &self.value {
            None => true,
            Some(_) => self.expire_at != 0 && self.expire_at <= at,
        }
    }
}

/// A key's versions sorted by timestamp, newest first. Immutable and cheap to clone:
/// a write builds a new history for the one key it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyHistory(Arc<[MemVersion]>);

/// What compaction does to one history.
pub(crate) enum Compacted {
    /// Nothing to remove.
    Unchanged,
    /// The versions that remain (possibly none) and how many were removed.
    Shrunk(Option<KeyHistory>, usize),
}

impl KeyHistory {
    /// A history of one version.
    pub(crate) fn single(version: MemVersion) -> Self {
        KeyHistory(Arc::from([version]))
    }

    /// A history from versions already sorted newest first (as a snapshot stream holds
    /// them).
    pub(crate) fn from_sorted(versions: Vec<MemVersion>) -> Self {
        debug_assert!(versions.windows(2).all(|w| w[0].ts > w[1].ts));
        KeyHistory(Arc::from(versions))
    }

    /// Every version, newest first.
    pub(crate) fn versions(&self) -> &[MemVersion] {
        &self.0
    }

    /// The timestamp of the newest version of any kind.
    pub(crate) fn newest_ts(&self) -> Option<Timestamp> {
        self.0.first().map(|v| v.ts)
    }

    /// The newest version at or below `ts`: a binary search, since versions are sorted.
    fn at(&self, ts: Timestamp) -> Option<&MemVersion> {
        let first_at_or_below = self.0.partition_point(|v| v.ts > ts);
        self.0.get(first_at_or_below)
    }

    /// The value visible at `ts` (ENGINE.md section 2).
    pub(crate) fn visible_at(&self, ts: Timestamp) -> Option<&[u8]> {
        self.at(ts).and_then(|v| v.visible_at(ts))
    }

    /// This history with `version` added, replacing any version at the same ts.
    pub(crate) fn with(&self, version: MemVersion) -> Self {
        let pos = self.0.partition_point(|v| v.ts > version.ts);
        let replaces = self.0.get(pos).is_some_and(|v| v.ts == version.ts);
        let mut versions = Vec::with_capacity(self.0.len() + 1);
        versions.extend_from_slice(&self.0[..pos]);
        versions.push(version);
        let rest = if replaces { pos + 1 } else { pos };
        versions.extend_from_slice(&self.0[rest..]);
        KeyHistory(Arc::from(versions))
    }

    /// Applies the compaction rule at `min_ts` (ENGINE.md section 6): keeps every
    /// version newer than `min_ts` and the anchor (the newest at or below it), unless
    /// the anchor hides the key from every read at or above `min_ts`.
    pub(crate) fn compacted(&self, min_ts: Timestamp) -> Compacted {
        let anchor = self.0.partition_point(|v| v.ts > min_ts);
        let Some(anchor_version) = self.0.get(anchor) else {
            return Compacted::Unchanged;
        };
        let keep = if anchor_version.hides_from(min_ts) {
            anchor
        } else {
            anchor + 1
        };
        if keep == self.0.len() {
            return Compacted::Unchanged;
        }
        let removed = self.0.len() - keep;
        let rest = (keep > 0).then(|| KeyHistory(Arc::from(&self.0[..keep])));
        Compacted::Shrunk(rest, removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(ts: Timestamp, expire_at: Timestamp) -> MemVersion {
        MemVersion {
            ts,
            value: Some(Arc::from(&ts.to_be_bytes()[..])),
            expire_at,
        }
    }

    #[test]
    fn versions_stay_sorted_and_same_ts_replaces() {
        let h = KeyHistory::single(value(20, 0))
            .with(value(10, 0))
            .with(value(30, 0))
            .with(value(20, 5));
        let ts: Vec<_> = h.versions().iter().map(|v| (v.ts, v.expire_at)).collect();
        assert_eq!(ts, vec![(30, 0), (20, 5), (10, 0)]);
        assert_eq!(h.visible_at(25), None, "expired at 5");
        assert_eq!(h.visible_at(15), Some(&10u64.to_be_bytes()[..]));
        assert_eq!(h.visible_at(9), None);
    }

    #[test]
    fn compaction_keeps_the_anchor_unless_it_hides_the_key() {
        let h = KeyHistory::from_sorted(vec![value(30, 0), value(20, 0), value(10, 0)]);
        match h.compacted(25) {
            Compacted::Shrunk(Some(rest), 1) => assert_eq!(rest.versions().len(), 2),
            _ => panic!("v10 must go"),
        }
        assert!(matches!(h.compacted(5), Compacted::Unchanged));
        let dead = KeyHistory::from_sorted(vec![
            MemVersion {
                ts: 20,
                value: None,
                expire_at: 0,
            },
            value(10, 0),
        ]);
        assert!(matches!(dead.compacted(25), Compacted::Shrunk(None, 2)));
    }
}
