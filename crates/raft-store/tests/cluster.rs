//! Three-node clusters over real loopback gRPC with RocksDB on disk: replication, failover,
//! restarts, snapshot catch-up, membership changes and refusals.

mod support;

use std::time::{Duration, Instant};
use support::{codes, id, usd_account, usd_transfer, Cluster};
use tally_proto::admin::{AddLearnerRequest, ChangeMembershipRequest, Empty, Member};
use tally_proto::ledger as pb;
use tally_raft_store::RaftTuning;

const BANK: u128 = 1;
const WALLET: u128 = 2;

async fn open_accounts(cluster: &Cluster, leader: u64) {
    let response = cluster
        .ledger(leader)
        .await
        .create_accounts(pb::CreateAccountsRequest {
            accounts: vec![usd_account(BANK, false), usd_account(WALLET, true)],
        })
        .await
        .expect("create accounts")
        .into_inner();
    assert_eq!(codes(&response), ["ok", "ok"]);
}

async fn pay(cluster: &Cluster, node: u64, transfer_id: u128, amount: &str) -> String {
    let response = cluster
        .ledger(node)
        .await
        .create_transfers(pb::CreateTransfersRequest {
            transfers: vec![usd_transfer(transfer_id, BANK, WALLET, amount)],
        })
        .await
        .expect("create transfer")
        .into_inner();
    response.results[0].code.clone()
}

