//! Where this crate keeps its state in the engine's raw keyspace, and how values are
//! encoded.
//!
//! ```text
//! "raft\0" | group_id u64 BE | 0x01                   -> vote
//!                            | 0x02                   -> committed log id
//!                            | 0x03                   -> last purged log id
//!                            | 0x04                   -> last applied log id (state machine)
//!                            | 0x05                   -> stored membership (state machine)
//!                            | 0x06                   -> current snapshot (meta + file name)
//!                            | 0x10 | index u64 BE    -> log entry
//! ```
//!
//! Big-endian indexes make byte order equal index order, so the log is read with range
//! scans and cut with range deletes. Every value is one format byte followed by the
//! bincode encoding of the openraft type.

use elastickv_engine_api::KeyRange;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::GroupId;

const ROOT: &[u8] = b"raft\0";
/// The value format this crate writes.
const FORMAT: u8 = 1;

/// What a raw key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Slot {
    Vote = 0x01,
    Committed = 0x02,
    Purged = 0x03,
    Applied = 0x04,
    Membership = 0x05,
    Snapshot = 0x06,
}

const LOG: u8 = 0x10;

/// The raw keys of one group.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    prefix: Vec<u8>,
}

impl Layout {
    pub(crate) fn new(group: GroupId) -> Self {
        let mut prefix = ROOT.to_vec();
        prefix.extend_from_slice(&group.to_be_bytes());
        Layout { prefix }
    }

    pub(crate) fn slot(&self, slot: Slot) -> Vec<u8> {
        let mut key = self.prefix.clone();
        key.push(slot as u8);
        key
    }

    pub(crate) fn log_key(&self, index: u64) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.prefix.len() + 9);
        key.extend_from_slice(&self.prefix);
        key.push(LOG);
        key.extend_from_slice(&index.to_be_bytes());
        key
    }

    /// Log keys with index in `[start, end)`; `end == None` is unbounded.
    pub(crate) fn log_range(&self, start: u64, end: Option<u64>) -> KeyRange {
        let mut upper = self.prefix.clone();
        upper.push(LOG + 1);
        KeyRange {
            start: self.log_key(start),
            end: Some(match end {
                Some(end) => self.log_key(end),
                None => upper,
            }),
        }
    }
}

/// Encodes a stored value.
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    // Sized first (a pass that copies nothing): a log entry carrying a batch of
    // commands is large, and growing the buffer as it is written copied it over and
    // over (about 5% of a follower's CPU at 256 clients).
    let size = bincode::serialized_size(value).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(1 + usize::try_from(size).map_err(|e| e.to_string())?);
    out.push(FORMAT);
    bincode::serialize_into(&mut out, value).map_err(|e| e.to_string())?;
    Ok(out)
}

