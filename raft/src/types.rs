//! The openraft type configuration and the small value types that cross this crate's
//! API: node and group ids, the replicated command, the apply reply.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A node's id, unique in the cluster.
pub type NodeId = u64;

/// A Raft group's id, unique in the cluster. Group 0 is the default group (it hosts
/// cluster metadata such as the timestamp oracle's ceiling).
pub type GroupId = u64;

/// The id of the default group.
pub const DEFAULT_GROUP: GroupId = 0;

/// The address of a node, as the transport understands it (for example `host:port`).
pub type NodeAddr = openraft::BasicNode;

/// The payload of one normal log entry: commands proposed concurrently and replicated
/// together (one log write and one sync for all of them), each applied in order and
/// answered separately. Each command is opaque bytes that the group's
/// [`crate::Applier`] decodes.
///
/// Each command is (de)serialized as a byte string, not as a sequence of `u8`s: bincode
/// writes both alike (a length, then the bytes), so stored logs and messages keep their
/// format, but a byte string is read and written with one copy where a sequence went
/// byte by byte (1.6% of a leader's CPU at 256 clients, re-reading its log to replicate).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct CommandBatch(pub Vec<Vec<u8>>);

/// One command of a [`CommandBatch`], serialized as a byte string.
struct CommandBytes<'a>(&'a [u8]);

impl Serialize for CommandBytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

impl Serialize for CommandBatch {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|c| CommandBytes(c)))
    }
}

/// Reads one command: a byte string, or (from a format that has none) a sequence of
/// bytes.
struct OwnedCommand(Vec<u8>);

impl<'de> Deserialize<'de> for OwnedCommand {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = OwnedCommand;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a command's bytes")
            }

            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<OwnedCommand, E> {
                Ok(OwnedCommand(v.to_vec()))
            }

            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<OwnedCommand, E> {
                Ok(OwnedCommand(v))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<OwnedCommand, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 20));
                while let Some(byte) = seq.next_element::<u8>()? {
                    out.push(byte);
                }
                Ok(OwnedCommand(out))
            }
        }
        deserializer.deserialize_byte_buf(Visitor)
    }
}

impl<'de> Deserialize<'de> for CommandBatch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let commands = Vec::<OwnedCommand>::deserialize(deserializer)?;
        Ok(CommandBatch(commands.into_iter().map(|c| c.0).collect()))
    }
}

impl fmt::Debug for CommandBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CommandBatch({} commands)", self.0.len())
    }
}

impl fmt::Display for CommandBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "batch of {} commands", self.0.len())
    }
}

/// The results of applying one entry's commands, handed back in process to the
/// proposers (one per command, in order; empty for entries that are not commands).
///
/// Apply results never travel over the network (a forwarded write carries its own
/// encoding of the result), so this type serializes to nothing and deserializes to an
/// empty reply; openraft only requires the serde bounds because its `serde` feature
/// is enabled for the Raft RPC codec.
#[derive(Clone, Default)]
pub struct Reply(pub(crate) Vec<Arc<dyn Any + Send + Sync>>);

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reply({} results)", self.0.len())
    }
}

impl Serialize for Reply {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_unit()
    }
}

impl<'de> Deserialize<'de> for Reply {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <()>::deserialize(deserializer)?;
        Ok(Reply::default())
    }
}

openraft::declare_raft_types!(
    /// The openraft type configuration of every elastickv group.
    pub TypeConfig:
        D = CommandBatch,
        R = Reply,
        NodeId = NodeId,
        Node = openraft::BasicNode,
        Term = u64,
        LeaderId = LeaderId,
        AsyncRuntime = crate::runtime::Runtime,
);

/// The id of a leader: (term, node). Two leaders of one term are impossible, so the
/// committed form (what a log id carries) is the same pair; its encoding is the one
/// elastickv has always stored.
pub type LeaderId = openraft::impls::leader_id_adv::LeaderId<u64, NodeId>;
/// A log id: (term, leader, index).
pub type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
/// A vote.
pub type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
/// A log entry.
pub type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;
/// A stored membership (the log id that set it and the configuration).
pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
/// Snapshot metadata.
pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;
/// The error openraft's storage traits return: an I/O error whose message says what
/// failed (`failed to read Logs: ...`).
pub(crate) type StorageError = std::io::Error;
/// A snapshot: its metadata and its file.
pub(crate) type Snapshot =
    openraft::type_config::alias::SnapshotOf<TypeConfig, crate::snapshot_file::SnapshotFile>;

#[cfg(test)]
mod tests {
    use super::*;

    /// The encoding `CommandBatch` had when it derived its serde impls: a sequence of
    /// sequences of bytes.
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct AsSequences(Vec<Vec<u8>>);

    fn batches() -> Vec<Vec<Vec<u8>>> {
        vec![
            vec![],
            vec![vec![]],
            vec![b"one".to_vec(), vec![0, 255, 7], (0..=255).collect()],
            vec![vec![9; 70_000]],
        ]
    }

    #[test]
    fn commands_keep_the_stored_and_wire_format() {
        for commands in batches() {
            let ours = bincode::serialize(&CommandBatch(commands.clone())).expect("encode");
            let before = bincode::serialize(&AsSequences(commands.clone())).expect("encode");
            assert_eq!(ours, before, "same bytes as the derived encoding");
            let read: CommandBatch = bincode::deserialize(&before).expect("decode");
            assert_eq!(read.0, commands, "reads what the derived encoding wrote");
            let back: AsSequences = bincode::deserialize(&ours).expect("decode");
            assert_eq!(back.0, commands, "the derived decoding reads ours");
        }
    }

    #[test]
    fn a_truncated_batch_is_an_error() {
        let bytes = bincode::serialize(&CommandBatch(vec![b"abcdef".to_vec()])).expect("encode");
        for cut in 0..bytes.len() {
            assert!(bincode::deserialize::<CommandBatch>(&bytes[..cut]).is_err());
        }
    }
}
