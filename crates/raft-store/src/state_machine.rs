//! The replicated state machine: applies each committed entry's ledger batch with
//! `tally_ledger::apply` and writes its changes, last-applied id and membership in one atomic
//! write; builds and installs point-in-time snapshots.
//!
//! Applied state is written `Unsynced`: the entries are already durable in the log of a quorum,
//! and a crash that loses an unsynced apply also loses its last-applied id (same atomic write, same
//! WAL), so openraft re-applies from the log. The log store's synced purge makes every earlier
//! apply durable before the entries it covers disappear.

use crate::codec::encode;
use crate::keys;
use crate::kv::{off_workers, Cf, Durability, Kv, KvError, KvRead, WriteBatch};
use crate::ledger_state::{write_changes, KvLedger};
use crate::snapshot::{
    self, current_record, read_applied, InstallWatch, Received, SnapshotBody, SnapshotData,
    SnapshotError,
};
use crate::types::{
    Entry, LedgerResponse, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership,
    TypeConfig,
};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{AnyError, EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftLogId};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tally_ledger::PlantedBugs;
use tokio::io::AsyncWriteExt;

fn sm_error(verb: ErrorVerb, e: impl std::error::Error + 'static) -> StorageError {
    openraft::StorageIOError::new(ErrorSubject::StateMachine, verb, AnyError::new(&e)).into()
}

fn snapshot_error(verb: ErrorVerb, e: impl std::error::Error + 'static) -> StorageError {
    openraft::StorageIOError::new(ErrorSubject::Snapshot(None), verb, AnyError::new(&e)).into()
}

pub struct StateMachine<K: Kv> {
    kv: Arc<K>,
    snapshots_built: Arc<AtomicU64>,
    snapshots_received: AtomicU64,
    /// Ledger bugs planted by the simulation's checker tests; none in production.
    bugs: PlantedBugs,
    /// Bugs `apply` caught and contained since this process started (`ApplyFault`s).
    faults: Arc<AtomicU64>,
    /// Orders the writes of the current-snapshot record by builds and installs.
    record_lock: Arc<std::sync::Mutex<()>>,
    /// The file of the snapshot being received, if any: removed when another receive begins
    /// (openraft receives one snapshot at a time, so the older one was abandoned).
    receiving: Option<PathBuf>,
    /// Told when a snapshot receive begins and when an install fails; shared with the log
    /// store (`LogStore::purge`).
    installs: InstallWatch,
}

impl<K: Kv> StateMachine<K> {
    pub fn new(kv: Arc<K>) -> Self {
        Self::with_bugs(kv, PlantedBugs::NONE)
    }

    /// A state machine whose ledger has `bugs` planted (tests that prove checkers find them).
    pub fn with_bugs(kv: Arc<K>, bugs: PlantedBugs) -> Self {
        StateMachine {
            kv,
            snapshots_built: Arc::new(AtomicU64::new(0)),
            snapshots_received: AtomicU64::new(0),
            bugs,
            faults: Arc::new(AtomicU64::new(0)),
            record_lock: Arc::default(),
            receiving: None,
            installs: InstallWatch::default(),
        }
    }

    /// What the log store's purges look at (`LogStore::with_snapshot_installs`).
    pub fn install_watch(&self) -> InstallWatch {
        self.installs.clone()
    }

    /// The count of contained apply faults, shared with whoever reports it (the admin status).
    pub fn fault_counter(&self) -> Arc<AtomicU64> {
        self.faults.clone()
    }

    pub(crate) fn apply_entry(&self, entry: &Entry) -> Result<LedgerResponse, KvError> {
        let log_id = *entry.get_log_id();
        let mut batch = WriteBatch::default();
        let response = match &entry.payload {
            EntryPayload::Blank => LedgerResponse::NoOp,
            EntryPayload::Normal(request) => {
                let ledger = KvLedger::new(&*self.kv);
                match tally_ledger::apply_with_bugs(
                    &ledger,
                    &request.commands,
                    request.timestamp_ns,
                    self.bugs,
                ) {
                    Ok(applied) => {
                        for fault in &applied.faults {
                            // Every replica hits the same bug at the same command: loud, counted,
                            // and contained to that command.
                            tracing::error!(
                                index = log_id.index,
                                step = %fault.step,
                                message = %fault.message,
                                "BUG: a ledger command panicked in apply; it was rolled back and answered internal_error"
                            );
                            self.faults.fetch_add(1, Ordering::Relaxed);
                        }
                        write_changes(&applied.changes, &mut batch);
                        LedgerResponse::Applied {
                            results: applied.results,
                        }
                    }
                    Err(refusal) => LedgerResponse::Refused {
                        code: refusal.code().to_owned(),
                        message: refusal.to_string(),
                    },
                }
            }
            EntryPayload::Membership(membership) => {
                let stored = StoredMembership::new(Some(log_id), membership.clone());
                batch.put(Cf::State, keys::MEMBERSHIP, encode(&stored));
                LedgerResponse::NoOp
            }
        };
        batch.put(Cf::State, keys::LAST_APPLIED, encode(&Some(log_id)));
        self.kv.write(batch, Durability::Unsynced)?;
        Ok(response)
    }
}

