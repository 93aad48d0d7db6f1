//! The replicated state machine: applies each committed entry's ledger batch with
//! `tally_ledger::apply` and writes its changes, last-applied id and membership in one atomic
//! write; builds and installs point-in-time snapshots.
//!
//! Applied state is written `Unsynced`: the entries are already durable in the log of a quorum,
//! and a crash that loses an unsynced apply also loses its last-applied id (same atomic write, same
//! WAL), so openraft re-applies from the log. The log store's synced purge makes every earlier
//! apply durable before the entries it covers disappear.

use crate::codec::{decode, encode};
use crate::keys;
use crate::kv::{off_workers, Cf, Durability, Kv, KvError, KvRead, MemKv, WriteBatch};
use crate::ledger_state::{write_changes, KvLedger};
use crate::snapshot::{capture, read_applied, verify};
use crate::types::{
    Entry, LedgerResponse, LogId, Snapshot, SnapshotMeta, StorageError, StoredMembership,
    TypeConfig,
};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{AnyError, EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftLogId};
use serde::{Deserialize, Serialize};
use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tally_ledger::PlantedBugs;

fn sm_error(verb: ErrorVerb, e: impl std::error::Error + 'static) -> StorageError {
    openraft::StorageIOError::new(ErrorSubject::StateMachine, verb, AnyError::new(&e)).into()
}

fn snapshot_error(verb: ErrorVerb, e: impl std::error::Error + 'static) -> StorageError {
    openraft::StorageIOError::new(ErrorSubject::Snapshot(None), verb, AnyError::new(&e)).into()
}

/// The last snapshot built or installed, kept so a restarted node can still serve it.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

pub struct StateMachine<K: Kv> {
    kv: Arc<K>,
    snapshots_built: Arc<AtomicU64>,
    /// Ledger bugs planted by the simulation's checker tests; none in production.
    bugs: PlantedBugs,
    /// Bugs `apply` caught and contained since this process started (`ApplyFault`s).
    faults: Arc<AtomicU64>,
    /// Orders the writes of the current-snapshot record by builds and installs.
    record_lock: Arc<std::sync::Mutex<()>>,
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
            bugs,
            faults: Arc::new(AtomicU64::new(0)),
            record_lock: Arc::default(),
        }
    }

    /// The count of contained apply faults, shared with whoever reports it (the admin status).
    pub fn fault_counter(&self) -> Arc<AtomicU64> {
        self.faults.clone()
    }

    fn apply_entry(&self, entry: &Entry) -> Result<LedgerResponse, KvError> {
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

fn put_current_snapshot(batch: &mut WriteBatch, meta: &SnapshotMeta, data: &[u8]) {
    batch.put(
        Cf::Raft,
        keys::CURRENT_SNAPSHOT,
        encode(&StoredSnapshot {
            meta: meta.clone(),
            data: data.to_vec(),
        }),
    );
}

/// Records a snapshot this node built, unless a newer one was installed while it was being
/// built (builds run concurrently with applies and installs): a node never serves a snapshot
/// older than its state. `record_lock` orders this read-then-write against installs.
fn record_built_snapshot<K: Kv>(
    kv: &K,
    record_lock: &std::sync::Mutex<()>,
    meta: &SnapshotMeta,
    data: &[u8],
) -> Result<(), KvError> {
    let _recording = record_lock.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(bytes) = kv.get(Cf::Raft, keys::CURRENT_SNAPSHOT)? {
        let current: StoredSnapshot = decode(&bytes).map_err(|e| KvError::Corrupt {
            key: keys::CURRENT_SNAPSHOT.to_vec(),
            reason: e.to_string(),
        })?;
        if current.meta.last_log_id > meta.last_log_id {
            return Ok(());
        }
    }
    let mut batch = WriteBatch::default();
    put_current_snapshot(&mut batch, meta, data);
    kv.write(batch, Durability::Synced)
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

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let payload = verify(&data, meta.last_log_id, &meta.last_membership)
            .map_err(|e| snapshot_error(ErrorVerb::Read, e))?;
        let kv = self.kv.clone();
        let record_lock = self.record_lock.clone();
        let meta = meta.clone();
        off_workers(&*self.kv, move || -> Result<(), KvError> {
            // The snapshot's state must hold every ledger invariant, checked from scratch
            // before anything of it is stored: a bad snapshot is never installed nor served.
            let staged = MemKv::new();
            let mut rows = WriteBatch::default();
            for (key, value) in &payload.rows {
                rows.put(Cf::State, key.clone(), value.clone());
            }
            staged.write(rows, Durability::Unsynced)?;
            if let Err(violation) = tally_ledger::audit(&KvLedger::new(&staged)) {
                panic!(
                    "snapshot {} breaks a ledger invariant: {violation}",
                    meta.snapshot_id
                );
            }
            drop(staged);
            let mut batch = WriteBatch::default();
            // Every state key starts with an ASCII tag, so `[0xff]` sorts after all of them.
            batch.delete_range(Cf::State, Vec::new(), vec![0xff]);
            for (key, value) in payload.rows {
                batch.put(Cf::State, key, value);
            }
            // The state and the snapshot's record in one atomic write.
            put_current_snapshot(&mut batch, &meta, &data);
            let _recording = record_lock.lock().unwrap_or_else(|p| p.into_inner());
            kv.write(batch, Durability::Synced)
        })
        .await
        .map_err(|e| snapshot_error(ErrorVerb::Write, e))
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let Some(bytes) = self
            .kv
            .get(Cf::Raft, keys::CURRENT_SNAPSHOT)
            .map_err(|e| snapshot_error(ErrorVerb::Read, e))?
        else {
            return Ok(None);
        };
        let stored: StoredSnapshot =
            decode(&bytes).map_err(|e| snapshot_error(ErrorVerb::Read, e))?;
        Ok(Some(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
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
        let view = match &self.view {
            Ok(view) => view,
            Err(e) => return Err(snapshot_error(ErrorVerb::Read, KvError::Io(e.to_string()))),
        };
        let payload = capture(view.as_ref()).map_err(|e| snapshot_error(ErrorVerb::Read, e))?;
        let snapshot_id = match payload.last_applied {
            Some(log_id) => format!("{}-{}-{}", log_id.leader_id, log_id.index, self.sequence),
            None => format!("empty-{}", self.sequence),
        };
        let meta = SnapshotMeta {
            last_log_id: payload.last_applied,
            last_membership: payload.membership.clone(),
            snapshot_id,
        };
        let data = encode(&payload);
        let (kv, record_lock) = (self.kv.clone(), self.record_lock.clone());
        let (record_meta, record_data) = (meta.clone(), data.clone());
        off_workers(&*self.kv, move || {
            record_built_snapshot(&*kv, &record_lock, &record_meta, &record_data)
        })
        .await
        .map_err(|e| snapshot_error(ErrorVerb::Write, e))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

/// For operators and tests: the node's ledger state, read through the same view as `apply`.
pub fn ledger_view<K: Kv>(kv: &K) -> KvLedger<'_> {
    KvLedger::new(kv)
}
