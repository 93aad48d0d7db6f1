//! openraft's own conformance suite against both storage backends.

use openraft::testing::{StoreBuilder, Suite};
use std::sync::Arc;
use tally_raft_store::kv::{MemKv, RocksKv};
use tally_raft_store::{LogStore, StateMachine, StorageError, TypeConfig};

struct RocksBuilder;

impl StoreBuilder<TypeConfig, LogStore<RocksKv>, StateMachine<RocksKv>, tempfile::TempDir>
    for RocksBuilder
{
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore<RocksKv>, StateMachine<RocksKv>), StorageError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let kv = Arc::new(RocksKv::open(dir.path()).expect("open RocksDB"));
        Ok((dir, LogStore::new(kv.clone()), StateMachine::new(kv)))
    }
}

struct MemBuilder;

impl StoreBuilder<TypeConfig, LogStore<MemKv>, StateMachine<MemKv>> for MemBuilder {
    async fn build(&self) -> Result<((), LogStore<MemKv>, StateMachine<MemKv>), StorageError> {
        let kv = Arc::new(MemKv::new());
        Ok(((), LogStore::new(kv.clone()), StateMachine::new(kv)))
    }
}

#[test]
fn openraft_suite_passes_on_rocksdb() {
    Suite::test_all(RocksBuilder).expect("openraft storage suite on RocksDB");
}

#[test]
fn openraft_suite_passes_on_the_in_memory_backend() {
    Suite::test_all(MemBuilder).expect("openraft storage suite on the in-memory backend");
}