impl<K: Kv> RaftStateMachine<TypeConfig> for StateMachine<K> {
    type SnapshotBuilder = SnapshotBuilder<K>;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        read_applied(&*self.kv).map_err(|e| sm_error(ErrorVerb::Read, e))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<LedgerResponse>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // One reply per entry, blank and membership entries included; each entry's write lands
        // before the next entry reads.
        let mut replies = Vec::new();
        for entry in entries {
            let reply = self
                .apply_entry(&entry)
                .map_err(|e| sm_error(ErrorVerb::Write, e))?;
            replies.push(reply);
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // Runs between applies: freezing the view here pins the snapshot to exactly the applied
        // state of this moment, while `build_snapshot` later runs concurrently with new applies.
        SnapshotBuilder {
            kv: self.kv.clone(),
            view: self.kv.frozen_view(),
            sequence: self.snapshots_built.fetch_add(1, Ordering::Relaxed),
            record_lock: self.record_lock.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapshotData>, StorageError> {
        self.installs.receiving();
        let Some(dir) = self.kv.snapshot_dir() else {
            return Ok(Box::new(SnapshotData::memory(Vec::new())));
        };
        if let Some(abandoned) = self.receiving.take() {
            // Already gone when its install renamed it.
            let _ = tokio::fs::remove_file(&abandoned).await;
        }
        let sequence = self.snapshots_received.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("receive-{sequence}.part"));
        let file = tokio::fs::File::create(&path)
            .await
            .map_err(|e| snapshot_error(ErrorVerb::Write, SnapshotError::file(&path, e)))?;
        self.receiving = Some(path.clone());
        Ok(Box::new(SnapshotData::File { file, path }))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        data: Box<SnapshotData>,
    ) -> Result<(), StorageError> {
        let received = match *data {
            SnapshotData::Memory(cursor) => Received::Memory(cursor.into_inner()),
            SnapshotData::File { mut file, path } => {
                let synced = async {
                    file.flush().await?;
                    file.sync_all().await
                };
                synced
                    .await
                    .map_err(|e| snapshot_error(ErrorVerb::Write, SnapshotError::file(&path, e)))?;
                Received::File(path)
            }
        };
        let kv = self.kv.clone();
        let record_lock = self.record_lock.clone();
        let meta = meta.clone();
        let result = off_workers(&*self.kv, move || {
            snapshot::install(&*kv, &meta, received, &record_lock)
        })
        .await;
        self.receiving = None;
        if result.is_err() {
            self.installs.failed();
        }
        result.map_err(|e| snapshot_error(ErrorVerb::Write, e))
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        // Under `record_lock`, so a build or install cannot replace the record and remove its
        // file between reading one and opening the other. An open handle keeps the file
        // readable after that.
        let opened = {
            let _recording = self.record_lock.lock().unwrap_or_else(|p| p.into_inner());
            let Some(record) =
                current_record(&*self.kv).map_err(|e| snapshot_error(ErrorVerb::Read, e))?
            else {
                return Ok(None);
            };
            let data = match (record.body, self.kv.snapshot_dir()) {
                (SnapshotBody::Inline(bytes), _) => SnapshotData::memory(bytes),
                (SnapshotBody::File { name, .. }, Some(dir)) => {
                    let path = dir.join(name);
                    let file = std::fs::File::open(&path).map_err(|e| {
                        snapshot_error(ErrorVerb::Read, SnapshotError::file(&path, e))
                    })?;
                    SnapshotData::File {
                        file: tokio::fs::File::from_std(file),
                        path,
                    }
                }
                (SnapshotBody::File { name, .. }, None) => {
                    return Err(snapshot_error(
                        ErrorVerb::Read,
                        KvError::Io(format!(
                            "snapshot file {name} recorded by a store without files"
                        )),
                    ))
                }
            };
            (record.meta, data)
        };
        Ok(Some(Snapshot {
            meta: opened.0,
            snapshot: Box::new(opened.1),
        }))
    }
}

pub struct SnapshotBuilder<K: Kv> {
    kv: Arc<K>,
    view: Result<Box<dyn KvRead>, KvError>,
    sequence: u64,
    record_lock: Arc<std::sync::Mutex<()>>,
}

impl<K: Kv> RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder<K> {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let view = match std::mem::replace(&mut self.view, Err(KvError::Io("built".into()))) {
            Ok(view) => view,
            Err(e) => return Err(snapshot_error(ErrorVerb::Read, e)),
        };
        let (kv, record_lock, sequence) =
            (self.kv.clone(), self.record_lock.clone(), self.sequence);
        let (meta, built) = off_workers(&*self.kv, move || {
            snapshot::build(&*kv, view.as_ref(), sequence, &record_lock)
        })
        .await
        .map_err(|e| snapshot_error(ErrorVerb::Write, e))?;
        let data = match built {
            snapshot::Built::Memory(bytes) => SnapshotData::memory(bytes),
            snapshot::Built::File(file, path) => SnapshotData::File {
                file: tokio::fs::File::from_std(file),
                path,
            },
        };
        Ok(Snapshot {
            meta,
            snapshot: Box::new(data),
        })
    }
}

/// For operators and tests: the node's ledger state, read through the same view as `apply`.
pub fn ledger_view<K: Kv>(kv: &K) -> KvLedger<'_> {
    KvLedger::new(kv)
}
