//! The Raft log and vote, durable before openraft hears of them.
//!
//! Every write here is `Durability::Synced`: `save_vote` returns after the fsync, and `append`
//! calls openraft's callback only after its entries are synced (acknowledging before the sync is
//! exactly the bug of the upstream rocksdb example that this store must not have).

use crate::codec::{decode, encode};
use crate::keys;
use crate::kv::{off_workers, Cf, Durability, Kv, KvError, Order, WriteBatch};
use crate::snapshot::{read_applied, InstallState, InstallWatch};
use crate::types::{Entry, LogId, NodeId, StorageError, TypeConfig};
use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{AnyError, ErrorSubject, ErrorVerb, OptionalSend, RaftLogId, Vote};
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;
use std::time::Duration;

/// Test-only fault switch (planted bugs must be found by the tests that guard against them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFault {
    #[default]
    None,
    /// Acknowledge appends before they are durable.
    AckBeforeSync,
}

/// Extra time each synced write takes (a slow disk, in simulations); none in production.
pub type DiskLatency = Arc<dyn Fn() -> Duration + Send + Sync>;

pub struct LogStore<K: Kv> {
    kv: Arc<K>,
    fault: LogFault,
    disk_latency: Option<DiskLatency>,
    /// How long a purge waits for the state machine to reach the purge point (`purge`).
    purge_wait_ms_max: u64,
    /// Shared with the state machine: once it begins receiving a snapshot, a purge past the
    /// applied state waits for the install (`wait_until_applied`).
    installs: InstallWatch,
}

/// The default of `LogStore::purge_wait_ms_max`: the default snapshot chunk deadline, which an
/// install must beat anyway.
pub const PURGE_WAIT_MS_MAX_DEFAULT: u64 = 600_000;
const PURGE_POLL_MS: u64 = 5;

impl<K: Kv> Clone for LogStore<K> {
    fn clone(&self) -> Self {
        LogStore {
            kv: self.kv.clone(),
            fault: self.fault,
            disk_latency: self.disk_latency.clone(),
            purge_wait_ms_max: self.purge_wait_ms_max,
            installs: self.installs.clone(),
        }
    }
}

fn storage_error(
    subject: ErrorSubject<NodeId>,
    verb: ErrorVerb,
    e: impl std::error::Error + 'static,
) -> StorageError {
    openraft::StorageIOError::new(subject, verb, AnyError::new(&e)).into()
}

fn corrupt(key: &[u8], e: impl std::fmt::Display) -> KvError {
    KvError::Corrupt {
        key: key.to_vec(),
        reason: e.to_string(),
    }
}

impl<K: Kv> LogStore<K> {
    pub fn new(kv: Arc<K>) -> Self {
        Self::with_fault(kv, LogFault::None)
    }

    /// Plants a durability bug; for tests that prove the checks find it.
    pub fn with_fault(kv: Arc<K>, fault: LogFault) -> Self {
        LogStore {
            kv,
            fault,
            disk_latency: None,
            purge_wait_ms_max: PURGE_WAIT_MS_MAX_DEFAULT,
            installs: InstallWatch::default(),
        }
    }

    /// Couples purges to snapshot installs: `installs` is the state machine's
    /// `StateMachine::install_watch`, and a purge waits at most `purge_wait_ms_max` for an
    /// install to reach the purge point.
    pub fn with_snapshot_installs(
        mut self,
        installs: InstallWatch,
        purge_wait_ms_max: u64,
    ) -> Self {
        self.installs = installs;
        self.purge_wait_ms_max = purge_wait_ms_max;
        self
    }

