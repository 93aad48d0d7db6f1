//! Snapshots: every row of the `State` family at one applied log id, with the id, the
//! membership and a checksum (`stream`). Built by paging a frozen view (a RocksDB checkpoint),
//! kept as a file on RocksDB nodes (`record`), sent and received by openraft in chunks
//! (`data`), and installed by staging the rows beside the live state, auditing them and swapping
//! them in (`install`). Memory stays bounded by a page of rows and a chunk throughout.

mod build;
mod data;
mod install;
mod record;
pub(crate) mod stream;

pub use build::{build, Built};
pub use data::SnapshotData;
pub use install::{install, interrupt_install_for_tests, recover_interrupted_install, Received};
pub use record::{current_record, install_in_progress, SnapshotBody};
pub use stream::StreamError;

use crate::codec::{decode, DecodeError};
use crate::keys;
use crate::kv::{Cf, KvError, KvRead};
use crate::types::{LogId, StoredMembership};

/// What the state machine tells the log store about snapshot installs: whether one has begun in
/// this process, and whether one failed (`LogStore::purge` waits for an install, or gives up
/// at once when it failed).
#[derive(Clone, Debug, Default)]
pub struct InstallWatch(std::sync::Arc<std::sync::atomic::AtomicU8>);

const INSTALL_IDLE: u8 = 0;
const INSTALL_RECEIVING: u8 = 1;
const INSTALL_FAILED: u8 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstallState {
    /// No snapshot received by this process: a purge never waits.
    Idle,
    Receiving,
    Failed,
}

impl InstallWatch {
    pub fn receiving(&self) {
        self.0
            .store(INSTALL_RECEIVING, std::sync::atomic::Ordering::Release);
    }

    pub fn failed(&self) {
        self.0
            .store(INSTALL_FAILED, std::sync::atomic::Ordering::Release);
    }

    pub fn state(&self) -> InstallState {
        match self.0.load(std::sync::atomic::Ordering::Acquire) {
            INSTALL_IDLE => InstallState::Idle,
            INSTALL_RECEIVING => InstallState::Receiving,
            _ => InstallState::Failed,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error("snapshot is at {payload:?}/{payload_membership:?} but its metadata says {meta:?}/{meta_membership:?}")]
    MetadataMismatch {
        payload: Option<LogId>,
        meta: Option<LogId>,
        payload_membership: Box<StoredMembership>,
        meta_membership: Box<StoredMembership>,
    },
    #[error("snapshot {snapshot_id} breaks a ledger invariant: {violation}")]
    Invariant {
        snapshot_id: String,
        violation: String,
    },
    #[error("snapshot file {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Kv(#[from] KvError),
}

impl SnapshotError {
    pub(crate) fn file(path: &std::path::Path, source: std::io::Error) -> Self {
        SnapshotError::File {
            path: path.display().to_string(),
            source,
        }
    }
}

pub fn read_applied(view: &dyn KvRead) -> Result<(Option<LogId>, StoredMembership), KvError> {
    let decode_at = |key: &[u8]| -> Result<Option<Vec<u8>>, KvError> { view.get(Cf::State, key) };
    let corrupt = |key: &[u8], e: DecodeError| KvError::Corrupt {
        key: key.to_vec(),
        reason: e.to_string(),
    };
    let last_applied = match decode_at(keys::LAST_APPLIED)? {
        Some(bytes) => decode(&bytes).map_err(|e| corrupt(keys::LAST_APPLIED, e))?,
        None => None,
    };
    let membership = match decode_at(keys::MEMBERSHIP)? {
        Some(bytes) => decode(&bytes).map_err(|e| corrupt(keys::MEMBERSHIP, e))?,
        None => StoredMembership::default(),
    };
    Ok((last_applied, membership))
}
