//! The node's current snapshot record (`keys::CURRENT_SNAPSHOT`) and the install marker
//! (`keys::SNAPSHOT_INSTALLING`), both in the `Raft` family.
//!
//! On a RocksDB node the record names a file in the snapshot directory; the in-memory store
//! keeps the bytes inline. The marker is written, synced, before an install touches the live
//! state and removed in the same write as the new record: a node that finds it at start-up
//! redoes the install from the named file (`install::recover_interrupted_install`).

use crate::codec::{decode, encode};
use crate::keys;
use crate::kv::{Cf, KvError, KvRead, WriteBatch};
use crate::types::SnapshotMeta;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum SnapshotBody {
    Inline(Vec<u8>),
    /// A file in the snapshot directory, `bytes` long.
    File {
        name: String,
        bytes: u64,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SnapshotRecord {
    pub meta: SnapshotMeta,
    pub body: SnapshotBody,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InstallMarker {
    pub meta: SnapshotMeta,
    /// The snapshot file being installed, already at its final name.
    pub name: String,
}

fn read<T: DeserializeOwned>(kv: &dyn KvRead, key: &[u8]) -> Result<Option<T>, KvError> {
    let Some(bytes) = kv.get(Cf::Raft, key)? else {
        return Ok(None);
    };
    decode(&bytes).map(Some).map_err(|e| KvError::Corrupt {
        key: key.to_vec(),
        reason: e.to_string(),
    })
}

pub fn current_record(kv: &dyn KvRead) -> Result<Option<SnapshotRecord>, KvError> {
    read(kv, keys::CURRENT_SNAPSHOT)
}

pub fn install_marker(kv: &dyn KvRead) -> Result<Option<InstallMarker>, KvError> {
    read(kv, keys::SNAPSHOT_INSTALLING)
}

/// Whether `kv` (a node's store, or a backup of it) is in the middle of a snapshot install.
pub fn install_in_progress(kv: &dyn KvRead) -> Result<bool, KvError> {
    Ok(kv.get(Cf::Raft, keys::SNAPSHOT_INSTALLING)?.is_some())
}

pub fn put_record(batch: &mut WriteBatch, record: &SnapshotRecord) {
    batch.put(Cf::Raft, keys::CURRENT_SNAPSHOT, encode(record));
}

pub fn put_marker(batch: &mut WriteBatch, marker: &InstallMarker) {
    batch.put(Cf::Raft, keys::SNAPSHOT_INSTALLING, encode(marker));
}

pub fn clear_marker(batch: &mut WriteBatch) {
    batch.delete(Cf::Raft, keys::SNAPSHOT_INSTALLING);
}

/// The file name of a snapshot, `origin` saying whether this node built or received it.
pub fn file_name(origin: &str, snapshot_id: &str) -> String {
    let safe: String = snapshot_id
        .chars()
        .take(128)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{origin}-{safe}.tsnp")
}