    /// Waits until the state machine has applied `log_id`. openraft 0.9 purges the log as soon
    /// as it hands a received snapshot to the state machine, without waiting for the install:
    /// a crash in between would leave a node whose log starts after its state, which openraft
    /// refuses to start (`purge_upto <= committed`), for good. Waiting here closes that window;
    /// every other purge is behind the applied state already and does not wait.
    async fn wait_until_applied(&self, log_id: &LogId) -> Result<(), KvError> {
        if self.installs.state() == InstallState::Idle {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + Duration::from_millis(self.purge_wait_ms_max);
        loop {
            let (applied, _) = read_applied(&*self.kv)?;
            if applied.is_some_and(|applied| applied.index >= log_id.index) {
                return Ok(());
            }
            if self.installs.state() == InstallState::Failed {
                return Err(KvError::Io(format!(
                    "purging the log up to {log_id} would leave the state machine (applied up \
                     to {applied:?}) behind it, and the snapshot install that was to reach it failed"
                )));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(KvError::Io(format!(
                    "purging the log up to {log_id} would leave the state machine (applied up \
                     to {applied:?}) behind it, and no snapshot install reached it within {} ms",
                    self.purge_wait_ms_max
                )));
            }
            tokio::time::sleep(Duration::from_millis(PURGE_POLL_MS)).await;
        }
    }

    /// Slows every synced write by what `latency` answers (simulated slow disks).
    pub fn with_disk_latency(mut self, latency: Option<DiskLatency>) -> Self {
        self.disk_latency = latency;
        self
    }

    /// Writes `batch`. An fsync blocks its thread for milliseconds: on a store that does real
    /// I/O it runs on tokio's blocking pool, never on the workers that carry heartbeats.
    async fn write(&self, batch: WriteBatch, durability: Durability) -> Result<(), KvError> {
        if durability == Durability::Synced {
            if let Some(latency) = &self.disk_latency {
                let extra = latency();
                if !extra.is_zero() {
                    tokio::time::sleep(extra).await;
                }
            }
        }
        let kv = self.kv.clone();
        off_workers(&*self.kv, move || kv.write(batch, durability)).await
    }

    fn get_raft<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, KvError> {
        match self.kv.get(Cf::Raft, key)? {
            None => Ok(None),
            Some(bytes) => decode(&bytes).map(Some).map_err(|e| corrupt(key, e)),
        }
    }

    fn last_entry_log_id(&self) -> Result<Option<LogId>, KvError> {
        let last = self.kv.range(Cf::Log, &[], None, Order::Descending, 1)?;
        match last.first() {
            None => Ok(None),
            Some((key, value)) => {
                let entry: Entry = decode(value).map_err(|e| corrupt(key, e))?;
                Ok(Some(*entry.get_log_id()))
            }
        }
    }

    fn entries(&self, start: u64, end: Option<u64>) -> Result<Vec<Entry>, KvError> {
        let end_key = end.map(keys::log_index);
        let rows = self.kv.range(
            Cf::Log,
            &keys::log_index(start),
            end_key.as_deref(),
            Order::Ascending,
            usize::MAX,
        )?;
        let mut entries = Vec::with_capacity(rows.len());
        for (key, value) in rows {
            let entry: Entry = decode(&value).map_err(|e| corrupt(&key, e))?;
            assert_eq!(
                entry.get_log_id().index,
                keys::log_index_of(&key),
                "log entry stored under a wrong index"
            );
            entries.push(entry);
        }
        Ok(entries)
    }
}

impl<K: Kv> RaftLogReader<TypeConfig> for LogStore<K> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i + 1,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&i) => Some(i + 1),
            Bound::Excluded(&i) => Some(i),
            Bound::Unbounded => None,
        };
        self.entries(start, end)
            .map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Read, e))
    }
}

impl<K: Kv> RaftLogStorage<TypeConfig> for LogStore<K> {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let read = |e| storage_error(ErrorSubject::Logs, ErrorVerb::Read, e);
        let last_purged_log_id: Option<LogId> = self.get_raft(keys::LAST_PURGED).map_err(read)?;
        let last_log_id = self
            .last_entry_log_id()
            .map_err(read)?
            .or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        batch.put(Cf::Raft, keys::VOTE, encode(vote));
        self.write(batch, Durability::Synced)
            .await
            .map_err(|e| storage_error(ErrorSubject::Vote, ErrorVerb::Write, e))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        self.get_raft(keys::VOTE)
            .map_err(|e| storage_error(ErrorSubject::Vote, ErrorVerb::Read, e))
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        // Only an optimisation on restart (apply up to here without waiting for the leader), so it
        // rides along with the next synced write.
        let mut batch = WriteBatch::default();
        batch.put(Cf::Raft, keys::COMMITTED, encode(&committed));
        self.kv
            .write(batch, Durability::Unsynced)
            .map_err(|e| storage_error(ErrorSubject::Store, ErrorVerb::Write, e))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self
            .get_raft::<Option<LogId>>(keys::COMMITTED)
            .map_err(|e| storage_error(ErrorSubject::Store, ErrorVerb::Read, e))?
            .flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = WriteBatch::default();
        for entry in entries {
            batch.put(
                Cf::Log,
                keys::log_index(entry.get_log_id().index),
                encode(&entry),
            );
        }
        let durability = match self.fault {
            LogFault::None => Durability::Synced,
            LogFault::AckBeforeSync => Durability::Unsynced,
        };
        match self.write(batch, durability).await {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(storage_error(ErrorSubject::Logs, ErrorVerb::Write, e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        // Log keys are 8 bytes; a 9-byte key of 0xff sorts after all of them.
        batch.delete_range(Cf::Log, keys::log_index(log_id.index), vec![0xff; 9]);
        self.write(batch, Durability::Synced)
            .await
            .map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.wait_until_applied(&log_id)
            .await
            .map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
        // Synced: this also makes every state-machine write before it durable (one WAL), so the
        // state machine can never fall behind the purge point after a crash.
        let mut batch = WriteBatch::default();
        batch.put(Cf::Raft, keys::LAST_PURGED, encode(&log_id));
        batch.delete_range(
            Cf::Log,
            keys::log_index(0),
            keys::log_index(log_id.index + 1),
        );
        self.write(batch, Durability::Synced)
            .await
            .map_err(|e| storage_error(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }
}
