//! The openraft type config: a log entry carries a batch of ledger commands stamped by the leader.

use serde::{Deserialize, Serialize};
use std::fmt;
use tally_ledger::{Command, CommandResult};

pub type NodeId = u64;

/// What one Raft entry asks of the state machine: up to `BATCH_COMMANDS_MAX` commands and the
/// leader's timestamp, the only clock the ledger ever sees.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerRequest {
    pub timestamp_ns: u64,
    pub commands: Vec<Command>,
}

/// The state machine's answer to one entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum LedgerResponse {
    /// Blank and membership entries change no ledger state.
    #[default]
    NoOp,
    Applied {
        results: Vec<CommandResult>,
    },
    /// The whole batch broke a batch bound; nothing applied (`BatchError::code`).
    Refused {
        code: String,
        message: String,
    },
}

/// How to reach a node: Raft traffic and the client API listen on separate addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub raft_addr: String,
    pub api_addr: String,
}

impl fmt::Display for NodeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "raft={} api={}", self.raft_addr, self.api_addr)
    }
}

openraft::declare_raft_types!(
    pub TypeConfig:
        D = LedgerRequest,
        R = LedgerResponse,
        NodeId = NodeId,
        Node = NodeInfo,
        SnapshotData = crate::snapshot::SnapshotData,
        AsyncRuntime = crate::runtime::TallyRuntime,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, NodeInfo>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, NodeInfo>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
