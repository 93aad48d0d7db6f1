//! The storage durability rules, each proven against the in-memory backend's crash model (a crash
//! loses exactly the writes since the last synced one), plus the planted bug the checks must catch.

mod entries;

use entries::{account, membership_entry, normal, transfer};
use openraft::storage::{
    RaftLogReader, RaftLogStorage, RaftLogStorageExt, RaftSnapshotBuilder, RaftStateMachine,
};
use openraft::testing::log_id;
use openraft::{Entry, EntryPayload, Vote};
use std::sync::Arc;
use tally_ledger::{AccountId, LedgerRead, TransferId};
use tally_raft_store::kv::MemKv;
use tally_raft_store::{
    ledger_view, LedgerResponse, LogFault, LogStore, SnapshotData, StateMachine,
};

#[tokio::test]
async fn save_vote_is_durable_when_it_returns() {
    let kv = Arc::new(MemKv::new());
    let mut log = LogStore::new(kv.clone());
    let vote = Vote::new(3, 1);
    log.save_vote(&vote).await.unwrap();
    kv.crash();
    assert_eq!(LogStore::new(kv).read_vote().await.unwrap(), Some(vote));
}

#[tokio::test]
async fn append_acknowledges_only_entries_that_survive_a_crash() {
    let kv = Arc::new(MemKv::new());
    let mut log = LogStore::new(kv.clone());
    log.blocking_append([normal(1, vec![account(1)]), normal(2, vec![account(2)])])
        .await
        .unwrap();
    kv.crash();
    let entries = LogStore::new(kv).try_get_log_entries(1..3).await.unwrap();
    assert_eq!(
        entries.len(),
        2,
        "an acknowledged entry was lost by a crash"
    );
}

#[tokio::test]
async fn the_crash_check_catches_an_append_acknowledged_before_sync() {
    let kv = Arc::new(MemKv::new());
    let mut log = LogStore::with_fault(kv.clone(), LogFault::AckBeforeSync);
    log.blocking_append([normal(1, vec![account(1)])])
        .await
        .unwrap();
    kv.crash();
    let entries = LogStore::new(kv).try_get_log_entries(1..2).await.unwrap();
    assert!(
        entries.is_empty(),
        "the planted bug must lose the acknowledged entry"
    );
}

#[tokio::test]
async fn truncate_and_purge_keep_the_log_state_consistent() {
    let kv = Arc::new(MemKv::new());
    let mut log = LogStore::new(kv.clone());
    log.blocking_append((1..=6).map(|i| normal(i, vec![])))
        .await
        .unwrap();
    log.truncate(log_id(1, 1, 5)).await.unwrap();
    log.purge(log_id(1, 1, 2)).await.unwrap();
    kv.crash();
    let mut log = LogStore::new(kv);
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 2)));
    assert_eq!(state.last_log_id, Some(log_id(1, 1, 4)));
    let indexes: Vec<u64> = log
        .try_get_log_entries(0..100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.log_id.index)
        .collect();
    assert_eq!(indexes, vec![3, 4]);
}

#[tokio::test]
async fn apply_writes_ledger_rows_last_applied_and_membership_together() {
    let kv = Arc::new(MemKv::new());
    let mut sm = StateMachine::new(kv.clone());
    let replies = sm
        .apply([
            membership_entry(1),
            normal(2, vec![account(1), account(2)]),
            Entry {
                log_id: log_id(1, 1, 3),
                payload: EntryPayload::Blank,
            },
        ])
        .await
        .unwrap();
    assert_eq!(
        replies.len(),
        3,
        "one reply per entry, blank and membership included"
    );
    assert_eq!(replies[0], LedgerResponse::NoOp);
    assert!(matches!(&replies[1], LedgerResponse::Applied { results } if results.len() == 2));
    let (applied, membership) = sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(1, 1, 3)));
    assert_eq!(membership.log_id(), &Some(log_id(1, 1, 1)));
    assert!(ledger_view(&*kv).account(AccountId(2)).is_some());

    // Applied state is written unsynced: a crash may lose it, but only whole entries, never rows
    // without their last-applied id.
    kv.crash();
    let (applied, _) = sm.applied_state().await.unwrap();
    assert_eq!(applied, None);
    assert!(ledger_view(&*kv).account(AccountId(1)).is_none());
}

#[tokio::test]
async fn recovery_reapplies_from_last_applied_to_the_same_state() {
    let kv = Arc::new(MemKv::new());
    let mut log = LogStore::new(kv.clone());
    let entries = vec![
        normal(1, vec![account(1), account(2)]),
        normal(2, vec![transfer(10, 1, 2, 500)]),
        normal(3, vec![transfer(11, 2, 1, 200)]),
    ];
    log.blocking_append(entries.clone()).await.unwrap();
    let mut sm = StateMachine::new(kv.clone());
    sm.apply(entries[..2].to_vec()).await.unwrap();
    // A synced log write makes the earlier applies durable too (one WAL).
    log.save_vote(&Vote::new(1, 1)).await.unwrap();
    sm.apply(entries[2..].to_vec()).await.unwrap();
    let before = ledger_view(&*kv).meta();
    kv.crash();

    // What openraft does on restart: read last-applied, re-apply the rest of the log.
    let mut sm = StateMachine::new(kv.clone());
    let (applied, _) = sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(1, 1, 2)));
    let rest = LogStore::new(kv.clone())
        .try_get_log_entries(3..)
        .await
        .unwrap();
    sm.apply(rest).await.unwrap();
    assert_eq!(
        ledger_view(&*kv).meta(),
        before,
        "re-applying the log must rebuild the same state"
    );
    tally_ledger::audit(&ledger_view(&*kv)).unwrap();
}

