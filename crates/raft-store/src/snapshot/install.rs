//! Installing a received snapshot: its rows are staged beside the live state while the stream
//! is verified (order, bounds, checksum), the staged state is audited from scratch, and only
//! then does one commit replace the live state and record the snapshot. A bad snapshot is
//! never installed nor served; a crash mid-commit is redone at start-up from the marker.

use super::build::{remove_replaced, sync_dir};
use super::record::{
    clear_marker, current_record, file_name, install_marker, put_marker, put_record, InstallMarker,
    SnapshotBody, SnapshotRecord,
};
use super::stream::{SnapshotReader, StreamError};
use super::{read_applied, SnapshotError};
use crate::kv::{Kv, KvError, WriteBatch, STATE_END};
use crate::ledger_state::KvLedger;
use crate::types::SnapshotMeta;
use std::io::{BufReader, Read};
use std::path::PathBuf;
use std::sync::Mutex;

/// The read buffer behind a snapshot file.
const FILE_BUFFER_BYTES: usize = 1024 * 1024;

/// A snapshot's bytes as received.
pub enum Received {
    Memory(Vec<u8>),
    /// A complete, fsynced file in the node's snapshot directory.
    File(PathBuf),
}

/// Stages, verifies, audits and commits the snapshot `meta` describes. Nothing of the live
/// state changes unless every check passes.
pub fn install<K: Kv>(
    kv: &K,
    meta: &SnapshotMeta,
    received: Received,
    record_lock: &Mutex<()>,
) -> Result<(), SnapshotError> {
    match received {
        Received::Memory(bytes) => stage_and_commit(kv, meta, &bytes[..], record_lock, |_| {
            Ok((WriteBatch::default(), SnapshotBody::Inline(bytes.clone())))
        }),
        Received::File(path) => {
            let file = std::fs::File::open(&path).map_err(|e| SnapshotError::file(&path, e))?;
            let bytes = file
                .metadata()
                .map_err(|e| SnapshotError::file(&path, e))?
                .len();
            let input = BufReader::with_capacity(FILE_BUFFER_BYTES, file);
            let installed = stage_and_commit(kv, meta, input, record_lock, |kv| {
                let dir = kv
                    .snapshot_dir()
                    .expect("a file snapshot is only received by a store with a snapshot dir");
                let name = file_name("installed", &meta.snapshot_id);
                let target = dir.join(&name);
                if path != target {
                    std::fs::rename(&path, &target).map_err(|e| SnapshotError::file(&target, e))?;
                    sync_dir(dir)?;
                }
                let mut before = WriteBatch::default();
                put_marker(
                    &mut before,
                    &InstallMarker {
                        meta: meta.clone(),
                        name: name.clone(),
                    },
                );
                Ok((before, SnapshotBody::File { name, bytes }))
            });
            // A refused file is still where it was received (placing it is the last step
            // before the swap): nothing will ever read it.
            if installed.is_err() && path.exists() && !is_marked(kv, &path) {
                let _ = std::fs::remove_file(&path);
            }
            installed
        }
    }
}

/// Whether `path` is the file an install marker names (a redo needs it).
fn is_marked<K: Kv>(kv: &K, path: &std::path::Path) -> bool {
    match (install_marker(kv), kv.snapshot_dir()) {
        (Ok(Some(marker)), Some(dir)) => dir.join(marker.name) == path,
        (Ok(None), _) => false,
        // Unsure: keep it.
        _ => true,
    }
}

