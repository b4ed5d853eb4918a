//! The transport: how a node's groups reach other nodes.
//!
//! A [`Transport`] moves opaque [`RaftRequest`]s (group id, kind, encoded body) to a
//! target node and brings back the encoded reply; the receiving node hands them to
//! [`crate::RaftNode::handle`] (through [`RaftService`]). openraft's message types never
//! cross this boundary, so a gRPC transport in `server` is a thin byte pipe, and one
//! connection per node pair serves every group.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{GroupId, NodeId};

/// Which Raft RPC a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RpcKind {
    /// AppendEntries (also the heartbeat).
    AppendEntries,
    /// RequestVote.
    Vote,
    /// One chunk of a snapshot.
    InstallSnapshot,
    /// A leader handing its leadership to another voter.
    TransferLeader,
}

impl RpcKind {
    /// A stable number for wire formats.
    pub fn code(self) -> u32 {
        match self {
            RpcKind::AppendEntries => 1,
            RpcKind::Vote => 2,
            RpcKind::InstallSnapshot => 3,
            RpcKind::TransferLeader => 4,
        }
    }

    /// The kind with the given [`RpcKind::code`].
    pub fn from_code(code: u32) -> Option<Self> {
        match code {
            1 => Some(RpcKind::AppendEntries),
            2 => Some(RpcKind::Vote),
            3 => Some(RpcKind::InstallSnapshot),
            4 => Some(RpcKind::TransferLeader),
            _ => None,
        }
    }
}

/// One Raft RPC addressed to a group on another node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftRequest {
    /// The sending node.
    pub from: NodeId,
    /// The group the RPC belongs to.
    pub group: GroupId,
    /// What the body holds.
    pub kind: RpcKind,
    /// The encoded request (this crate's codec; opaque to the transport).
    pub body: Vec<u8>,
}

/// Why a request did not get a reply.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// The target cannot be reached now (down, partitioned, unknown); retry later.
    #[error("node {node} is unreachable: {reason}")]
    Unreachable {
        /// The target node.
        node: NodeId,
        /// Why.
        reason: String,
    },
    /// The request or its reply was lost or failed in flight; it may be retried.
    #[error("network error: {0}")]
    Network(String),
}

/// Sends Raft RPCs to other nodes. Implementations must be safe to call concurrently.
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// Delivers `request` to node `target` (at `addr`, the address in the group's
    /// membership) and returns the encoded reply. Timeouts are applied by the caller.
    async fn send(
        &self,
        target: NodeId,
        addr: &str,
        request: RaftRequest,
    ) -> Result<Vec<u8>, TransportError>;
}

/// The receiving side of the transport: a node that answers Raft RPCs for its groups.
#[async_trait]
pub trait RaftService: Send + Sync + 'static {
    /// Answers one request with an encoded reply (which may encode a remote failure).
    async fn handle(&self, request: RaftRequest) -> Vec<u8>;
}

#[cfg(test)]
mod tests {
    use super::RpcKind;

    /// Every kind's code names it back, codes are distinct, and an unknown code is
    /// refused (a message from a newer build is not mistaken for another kind).
    #[test]
    fn codes_name_their_kinds() {
        let kinds = [
            RpcKind::AppendEntries,
            RpcKind::Vote,
            RpcKind::InstallSnapshot,
            RpcKind::TransferLeader,
        ];
        let codes: std::collections::BTreeSet<u32> = kinds.iter().map(|k| k.code()).collect();
        assert_eq!(codes.len(), kinds.len());
        for kind in kinds {
            assert_eq!(RpcKind::from_code(kind.code()), Some(kind));
        }
        assert_eq!(RpcKind::from_code(0), None);
        assert_eq!(RpcKind::from_code(5), None);
    }
}
