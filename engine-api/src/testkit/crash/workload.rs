//! The crash test's workload and its reference model.
//!
//! Step `ts` is a pure function of `ts`, so the parent can rebuild exactly what a
//! store that committed steps `1..=n` must hold, whatever happened in the child. Every
//! batch step writes the same value to the three keys of one group (so a half-applied
//! batch shows as disagreeing keys) plus raw-keyspace operations (so MVCC data and the
//! "applied" marker can be seen to move together).

use std::collections::BTreeMap;

use crate::{
    display_key, CompactionScope, Durability, KeyRange, KvPair, Mutation, MvccEngine, RawOp,
    Timestamp, Version, VersionKind, WriteBatch,
};

/// Groups of three keys; batch `ts` writes group `ts % GROUPS`.
pub(super) const GROUPS: u64 = 8;
/// The members of a group: every batch writes all three with the same value.
pub(super) const MEMBERS: [&str; 3] = ["a", "b", "c"];
/// A compaction runs after every step whose ts is a multiple of this...
pub(super) const COMPACT_EVERY: u64 = 40;
/// ...and collects below `ts - COMPACT_LAG`.
pub(super) const COMPACT_LAG: u64 = 16;
/// The raw key holding the ts of the last applied batch (like a Raft apply index).
const APPLIED_KEY: &[u8] = b"crash/applied";

/// One atomic write of the workload.
#[derive(Debug, Clone)]
pub(super) enum Step {
    /// A write batch with MVCC mutations and raw operations.
    Batch {
        mutations: Vec<Mutation>,
        raw: Vec<RawOp>,
        durability: Durability,
    },
    /// `expire_at(key, expire_at, ts)` on a key the previous step wrote.
    Expire { key: Vec<u8>, expire_at: Timestamp },
}

impl Step {
    /// The step the workload makes at commit timestamp `ts` (`ts >= 1`).
    pub(super) fn at(ts: Timestamp) -> Step {
        if ts % 10 == 7 {
            return Step::Expire {
                key: expire_key(ts),
                expire_at: ts + 3,
            };
        }
        let group = ts % GROUPS;
        let mut mutations: Vec<Mutation> = MEMBERS
            .iter()
            .map(|m| Mutation::put(group_key(group, m), value(ts)))
            .collect();
        match ts % 4 {
            0 => mutations.push(Mutation::put(format!("d/{}", ts / 4 % 6), value(ts))),
            1 => mutations.push(Mutation::delete(format!("d/{}", (ts / 4 + 2) % 6))),
            2 => mutations.push(Mutation::Put {
                key: format!("t/{}", ts % 5).into_bytes(),
                value: value(ts),
                expire_at: ts + 4,
            }),
            _ => mutations.push(Mutation::delete(group_key((group + 1) % GROUPS, "x"))),
        }
        if ts % 10 == 6 {
            // The next step re-writes this key with a TTL, so it always finds it.
            mutations.push(Mutation::put(expire_key(ts + 1), value(ts)));
        }
        let mut raw = vec![
            RawOp::put(APPLIED_KEY, ts.to_be_bytes()),
            RawOp::put(raw_group_key(group), value(ts)),
        ];
        if ts % 5 == 0 {
            let doomed = raw_group_key((group + 3) % GROUPS);
            let mut end = doomed.clone();
            end.push(0);
            raw.push(RawOp::DeleteRange {
                range: KeyRange::new(doomed, end),
            });
        }
        let durability = if ts % 3 == 1 {
            Durability::Buffered
        } else {
            Durability::Sync
        };
        Step::Batch {
            mutations,
            raw,
            durability,
        }
    }

    /// True when the step's acknowledgement means it is on stable storage.
    pub(super) fn is_durable(&self) -> bool {
        match self {
            Step::Batch { durability, .. } => *durability == Durability::Sync,
            Step::Expire { .. } => true,
        }
    }

    /// Performs the step on `engine`. Panics on any failure: the child process dies
    /// and the parent reports its output.
    pub(super) fn apply<E: MvccEngine>(&self, engine: &E, ts: Timestamp) {
        match self {
            Step::Batch {
                mutations,
                raw,
                durability,
            } => {
                let batch = WriteBatch::new(mutations, ts)
                    .with_conflict_check(ts - 1)
                    .with_raw(raw)
                    .with_durability(*durability);
                if let Err(e) = engine.write(&batch) {
                    panic!("crash child: batch at ts {ts} failed: {e}");
                }
            }
            Step::Expire { key, expire_at } => match engine.expire_at(key, *expire_at, ts) {
                Ok(true) => {}
                Ok(false) => panic!(
                    "crash child: expire_at({}) at ts {ts} found no value although step {} wrote it",
                    display_key(key),
                    ts - 1
                ),
                Err(e) => panic!("crash child: expire_at at ts {ts} failed: {e}"),
            },
        }
    }
}

