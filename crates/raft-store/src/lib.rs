//! `tally-raft-store`: the replicated ledger.
//!
//! openraft 0.9 (`storage-v2`) with a log entry that carries a batch of `tally_ledger::Command`s
//! stamped by the leader. The log store ([`LogStore`]) and the state machine ([`StateMachine`])
//! sit on a small key-value interface ([`kv::Kv`]) with two backends: RocksDB ([`kv::RocksKv`]) in
//! production and an in-memory model ([`kv::MemKv`]) that keeps synced and unsynced writes apart,
//! so a simulated crash loses exactly what a real one could.

mod batcher;
mod codec;
/// Decoders run on arbitrary bytes, for the fuzz targets in `fuzz/`; not an API.
#[doc(hidden)]
pub mod fuzzing;
mod keys;
pub mod kv;
mod ledger_state;
mod log_store;
mod network;
mod node;
mod reads;
pub mod runtime;
mod service;
mod snapshot;
mod state_machine;
pub mod store_format;
mod supervisor;
mod timekeeper;
mod types;
mod write_error;

pub use batcher::{Batcher, Clock};
pub use codec::FORMAT_VERSION;
pub use ledger_state::KvLedger;
pub use log_store::{DiskLatency, LogFault, LogStore};
pub use network::{Network, RaftRpcServer};
pub use node::{Node, NodeEnv, NodeError, RaftTuning};
pub use reads::ReadGate;
pub use snapshot::{InstallWatch, SnapshotData};

/// Crash-test hooks for the snapshot install (`tests/snapshots.rs`); not an API.
#[doc(hidden)]
pub mod snapshot_testing {
    pub use crate::snapshot::{interrupt_install_for_tests, recover_interrupted_install};
}
pub use state_machine::{ledger_view, SnapshotBuilder, StateMachine};
pub use supervisor::Supervisor;
pub use timekeeper::Timekeeper;
pub use types::{
    Entry, LedgerRequest, LedgerResponse, LogId, NodeId, NodeInfo, Raft, Snapshot, SnapshotMeta,
    StorageError, StoredMembership, TypeConfig,
};
pub use write_error::ServeError;

/// Unix time in nanoseconds from the system clock: the leader's stamp on each entry. Only the
/// batcher reads it; the ledger sees time only through the stamp.
pub fn system_clock() -> Clock {
    std::sync::Arc::new(|| {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX)
    })
}
