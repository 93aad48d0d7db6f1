//! The production store: one RocksDB database per node, one column family per `Cf`.

use super::rocks_stage::{self, STAGING_DIR};
use super::{
    Cf, Durability, Kv, KvError, KvRead, Order, Pairs, RowSource, StagedState, WriteBatch, WriteOp,
};
use rocksdb::{checkpoint::Checkpoint, ColumnFamilyDescriptor, Options, WriteOptions, DB};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Frozen views are RocksDB checkpoints (hard links, so cheap and consistent) opened read-only
/// under this directory; each is removed when its view is dropped.
const VIEWS_DIR: &str = "views";
const DB_DIR: &str = "db";
/// Snapshot files (`snapshot::files`): built, received and current snapshots.
pub const SNAPSHOTS_DIR: &str = "snapshots";
const WRITE_BUFFER_BYTES: usize = 128 * 1024 * 1024;

pub struct RocksKv {
    db: DB,
    dir: PathBuf,
    snapshots: PathBuf,
    next_view: AtomicU64,
}

pub(super) fn io(e: impl std::fmt::Display) -> KvError {
    KvError::Io(e.to_string())
}

pub(super) fn options() -> Options {
    let mut options = Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    options.set_compression_type(rocksdb::DBCompressionType::Lz4);
    options
}

/// The log is written once and purged soon after: compressing it only costs CPU. Larger
/// memtables mean fewer flushes and compactions under sustained writes.
pub(super) fn family_options(cf: Cf) -> Options {
    let mut options = options();
    options.set_write_buffer_size(WRITE_BUFFER_BYTES);
    // Fewer, larger compactions under a sustained write load.
    options.set_level_zero_file_num_compaction_trigger(8);
    match cf {
        Cf::Log => options.set_compression_type(rocksdb::DBCompressionType::None),
        Cf::State => {
            // Most point reads on the write path are misses (is this transfer id new?): a bloom
            // filter answers them without touching data blocks.
            let mut table = rocksdb::BlockBasedOptions::default();
            table.set_bloom_filter(10.0, false);
            options.set_block_based_table_factory(&table);
            // The same for the memtable, where a miss otherwise walks the skip list.
            options.set_memtable_prefix_bloom_ratio(0.05);
            options.set_memtable_whole_key_filtering(true);
        }
        Cf::Raft => {}
    }
    options
}

impl RocksKv {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, KvError> {
        std::fs::create_dir_all(dir).map_err(io)?;
        // Views of a previous process are stale: their readers are gone.
        let views = dir.join(VIEWS_DIR);
        if views.exists() {
            std::fs::remove_dir_all(&views).map_err(io)?;
        }
        std::fs::create_dir_all(&views).map_err(io)?;
        // A staged install of a previous process is redone from its snapshot file, if at all.
        let staging = dir.join(STAGING_DIR);
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(io)?;
        }
        let snapshots = dir.join(SNAPSHOTS_DIR);
        std::fs::create_dir_all(&snapshots).map_err(io)?;
        let families = Cf::ALL.map(|cf| ColumnFamilyDescriptor::new(cf.name(), family_options(cf)));
        let db = DB::open_cf_descriptors(&options(), dir.join(DB_DIR), families).map_err(io)?;
        Ok(RocksKv {
            db,
            dir: dir.to_path_buf(),
            snapshots,
            next_view: AtomicU64::new(0),
        })
    }

    /// Opens a backup (or any data dir) read-only, without touching it.
    pub fn open_read_only(dir: &Path) -> Result<Box<dyn KvRead>, KvError> {
        let names = Cf::ALL.map(|cf| cf.name());
        let db =
            DB::open_cf_for_read_only(&options(), dir.join(DB_DIR), names, false).map_err(io)?;
        Ok(Box::new(RocksView {
            db: Some(db),
            dir: dir.to_path_buf(),
            remove_on_drop: false,
        }))
    }

    pub(super) fn handle(&self, cf: Cf) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(cf.name())
            .expect("every column family is created on open")
    }

    pub(super) fn db(&self) -> &DB {
        &self.db
    }

    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(super) fn next_id(&self) -> u64 {
        self.next_view.fetch_add(1, Ordering::Relaxed)
    }
}

