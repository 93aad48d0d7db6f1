//! Hand-written fault scenarios on the simulated cluster: each pins one bug the seeded runs
//! found, so that it stays fixed even when other changes move the seeds' schedules.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use tally_ledger::{
    AccountId, Currency, Metadata, NewAccount, NewTransfer, TransferId, TransferKind,
};
use tally_proto::client::LedgerClient;
use tally_proto::convert::{PartialPost, TransferDraft};
use tally_sim_tests::cluster::{api_endpoints, node_name, Cluster};
use tally_sim_tests::run::{world, TICK_MS};
use tally_sim_tests::workload::{new_account, sim_client};
use tally_sim_tests::SimConfig;

fn account(id: u128, wallet: bool) -> NewAccount {
    new_account(AccountId(id), wallet)
}

fn transfer(id: u128, kind: TransferKind) -> TransferDraft {
    TransferDraft::Ready(NewTransfer {
        id: TransferId(id),
        kind,
        code: 1,
        metadata: Metadata::default(),
        linked: false,
    })
}

fn client(endpoints: Vec<String>) -> LedgerClient {
    sim_client(endpoints).expect("endpoints")
}

async fn codes(
    client: &LedgerClient,
    items: Vec<TransferDraft>,
) -> Result<Vec<String>, tally_proto::client::ClientError> {
    let response = client.create_transfers(items).await?;
    Ok(response.results.into_iter().map(|r| r.code).collect())
}

/// Seed 16 found it: a partial post answered by a replica that had not applied the hold yet was
/// refused `pending_transfer_not_found` from that replica's stale state, even though the hold
/// existed (and the post, retried, had applied). Now the replica answers only from a
/// linearizable view: cut off from the leader, it sends the client on, and the post applies.
#[test]
fn a_partial_post_sent_to_a_replica_without_the_hold_is_not_refused() {
    let config = SimConfig {
        faults: false,
        ..SimConfig::for_seed(1)
    };
    let mut sim = world(config.seed, Duration::from_secs(60)).build();
    let _cluster = Cluster::start(&mut sim, &config, &[0, 0, 0]);
    let answer: Rc<RefCell<Option<Vec<String>>>> = Rc::new(RefCell::new(None));
    let seen = answer.clone();
    sim.client("client1", async move {
        let all = client(api_endpoints(3));
        let (bank, from, to, hold) = (1u128, 2u128, 3u128, 100u128);
        all.create_accounts([account(bank, false), account(from, true), account(to, true)])
            .await?;
        let deposit = TransferKind::Single {
            debit_account_id: AccountId(bank),
            credit_account_id: AccountId(from),
            amount_minor: 1_000,
            currency: Currency::USD,
        };
        assert_eq!(codes(&all, vec![transfer(10, deposit)]).await?, ["ok"]);
        // node3 falls behind: it will never see the hold.
        for other in [node_name(0), node_name(1)] {
            turmoil::partition(node_name(2), other);
        }
        let pending = TransferKind::Pending {
            debit_account_id: AccountId(from),
            credit_account_id: AccountId(to),
            amount_minor: 500,
            currency: Currency::USD,
            timeout_s: 0,
        };
        assert_eq!(codes(&all, vec![transfer(hold, pending)]).await?, ["ok"]);
        // A client that asks node3 first, node1 next.
        let lagging_first = client(vec![
            api_endpoints(3)[2].clone(),
            api_endpoints(3)[0].clone(),
        ]);
        let post = TransferDraft::PartialPost(PartialPost {
            id: TransferId(11),
            pending_id: TransferId(hold),
            amount: "2.00".into(),
            code: 1,
            metadata: Metadata::default(),
            linked: false,
        });
        *seen.borrow_mut() = Some(codes(&lagging_first, vec![post]).await?);
        Ok(())
    });
    sim.run().expect("the scenario runs");
    assert_eq!(
        answer.borrow().as_deref(),
        Some(&["ok".to_owned()][..]),
        "the post of an existing hold must apply"
    );
}

/// Seeds 20 and 37 found it: a connection whose packets are lost without a reset (turmoil's
/// message loss; a dropped NAT entry in life) failed no call by itself, so the leader kept
/// sending a follower its appends over a dead connection and the follower never caught up.
/// HTTP/2 keepalive pings now find the dead connection and the channel reconnects.
#[test]
fn a_follower_behind_a_silently_dead_connection_catches_up() {
    let config = SimConfig {
        faults: false,
        ..SimConfig::for_seed(2)
    };
    let mut sim = world(config.seed, Duration::from_secs(120)).build();
    let cluster = Cluster::start(&mut sim, &config, &[0, 0, 0]);
    sim.client("client1", async move {
        let all = client(api_endpoints(3));
        all.create_accounts([account(1, false), account(2, true)])
            .await?;
        for id in 0..40u128 {
            let deposit = TransferKind::Single {
                debit_account_id: AccountId(1),
                credit_account_id: AccountId(2),
                amount_minor: 1,
                currency: Currency::USD,
            };
            codes(&all, vec![transfer(100 + id, deposit)]).await?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    });
    let applied = |node: usize| {
        use tally_ledger::LedgerRead;
        tally_raft_store::ledger_view(&cluster.stores[node])
            .meta()
            .batches_applied
    };
    // Let the cluster settle and the workload start, then drop everything in flight on every
    // link to node3 once: its connections are dead but never reset.
    for _ in 0..1_000 / TICK_MS {
        sim.step().expect("steps");
    }
    for other in [node_name(0), node_name(1)] {
        sim.set_link_fail_rate(node_name(2), other.clone(), 1.0);
    }
    sim.step().expect("steps");
    for other in [node_name(0), node_name(1)] {
        sim.set_link_fail_rate(node_name(2), other, 0.0);
    }
    sim.run().expect("the workload finishes");
    let mut caught_up = false;
    for _ in 0..15_000 / TICK_MS {
        if applied(2) == applied(0) && applied(0) == applied(1) {
            caught_up = true;
            break;
        }
        sim.step().expect("steps");
    }
    assert!(
        caught_up,
        "node3 stuck at {} batches while node1 has {}",
        applied(2),
        applied(0)
    );
    assert!(
        applied(0) >= 40,
        "the workload applied {} batches",
        applied(0)
    );
}
