//! Staging a whole `State` family on disk (a snapshot install on a RocksDB node): rows are
//! written into sorted table files of at most `STAGE_FILE_BYTES_MAX`, a scratch database reads
//! them for the audit, and the commit swaps them in with one ingestion. Memory stays bounded by
//! one table file's index and one row, whatever the state's size.

use super::rocks::{family_options, io, options, range_of, RocksKv};
use super::STATE_END;
use super::{
    Cf, Durability, Kv, KvError, KvRead, Order, Pairs, RowSource, StagedState, WriteBatch,
};
use rocksdb::{IngestExternalFileOptions, SstFileWriter, DB};
use std::path::{Path, PathBuf};

/// Under a node's data directory; removed at open (an interrupted install is redone from its
/// snapshot file by the state machine, not from here).
pub const STAGING_DIR: &str = "staging";
/// Rows per staged table file are cut at this size, so no one file grows without bound.
const STAGE_FILE_BYTES_MAX: u64 = 256 * 1024 * 1024;

pub(super) fn stage<'a>(
    kv: &'a RocksKv,
    rows: &mut RowSource<'_>,
) -> Result<Box<dyn StagedState + 'a>, KvError> {
    let dir = kv.dir().join(STAGING_DIR).join(kv.next_id().to_string());
    std::fs::create_dir_all(&dir).map_err(io)?;
    let mut staged = RocksStaged {
        kv,
        dir,
        tables: Vec::new(),
        scratch: None,
    };
    staged.write_tables(rows)?;
    staged.open_scratch()?;
    Ok(Box::new(staged))
}

struct RocksStaged<'a> {
    kv: &'a RocksKv,
    dir: PathBuf,
    /// The staged table files, in key order.
    tables: Vec<PathBuf>,
    /// A database holding hard links of the tables, for reads before the commit.
    scratch: Option<DB>,
}

impl RocksStaged<'_> {
    fn write_tables(&mut self, rows: &mut RowSource<'_>) -> Result<(), KvError> {
        let table_options = family_options(Cf::State);
        let mut writer: Option<SstFileWriter<'_>> = None;
        while let Some((key, value)) = rows()? {
            if writer.is_none() {
                let path = self.dir.join(format!("part-{}.sst", self.tables.len()));
                let opened = SstFileWriter::create(&table_options);
                opened.open(&path).map_err(io)?;
                self.tables.push(path);
                writer = Some(opened);
            }
            let current = writer.as_mut().expect("opened above");
            current.put(&key, &value).map_err(io)?;
            if current.file_size() >= STAGE_FILE_BYTES_MAX {
                current.finish().map_err(io)?;
                writer = None;
            }
        }
        if let Some(mut last) = writer {
            last.finish().map_err(io)?;
        }
        Ok(())
    }

    /// Ingests hard links of the tables into a scratch database, leaving the tables themselves
    /// for the commit. Ingestion never rewrites a file (RocksDB keeps the sequence number in its
    /// manifest), so both databases may share them.
    fn open_scratch(&mut self) -> Result<(), KvError> {
        let db = DB::open(&options(), self.dir.join("scratch")).map_err(io)?;
        let mut links = Vec::new();
        for (n, table) in self.tables.iter().enumerate() {
            let link = self.dir.join(format!("scratch-{n}.sst"));
            std::fs::hard_link(table, &link).map_err(io)?;
            links.push(link);
        }
        if !links.is_empty() {
            db.ingest_external_file_opts(&move_options(), links)
                .map_err(io)?;
        }
        self.scratch = Some(db);
        Ok(())
    }
}

fn move_options() -> IngestExternalFileOptions {
    let mut options = IngestExternalFileOptions::default();
    options.set_move_files(true);
    options
}

impl KvRead for RocksStaged<'_> {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        match (&self.scratch, cf) {
            (Some(db), Cf::State) => db.get(key).map_err(io),
            _ => Ok(None),
        }
    }

    fn range(
        &self,
        cf: Cf,
        start: &[u8],
        end: Option<&[u8]>,
        order: Order,
        limit: usize,
    ) -> Result<Pairs, KvError> {
        match (&self.scratch, cf) {
            (Some(db), Cf::State) => range_of(db.raw_iterator(), start, end, order, limit),
            _ => Ok(Vec::new()),
        }
    }
}

impl StagedState for RocksStaged<'_> {
    fn view(&self) -> &dyn KvRead {
        self
    }

    fn commit(mut self: Box<Self>, before: WriteBatch, after: WriteBatch) -> Result<(), KvError> {
        drop(self.scratch.take());
        self.kv.write(before, Durability::Synced)?;
        let mut clear = WriteBatch::default();
        clear.delete_range(Cf::State, Vec::new(), STATE_END.to_vec());
        self.kv.write(clear, Durability::Synced)?;
        // Ingested tables get sequence numbers above the range deletion, so they, and only
        // they, are the state from here on.
        if !self.tables.is_empty() {
            let tables = std::mem::take(&mut self.tables);
            self.kv
                .db()
                .ingest_external_file_cf_opts(self.kv.handle(Cf::State), &move_options(), tables)
                .map_err(io)?;
        }
        self.kv.write(after, Durability::Synced)
    }
}

impl Drop for RocksStaged<'_> {
    fn drop(&mut self) {
        drop(self.scratch.take());
        remove_quietly(&self.dir);
    }
}

fn remove_quietly(dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "could not remove a staging directory");
    }
}