/// `place` runs once the staged state has passed every check: it puts the snapshot's bytes
/// where the record will name them and returns what to write before the swap (the marker).
fn stage_and_commit<K: Kv, R: Read>(
    kv: &K,
    meta: &SnapshotMeta,
    input: R,
    record_lock: &Mutex<()>,
    place: impl FnOnce(&K) -> Result<(WriteBatch, SnapshotBody), SnapshotError>,
) -> Result<(), SnapshotError> {
    let (mut reader, header) = SnapshotReader::open(input)?;
    if header.last_applied != meta.last_log_id || header.membership != meta.last_membership {
        return Err(SnapshotError::MetadataMismatch {
            payload: header.last_applied,
            meta: meta.last_log_id,
            payload_membership: Box::new(header.membership),
            meta_membership: Box::new(meta.last_membership.clone()),
        });
    }
    let mut stream_error: Option<StreamError> = None;
    let mut rows = || match reader.next_row() {
        Ok(Some((key, _))) if key.as_slice() >= STATE_END => {
            let reason = format!("a row's key {key:?} is outside the state family");
            stream_error = Some(StreamError::Malformed(reason.clone()));
            Err(KvError::Io(reason))
        }
        Ok(row) => Ok(row),
        Err(e) => {
            let reason = e.to_string();
            stream_error = Some(e);
            Err(KvError::Io(reason))
        }
    };
    let staged = match kv.stage_state(&mut rows) {
        Ok(staged) => staged,
        Err(e) => {
            return Err(match stream_error {
                Some(stream) => SnapshotError::Stream(stream),
                None => SnapshotError::Kv(e),
            })
        }
    };
    // The rows must be the state the metadata says, and hold every ledger invariant, checked
    // from scratch. Ledger reads panic on a row they cannot read (a replica must not go on
    // from a state it cannot read); here that is a refused snapshot, not a stopped node.
    let refuse = |violation: String| SnapshotError::Invariant {
        snapshot_id: meta.snapshot_id.clone(),
        violation,
    };
    let (applied, membership) = read_applied(staged.view())?;
    if applied != meta.last_log_id || membership != meta.last_membership {
        return Err(refuse(format!(
            "its rows are at {applied:?} with membership {membership:?}, its metadata says {:?}",
            meta.last_log_id
        )));
    }
    let audit = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        tally_ledger::audit(&KvLedger::new(staged.view())).map(|_| ())
    }));
    match audit {
        Ok(Ok(())) => {}
        Ok(Err(violation)) => return Err(refuse(violation.to_string())),
        Err(panic) => {
            let message = panic
                .downcast_ref::<tally_ledger::StoreFailure>()
                .map(|failure| failure.message.clone())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unreadable state".to_owned());
            return Err(refuse(format!("its state cannot be read: {message}")));
        }
    }
    let (before, body) = place(kv)?;
    let kept = match &body {
        SnapshotBody::File { name, .. } => name.clone(),
        SnapshotBody::Inline(_) => String::new(),
    };
    let mut after = WriteBatch::default();
    put_record(
        &mut after,
        &SnapshotRecord {
            meta: meta.clone(),
            body,
        },
    );
    clear_marker(&mut after);
    let _recording = record_lock.lock().unwrap_or_else(|p| p.into_inner());
    let previous = current_record(kv)?;
    staged.commit(before, after)?;
    if let Some(dir) = kv.snapshot_dir() {
        remove_replaced(dir, previous, &kept);
    }
    Ok(())
}

