//! Compaction for [`OrderedMvcc`]: the watermark first, then bounded batches.

use std::ops::Bound;

use super::engine::OrderedMvcc;
use super::{Direction, OrderedRead, OrderedStore, OrderedWrite, Table};
use crate::encoding::{decode_value, encode_user_key, split_version_key};
use crate::{
    CompactionScope, CompactionStats, Durability, KeyRange, Result, RetentionController, Timestamp,
};

/// A compaction scope translated to encoded-key space, where the order-preserving
/// encoding lets ranges be compared without decoding keys.
struct EncodedScope {
    include: bool,
    ranges: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl EncodedScope {
    fn new(scope: &CompactionScope) -> Self {
        let encode = |ranges: &[KeyRange]| {
            ranges
                .iter()
                .filter(|r| !r.is_empty())
                .map(|r| {
                    (
                        encode_user_key(&r.start),
                        r.end.as_deref().map(encode_user_key),
                    )
                })
                .collect()
        };
        match scope {
            CompactionScope::All => EncodedScope {
                include: false,
                ranges: Vec::new(),
            },
            CompactionScope::Only(ranges) => EncodedScope {
                include: true,
                ranges: encode(ranges),
            },
            CompactionScope::AllExcept(ranges) => EncodedScope {
                include: false,
                ranges: encode(ranges),
            },
        }
    }

    /// Whether the key with this encoded prefix may be compacted.
    fn includes(&self, prefix: &[u8]) -> bool {
        let inside = self.ranges.iter().any(|(start, end)| {
            prefix >= start.as_slice() && end.as_deref().is_none_or(|e| prefix < e)
        });
        inside == self.include
    }
}

/// What to do with one key's versions, decided as they stream past (newest first).
#[derive(Default)]
struct KeyGc {
    /// Encoded keys of versions to delete.
    doomed: Vec<Vec<u8>>,
    /// Encoded key of the anchor, if it hides the key at `min_ts` (removable when
    /// nothing older is left).
    hiding_anchor: Option<Vec<u8>>,
    anchor_seen: bool,
    versions: usize,
}

impl<S: OrderedStore> OrderedMvcc<S> {
    pub(super) fn compact_versions(
        &self,
        min_ts: Timestamp,
        scope: &CompactionScope,
    ) -> Result<CompactionStats> {
        // Raise and persist the watermark before removing anything: if we crash midway,
        // reads at or above it are unchanged because only versions hidden below an
        // anchor at or below the watermark are ever removed.
        self.set_min_retained_ts(min_ts)?;
        let scope = EncodedScope::new(scope);
        let mut stats = CompactionStats::default();
        let mut cursor: Vec<u8> = Vec::new();
        loop {
            let _gate = self.writer_gate();
            let mut txn = self.store.begin_write()?;
            // A restore in between replaced the data and its watermark: this
            // compaction's `min_ts` no longer describes what readers may ask for.
            if self.min_retained.load(std::sync::atomic::Ordering::SeqCst) < min_ts {
                return Ok(stats);
            }
            let batch = self.compaction_batch;
            let mut examined = 0usize;
            let mut current: Vec<u8> = Vec::new();
            let mut gc = KeyGc::default();
            let mut deletes: Vec<Vec<u8>> = Vec::new();
            let mut next_cursor: Option<Vec<u8>> = None;
            let finish_key = |prefix: &[u8],
                              gc: &mut KeyGc,
                              deletes: &mut Vec<Vec<u8>>,
                              stats: &mut CompactionStats| {
                if prefix.is_empty() {
                    return;
                }
                stats.keys_examined += 1;
                let mut removed = gc.doomed.len();
                deletes.append(&mut gc.doomed);
                if let Some(anchor) = gc.hiding_anchor.take() {
                    deletes.push(anchor);
                    removed += 1;
                }
                stats.versions_removed += removed as u64;
                if removed == gc.versions && removed > 0 {
                    stats.keys_removed += 1;
                }
                *gc = KeyGc::default();
            };
            txn.scan(
                Table::Versions,
                Bound::Included(&cursor),
                Bound::Unbounded,
                Direction::Forward,
                &mut |key, value| {
                    let (prefix, ts) = split_version_key(key)?;
                    if prefix != current.as_slice() {
                        finish_key(&current, &mut gc, &mut deletes, &mut stats);
                        // Batches end only between keys, so one key's versions are
                        // always judged and removed together.
                        if examined >= batch {
                            next_cursor = Some(prefix.to_vec());
                            current.clear();
                            return Ok(false);
                        }
                        current.clear();
                        current.extend_from_slice(prefix);
                    }
                    examined += 1;
                    if !scope.includes(prefix) {
                        return Ok(true);
                    }
                    gc.versions += 1;
                    if ts > min_ts {
                        // Newer than the watermark: always kept.
                    } else if !gc.anchor_seen {
                        gc.anchor_seen = true;
                        if decode_value(value)?.hides_from(min_ts) {
                            gc.hiding_anchor = Some(key.to_vec());
                        }
                    } else {
                        gc.doomed.push(key.to_vec());
                    }
                    Ok(true)
                },
            )?;
            finish_key(&current, &mut gc, &mut deletes, &mut stats);
            for key in &deletes {
                txn.delete(Table::Versions, key)?;
            }
            // Removed versions lie below the persisted watermark: losing these deletes
            // in a crash loses only garbage collection, never data.
            txn.commit(Durability::Buffered)?;
            match next_cursor {
                Some(next) => cursor = next,
                None => return Ok(stats),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_scope_matches_the_user_key_scope() {
        let scopes = [
            CompactionScope::All,
            CompactionScope::Only(vec![KeyRange::new("b", "d"), KeyRange::from("x")]),
            CompactionScope::AllExcept(vec![KeyRange::prefix(b"t\0")]),
        ];
        let keys: [&[u8]; 9] = [
            b"a", b"b", b"b\0", b"c\xff", b"d", b"t", b"t\0", b"t\0\0", b"x",
        ];
        for scope in &scopes {
            let encoded = EncodedScope::new(scope);
            for key in keys {
                assert_eq!(
                    encoded.includes(&encode_user_key(key)),
                    scope.includes(key),
                    "{scope:?} {key:?}"
                );
            }
        }
    }
}
