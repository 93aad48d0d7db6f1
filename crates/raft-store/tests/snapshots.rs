//! Snapshots on both stores: built from a frozen view into a file (RocksDB) or memory, sent in
//! chunks, staged, audited and swapped in whole; never replaced by an older build; finished at
//! start-up when a crash interrupted the swap.

mod entries;

use entries::{account, normal, transfer};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use std::path::Path;
use std::sync::Arc;
use tally_ledger::{AccountId, LedgerRead, TransferId};
use tally_raft_store::kv::{Kv, MemKv, RocksKv, SNAPSHOTS_DIR};
use tally_raft_store::snapshot_testing::{
    interrupt_install_for_tests, recover_interrupted_install,
};
use tally_raft_store::{ledger_view, Snapshot, SnapshotData, StateMachine, StorageError};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// Chunks as openraft sends them, but small, so every test snapshot spans several.
const CHUNK_BYTES: usize = 1024;

fn rocks(dir: &Path) -> Arc<RocksKv> {
    Arc::new(RocksKv::open(dir).expect("open RocksDB"))
}

/// Two accounts and `transfers` transfers between them, applied at indexes 1..=transfers+1.
async fn fill<K: Kv>(sm: &mut StateMachine<K>, transfers: u64) {
    sm.apply([normal(1, vec![account(1), account(2)])])
        .await
        .unwrap();
    for n in 0..transfers {
        let id = 100 + u128::from(n);
        sm.apply([normal(2 + n, vec![transfer(id, 1, 2, 10)])])
            .await
            .unwrap();
    }
}

async fn build<K: Kv>(sm: &mut StateMachine<K>) -> Snapshot {
    sm.get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap()
}

/// Streams `snapshot` into `receiver` chunk by chunk, as a leader's replication does, and
/// installs it; `damage` may flip a byte on the way.
async fn send<K: Kv>(
    snapshot: Snapshot,
    receiver: &mut StateMachine<K>,
    damage: Option<usize>,
) -> Result<(), StorageError> {
    let mut source = snapshot.snapshot;
    source.seek(std::io::SeekFrom::Start(0)).await.unwrap();
    let mut target = receiver.begin_receiving_snapshot().await?;
    let mut chunk = vec![0u8; CHUNK_BYTES];
    let mut offset = 0usize;
    loop {
        let n = source.read(&mut chunk).await.unwrap();
        if n == 0 {
            break;
        }
        if let Some(at) = damage.filter(|at| (offset..offset + n).contains(at)) {
            chunk[at - offset] ^= 0x40;
        }
        target.write_all(&chunk[..n]).await.unwrap();
        offset += n;
    }
    receiver.install_snapshot(&snapshot.meta, target).await
}

fn snapshot_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join(SNAPSHOTS_DIR))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn file_bytes(snapshot: &Snapshot) -> u64 {
    match &*snapshot.snapshot {
        SnapshotData::File { path, .. } => std::fs::metadata(path).unwrap().len(),
        SnapshotData::Memory(_) => panic!("a RocksDB node keeps its snapshots in files"),
    }
}

#[tokio::test]
async fn a_rocksdb_snapshot_is_a_file_sent_in_chunks_and_installed_whole() {
    let dirs = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (dirs.path().join("a"), dirs.path().join("b"));
    let a = rocks(&a_dir);
    let mut leader = StateMachine::new(a.clone());
    fill(&mut leader, 40).await;
    let snapshot = build(&mut leader).await;
    assert!(file_bytes(&snapshot) > 4 * CHUNK_BYTES as u64);
    assert_eq!(
        snapshot_files(&a_dir),
        vec![format!(
            "built-{}.tsnp",
            snapshot
                .meta
                .snapshot_id
                .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_")
        )]
    );

    let b = rocks(&b_dir);
    let mut follower = StateMachine::new(b.clone());
    // State the snapshot must replace, not merge with.
    follower.apply([normal(1, vec![account(9)])]).await.unwrap();
    send(snapshot, &mut follower, None).await.unwrap();

    let (applied, _) = follower.applied_state().await.unwrap();
    assert_eq!(applied, leader.applied_state().await.unwrap().0);
    assert_eq!(ledger_view(&*b).meta(), ledger_view(&*a).meta());
    assert!(ledger_view(&*b).transfer(TransferId(139)).is_some());
    assert!(ledger_view(&*b).account(AccountId(9)).is_none());
    tally_ledger::audit(&ledger_view(&*b)).unwrap();
    let files = snapshot_files(&b_dir);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].starts_with("installed-"), "{files:?}");
    assert!(
        !b_dir.join("staging").exists()
            || std::fs::read_dir(b_dir.join("staging")).unwrap().count() == 0,
        "staged tables are removed after the swap"
    );

    // Both survive a restart, and the installed snapshot is served from its file.
    drop(follower);
    drop(b);
    let b = rocks(&b_dir);
    recover_interrupted_install(&*b).unwrap();
    assert_eq!(ledger_view(&*b).meta(), ledger_view(&*a).meta());
    let mut reopened = StateMachine::new(b.clone());
    let served = reopened.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(served.meta.last_log_id, applied);
    assert!(file_bytes(&served) > 0);
}