/// Decodes a stored value written by [`encode`].
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    match bytes.split_first() {
        Some((&FORMAT, body)) => bincode::deserialize(body).map_err(|e| e.to_string()),
        Some((other, _)) => Err(format!("unknown raft value format {other}")),
        None => Err("empty raft value".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use openraft::vote::RaftLeaderId;
    use openraft::{BasicNode, EntryPayload, Membership};

    use super::*;
    use crate::{CommandBatch, Entry, LeaderId, LogId, SnapshotMeta, StoredMembership, Vote};

    #[test]
    fn log_keys_sort_by_index_and_stay_inside_the_log_range() {
        let layout = Layout::new(7);
        let keys: Vec<_> = [0u64, 1, 255, 256, u64::MAX - 1]
            .iter()
            .map(|i| layout.log_key(*i))
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        let all = layout.log_range(0, None);
        assert!(keys.iter().all(|k| all.contains(k)));
        assert!(!all.contains(&layout.slot(Slot::Vote)));
        assert!(!Layout::new(8).log_range(0, None).contains(&keys[0]));
    }

    #[test]
    fn values_round_trip_and_unknown_formats_are_refused() {
        let bytes = encode(&(3u64, "x".to_string())).expect("encode");
        let back: (u64, String) = decode(&bytes).expect("decode");
        assert_eq!(back, (3, "x".to_string()));
        let big = vec![vec![7u8; 300]; 200];
        let bytes = encode(&big).expect("encode");
        assert_eq!(bytes.capacity(), bytes.len(), "sized before it was written");
        assert_eq!(decode::<Vec<Vec<u8>>>(&bytes).expect("decode"), big);
        assert!(decode::<u64>(&[9, 0]).is_err());
        assert!(decode::<u64>(&[]).is_err());
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Decodes `stored` (written by an earlier version), checks it equals `value`, and
    /// that `value` encodes to the same bytes.
    fn same<T>(value: &T, stored: &str)
    where
        T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        assert_eq!(hex(&encode(value).expect("encode")), stored, "{value:?}");
        let bytes: Vec<u8> = (0..stored.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&stored[i..i + 2], 16).expect("hex"))
            .collect();
        assert_eq!(&decode::<T>(&bytes).expect("decode"), value);
    }

    /// What elastickv stored with openraft 0.9 (these bytes were written by it) reads
    /// back the same and is written the same: data directories carry over.
    #[test]
    fn values_stored_by_earlier_versions_read_and_write_the_same() {
        let log_id = LogId::new(LeaderId::new(7, 2), 41);
        let vote = Vote::new_committed(7, 2);
        let nodes: BTreeMap<u64, BasicNode> = [
            (1, BasicNode::new("127.0.0.1:5001")),
            (2, BasicNode::new("h:2")),
        ]
        .into_iter()
        .collect();
        let membership =
            Membership::new(vec![BTreeSet::from([1u64, 2])], nodes).expect("a membership");
        let stored = StoredMembership::new(Some(log_id), membership.clone());
        let meta = SnapshotMeta {
            last_log_id: Some(log_id),
            last_membership: stored.clone(),
        };
        let entry = |payload| Entry { log_id, payload };
        same(
            &log_id,
            "01070000000000000002000000000000002900000000000000",
        );
        same(&vote, "010700000000000000020000000000000001");
        same(&stored, "01010700000000000000020000000000000029000000000000000100000000000000020000000000000001000000000000000200000000000000020000000000000001000000000000000e000000000000003132372e302e302e313a3530303102000000000000000300000000000000683a32");
        same(
            &entry(EntryPayload::Normal(CommandBatch(vec![b"ab".to_vec(), vec![]]))),
            "01070000000000000002000000000000002900000000000000010000000200000000000000020000000000000061620000000000000000",
        );
        same(
            &entry(EntryPayload::Blank),
            "0107000000000000000200000000000000290000000000000000000000",
        );
        same(&entry(EntryPayload::Membership(membership)), "01070000000000000002000000000000002900000000000000020000000100000000000000020000000000000001000000000000000200000000000000020000000000000001000000000000000e000000000000003132372e302e302e313a3530303102000000000000000300000000000000683a32");
        // The 0.9 metadata carried a snapshot id (here "snap-1"), no longer kept: it is
        // read past, and written empty.
        let old_meta = "0101070000000000000002000000000000002900000000000000010700000000000000020000000000000029000000000000000100000000000000020000000000000001000000000000000200000000000000020000000000000001000000000000000e000000000000003132372e302e302e313a3530303102000000000000000300000000000000683a320600000000000000736e61702d31";
        let bytes: Vec<u8> = (0..old_meta.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&old_meta[i..i + 2], 16).expect("hex"))
            .collect();
        assert_eq!(decode::<SnapshotMeta>(&bytes).expect("decode"), meta);
        let written = hex(&encode(&meta).expect("encode"));
        assert_eq!(
            written,
            format!("{}0000000000000000", &old_meta[..old_meta.len() - 28])
        );
    }
}
