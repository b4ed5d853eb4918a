//! The errors of this crate's API.

use elastickv_engine_api::EngineError;

use crate::{GroupId, NodeId};

/// Why a Raft operation failed. Callers match on the variant.
#[derive(Debug, thiserror::Error)]
pub enum RaftError {
    /// This node is not the group's leader; `leader` is the current leader if known.
    #[error("node {node} is not the leader of group {group}{}", leader.map(|l| format!(" (hint: node {l})")).unwrap_or_default())]
    NotLeader {
        /// The group.
        group: GroupId,
        /// This node.
        node: NodeId,
        /// The leader this node knows of, if any.
        leader: Option<NodeId>,
    },
    /// The leader could not reach a quorum to confirm its leadership.
    #[error("group {group} has no quorum: {message}")]
    NoQuorum {
        /// The group.
        group: GroupId,
        /// openraft's description.
        message: String,
    },
    /// The operation did not finish in time; a proposal may or may not be applied.
    #[error("group {group}: {what} timed out after {after:?}")]
    Timeout {
        /// The group.
        group: GroupId,
        /// What timed out.
        what: &'static str,
        /// The timeout.
        after: std::time::Duration,
    },
    /// A membership change was refused (another change in progress, unknown learner...).
    #[error("group {group}: membership change refused: {message}")]
    Membership {
        /// The group.
        group: GroupId,
        /// Why.
        message: String,
    },
    /// The group is stopped (shut down, or stopped after a storage failure).
    #[error("group {group} is stopped: {message}")]
    Stopped {
        /// The group.
        group: GroupId,
        /// Why.
        message: String,
    },
    /// A node named as a group's voter (to lead it, say) is not one of its voters.
    #[error("node {node} is not a voter of group {group}")]
    NotAVoter {
        /// The group.
        group: GroupId,
        /// The node.
        node: NodeId,
    },
    /// The node does not host the group.
    #[error("group {0} is not hosted on this node")]
    NoSuchGroup(GroupId),
    /// The node already hosts the group.
    #[error("group {0} is already open on this node")]
    GroupExists(GroupId),
    /// The configuration is invalid.
    #[error("invalid raft configuration: {0}")]
    Config(String),
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A file-system operation failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// openraft reported an unexpected condition.
    #[error("group {group}: {message}")]
    Internal {
        /// The group.
        group: GroupId,
        /// The description.
        message: String,
    },
}

/// The result type of this crate.
pub type Result<T, E = RaftError> = std::result::Result<T, E>;
