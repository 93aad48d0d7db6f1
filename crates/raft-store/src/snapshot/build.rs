//! Building a snapshot: pages of rows from a frozen view (a RocksDB checkpoint on a RocksDB
//! node) streamed into a file, fsynced, renamed into place and recorded, unless a newer
//! snapshot was recorded meanwhile. Runs on a blocking thread, concurrently with applies.

use super::record::{current_record, file_name, put_record, SnapshotBody, SnapshotRecord};
use super::stream::{SnapshotHeader, SnapshotWriter};
use super::{read_applied, SnapshotError};
use crate::kv::{Cf, Durability, Kv, KvRead, Order, WriteBatch};
use crate::types::SnapshotMeta;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Rows read per page while building a snapshot.
const SNAPSHOT_PAGE_ROWS_MAX: usize = 4_096;
/// The write buffer in front of a snapshot file.
const FILE_BUFFER_BYTES: usize = 1024 * 1024;

/// A built snapshot's bytes, for openraft to send.
pub enum Built {
    Memory(Vec<u8>),
    /// Open for reading (it may already be unlinked if a newer snapshot was recorded).
    File(std::fs::File, PathBuf),
}

/// Streams every state row of `view` into `writer`, page by page.
fn write_rows<W: Write>(
    view: &dyn KvRead,
    writer: &mut SnapshotWriter<W>,
    path: &Path,
) -> Result<(), SnapshotError> {
    let mut start = Vec::new();
    loop {
        let page = view.range(
            Cf::State,
            &start,
            None,
            Order::Ascending,
            SNAPSHOT_PAGE_ROWS_MAX,
        )?;
        let full = page.len() == SNAPSHOT_PAGE_ROWS_MAX;
        for (key, value) in &page {
            writer
                .row(key, value)
                .map_err(|e| SnapshotError::file(path, e))?;
        }
        match page.last() {
            Some((last, _)) if full => {
                start = last.clone();
                start.push(0);
            }
            _ => return Ok(()),
        }
    }
}

/// Builds the snapshot of `view` (the applied id and membership come from the same view as the
/// rows, so a snapshot is never ahead of or behind its metadata) and records it.
/// `record_lock` orders recording against installs: a node never records a snapshot older than
/// the one it has.
pub fn build<K: Kv>(
    kv: &K,
    view: &dyn KvRead,
    sequence: u64,
    record_lock: &Mutex<()>,
) -> Result<(SnapshotMeta, Built), SnapshotError> {
    let (last_applied, membership) = read_applied(view)?;
    let snapshot_id = match last_applied {
        Some(log_id) => format!("{}-{}-{}", log_id.leader_id, log_id.index, sequence),
        None => format!("empty-{sequence}"),
    };
    let meta = SnapshotMeta {
        last_log_id: last_applied,
        last_membership: membership.clone(),
        snapshot_id,
    };
    let header = SnapshotHeader {
        last_applied,
        membership,
    };
    match kv.snapshot_dir() {
        None => {
            let mut writer =
                SnapshotWriter::new(Vec::new(), &header).expect("writing into memory cannot fail");
            write_rows(view, &mut writer, Path::new("memory"))?;
            let (bytes, _, _) = writer.finish().expect("writing into memory cannot fail");
            record_if_newest(
                kv,
                record_lock,
                SnapshotRecord {
                    meta: meta.clone(),
                    body: SnapshotBody::Inline(bytes.clone()),
                },
            )?;
            Ok((meta, Built::Memory(bytes)))
        }
        Some(dir) => {
            let part = dir.join(format!("build-{sequence}.part"));
            let file = std::fs::File::create(&part).map_err(|e| SnapshotError::file(&part, e))?;
            let mut writer =
                SnapshotWriter::new(BufWriter::with_capacity(FILE_BUFFER_BYTES, file), &header)
                    .map_err(|e| SnapshotError::file(&part, e))?;
            write_rows(view, &mut writer, &part)?;
            let (buffered, _, _) = writer.finish().map_err(|e| SnapshotError::file(&part, e))?;
            let file = buffered
                .into_inner()
                .map_err(|e| SnapshotError::file(&part, e.into_error()))?;
            file.sync_all().map_err(|e| SnapshotError::file(&part, e))?;
            let bytes = file
                .metadata()
                .map_err(|e| SnapshotError::file(&part, e))?
                .len();
            let name = file_name("built", &meta.snapshot_id);
            let path = dir.join(&name);
            let reader = std::fs::File::open(&part).map_err(|e| SnapshotError::file(&part, e))?;
            let _recording = record_lock.lock().unwrap_or_else(|p| p.into_inner());
            let previous = current_record(kv)?;
            if supersedes(previous.as_ref(), &meta) {
                // Still sent if openraft asks (the open handle keeps it readable), never served
                // after this.
                std::fs::remove_file(&part).map_err(|e| SnapshotError::file(&part, e))?;
                return Ok((meta, Built::File(reader, part)));
            }
            std::fs::rename(&part, &path).map_err(|e| SnapshotError::file(&path, e))?;
            sync_dir(dir)?;
            let mut batch = WriteBatch::default();
            put_record(
                &mut batch,
                &SnapshotRecord {
                    meta: meta.clone(),
                    body: SnapshotBody::File {
                        name: name.clone(),
                        bytes,
                    },
                },
            );
            kv.write(batch, Durability::Synced)?;
            remove_replaced(dir, previous, &name);
            Ok((meta, Built::File(reader, path)))
        }
    }
}

/// Records `record` unless a newer snapshot is already recorded.
fn record_if_newest<K: Kv>(
    kv: &K,
    record_lock: &Mutex<()>,
    record: SnapshotRecord,
) -> Result<(), SnapshotError> {
    let _recording = record_lock.lock().unwrap_or_else(|p| p.into_inner());
    if supersedes(current_record(kv)?.as_ref(), &record.meta) {
        return Ok(());
    }
    let mut batch = WriteBatch::default();
    put_record(&mut batch, &record);
    kv.write(batch, Durability::Synced)?;
    Ok(())
}

/// Whether the recorded snapshot is newer than one at `meta`, which must then not replace it.
fn supersedes(recorded: Option<&SnapshotRecord>, meta: &SnapshotMeta) -> bool {
    recorded.is_some_and(|current| current.meta.last_log_id > meta.last_log_id)
}

/// Makes a rename in `dir` durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), SnapshotError> {
    std::fs::File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(|e| SnapshotError::file(dir, e))
}

/// Removes the file of the record just replaced (a send still reading it keeps its handle).
pub(super) fn remove_replaced(dir: &Path, previous: Option<SnapshotRecord>, kept: &str) {
    if let Some(SnapshotRecord {
        body: SnapshotBody::File { name, .. },
        ..
    }) = previous
    {
        if name != kept {
            let path = dir.join(&name);
            if let Err(e) = std::fs::remove_file(&path) {
                tracing::warn!(file = %path.display(), error = %e, "could not remove a replaced snapshot");
            }
        }
    }
}
