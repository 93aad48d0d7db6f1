//! Why a write or a linearizable read could not be served here.

use crate::types::{NodeId, NodeInfo};
use openraft::error::{CheckIsLeaderError, ClientWriteError, ForwardToLeader, RaftError};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ServeError {
    /// Another node leads (or none does yet, during an election): ask the leader.
    #[error("this node is not the leader{}", leader_hint(.leader))]
    NotLeader {
        leader_id: Option<NodeId>,
        leader: Option<NodeInfo>,
    },
    /// The leader could not reach a quorum in time.
    #[error("the leader cannot reach a quorum; retry shortly")]
    NoQuorum,
    /// The node is shutting down or its Raft stopped.
    #[error("the node's Raft has stopped: {0}")]
    Stopped(String),
    /// Too many writes queued on this node; back off.
    #[error("write queue is full; retry after a short backoff")]
    Overloaded,
    /// The write was proposed but not committed in time (the leader may have lost its quorum):
    /// it may still commit. Retrying the same request is safe: transfers and accounts answer
    /// `exists`, payment commands their idempotent result.
    #[error("the write was not committed within {waited_ms} ms (the leader may have lost its quorum); its outcome is unknown: retry the same request (same ids)")]
    OutcomeUnknown { waited_ms: u64 },
    /// The state machine refused the whole batch (`BatchError` code).
    #[error("batch refused ({code}): {message}")]
    Refused { code: String, message: String },
}

fn leader_hint(leader: &Option<NodeInfo>) -> String {
    match leader {
        Some(node) => format!("; the leader is at {}", node.api_addr),
        None => "; no leader is elected yet, retry shortly".to_owned(),
    }
}

impl From<ForwardToLeader<NodeId, NodeInfo>> for ServeError {
    fn from(forward: ForwardToLeader<NodeId, NodeInfo>) -> Self {
        ServeError::NotLeader {
            leader_id: forward.leader_id,
            leader: forward.leader_node,
        }
    }
}

impl From<RaftError<NodeId, ClientWriteError<NodeId, NodeInfo>>> for ServeError {
    fn from(error: RaftError<NodeId, ClientWriteError<NodeId, NodeInfo>>) -> Self {
        match error {
            RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => forward.into(),
            RaftError::APIError(other) => ServeError::Stopped(other.to_string()),
            RaftError::Fatal(fatal) => ServeError::Stopped(fatal.to_string()),
        }
    }
}

impl From<RaftError<NodeId, CheckIsLeaderError<NodeId, NodeInfo>>> for ServeError {
    fn from(error: RaftError<NodeId, CheckIsLeaderError<NodeId, NodeInfo>>) -> Self {
        match error {
            RaftError::APIError(CheckIsLeaderError::ForwardToLeader(forward)) => forward.into(),
            RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_)) => ServeError::NoQuorum,
            RaftError::Fatal(fatal) => ServeError::Stopped(fatal.to_string()),
        }
    }
}