/// At start-up, before Raft reads the state: finishes an install a crash interrupted (the
/// marker names its snapshot file, kept until the install's last write), then removes snapshot
/// files no record names (unfinished builds and receives, replaced snapshots).
pub fn recover_interrupted_install<K: Kv>(kv: &K) -> Result<(), SnapshotError> {
    let Some(dir) = kv.snapshot_dir() else {
        return Ok(());
    };
    if let Some(marker) = install_marker(kv)? {
        tracing::warn!(snapshot = %marker.meta.snapshot_id, "redoing a snapshot install a crash interrupted");
        install(
            kv,
            &marker.meta,
            Received::File(dir.join(&marker.name)),
            &Mutex::new(()),
        )?;
    }
    let mut kept = match current_record(kv)? {
        Some(SnapshotRecord {
            body: SnapshotBody::File { name, .. },
            ..
        }) => Some(name),
        _ => None,
    };
    if let Some(name) = kept.as_ref().filter(|name| !dir.join(name).exists()) {
        // A directory restored from a backup has the record but not the file (backups copy
        // the database only). Forget the record: Raft builds a new snapshot when it needs one.
        tracing::warn!(file = %name, "the recorded snapshot file is missing; forgetting the record");
        let mut batch = WriteBatch::default();
        batch.delete(crate::kv::Cf::Raft, crate::keys::CURRENT_SNAPSHOT);
        kv.write(batch, crate::kv::Durability::Synced)?;
        kept = None;
    }
    let entries = std::fs::read_dir(dir).map_err(|e| SnapshotError::file(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| SnapshotError::file(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if Some(&name) != kept.as_ref() {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(|e| SnapshotError::file(&path, e))?;
        }
    }
    Ok(())
}

/// For crash tests: what an install leaves behind when the process dies right after the swap's
/// first step (snapshot file in place, marker durable, live state cleared).
#[doc(hidden)]
pub fn interrupt_install_for_tests<K: Kv>(
    kv: &K,
    meta: &SnapshotMeta,
    file: PathBuf,
) -> Result<(), SnapshotError> {
    let dir = kv
        .snapshot_dir()
        .expect("a store with a snapshot directory");
    let name = file_name("installed", &meta.snapshot_id);
    std::fs::rename(&file, dir.join(&name)).map_err(|e| SnapshotError::file(&file, e))?;
    let mut batch = WriteBatch::default();
    put_marker(
        &mut batch,
        &InstallMarker {
            meta: meta.clone(),
            name,
        },
    );
    batch.delete_range(
        crate::kv::Cf::State,
        Vec::new(),
        crate::kv::STATE_END.to_vec(),
    );
    kv.write(batch, crate::kv::Durability::Synced)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::encode;
    use crate::keys;
    use crate::kv::{Cf, KvRead, MemKv};
    use crate::snapshot::stream::{SnapshotHeader, SnapshotWriter};
    use crate::types::StoredMembership;
    use openraft::testing::log_id;

    fn meta(index: u64) -> SnapshotMeta {
        SnapshotMeta {
            last_log_id: Some(log_id(1, 1, index)),
            last_membership: StoredMembership::default(),
            snapshot_id: format!("test-{index}"),
        }
    }

    /// A well-formed stream whose header claims `meta` and whose rows are `rows`.
    fn stream(meta: &SnapshotMeta, rows: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
        let header = SnapshotHeader {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        let mut writer = SnapshotWriter::new(Vec::new(), &header).unwrap();
        for (key, value) in rows {
            writer.row(key, value).unwrap();
        }
        writer.finish().unwrap().0
    }

    fn install_bytes(kv: &MemKv, meta: &SnapshotMeta, bytes: Vec<u8>) -> Result<(), SnapshotError> {
        install(kv, meta, Received::Memory(bytes), &Mutex::new(()))
    }

    #[test]
    fn rows_that_disagree_with_their_header_are_refused() {
        let kv = MemKv::new();
        let at = meta(7);
        // Well-formed and checksummed, but the rows' own applied id is another one.
        let elsewhere = vec![(keys::LAST_APPLIED.to_vec(), encode(&Some(log_id(1, 1, 3))))];
        let refused = install_bytes(&kv, &at, stream(&at, &elsewhere));
        assert!(
            matches!(refused, Err(SnapshotError::Invariant { .. })),
            "{refused:?}"
        );
        let missing = install_bytes(&kv, &at, stream(&at, &[]));
        assert!(
            matches!(missing, Err(SnapshotError::Invariant { .. })),
            "{missing:?}"
        );
        assert_eq!(kv.get(Cf::Raft, keys::CURRENT_SNAPSHOT).unwrap(), None);

        let right = vec![(keys::LAST_APPLIED.to_vec(), encode(&at.last_log_id))];
        install_bytes(&kv, &at, stream(&at, &right)).unwrap();
        assert!(kv.get(Cf::Raft, keys::CURRENT_SNAPSHOT).unwrap().is_some());
    }

    #[test]
    fn a_row_outside_the_state_family_is_refused() {
        let kv = MemKv::new();
        let at = meta(7);
        let rows = vec![
            (keys::LAST_APPLIED.to_vec(), encode(&at.last_log_id)),
            (vec![0xff, 1], b"stray".to_vec()),
        ];
        let refused = install_bytes(&kv, &at, stream(&at, &rows));
        assert!(
            matches!(refused, Err(SnapshotError::Stream(_))),
            "{refused:?}"
        );
    }
}