impl KvRead for RocksKv {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        self.db.get_cf(self.handle(cf), key).map_err(io)
    }

    fn range(
        &self,
        cf: Cf,
        start: &[u8],
        end: Option<&[u8]>,
        order: Order,
        limit: usize,
    ) -> Result<Pairs, KvError> {
        range_of(
            self.db.raw_iterator_cf(self.handle(cf)),
            start,
            end,
            order,
            limit,
        )
    }
}

/// One read request's view: a RocksDB snapshot of the live database.
struct RocksSnapshot<'a> {
    kv: &'a RocksKv,
    snapshot: rocksdb::SnapshotWithThreadMode<'a, DB>,
}

impl KvRead for RocksSnapshot<'_> {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        self.snapshot.get_cf(self.kv.handle(cf), key).map_err(io)
    }

    fn range(
        &self,
        cf: Cf,
        start: &[u8],
        end: Option<&[u8]>,
        order: Order,
        limit: usize,
    ) -> Result<Pairs, KvError> {
        let iter = self.snapshot.raw_iterator_cf(self.kv.handle(cf));
        range_of(iter, start, end, order, limit)
    }
}

pub(super) fn range_of(
    mut iter: rocksdb::DBRawIteratorWithThreadMode<'_, DB>,
    start: &[u8],
    end: Option<&[u8]>,
    order: Order,
    limit: usize,
) -> Result<Pairs, KvError> {
    let mut out = Vec::new();
    match order {
        Order::Ascending => {
            iter.seek(start);
            while out.len() < limit && iter.valid() {
                let key = iter.key().expect("valid iterator has a key");
                if end.is_some_and(|end| key >= end) {
                    break;
                }
                out.push((
                    key.to_vec(),
                    iter.value().expect("valid iterator has a value").to_vec(),
                ));
                iter.next();
            }
        }
        Order::Descending => {
            match end {
                Some(end) => {
                    iter.seek_for_prev(end);
                    if iter.valid() && iter.key() == Some(end) {
                        iter.prev();
                    }
                }
                None => iter.seek_to_last(),
            }
            while out.len() < limit && iter.valid() {
                let key = iter.key().expect("valid iterator has a key");
                if key < start {
                    break;
                }
                out.push((
                    key.to_vec(),
                    iter.value().expect("valid iterator has a value").to_vec(),
                ));
                iter.prev();
            }
        }
    }
    iter.status().map_err(io)?;
    Ok(out)
}

impl Kv for RocksKv {
    fn write(&self, batch: WriteBatch, durability: Durability) -> Result<(), KvError> {
        let mut rocks_batch = rocksdb::WriteBatch::default();
        for op in batch.ops {
            match op {
                WriteOp::Put { cf, key, value } => rocks_batch.put_cf(self.handle(cf), key, value),
                WriteOp::Delete { cf, key } => rocks_batch.delete_cf(self.handle(cf), key),
                WriteOp::DeleteRange { cf, start, end } => {
                    rocks_batch.delete_range_cf(self.handle(cf), start, end)
                }
            }
        }
        let mut options = WriteOptions::default();
        options.set_sync(durability == Durability::Synced);
        self.db.write_opt(rocks_batch, &options).map_err(io)
    }

    fn blocking_io(&self) -> bool {
        true
    }

    fn snapshot_view(&self) -> Box<dyn KvRead + '_> {
        Box::new(RocksSnapshot {
            kv: self,
            snapshot: self.db.snapshot(),
        })
    }

    fn frozen_view(&self) -> Result<Box<dyn KvRead>, KvError> {
        let n = self.next_id();
        let dir = self.dir.join(VIEWS_DIR).join(n.to_string());
        Checkpoint::new(&self.db)
            .and_then(|checkpoint| checkpoint.create_checkpoint(&dir))
            .map_err(io)?;
        let names = Cf::ALL.map(|cf| cf.name());
        let db = DB::open_cf_for_read_only(&options(), &dir, names, false).map_err(io)?;
        Ok(Box::new(RocksView {
            db: Some(db),
            dir,
            remove_on_drop: true,
        }))
    }

    /// A RocksDB checkpoint (consistent, hard-linked when on the same filesystem) in
    /// `target/db`, so `RocksKv::open(target)` reopens it as a node's data dir.
    fn backup(&self, target: &Path) -> Result<Box<dyn KvRead>, KvError> {
        if target.exists() {
            return Err(KvError::Io(format!(
                "backup target {} already exists: name a new directory",
                target.display()
            )));
        }
        std::fs::create_dir_all(target).map_err(io)?;
        Checkpoint::new(&self.db)
            .and_then(|checkpoint| checkpoint.create_checkpoint(target.join(DB_DIR)))
            .map_err(io)?;
        RocksKv::open_read_only(target)
    }

    fn snapshot_dir(&self) -> Option<&Path> {
        Some(&self.snapshots)
    }

    fn stage_state(&self, rows: &mut RowSource<'_>) -> Result<Box<dyn StagedState + '_>, KvError> {
        rocks_stage::stage(self, rows)
    }
}