#[tokio::test]
async fn a_damaged_snapshot_changes_nothing_and_leaves_no_files() {
    let dirs = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (dirs.path().join("a"), dirs.path().join("b"));
    let mut leader = StateMachine::new(rocks(&a_dir));
    fill(&mut leader, 40).await;
    let b = rocks(&b_dir);
    let mut follower = StateMachine::new(b.clone());
    follower.apply([normal(1, vec![account(9)])]).await.unwrap();
    for damage in [3 * CHUNK_BYTES + 17, 0, 7] {
        let snapshot = build(&mut leader).await;
        let refused = send(snapshot, &mut follower, Some(damage)).await;
        assert!(refused.is_err(), "damage at byte {damage} went unnoticed");
        assert!(ledger_view(&*b).account(AccountId(9)).is_some());
        assert!(ledger_view(&*b).transfer(TransferId(100)).is_none());
        assert!(
            snapshot_files(&b_dir).is_empty(),
            "{:?}",
            snapshot_files(&b_dir)
        );
    }
}

async fn newer_install_wins_over_an_older_build<K: Kv>(node: Arc<K>, source: Arc<K>) {
    let mut sm = StateMachine::new(node.clone());
    fill(&mut sm, 2).await;
    // Frozen at index 3; built only after a snapshot at index 9 is installed.
    let mut late_builder = sm.get_snapshot_builder().await;
    let mut newer = StateMachine::new(source);
    fill(&mut newer, 8).await;
    let snapshot = build(&mut newer).await;
    let newer_meta = snapshot.meta.clone();
    send(snapshot, &mut sm, None).await.unwrap();
    let late = late_builder.build_snapshot().await.unwrap();
    assert!(late.meta.last_log_id < newer_meta.last_log_id);
    let current = sm.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(
        current.meta, newer_meta,
        "an older build replaced a newer install"
    );
    assert_eq!(sm.applied_state().await.unwrap().0, newer_meta.last_log_id);
}

#[tokio::test]
async fn a_build_that_finishes_after_a_newer_install_never_replaces_it() {
    newer_install_wins_over_an_older_build(Arc::new(MemKv::new()), Arc::new(MemKv::new())).await;
    let dirs = tempfile::tempdir().unwrap();
    newer_install_wins_over_an_older_build(
        rocks(&dirs.path().join("a")),
        rocks(&dirs.path().join("b")),
    )
    .await;
    let files = snapshot_files(&dirs.path().join("a"));
    assert_eq!(
        files.len(),
        1,
        "only the current snapshot's file is kept: {files:?}"
    );
}

#[tokio::test]
async fn an_install_interrupted_by_a_crash_is_finished_at_start_up() {
    let dirs = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (dirs.path().join("a"), dirs.path().join("b"));
    let a = rocks(&a_dir);
    let mut leader = StateMachine::new(a.clone());
    fill(&mut leader, 20).await;
    let snapshot = build(&mut leader).await;
    let SnapshotData::File { path, .. } = &*snapshot.snapshot else {
        panic!("a RocksDB node keeps its snapshots in files");
    };
    {
        let b = rocks(&b_dir);
        let mut follower = StateMachine::new(b.clone());
        follower.apply([normal(1, vec![account(9)])]).await.unwrap();
        let received = b_dir.join(SNAPSHOTS_DIR).join("receive-0.part");
        std::fs::copy(path, &received).unwrap();
        std::fs::write(
            b_dir.join(SNAPSHOTS_DIR).join("build-3.part"),
            b"unfinished",
        )
        .unwrap();
        interrupt_install_for_tests(&*b, &snapshot.meta, received).unwrap();
        assert_eq!(
            follower.applied_state().await.unwrap().0,
            None,
            "the crash left no state"
        );
    }
    let b = rocks(&b_dir);
    recover_interrupted_install(&*b).unwrap();
    let mut follower = StateMachine::new(b.clone());
    assert_eq!(
        follower.applied_state().await.unwrap().0,
        snapshot.meta.last_log_id
    );
    assert_eq!(ledger_view(&*b).meta(), ledger_view(&*a).meta());
    tally_ledger::audit(&ledger_view(&*b)).unwrap();
    let current = follower.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta, snapshot.meta);
    let files = snapshot_files(&b_dir);
    assert_eq!(files.len(), 1, "orphans are removed: {files:?}");
    // Finishing is idempotent: a second start-up changes nothing.
    recover_interrupted_install(&*b).unwrap();
    assert_eq!(ledger_view(&*b).meta(), ledger_view(&*a).meta());
}