async fn wallet_credits(cluster: &Cluster, node: u64) -> String {
    let response = cluster
        .ledger(node)
        .await
        .get_balance(pb::BalanceRequest {
            account_id: id(WALLET),
            as_of_ns: None,
        })
        .await
        .expect("balance")
        .into_inner();
    response.balances.expect("balances").credits_posted
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_replicate_to_every_node_with_equal_hash_chains() {
    let cluster = Cluster::start(3, RaftTuning::default()).await;
    let leader = cluster.wait_for_leader(None).await;
    open_accounts(&cluster, leader).await;
    for i in 0..20 {
        assert_eq!(pay(&cluster, leader, 100 + i, "1.25").await, "ok");
    }
    cluster.wait_converged().await;
    cluster.assert_same_hash_everywhere();
    for id in cluster.nodes.keys() {
        use tally_ledger::LedgerRead;
        let view = tally_raft_store::ledger_view(&*cluster.nodes[id].kv);
        let wallet = view
            .account(tally_ledger::AccountId(WALLET))
            .expect("replicated");
        assert_eq!(wallet.balances.credits_posted, 2_500);
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_elects_a_new_one_and_loses_no_acknowledged_transfer() {
    let mut cluster = Cluster::start(3, RaftTuning::default()).await;
    let old_leader = cluster.wait_for_leader(None).await;
    open_accounts(&cluster, old_leader).await;
    for i in 0..10 {
        assert_eq!(pay(&cluster, old_leader, 200 + i, "1.00").await, "ok");
    }
    let stopped_at = Instant::now();
    cluster.stop(old_leader).await;
    let new_leader = cluster.wait_for_leader(Some(old_leader)).await;
    assert_ne!(new_leader, old_leader);
    assert_eq!(pay(&cluster, new_leader, 300, "1.00").await, "ok");
    let failover = stopped_at.elapsed();
    assert!(
        failover < Duration::from_secs(5),
        "failover took {failover:?}"
    );
    // Every acknowledged transfer survived; a retry is answered from the record, not re-applied.
    assert_eq!(pay(&cluster, new_leader, 205, "1.00").await, "exists");
    assert_eq!(wallet_credits(&cluster, new_leader).await, "11.00");
    cluster.restart(old_leader).await;
    cluster.wait_converged().await;
    cluster.assert_same_hash_everywhere();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_follower_catches_up() {
    let mut cluster = Cluster::start(3, RaftTuning::default()).await;
    let leader = cluster.wait_for_leader(None).await;
    open_accounts(&cluster, leader).await;
    let follower = *cluster.nodes.keys().find(|id| **id != leader).unwrap();
    cluster.stop(follower).await;
    for i in 0..15 {
        assert_eq!(pay(&cluster, leader, 400 + i, "2.00").await, "ok");
    }
    cluster.restart(follower).await;
    cluster.wait_converged().await;
    cluster.assert_same_hash_everywhere();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_behind_the_purge_point_catches_up_by_snapshot() {
    let tuning = RaftTuning {
        snapshot_after_entries: 10,
        entries_kept_after_snapshot: 2,
        ..RaftTuning::default()
    };
    let mut cluster = Cluster::start(3, tuning).await;
    let leader = cluster.wait_for_leader(None).await;
    open_accounts(&cluster, leader).await;
    let follower = *cluster.nodes.keys().find(|id| **id != leader).unwrap();
    cluster.stop(follower).await;
    for i in 0..40 {
        assert_eq!(pay(&cluster, leader, 500 + i, "0.50").await, "ok");
    }
    cluster
        .admin(leader)
        .await
        .trigger_snapshot(Empty {})
        .await
        .expect("snapshot");
    let leader_raft = cluster.nodes[&leader].raft.clone();
    leader_raft
        .wait(Some(Duration::from_secs(10)))
        .metrics(
            |m| m.purged.is_some_and(|p| p.index > 5),
            "leader purged its log",
        )
        .await
        .expect("purge");
    cluster.restart(follower).await;
    cluster.wait_converged().await;
    let metrics = cluster.nodes[&follower].raft.metrics().borrow().clone();
    assert!(
        metrics.snapshot.is_some(),
        "follower caught up without a snapshot: {metrics:?}"
    );
    cluster.assert_same_hash_everywhere();
    assert_eq!(wallet_credits(&cluster, leader).await, "20.00");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_are_added_promoted_and_removed() {
    let mut cluster = Cluster::start(3, RaftTuning::default()).await;
    let leader = cluster.wait_for_leader(None).await;
    open_accounts(&cluster, leader).await;
    assert_eq!(pay(&cluster, leader, 600, "3.00").await, "ok");
    cluster.add_node(4).await;
    let info = cluster.infos[&4].clone();
    let mut admin = cluster.admin(leader).await;
    admin
        .add_learner(AddLearnerRequest {
            member: Some(Member {
                node_id: 4,
                raft_addr: info.raft_addr,
                api_addr: info.api_addr,
                voter: false,
            }),
        })
        .await
        .expect("add learner");
    admin
        .change_membership(ChangeMembershipRequest {
            voters: vec![1, 2, 3, 4],
            retain: false,
        })
        .await
        .expect("promote");
    let removed = if leader == 3 { 2 } else { 3 };
    let voters: Vec<u64> = [1, 2, 3, 4].into_iter().filter(|v| *v != removed).collect();
    admin
        .change_membership(ChangeMembershipRequest {
            voters,
            retain: false,
        })
        .await
        .expect("remove");
    cluster.stop(removed).await;
    let leader = cluster.wait_for_leader(None).await;
    assert_eq!(pay(&cluster, leader, 601, "3.00").await, "ok");
    cluster.wait_converged().await;
    let membership = cluster.nodes[&leader]
        .raft
        .metrics()
        .borrow()
        .membership_config
        .clone();
    let voters: Vec<u64> = membership.membership().voter_ids().collect();
    assert!(
        voters.contains(&4) && !voters.contains(&removed),
        "voters: {voters:?}"
    );
    cluster.assert_same_hash_everywhere();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_cluster_restart_keeps_every_balance() {
    let mut cluster = Cluster::start(3, RaftTuning::default()).await;
    let leader = cluster.wait_for_leader(None).await;
    open_accounts(&cluster, leader).await;
    for i in 0..12 {
        assert_eq!(pay(&cluster, leader, 700 + i, "0.75").await, "ok");
    }
    cluster.wait_converged().await;
    let before = cluster.hash_chain(leader);
    for id in [1, 2, 3] {
        cluster.stop(id).await;
    }
    for id in [1, 2, 3] {
        cluster.restart(id).await;
    }
    let leader = cluster.wait_for_leader(None).await;
    assert_eq!(wallet_credits(&cluster, leader).await, "9.00");
    cluster.wait_converged().await;
    assert_eq!(cluster.hash_chain(leader), before);
    cluster.assert_same_hash_everywhere();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_per_item_errors_and_change_nothing() {
    let cluster = Cluster::start(3, RaftTuning::default()).await;
    let leader = cluster.wait_for_leader(None).await;
    open_accounts(&cluster, leader).await;
    let mut ledger = cluster.ledger(leader).await;
    let before = cluster.hash_chain(leader);

    let mut wrong_currency = usd_transfer(801, BANK, WALLET, "1.00");
    if let Some(pb::new_transfer::Kind::Single(single)) = &mut wrong_currency.kind {
        single.currency = "EUR".into();
    }
    let response = ledger
        .create_transfers(pb::CreateTransfersRequest {
            transfers: vec![usd_transfer(800, BANK, 99, "1.00"), wrong_currency],
        })
        .await
        .expect("answered per item")
        .into_inner();
    assert_eq!(
        codes(&response),
        [
            "credit_account_not_found",
            "transfer_currency_must_match_accounts"
        ]
    );
    assert!(response.results.iter().all(|r| !r.message.is_empty()));

    let response = ledger
        .create_transfers(pb::CreateTransfersRequest {
            transfers: vec![
                usd_transfer(802, BANK, WALLET, "1.001"),
                usd_transfer(803, BANK, WALLET, "1.00"),
            ],
        })
        .await
        .expect("answered per item")
        .into_inner();
    // An invalid item is refused (with its chain) before anything reaches the log; unlinked
    // valid items still apply.
    assert_eq!(response.results[0].code, "amount_too_many_decimals");
    assert!(!response.results[0].message.is_empty());
    assert_eq!(response.results[1].code, "ok");

    let oversized = (0..8_191)
        .map(|i| usd_transfer(10_000 + i, BANK, WALLET, "0.01"))
        .collect();
    let status = ledger
        .create_transfers(pb::CreateTransfersRequest {
            transfers: oversized,
        })
        .await
        .expect_err("oversized batch refused whole");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("8190"), "{}", status.message());

    cluster.wait_converged().await;
    // Only the valid transfer moved money; the refused ones changed no balance.
    assert_eq!(wallet_credits(&cluster, leader).await, "1.00");
    assert_ne!(cluster.hash_chain(leader), before);
    cluster.assert_same_hash_everywhere();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_refuses_writes_and_names_the_leader() {
    let cluster = Cluster::start(3, RaftTuning::default()).await;
    let leader = cluster.wait_for_leader(None).await;
    let follower = *cluster.nodes.keys().find(|id| **id != leader).unwrap();
    let status = cluster
        .ledger(follower)
        .await
        .create_accounts(pb::CreateAccountsRequest {
            accounts: vec![usd_account(BANK, false)],
        })
        .await
        .expect_err("followers do not write");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    let hint = status
        .metadata()
        .get("tally-leader-api")
        .expect("leader hint")
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(hint, cluster.infos[&leader].api_addr);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_replicate_through_the_payments_service_and_survive_a_leader_kill() {
    use std::collections::BTreeMap;
    use tally_ledger::payment::{
        BuyerId, CaptureMode, ChargeOutcome, CheckoutId, FeeSchedule, MerchantId, NewBuyer,
        NewMerchant, NewOrder, NewPayment, OrderId, OrderState, PaymentCommand, PaymentMethod,
        PaymentOutcome, PaymentQuery, PaymentQueryResult, PspName, RiskOutcome, RiskRecord,
    };
    use tally_ledger::Currency;

    let mut cluster = Cluster::start(3, RaftTuning::default()).await;
    let old_leader = cluster.wait_for_leader(None).await;
    let endpoints: Vec<String> = cluster.infos.values().map(|i| i.api_addr.clone()).collect();
    let client = tally_proto::client::LedgerClient::connect(endpoints)
        .await
        .expect("client connects");
    let order = OrderId::new("o1").unwrap();
    let setup = vec![
        PaymentCommand::CreateMerchant(NewMerchant {
            id: MerchantId::new("s1").unwrap(),
            name: "Seller".to_string(),
            fees: FeeSchedule {
                bps: 100,
                fixed_minor: BTreeMap::new(),
            },
            hold_period_s: 0,
        }),
        PaymentCommand::CreateBuyer(NewBuyer {
            id: BuyerId::new("b1").unwrap(),
            wallet_currencies: vec![],
        }),
        PaymentCommand::CreatePayment(NewPayment {
            checkout_id: CheckoutId::new("c1").unwrap(),
            merchant_id: MerchantId::new("s1").unwrap(),
            buyer_id: BuyerId::new("b1").unwrap(),
            method: Some(PaymentMethod::Card {
                token: "tok_ok".to_string(),
            }),
            capture: CaptureMode::Automatic,
            psp: PspName::new("sim").unwrap(),
            risk: RiskRecord {
                outcome: RiskOutcome::Approve,
                flagged: false,
                reasons: vec![],
            },
            request_hash: [1; 32],
            orders: vec![NewOrder {
                order_id: order.clone(),
                seller_id: MerchantId::new("s1").unwrap(),
                amount_minor: 10_000,
                currency: Currency::USD,
            }],
        }),
        PaymentCommand::ClaimOrder {
            order_id: order.clone(),
            lease_ms: 30_000,
        },
    ];
    let results = client.execute_payments(&setup).await.expect("setup runs");
    let codes: Vec<&str> = results
        .iter()
        .map(|r| r.as_ref().map_or_else(|e| e.code(), PaymentOutcome::code))
        .collect();
    assert_eq!(codes, ["ok", "ok", "ok", "claimed"]);

    cluster.stop(old_leader).await;
    cluster.wait_for_leader(Some(old_leader)).await;
    // The client finds the new leader by itself; recording twice is answered unchanged.
    let captured = PaymentCommand::RecordChargeOutcome {
        order_id: order.clone(),
        outcome: ChargeOutcome::Captured {
            psp_charge_id: "ch_1".to_string(),
            amount_minor: 10_000,
        },
        event_id: None,
    };
    let results = client
        .execute_payments(&[captured.clone(), captured])
        .await
        .expect("capture recorded");
    let codes: Vec<&str> = results
        .iter()
        .map(|r| r.as_ref().map_or_else(|e| e.code(), PaymentOutcome::code))
        .collect();
    assert_eq!(codes, ["ok", "unchanged"]);

    let answer = client
        .query_payments(&PaymentQuery::PaymentOfOrder {
            order_id: order.clone(),
        })
        .await
        .expect("query answers");
    let PaymentQueryResult::Payment(Some(payment)) = answer else {
        panic!("payment missing: {answer:?}")
    };
    let stored = payment.order(&order).expect("order");
    assert_eq!(stored.state, OrderState::Succeeded);
    assert_eq!(stored.fee_minor, 100);
    assert_eq!(stored.held_minor, 9_900);

    cluster.restart(old_leader).await;
    cluster.wait_converged().await;
    // Equal hash chains, and on every node the audit finds the held account equal to the orders.
    cluster.assert_same_hash_everywhere();
    cluster.shutdown().await;
}
