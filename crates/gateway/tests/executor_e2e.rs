//! The PSP executor against a real node and the PSP simulator over loopback: every order is
//! charged exactly once whatever fails between the gateway, the PSP and the ledger.

mod support;

use std::time::Duration;
use support::{fast_retries, Stack};
use tally_ledger::payment::{chart, CaptureMode, MerchantId, OrderId, OrderState, PaymentCommand};
use tally_ledger::{Currency, LedgerRead};
use tally_psp::sim::SimConfig;

/// Charges the simulator recorded for `order` (its own ledger, one row per money movement).
async fn sim_charges(stack: &Stack, order: &str) -> usize {
    let rows = stack.psp.sim_ledger().await.expect("sim ledger");
    rows.iter()
        .filter(|row| row.idempotency_key == order && row.kind == "charge")
        .count()
}

fn held(stack: &Stack, seller: &str) -> i128 {
    let view = tally_raft_store::ledger_view(&*stack.kv);
    let id = chart::merchant_held(&MerchantId::new(seller).unwrap(), Currency::USD);
    view.account(id).map_or(0, |a| {
        a.balances.credits_posted as i128 - a.balances.debits_posted as i128
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_with_three_orders_is_charged_once_per_order_and_held_net_of_fees() {
    let stack = Stack::start(SimConfig::default()).await;
    stack.seed_parties().await;
    stack
        .checkout(
            "c1",
            "tok_ok",
            CaptureMode::Automatic,
            &[
                ("o1", "s1", 10_000),
                ("o2", "s2", 20_000),
                ("o3", "s3", 5_000),
            ],
        )
        .await;
    let executor = stack.executor(fast_retries(), 1);
    for order in ["o1", "o2", "o3"] {
        assert_eq!(
            stack.drive_until_final(&executor, order).await,
            OrderState::Succeeded
        );
        assert_eq!(sim_charges(&stack, order).await, 1);
    }
    assert_eq!(held(&stack, "s1"), 9_900);
    assert_eq!(held(&stack, "s2"), 19_800);
    // Fulfilment releases held funds to the seller's wallet.
    let codes = stack
        .run(vec![PaymentCommand::FulfillOrder {
            order_id: OrderId::new("o1").unwrap(),
        }])
        .await;
    assert_eq!(codes, ["ok"]);
    assert_eq!(held(&stack, "s1"), 0);
    stack.audit();
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_card_fails_the_order_and_moves_no_money() {
    let stack = Stack::start(SimConfig::default()).await;
    stack.seed_parties().await;
    stack
        .checkout(
            "c1",
            "tok_decline",
            CaptureMode::Automatic,
            &[("o1", "s1", 1_000)],
        )
        .await;
    let executor = stack.executor(fast_retries(), 2);
    assert_eq!(
        stack.drive_until_final(&executor, "o1").await,
        OrderState::Failed
    );
    let payment = stack.payment_of("o1").await;
    let order = payment.order(&OrderId::new("o1").unwrap()).unwrap();
    assert_eq!(order.last_error.as_ref().unwrap().code, "card_declined");
    assert_eq!(held(&stack, "s1"), 0);
    stack.audit();
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_capture_authorizes_first() {
    let stack = Stack::start(SimConfig::default()).await;
    stack.seed_parties().await;
    stack
        .checkout("c1", "tok_ok", CaptureMode::Manual, &[("o1", "s1", 1_000)])
        .await;
    let executor = stack.executor(fast_retries(), 3);
    assert_eq!(
        stack.drive_until_final(&executor, "o1").await,
        OrderState::Authorized
    );
    assert_eq!(held(&stack, "s1"), 0, "an authorization moves no money yet");
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_dies_holding_a_claim_is_replaced_after_its_lease() {
    let stack = Stack::start(SimConfig::default()).await;
    stack.seed_parties().await;
    stack
        .checkout(
            "c1",
            "tok_ok",
            CaptureMode::Automatic,
            &[("o1", "s1", 1_000)],
        )
        .await;
    // The first gateway claims the order and dies before calling the PSP.
    let codes = stack
        .run(vec![PaymentCommand::ClaimOrder {
            order_id: OrderId::new("o1").unwrap(),
            lease_ms: 500,
        }])
        .await;
    assert_eq!(codes, ["claimed"]);
    let executor = stack.executor(fast_retries(), 4);
    let report = executor.sweep().await.expect("sweep");
    assert_eq!(report.outcomes.len(), 0, "a live lease keeps others out");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        stack.drive_until_final(&executor, "o1").await,
        OrderState::Succeeded
    );
    let payment = stack.payment_of("o1").await;
    assert_eq!(
        payment.order(&OrderId::new("o1").unwrap()).unwrap().attempt,
        2
    );
    assert_eq!(sim_charges(&stack, "o1").await, 1);
    stack.audit();
    stack.stop().await;
}