#[tokio::test]
async fn snapshot_is_point_in_time_and_never_ahead_of_its_metadata() {
    let kv = Arc::new(MemKv::new());
    let mut sm = StateMachine::new(kv.clone());
    sm.apply([
        normal(1, vec![account(1), account(2)]),
        normal(2, vec![transfer(10, 1, 2, 500)]),
    ])
    .await
    .unwrap();
    let mut builder = sm.get_snapshot_builder().await;
    // Applies that happen while the snapshot is being built must not leak into it.
    sm.apply([normal(3, vec![transfer(11, 1, 2, 700)])])
        .await
        .unwrap();
    let snapshot = builder.build_snapshot().await.unwrap();
    assert_eq!(snapshot.meta.last_log_id, Some(log_id(1, 1, 2)));

    let other = Arc::new(MemKv::new());
    let mut receiver = StateMachine::new(other.clone());
    receiver
        .install_snapshot(&snapshot.meta, snapshot.snapshot)
        .await
        .unwrap();
    let (applied, _) = receiver.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(1, 1, 2)));
    let view = ledger_view(&*other);
    assert!(view.transfer(TransferId(10)).is_some());
    assert!(
        view.transfer(TransferId(11)).is_none(),
        "snapshot is ahead of its metadata"
    );
    assert_eq!(
        view.account(AccountId(2)).unwrap().balances.credits_posted,
        500
    );
    let current = receiver.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta, snapshot.meta);
}

#[tokio::test]
async fn install_snapshot_refuses_a_payload_that_disagrees_with_its_metadata() {
    let kv = Arc::new(MemKv::new());
    let mut sm = StateMachine::new(kv.clone());
    sm.apply([normal(1, vec![account(1)])]).await.unwrap();
    let snapshot = sm
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();

    let mut lying_meta = snapshot.meta.clone();
    lying_meta.last_log_id = Some(log_id(1, 1, 9));
    let mut receiver = StateMachine::new(Arc::new(MemKv::new()));
    let SnapshotData::Memory(cursor) = *snapshot.snapshot else {
        panic!("the in-memory store keeps snapshots in memory");
    };
    let data = cursor.into_inner();
    let refused = receiver
        .install_snapshot(&lying_meta, Box::new(SnapshotData::memory(data.clone())))
        .await;
    assert!(refused.is_err(), "metadata mismatch must be refused");

    let mut damaged = data;
    let last = damaged.len() - 40;
    damaged[last] ^= 0xff;
    let refused = receiver
        .install_snapshot(&snapshot.meta, Box::new(SnapshotData::memory(damaged)))
        .await;
    assert!(refused.is_err(), "a damaged payload must be refused");
    let (applied, _) = receiver.applied_state().await.unwrap();
    assert_eq!(applied, None, "a refused snapshot changes nothing");
}

/// openraft 0.9 purges the log as soon as it hands a received snapshot to the state machine; a
/// crash before the install finished left a node openraft would never start again
/// (`purge_upto <= committed`). A purge now waits for the install.
#[tokio::test]
async fn the_log_is_never_purged_ahead_of_a_snapshot_install() {
    let kv = Arc::new(MemKv::new());
    let mut sm = StateMachine::new(kv.clone());
    let mut log = LogStore::new(kv.clone()).with_snapshot_installs(sm.install_watch(), 300);
    log.blocking_append((1..=6).map(|i| normal(i, vec![])))
        .await
        .unwrap();
    // No snapshot received: purges behave as openraft's own suite expects.
    log.purge(log_id(1, 1, 2)).await.unwrap();

    let _receiving = sm.begin_receiving_snapshot().await.unwrap();
    let refused = log.purge(log_id(1, 1, 5)).await;
    assert!(
        refused.is_err(),
        "purged past a state machine that never got there"
    );
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 2)));

    let mut waiting = log.clone();
    let purge = tokio::spawn(async move { waiting.purge(log_id(1, 1, 5)).await });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(!purge.is_finished(), "the purge went ahead of the install");
    sm.apply((1..=5).map(|i| normal(i, vec![]))).await.unwrap();
    purge.await.unwrap().unwrap();
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 5)));
}

/// A failed install ends a waiting purge at once instead of holding Raft's core for the whole
/// install deadline.
#[tokio::test]
async fn a_failed_install_ends_the_purge_wait_at_once() {
    let kv = Arc::new(MemKv::new());
    let watch = tally_raft_store::InstallWatch::default();
    let mut log = LogStore::new(kv.clone()).with_snapshot_installs(watch.clone(), 60_000);
    log.blocking_append((1..=4).map(|i| normal(i, vec![])))
        .await
        .unwrap();
    watch.receiving();
    let purge = tokio::spawn(async move { log.purge(log_id(1, 1, 3)).await });
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    assert!(!purge.is_finished());
    watch.failed();
    let ended = tokio::time::timeout(std::time::Duration::from_secs(2), purge)
        .await
        .expect("the purge gave up at once")
        .unwrap();
    assert!(ended.is_err(), "a purge past a failed install went ahead");
}
