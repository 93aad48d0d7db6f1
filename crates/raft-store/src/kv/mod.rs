//! The small key-value interface every Tally node stores through: RocksDB in production, an
//! in-memory model in simulation. Three column families: the Raft log, Raft metadata (vote,
//! purge point, current snapshot) and the state machine (ledger rows, last-applied, membership).
//!
//! Durability contract, shared by both backends and relied on by the log store and the state
//! machine: a write with `Durability::Synced` is on stable storage when `write` returns, and so is
//! every write issued before it (one write-ahead log per store). An `Unsynced` write is visible at
//! once but may be lost by a crash until a later synced write.

mod mem;
#[cfg(feature = "rocksdb")]
mod rocks;
#[cfg(feature = "rocksdb")]
mod rocks_stage;

pub use mem::MemKv;
#[cfg(feature = "rocksdb")]
pub use rocks::{RocksKv, SNAPSHOTS_DIR};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cf {
    Log,
    Raft,
    State,
}

impl Cf {
    pub const ALL: [Cf; 3] = [Cf::Log, Cf::Raft, Cf::State];

    pub fn name(self) -> &'static str {
        match self {
            Cf::Log => "log",
            Cf::Raft => "raft",
            Cf::State => "state",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    Synced,
    Unsynced,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    Ascending,
    Descending,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOp {
    Put {
        cf: Cf,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        cf: Cf,
        key: Vec<u8>,
    },
    /// Deletes `start <= key < end`.
    DeleteRange {
        cf: Cf,
        start: Vec<u8>,
        end: Vec<u8>,
    },
}

/// Writes applied atomically: all or none survive a crash.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteBatch {
    pub ops: Vec<WriteOp>,
}

impl WriteBatch {
    pub fn put(&mut self, cf: Cf, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(WriteOp::Put {
            cf,
            key: key.into(),
            value: value.into(),
        });
    }

    pub fn delete(&mut self, cf: Cf, key: impl Into<Vec<u8>>) {
        self.ops.push(WriteOp::Delete {
            cf,
            key: key.into(),
        });
    }

    pub fn delete_range(&mut self, cf: Cf, start: impl Into<Vec<u8>>, end: impl Into<Vec<u8>>) {
        self.ops.push(WriteOp::DeleteRange {
            cf,
            start: start.into(),
            end: end.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Key-value pairs in key order.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error("storage I/O failed: {0}")]
    Io(String),
    #[error("stored value under {key:?} cannot be read: {reason}")]
    Corrupt { key: Vec<u8>, reason: String },
}

/// A consistent read view.
pub trait KvRead: Send + Sync {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, KvError>;
    /// Pairs with `start <= key < end` (no upper bound when `end` is `None`), in `order`, at most
    /// `limit`.
    fn range(
        &self,
        cf: Cf,
        start: &[u8],
        end: Option<&[u8]>,
        order: Order,
        limit: usize,
    ) -> Result<Pairs, KvError>;
}

/// One row of a store family: key, value.
pub type Row = (Vec<u8>, Vec<u8>);

/// Rows for [`Kv::stage_state`], in strictly ascending key order, pulled until `Ok(None)`.
pub type RowSource<'a> = dyn FnMut() -> Result<Option<Row>, KvError> + 'a;

/// Every state key starts with an ASCII tag, so this sorts after all of them: `[] .. STATE_END`
/// is the whole `State` family.
pub const STATE_END: &[u8] = &[0xff];

/// A whole `State` family staged beside the live one (a snapshot being installed), readable but
/// invisible to everyone else until committed. Dropping it discards it.
pub trait StagedState {
    /// The staged rows as the `State` family (every other family reads empty).
    fn view(&self) -> &dyn KvRead;
    /// Replaces the live `State` family with the staged rows. `before` is made durable first
    /// and `after` last; a crash in between leaves `before` durable and the state undefined, so
    /// `before` must record how to redo the replacement (the install marker does) and `after`
    /// must clear that record.
    fn commit(self: Box<Self>, before: WriteBatch, after: WriteBatch) -> Result<(), KvError>;
}

/// A store: reads, atomic batch writes, and point-in-time views.
pub trait Kv: KvRead + 'static {
    fn write(&self, batch: WriteBatch, durability: Durability) -> Result<(), KvError>;
    /// A view frozen at this moment, unaffected by later writes (snapshots, backups).
    fn frozen_view(&self) -> Result<Box<dyn KvRead>, KvError>;
    /// A cheap point-in-time view for one read request (a RocksDB snapshot: no copy, no I/O).
    /// Every read through it sees the same state, however many keys it reads, while applies
    /// go on: a multi-account read never sees half a batch.
    fn snapshot_view(&self) -> Box<dyn KvRead + '_>;
    /// Whether a write may block its thread on real I/O (an fsync): callers on async workers
    /// then move it to a blocking thread. The in-memory store never blocks.
    fn blocking_io(&self) -> bool {
        false
    }
    /// Writes a consistent copy of the store to `target` (which must not exist) and returns a
    /// read view of the copy.
    fn backup(&self, target: &std::path::Path) -> Result<Box<dyn KvRead>, KvError>;
    /// Where snapshots are kept as files, or `None` to keep them in memory (the in-memory store:
    /// its whole state is in memory anyway).
    fn snapshot_dir(&self) -> Option<&std::path::Path> {
        None
    }
    /// Stages `rows` as a complete `State` family without touching the live one, holding at
    /// most a bounded number of rows in memory (RocksDB: sorted table files on disk).
    fn stage_state(&self, rows: &mut RowSource<'_>) -> Result<Box<dyn StagedState + '_>, KvError>;
}

/// Runs `io` (writes with fsyncs, audits, checkpoints) off tokio's async workers when `kv` does
/// real I/O, so a slow disk never delays the heartbeats those workers carry. A panic in `io`
/// resumes in the caller, as if it had run inline.
pub async fn off_workers<K: Kv + ?Sized, T: Send + 'static>(
    kv: &K,
    io: impl FnOnce() -> T + Send + 'static,
) -> T {
    if !kv.blocking_io() {
        return io();
    }
    match tokio::task::spawn_blocking(io).await {
        Ok(value) => value,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(error) => panic!("a blocking I/O task was cancelled: {error}"),
    }
}
