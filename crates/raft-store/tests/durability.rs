//! The storage durability rules, each proven against the in-memory backend's crash model (a crash
//! loses exactly the writes since the last synced one), plus the planted bug the checks must catch.

use openraft::storage::{
    RaftLogReader, RaftLogStorage, RaftLogStorageExt, RaftSnapshotBuilder, RaftStateMachine,
};
use openraft::testing::log_id;
use openraft::{Entry, EntryPayload, Membership, Vote};
use std::collections::BTreeMap;
use std::sync::Arc;
use tally_ledger::limits::NANOS_PER_SECOND;
use tally_ledger::{
    AccountFlags, AccountId, Command, Currency, LedgerRead, Metadata, NewAccount, NewTransfer,
    TransferId, TransferKind,
};
use tally_raft_store::kv::MemKv;
use tally_raft_store::{
    ledger_view, LedgerRequest, LedgerResponse, LogFault, LogStore, NodeInfo, StateMachine,
    TypeConfig,
};

const T0: u64 = 1_700_000_000 * NANOS_PER_SECOND;

fn account(id: u128) -> Command {
    Command::CreateAccount(NewAccount {
        id: AccountId(id),
        currency: Currency::USD,
        code: 1,
        flags: AccountFlags::NONE,
        metadata: Metadata::default(),
        linked: false,
    })
}

fn transfer(id: u128, debit: u128, credit: u128, amount_minor: u64) -> Command {
    Command::CreateTransfer(NewTransfer {
        id: TransferId(id),
        kind: TransferKind::Single {
            debit_account_id: AccountId(debit),
            credit_account_id: AccountId(credit),
            amount_minor,
            currency: Currency::USD,
        },
        code: 1,
        metadata: Metadata::default(),
        linked: false,
    })
}

fn normal(index: u64, commands: Vec<Command>) -> Entry<TypeConfig> {
    Entry {
        log_id: log_id(1, 1, index),
        payload: EntryPayload::Normal(LedgerRequest {
            timestamp_ns: T0 + index,
            commands,
        }),
    }
}

fn membership_entry(index: u64) -> Entry<TypeConfig> {
    let nodes = BTreeMap::from([(1u64, NodeInfo::default())]);
    Entry {
        log_id: log_id(1, 1, index),
        payload: EntryPayload::Membership(Membership::from(nodes)),
    }
}

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
    let data = snapshot.snapshot.get_ref().clone();
    let refused = receiver
        .install_snapshot(&lying_meta, Box::new(std::io::Cursor::new(data.clone())))
        .await;
    assert!(refused.is_err(), "metadata mismatch must be refused");

    let mut damaged = data;
    let last = damaged.len() - 40;
    damaged[last] ^= 0xff;
    let refused = receiver
        .install_snapshot(&snapshot.meta, Box::new(std::io::Cursor::new(damaged)))
        .await;
    assert!(refused.is_err(), "a damaged payload must be refused");
    let (applied, _) = receiver.applied_state().await.unwrap();
    assert_eq!(applied, None, "a refused snapshot changes nothing");
}