/// A read-only RocksDB: a frozen view's checkpoint (removed when the view goes) or a backup.
struct RocksView {
    db: Option<DB>,
    dir: PathBuf,
    remove_on_drop: bool,
}

impl RocksView {
    fn db(&self) -> &DB {
        self.db.as_ref().expect("view is open until dropped")
    }
}

impl KvRead for RocksView {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        let db = self.db();
        let handle = db
            .cf_handle(cf.name())
            .expect("checkpoint has every family");
        db.get_cf(handle, key).map_err(io)
    }

    fn range(
        &self,
        cf: Cf,
        start: &[u8],
        end: Option<&[u8]>,
        order: Order,
        limit: usize,
    ) -> Result<Pairs, KvError> {
        let db = self.db();
        let handle = db
            .cf_handle(cf.name())
            .expect("checkpoint has every family");
        range_of(db.raw_iterator_cf(handle), start, end, order, limit)
    }
}

impl Drop for RocksView {
    fn drop(&mut self) {
        drop(self.db.take());
        if !self.remove_on_drop {
            return;
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not remove a frozen view");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tally-rocks-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn writes_survive_reopen_and_ranges_are_ordered_both_ways() {
        let dir = temp_dir("reopen");
        {
            let kv = RocksKv::open(&dir).unwrap();
            let mut batch = WriteBatch::default();
            for k in 1u8..=5 {
                batch.put(Cf::Log, vec![k], vec![k * 10]);
            }
            kv.write(batch, Durability::Synced).unwrap();
        }
        let kv = RocksKv::open(&dir).unwrap();
        let asc = kv
            .range(Cf::Log, &[2], Some(&[5]), Order::Ascending, 10)
            .unwrap();
        assert_eq!(
            asc.iter().map(|(k, _)| k[0]).collect::<Vec<_>>(),
            vec![2, 3, 4]
        );
        let desc = kv
            .range(Cf::Log, &[2], Some(&[5]), Order::Descending, 2)
            .unwrap();
        assert_eq!(
            desc.iter().map(|(k, _)| k[0]).collect::<Vec<_>>(),
            vec![4, 3]
        );
        let last = kv.range(Cf::Log, &[], None, Order::Descending, 1).unwrap();
        assert_eq!(last[0], (vec![5], vec![50]));
        assert!(kv
            .range(Cf::State, &[], None, Order::Ascending, 10)
            .unwrap()
            .is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn frozen_view_is_point_in_time_and_cleans_up() {
        let dir = temp_dir("view");
        let kv = RocksKv::open(&dir).unwrap();
        let mut batch = WriteBatch::default();
        batch.put(Cf::State, b"k".to_vec(), b"old".to_vec());
        kv.write(batch, Durability::Synced).unwrap();
        let view = kv.frozen_view().unwrap();
        let mut batch = WriteBatch::default();
        batch.put(Cf::State, b"k".to_vec(), b"new".to_vec());
        batch.delete_range(Cf::State, b"a".to_vec(), b"j".to_vec());
        kv.write(batch, Durability::Synced).unwrap();
        assert_eq!(view.get(Cf::State, b"k").unwrap(), Some(b"old".to_vec()));
        assert_eq!(kv.get(Cf::State, b"k").unwrap(), Some(b"new".to_vec()));
        drop(view);
        assert_eq!(std::fs::read_dir(dir.join(VIEWS_DIR)).unwrap().count(), 0);
        let backup = dir.join("backup");
        let copy = kv.backup(&backup).unwrap();
        assert_eq!(copy.get(Cf::State, b"k").unwrap(), Some(b"new".to_vec()));
        drop(copy);
        assert!(
            kv.backup(&backup).is_err(),
            "backup refuses an existing target"
        );
        drop(kv);
        let restored = RocksKv::open(&backup).unwrap();
        assert_eq!(
            restored.get(Cf::State, b"k").unwrap(),
            Some(b"new".to_vec())
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
