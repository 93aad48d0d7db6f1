//! Nothing a client sends, and no loss of quorum, stops a node for good: a command that panics in
//! apply costs only itself on every replica; writes and reads to a leader without a quorum are
//! answered in bounded time and the leader writes again once its quorum is back; a read of many
//! accounts sees one state, never half of a concurrent transfer.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{codes, id, usd_account, usd_transfer, Cluster};
use tally_ledger::{PlantedBugs, PLANTED_PANIC_CODE};
use tally_proto::admin::StatusRequest;
use tally_proto::ledger as pb;
use tally_raft_store::RaftTuning;

async fn open_accounts(cluster: &Cluster, leader: u64, ids: impl IntoIterator<Item = u128>) {
    let accounts: Vec<pb::NewAccount> = ids.into_iter().map(|i| usd_account(i, false)).collect();
    let count = accounts.len();
    let response = cluster
        .ledger(leader)
        .await
        .create_accounts(pb::CreateAccountsRequest { accounts })
        .await
        .expect("create accounts")
        .into_inner();
    assert_eq!(codes(&response), vec!["ok"; count]);
}

async fn transfers(cluster: &Cluster, node: u64, items: Vec<pb::NewTransfer>) -> Vec<String> {
    let response = cluster
        .ledger(node)
        .await
        .create_transfers(pb::CreateTransfersRequest { transfers: items })
        .await
        .expect("create transfers")
        .into_inner();
    codes(&response)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_panics_in_apply_costs_only_itself_on_every_replica() {
    let bugs = PlantedBugs {
        panic_in_apply: true,
        ..PlantedBugs::NONE
    };
    let cluster = Cluster::start_with_bugs(3, RaftTuning::default(), bugs).await;
    let leader = cluster.wait_for_leader(None).await;
    open_accounts(&cluster, leader, [1, 2]).await;
    let mut panicking = usd_transfer(11, 1, 2, "5.00");
    panicking.code = u32::from(PLANTED_PANIC_CODE);
    let answer = transfers(
        &cluster,
        leader,
        vec![
            usd_transfer(10, 1, 2, "1.00"),
            panicking,
            usd_transfer(12, 2, 1, "0.25"),
        ],
    )
    .await;
    assert_eq!(answer, ["ok", "internal_error", "ok"]);
    // The cluster keeps applying.
    for i in 0..5 {
        let answer = transfers(&cluster, leader, vec![usd_transfer(20 + i, 1, 2, "1.00")]).await;
        assert_eq!(answer, ["ok"]);
    }
    cluster.wait_converged().await;
    cluster.assert_same_hash_everywhere();
    for node in cluster.nodes.keys() {
        let status = cluster
            .admin(*node)
            .await
            .status(StatusRequest {})
            .await
            .expect("status")
            .into_inner();
        assert_eq!(status.apply_faults_total, 1, "node {node}");
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_without_quorum_answers_in_bounded_time_and_writes_again_when_it_returns() {
    let mut cluster = Cluster::start(3, RaftTuning::default()).await;
    let leader = cluster.wait_for_leader(None).await;
    open_accounts(&cluster, leader, [1, 2]).await;
    let followers: Vec<u64> = cluster
        .nodes
        .keys()
        .copied()
        .filter(|node| *node != leader)
        .collect();
    for follower in &followers {
        cluster.stop(*follower).await;
    }
    // More writes than entries may be in flight: without a commit deadline the first eight
    // would hold every permit for good.
    let started = Instant::now();
    let mut writes = Vec::new();
    for i in 0..12u128 {
        let mut client = cluster.ledger(leader).await;
        writes.push(tokio::spawn(async move {
            client
                .create_transfers(pb::CreateTransfersRequest {
                    transfers: vec![usd_transfer(100 + i, 1, 2, "1.00")],
                })
                .await
        }));
    }
    for write in writes {
        let answer = tokio::time::timeout(Duration::from_secs(30), write)
            .await
            .expect("a write to a leader without quorum is answered in bounded time")
            .expect("write task");
        let status = answer.expect_err("no quorum, no acknowledgement");
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    }
    let read = tokio::time::timeout(
        Duration::from_secs(30),
        cluster
            .ledger(leader)
            .await
            .lookup_accounts(pb::LookupRequest {
                ids: vec![id(1).unwrap()],
            }),
    )
    .await
    .expect("a read on a leader without quorum is answered in bounded time");
    assert_eq!(
        read.expect_err("no quorum").code(),
        tonic::Code::Unavailable
    );
    assert!(started.elapsed() < Duration::from_secs(30));

    for follower in &followers {
        cluster.restart(*follower).await;
    }
    // Writes are acknowledged again soon after the majority returns; the retried ids answer
    // `ok` or `exists` (they may have committed after their clients gave up).
    let back = Instant::now();
    let leader = cluster.wait_for_leader(None).await;
    loop {
        let answer = cluster
            .ledger(leader)
            .await
            .create_transfers(pb::CreateTransfersRequest {
                transfers: vec![usd_transfer(100, 1, 2, "1.00")],
            })
            .await;
        match answer {
            Ok(response) => {
                let code = &response.get_ref().results[0].code;
                assert!(code == "ok" || code == "exists", "{code}");
                break;
            }
            Err(status) => assert!(
                back.elapsed() < Duration::from_secs(15),
                "no write acknowledged 15 s after the majority returned: {status:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.wait_converged().await;
    cluster.assert_same_hash_everywhere();
    cluster.shutdown().await;
}

const READ_ACCOUNTS: u128 = 16;

/// Net posted balance (credits - debits) of every account of one `LookupAccounts`, in minor units.
fn nets(response: &pb::LookupAccountsResponse) -> BTreeMap<u128, i128> {
    let minor = |decimal: &str| -> i128 {
        let (units, cents) = decimal.split_once('.').unwrap_or((decimal, "00"));
        let sign = if units.starts_with('-') { -1 } else { 1 };
        let units: i128 = units.trim_start_matches('-').parse().unwrap();
        sign * (units * 100 + cents.parse::<i128>().unwrap())
    };
    response
        .accounts
        .iter()
        .map(|account| {
            let raw = account.id.unwrap();
            let balances = account.balances.as_ref().unwrap();
            (
                (u128::from(raw.hi) << 64) | u128::from(raw.lo),
                minor(&balances.credits_posted) - minor(&balances.debits_posted),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_of_many_accounts_sees_one_state() {
    let cluster = Cluster::start(3, RaftTuning::default()).await;
    let leader = cluster.wait_for_leader(None).await;
    open_accounts(&cluster, leader, 1..=READ_ACCOUNTS).await;
    let stop = Arc::new(AtomicBool::new(false));
    let next_id = Arc::new(AtomicU64::new(1_000));
    let mut writers = Vec::new();
    for writer in 0..4u128 {
        let mut client = cluster.ledger(leader).await;
        let stop = stop.clone();
        let next_id = next_id.clone();
        writers.push(tokio::spawn(async move {
            let mut round = 0u128;
            while !stop.load(Ordering::Relaxed) {
                let items = (0..8)
                    .map(|k| {
                        let debit = 1 + (writer * 7 + round * 3 + k) % READ_ACCOUNTS;
                        // 1..=15 accounts after the debit one, wrapping: never the same account.
                        let offset = 1 + (round + k) % (READ_ACCOUNTS - 1);
                        let credit = 1 + (debit - 1 + offset) % READ_ACCOUNTS;
                        let id = u128::from(next_id.fetch_add(1, Ordering::Relaxed));
                        usd_transfer(id, debit, credit, "1.01")
                    })
                    .collect();
                let response = client
                    .create_transfers(pb::CreateTransfersRequest { transfers: items })
                    .await
                    .expect("transfers");
                let codes = codes(response.get_ref());
                assert!(codes.iter().all(|c| c == "ok"), "{codes:?}");
                round += 1;
            }
        }));
    }
    let mut reader = cluster.ledger(leader).await;
    let ids: Vec<pb::Uint128> = (1..=READ_ACCOUNTS).map(|i| id(i).unwrap()).collect();
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut reads = 0;
    while Instant::now() < deadline {
        let response = reader
            .lookup_accounts(pb::LookupRequest { ids: ids.clone() })
            .await
            .expect("lookup")
            .into_inner();
        let nets = nets(&response);
        assert_eq!(nets.len() as u128, READ_ACCOUNTS);
        let sum: i128 = nets.values().sum();
        assert_eq!(
            sum, 0,
            "read {reads} saw balances that never existed together: {nets:?}"
        );
        reads += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.expect("writer");
    }
    assert!(reads > 50, "only {reads} reads");
    cluster.shutdown().await;
}

fn hold(transfer_id: u128, timeout_s: u32) -> pb::NewTransfer {
    pb::NewTransfer {
        id: id(transfer_id),
        kind: Some(pb::new_transfer::Kind::Pending(pb::Pending {
            debit_account_id: id(1),
            credit_account_id: id(2),
            amount: "3.00".into(),
            currency: "USD".into(),
            timeout_s,
        })),
        code: 1,
        metadata: Default::default(),
        linked: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn holds_expire_on_time_on_an_idle_cluster() {
    let cluster = Cluster::start(3, RaftTuning::default()).await;
    let leader = cluster.wait_for_leader(None).await;
    open_accounts(&cluster, leader, [1, 2]).await;
    let pending = |node: u64| {
        use tally_ledger::LedgerRead;
        let view = tally_raft_store::ledger_view(&*cluster.nodes[&node].kv);
        view.account(tally_ledger::AccountId(1))
            .unwrap()
            .balances
            .debits_pending
    };
    // With no reads and no writes, every replica expires the hold by itself.
    assert_eq!(transfers(&cluster, leader, vec![hold(50, 1)]).await, ["ok"]);
    assert_eq!(pending(leader), 300);
    let deadline = Instant::now() + Duration::from_secs(5);
    while cluster.nodes.keys().any(|node| pending(*node) != 0) {
        assert!(
            Instant::now() < deadline,
            "the hold never expired on an idle cluster"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A read right after a timeout never counts the expired hold.
    assert_eq!(transfers(&cluster, leader, vec![hold(51, 1)]).await, ["ok"]);
    tokio::time::sleep(Duration::from_millis(1_010)).await;
    let read = cluster
        .ledger(leader)
        .await
        .get_balance(pb::BalanceRequest {
            account_id: id(1),
            as_of_ns: None,
        })
        .await
        .expect("balance")
        .into_inner();
    assert_eq!(read.balances.unwrap().debits_pending, "0.00");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_are_forgotten_after_their_retention_on_an_idle_cluster() {
    use tally_ledger::{BeginIdempotent, IdempotencyKey, LedgerRead};
    use tally_proto::payments_node_codec::IdempotencyCommand;
    let cluster = Cluster::start(3, RaftTuning::default()).await;
    let leader = cluster.wait_for_leader(None).await;
    let endpoints = vec![cluster.infos[&leader].api_addr.clone()];
    let client = tally_proto::client::LedgerClient::connect(endpoints)
        .await
        .expect("connect");
    let key = IdempotencyKey::new("m1:retained-briefly").unwrap();
    let begin = IdempotencyCommand::Begin(BeginIdempotent {
        key: key.clone(),
        request_hash: [1; 32],
        lease_ms: 100,
        retain_ms: 500,
    });
    let results = client
        .execute_idempotency(std::slice::from_ref(&begin))
        .await
        .expect("begin");
    assert!(results[0].is_ok(), "{results:?}");
    let kept = |node: u64| {
        tally_raft_store::ledger_view(&*cluster.nodes[&node].kv)
            .idempotency(&key)
            .is_some()
    };
    assert!(kept(leader));
    // No writes and no reads: the leader's timekeeper has every replica forget it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while cluster.nodes.keys().any(|node| kept(*node)) {
        assert!(
            Instant::now() < deadline,
            "the idempotency record outlived its retention on an idle cluster"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cluster.wait_converged().await;
    cluster.assert_same_hash_everywhere();
    // Reused after its retention, the key is a new request.
    let results = client
        .execute_idempotency(&[begin])
        .await
        .expect("begin again");
    assert!(
        matches!(
            &results[0],
            Ok(tally_proto::payments_node_codec::IdempotencyAnswer::Begun(
                tally_ledger::IdempotencyBegun::Started { attempt: 1, .. }
            ))
        ),
        "{results:?}"
    );
    cluster.shutdown().await;
}
