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
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CommandBatch(pub Vec<Vec<u8>>);

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
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = crate::snapshot_file::SnapshotFile,
        AsyncRuntime = crate::runtime::Runtime,
);

/// A log id: (term, leader, index).
pub type LogId = openraft::LogId<NodeId>;
/// A vote.
pub type Vote = openraft::Vote<NodeId>;
/// A log entry.
pub type Entry = openraft::Entry<TypeConfig>;
/// A stored membership (the log id that set it and the configuration).
pub type StoredMembership = openraft::StoredMembership<NodeId, openraft::BasicNode>;
/// Snapshot metadata.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, openraft::BasicNode>;
/// openraft's storage error for this configuration.
pub type StorageError = openraft::StorageError<NodeId>;