/// Compacts as the workload does after step `ts`, returning the new watermark.
pub(super) fn compact_after<E: MvccEngine>(engine: &E, ts: Timestamp) -> Option<Timestamp> {
    if ts % COMPACT_EVERY != 0 || ts <= COMPACT_LAG {
        return None;
    }
    let min_ts = ts - COMPACT_LAG;
    if let Err(e) = engine.compact(min_ts, &CompactionScope::All) {
        panic!("crash child: compact({min_ts}) after ts {ts} failed: {e}");
    }
    Some(min_ts)
}

pub(super) fn group_key(group: u64, member: &str) -> Vec<u8> {
    format!("g/{group}/{member}").into_bytes()
}

fn raw_group_key(group: u64) -> Vec<u8> {
    format!("crash/raw/{group}").into_bytes()
}

fn expire_key(ts: Timestamp) -> Vec<u8> {
    format!("e/{}", ts / 10 % 3).into_bytes()
}

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The value step `ts` writes: `v<ts>:` then filler of a length and content derived
/// from `ts` (every 37th step a 96 KiB value, which spans many pages).
pub(super) fn value(ts: Timestamp) -> Vec<u8> {
    let mut out = format!("v{ts}:").into_bytes();
    let h = mix(ts);
    let len = if ts % 37 == 0 {
        96 * 1024
    } else {
        (h % 600) as usize
    };
    out.extend((0..len).map(|i| (h >> ((i % 8) * 8)) as u8 ^ i as u8));
    out
}

/// A value as a person wants to read it in a failure message.
pub(super) fn describe(value: Option<&[u8]>) -> String {
    match value {
        None => "nothing".to_string(),
        Some(v) => {
            let head = v.iter().position(|b| *b == b':').map_or(v.len(), |p| p + 1);
            format!(
                "\"{}\" (+{} bytes)",
                v[..head.min(24)].escape_ascii(),
                v.len() - head.min(24)
            )
        }
    }
}

/// What a store that committed steps `1..=last` holds.
#[derive(Debug, Default)]
pub(super) struct Model {
    pub(super) versions: BTreeMap<Vec<u8>, BTreeMap<Timestamp, Version>>,
    pub(super) raw: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl Model {
    /// Replays steps `1..=last`.
    pub(super) fn replay(last: Timestamp) -> Model {
        let mut model = Model::default();
        for ts in 1..=last {
            model.apply(ts, &Step::at(ts));
        }
        model
    }

    fn apply(&mut self, ts: Timestamp, step: &Step) {
        match step {
            Step::Batch { mutations, raw, .. } => {
                for m in mutations {
                    let version = match m {
                        Mutation::Put {
                            value, expire_at, ..
                        } => Version {
                            ts,
                            kind: VersionKind::Value(value.clone()),
                            expire_at: *expire_at,
                        },
                        Mutation::Delete { .. } => Version::tombstone(ts),
                    };
                    self.versions
                        .entry(m.key().to_vec())
                        .or_default()
                        .insert(ts, version);
                }
                for op in raw {
                    match op {
                        RawOp::Put { key, value } => {
                            self.raw.insert(key.clone(), value.clone());
                        }
                        RawOp::Delete { key } => {
                            self.raw.remove(key);
                        }
                        RawOp::DeleteRange { range } => self.raw.retain(|k, _| !range.contains(k)),
                    }
                }
            }
            Step::Expire { key, expire_at } => {
                if let Some(value) = self.visible(key, ts).map(<[u8]>::to_vec) {
                    let version = Version {
                        ts,
                        kind: VersionKind::Value(value),
                        expire_at: *expire_at,
                    };
                    self.versions
                        .entry(key.clone())
                        .or_default()
                        .insert(ts, version);
                }
            }
        }
    }

    /// The value of `key` visible at `ts`.
    pub(super) fn visible(&self, key: &[u8], ts: Timestamp) -> Option<&[u8]> {
        let versions = self.versions.get(key)?;
        versions.range(..=ts).next_back()?.1.visible_value(ts)
    }

    /// Every visible pair at `ts`, ascending.
    pub(super) fn visible_pairs(&self, ts: Timestamp) -> Vec<KvPair> {
        self.versions
            .keys()
            .filter_map(|key| {
                self.visible(key, ts).map(|value| KvPair {
                    key: key.clone(),
                    value: value.to_vec(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_expire_step_finds_the_value_its_previous_step_wrote() {
        let mut model = Model::default();
        for ts in 1..=500 {
            let step = Step::at(ts);
            if let Step::Expire { key, .. } = &step {
                assert_eq!(
                    model.visible(key, ts),
                    Some(value(ts - 1).as_slice()),
                    "ts {ts}"
                );
            }
            model.apply(ts, &step);
        }
    }

    #[test]
    fn the_model_keeps_groups_consistent_and_tracks_the_applied_marker() {
        let model = Model::replay(123);
        assert_eq!(
            model.raw.get(APPLIED_KEY),
            Some(&123u64.to_be_bytes().to_vec())
        );
        for group in 0..GROUPS {
            let values: Vec<_> = MEMBERS
                .iter()
                .map(|m| model.visible(&group_key(group, m), u64::MAX))
                .collect();
            assert!(values.windows(2).all(|w| w[0] == w[1]), "group {group}");
        }
        assert!(describe(Some(&value(37))).starts_with("\"v37:\""));
    }
}
