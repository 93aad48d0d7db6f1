//! The unhappy paths of money, end to end over loopback (a real node on RocksDB, the gateway's
//! gRPC and HTTP, the PSP simulator): payouts and their schedules, the dead-letter queue with
//! re-drive and discard, and PSP webhooks that are forged, rotated, duplicated or reordered.
//! Every test ends with the ledger's audit (zero-sum, held and in-transit funds match records).

mod support;

use std::time::{Duration, Instant};
use support::{
    authed, available, card, checkout, error_code, fast_retries, onboard, pay_by_card,
    pending_order, permissive_risk, scrape, settled_order, Gateway, Stack, ADMIN_TOKEN,
    PREVIOUS_WEBHOOK_SECRET,
};
use tally_ledger::LedgerRead;
use tally_proto::payments as pb;
use tally_psp::sim::SimConfig;
use tally_psp::{Charge, ChargeStatus, Psp, WebhookEvent};

const SIM_SECRET: &[u8] = b"whsec_test";

async fn start(webhooks: bool) -> (Stack, Gateway, String) {
    let sim = SimConfig {
        webhook_secret: SIM_SECRET.to_vec(),
        ..SimConfig::default()
    };
    let stack = if webhooks {
        Stack::start_with_gateway_webhooks(sim).await
    } else {
        Stack::start(sim).await
    };
    let mut gateway = stack
        .start_gateway(Some(fast_retries()), permissive_risk())
        .await;
    let key = onboard(&mut gateway).await;
    (stack, gateway, key)
}

/// Seller `s1` is paid `amount` for order `order` and the order is fulfilled, so 99% of it
/// (the fee is 1%) is available for payouts.
async fn fund_s1(gateway: &mut Gateway, key: &str, order: &str, amount: &str) {
    pay_by_card(gateway, key, &format!("c-{order}"), order, amount).await;
    assert_eq!(settled_order(gateway, key, order).await.state, "succeeded");
    gateway
        .payments
        .fulfill_order(authed(
            pb::FulfillOrderRequest {
                order_id: order.to_string(),
            },
            key,
        ))
        .await
        .expect("fulfilled");
}

async fn create_payout(
    gateway: &mut Gateway,
    payout_id: &str,
    merchant: &str,
    amount: &str,
) -> Result<pb::Payout, tonic::Status> {
    gateway
        .payouts
        .create_payout(authed(
            pb::CreatePayoutRequest {
                payout_id: payout_id.to_string(),
                merchant_id: merchant.to_string(),
                currency: "USD".to_string(),
                amount: amount.to_string(),
            },
            ADMIN_TOKEN,
        ))
        .await
        .map(tonic::Response::into_inner)
}

async fn get_payout(gateway: &mut Gateway, payout_id: &str) -> pb::Payout {
    gateway
        .payouts
        .get_payout(authed(
            pb::GetPayoutRequest {
                payout_id: payout_id.to_string(),
                merchant_id: String::new(),
            },
            ADMIN_TOKEN,
        ))
        .await
        .expect("payout readable")
        .into_inner()
}

/// Polls until the payout is final or dead-lettered.
async fn settled_payout(gateway: &mut Gateway, payout_id: &str) -> pb::Payout {
    let deadline = Instant::now() + Duration::from_millis(support::WAIT_MS_MAX);
    loop {
        let payout = get_payout(gateway, payout_id).await;
        if payout.dead_lettered || ["paid", "failed", "canceled"].contains(&payout.status.as_str())
        {
            return payout;
        }
        assert!(Instant::now() < deadline, "payout stuck: {payout:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn dead_letters(gateway: &mut Gateway) -> Vec<pb::DeadLetter> {
    gateway
        .dead_letters
        .list_dead_letters(authed(
            pb::ListDeadLettersRequest {
                page_size: 100,
                page_token: String::new(),
            },
            ADMIN_TOKEN,
        ))
        .await
        .expect("dead letters listed")
        .into_inner()
        .dead_letters
}

async fn psp_payouts(stack: &Stack) -> Vec<(String, u64)> {
    stack
        .psp
        .sim_ledger()
        .await
        .expect("sim ledger")
        .into_iter()
        .filter(|row| row.kind == "payout")
        .map(|row| (row.idempotency_key, row.amount_minor))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payout_is_paid_through_the_psp_once_and_leaves_the_sellers_available_balance() {
    let (stack, mut gateway, key) = start(false).await;
    fund_s1(&mut gateway, &key, "o1", "100.00").await;
    assert_eq!(available(&stack, "s1"), 9_900);

    let created = create_payout(&mut gateway, "po1", "s1", "60.00")
        .await
        .unwrap();
    assert_eq!(created.amount, "60.00");
    // The payout id is the idempotency key: resending creates nothing new.
    let again = create_payout(&mut gateway, "po1", "s1", "60.00")
        .await
        .unwrap();
    assert_eq!(again.payout_id, "po1");
    let paid = settled_payout(&mut gateway, "po1").await;
    assert_eq!(paid.status, "paid", "{paid:?}");
    assert!(!paid.psp_payout_id.is_empty());
    assert_eq!(available(&stack, "s1"), 3_900);
    assert_eq!(psp_payouts(&stack).await, vec![("po1".to_string(), 6_000)]);

    // A seller's own key sees its payouts; another merchant's key cannot act for it.
    let s1_key = gateway
        .merchants
        .create_api_key(authed(
            pb::CreateApiKeyRequest {
                merchant_id: "s1".to_string(),
            },
            ADMIN_TOKEN,
        ))
        .await
        .unwrap()
        .into_inner()
        .api_key;
    let listed = gateway
        .payouts
        .list_payouts(authed(
            pb::ListPayoutsRequest {
                merchant_id: String::new(),
                page_size: 10,
                page_token: String::new(),
            },
            &s1_key,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.payouts.len(), 1);
    let refused = gateway
        .payouts
        .create_payout(authed(
            pb::CreatePayoutRequest {
                payout_id: "po-theft".to_string(),
                merchant_id: "s1".to_string(),
                currency: "USD".to_string(),
                amount: "1.00".to_string(),
            },
            &key,
        ))
        .await
        .unwrap_err();
    assert_eq!(error_code(&refused), "not_your_merchant");
    stack.audit();
    gateway.stop().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payout_to_a_closed_account_fails_and_the_held_funds_return() {
    let (stack, mut gateway, key) = start(false).await;
    gateway
        .merchants
        .create_merchant(authed(
            pb::CreateMerchantRequest {
                merchant_id: "closed-seller".to_string(),
                name: "A seller whose bank account is closed".to_string(),
                fees: None,
                hold_period_s: 0,
            },
            ADMIN_TOKEN,
        ))
        .await
        .unwrap();
    gateway
        .payments
        .create_payment(authed(
            checkout(
                "c1",
                card("tok_visa"),
                pb::CaptureMethod::Automatic,
                &[("o1", "closed-seller", "30.00")],
            ),
            &key,
        ))
        .await
        .unwrap();
    settled_order(&mut gateway, &key, "o1").await;
    gateway
        .payments
        .fulfill_order(authed(
            pb::FulfillOrderRequest {
                order_id: "o1".to_string(),
            },
            &key,
        ))
        .await
        .unwrap();
    assert_eq!(available(&stack, "closed-seller"), 3_000);
    create_payout(&mut gateway, "po1", "closed-seller", "")
        .await
        .unwrap();
    let failed = settled_payout(&mut gateway, "po1").await;
    assert_eq!(failed.status, "failed");
    assert_eq!(failed.last_error_code, "account_closed");
    assert_eq!(available(&stack, "closed-seller"), 3_000, "funds are back");
    assert!(psp_payouts(&stack).await.is_empty());
    stack.audit();
    gateway.stop().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payout_cannot_exceed_the_available_balance() {
    let (stack, mut gateway, key) = start(false).await;
    fund_s1(&mut gateway, &key, "o1", "10.00").await;
    let refused = create_payout(&mut gateway, "po1", "s1", "9.91")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert_eq!(error_code(&refused), "payout_exceeds_available");
    assert!(refused.message().contains("990"), "{}", refused.message());
    create_payout(&mut gateway, "po2", "s1", "9.90")
        .await
        .unwrap();
    let refused = create_payout(&mut gateway, "po3", "s1", "0.01")
        .await
        .unwrap_err();
    assert_eq!(error_code(&refused), "payout_exceeds_available");
    assert_eq!(settled_payout(&mut gateway, "po2").await.status, "paid");
    stack.audit();
    gateway.stop().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payout_schedule_pays_out_the_available_balance_when_due() {
    let (stack, mut gateway, key) = start(false).await;
    fund_s1(&mut gateway, &key, "o1", "20.00").await;
    let schedules = gateway
        .payouts
        .set_payout_schedule(authed(
            pb::SetPayoutScheduleRequest {
                merchant_id: "s1".to_string(),
                currency: "USD".to_string(),
                interval: "every_1s".to_string(),
                minimum_amount: "5.00".to_string(),
            },
            ADMIN_TOKEN,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(schedules.schedules.len(), 1);
    assert_eq!(schedules.schedules[0].interval, "every_1s");
    let deadline = Instant::now() + Duration::from_millis(support::WAIT_MS_MAX);
    let payout = loop {
        let listed = gateway
            .payouts
            .list_payouts(authed(
                pb::ListPayoutsRequest {
                    merchant_id: "s1".to_string(),
                    page_size: 10,
                    page_token: String::new(),
                },
                ADMIN_TOKEN,
            ))
            .await
            .unwrap()
            .into_inner();
        if let Some(payout) = listed.payouts.into_iter().find(|p| p.status == "paid") {
            break payout;
        }
        assert!(Instant::now() < deadline, "no scheduled payout was paid");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(payout.scheduled);
    assert_eq!(payout.amount, "19.80");
    assert_eq!(available(&stack, "s1"), 0);
    // Later runs find less than the minimum and pay nothing.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(psp_payouts(&stack).await.len(), 1);
    stack.audit();
    gateway.stop().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_payout_retries_dead_letter_it_and_a_redrive_pays_it_once() {
    let (stack, mut gateway, key) = start(false).await;
    fund_s1(&mut gateway, &key, "o1", "50.00").await;
    // The test worker makes 4 attempts (3 retries); the PSP fails every one of them.
    stack.psp.inject_faults("error_500", 4).await.unwrap();
    create_payout(&mut gateway, "po1", "s1", "40.00")
        .await
        .unwrap();
    let dead = settled_payout(&mut gateway, "po1").await;
    assert!(dead.dead_lettered, "{dead:?}");
    assert_eq!(
        dead.status, "pending",
        "funds stay held while dead-lettered"
    );
    // Posted balance untouched; the payout's 40.00 stays held by its pending transfer.
    assert_eq!(available(&stack, "s1"), 4_950);
    let in_transit = tally_raft_store::ledger_view(&*stack.kv)
        .account(tally_ledger::payment::chart::merchant_payout_in_transit(
            &tally_ledger::payment::MerchantId::new("s1").unwrap(),
            tally_ledger::Currency::USD,
        ))
        .unwrap();
    assert_eq!(in_transit.balances.credits_pending, 4_000);
    let letters = dead_letters(&mut gateway).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].work, "payout:po1");
    assert_eq!(letters[0].last_error_code, "retries_exhausted");
    assert_eq!(letters[0].history.len(), 4, "{:?}", letters[0].history);
    assert!(letters[0]
        .history
        .iter()
        .take(3)
        .all(|a| a.code == "psp_unavailable"));
    let metrics = scrape(&gateway).await;
    assert!(
        metrics.contains("tally_gateway_dead_letters{kind=\"payout\"} 1"),
        "{metrics}"
    );
    let redriven = gateway
        .dead_letters
        .redrive_dead_letter(authed(
            pb::RedriveDeadLetterRequest {
                work: "payout:po1".to_string(),
            },
            ADMIN_TOKEN,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(redriven.state, "pending");
    assert_eq!(settled_payout(&mut gateway, "po1").await.status, "paid");
    assert!(dead_letters(&mut gateway).await.is_empty());
    assert_eq!(psp_payouts(&stack).await, vec![("po1".to_string(), 4_000)]);
    stack.audit();
    gateway.stop().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_payout_goes_straight_to_the_dead_letter_queue_and_a_discard_returns_its_funds() {
    let (stack, mut gateway, key) = start(false).await;
    fund_s1(&mut gateway, &key, "o1", "50.00").await;
    stack.psp.inject_faults("invalid_request", 1).await.unwrap();
    create_payout(&mut gateway, "po1", "s1", "10.00")
        .await
        .unwrap();
    let dead = settled_payout(&mut gateway, "po1").await;
    assert!(dead.dead_lettered);
    assert_eq!(dead.attempt, 1, "no retry for a poison message");
    let letter = gateway
        .dead_letters
        .get_dead_letter(authed(
            pb::GetDeadLetterRequest {
                work: "payout:po1".to_string(),
            },
            ADMIN_TOKEN,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(letter.last_error_code, "invalid_request");
    assert_eq!(letter.amount, "10.00");
    let refused = gateway
        .dead_letters
        .discard_dead_letter(authed(
            pb::DiscardDeadLetterRequest {
                work: "payout:po1".to_string(),
                reason: String::new(),
            },
            ADMIN_TOKEN,
        ))
        .await
        .unwrap_err();
    assert_eq!(error_code(&refused), "discard_reason_invalid");
    let discarded = gateway
        .dead_letters
        .discard_dead_letter(authed(
            pb::DiscardDeadLetterRequest {
                work: "payout:po1".to_string(),
                reason: "bank details wrong; seller asked to wait".to_string(),
            },
            ADMIN_TOKEN,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(discarded.state, "failed");
    assert_eq!(available(&stack, "s1"), 4_950);
    assert!(dead_letters(&mut gateway).await.is_empty());
    // Merchants cannot touch the queue.
    let refused = gateway
        .dead_letters
        .list_dead_letters(authed(pb::ListDeadLettersRequest::default(), &key))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    stack.audit();
    gateway.stop().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_charge_retries_dead_letter_the_order_and_a_redrive_charges_it_once() {
    let (stack, mut gateway, key) = start(false).await;
    // The test executor makes 6 attempts (5 retries): fail them all.
    stack.psp.inject_faults("error_500", 6).await.unwrap();
    pay_by_card(&mut gateway, &key, "c1", "o1", "12.00").await;
    let deadline = Instant::now() + Duration::from_millis(support::WAIT_MS_MAX);
    loop {
        let order = gateway
            .payments
            .get_payment_order(authed(
                pb::GetPaymentOrderRequest {
                    order_id: "o1".to_string(),
                },
                &key,
            ))
            .await
            .unwrap()
            .into_inner();
        if order.state == "dead_lettered" {
            break;
        }
        assert!(Instant::now() < deadline, "never dead-lettered: {order:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let letters = dead_letters(&mut gateway).await;
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].work, "charge:o1");
    assert_eq!(letters[0].history.len(), 6);
    let metrics = scrape(&gateway).await;
    assert!(
        metrics.contains("tally_gateway_work_due{kind=\"charge\"}")
            && metrics.contains("tally_gateway_dead_letters{kind=\"charge\"} 1"),
        "{metrics}"
    );
    gateway
        .dead_letters
        .redrive_dead_letter(authed(
            pb::RedriveDeadLetterRequest {
                work: "charge:o1".to_string(),
            },
            ADMIN_TOKEN,
        ))
        .await
        .unwrap();
    assert_eq!(
        settled_order(&mut gateway, &key, "o1").await.state,
        "succeeded"
    );
    let charges = stack
        .psp
        .sim_ledger()
        .await
        .unwrap()
        .into_iter()
        .filter(|row| row.kind == "charge")
        .count();
    assert_eq!(charges, 1);
    assert!(dead_letters(&mut gateway).await.is_empty());
    stack.audit();
    gateway.stop().await;
    stack.stop().await;
}

/// Posts `event` to the gateway's `/webhooks/sim`, signed with `secret`.
async fn post_webhook(gateway: &Gateway, event: &WebhookEvent, secret: &[u8]) -> (u16, String) {
    let body = serde_json::to_vec(event).unwrap();
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let response = reqwest::Client::new()
        .post(format!("{}/webhooks/sim", gateway.http_url))
        .header(
            "tally-psp-signature",
            tally_psp::webhook::sign(secret, now_s, &body),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn event(event_id: &str, kind: &str, charge: &Charge) -> WebhookEvent {
    WebhookEvent {
        event_id: event_id.to_string(),
        kind: kind.to_string(),
        created_unix_s: 0,
        idempotency_key: charge.idempotency_key.clone(),
        charge: charge.clone(),
    }
}

/// A QR order left pending at the PSP, then paid by the buyer there; no webhook was sent (the
/// simulator has no webhook URL), so the test sends them. Answers the captured charge.
async fn qr_paid_at_the_psp(stack: &Stack, gateway: &mut Gateway, key: &str) -> Charge {
    gateway
        .payments
        .create_payment(authed(
            checkout(
                "c1",
                Some(pb::PaymentMethod {
                    method: Some(pb::payment_method::Method::Qr(pb::QrMethod {})),
                }),
                pb::CaptureMethod::Automatic,
                &[("o1", "s1", "8.00")],
            ),
            key,
        ))
        .await
        .unwrap();
    let order = pending_order(gateway, key, "o1").await;
    stack
        .psp
        .complete_pending(&order.psp_charge_id, true)
        .await
        .unwrap();
    let charge = stack.psp.charge_status("o1").await.unwrap().unwrap();
    assert_eq!(charge.status, ChargeStatus::Captured);
    charge
}

async fn order_state(gateway: &mut Gateway, key: &str) -> pb::PaymentOrder {
    gateway
        .payments
        .get_payment_order(authed(
            pb::GetPaymentOrderRequest {
                order_id: "o1".to_string(),
            },
            key,
        ))
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_with_a_bad_signature_is_refused_and_changes_nothing_and_a_rotated_secret_works()
{
    let (stack, mut gateway, key) = start(false).await;
    let charge = qr_paid_at_the_psp(&stack, &mut gateway, &key).await;
    let succeeded = event("evt_1", "charge.succeeded", &charge);
    let (status, body) = post_webhook(&gateway, &succeeded, b"whsec_forged").await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = post_webhook(&gateway, &succeeded, b"").await;
    assert_eq!(status, 400);
    let order = order_state(&mut gateway, &key).await;
    assert_eq!(order.state, "pending", "nothing applied");
    // The secret being rotated out is still accepted next to the current one.
    let (status, body) = post_webhook(&gateway, &succeeded, PREVIOUS_WEBHOOK_SECRET).await;
    assert_eq!((status, body.trim()), (200, "ok"));
    assert_eq!(order_state(&mut gateway, &key).await.state, "succeeded");
    // Only for the PSP this gateway drives.
    let response = reqwest::Client::new()
        .post(format!("{}/webhooks/other", gateway.http_url))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    stack.audit();
    gateway.stop().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_and_reordered_webhooks_post_once_and_never_move_an_order_back() {
    let (stack, mut gateway, key) = start(false).await;
    let charge = qr_paid_at_the_psp(&stack, &mut gateway, &key).await;
    let mut pending = charge.clone();
    pending.status = ChargeStatus::Pending {
        next_action: tally_psp::NextAction::ShowQr {
            payload: "qr".to_string(),
        },
    };
    pending.captured_minor = 0;
    let older = event("evt_1", "charge.pending", &pending);
    let newer = event("evt_2", "charge.succeeded", &charge);
    // The newer event arrives first, twice; the older one comes late.
    let answers = [
        post_webhook(&gateway, &newer, SIM_SECRET).await,
        post_webhook(&gateway, &newer, SIM_SECRET).await,
        post_webhook(&gateway, &older, SIM_SECRET).await,
    ];
    let codes: Vec<(u16, &str)> = answers.iter().map(|(s, b)| (*s, b.trim())).collect();
    assert_eq!(codes, [(200, "ok"), (200, "unchanged"), (200, "unchanged")]);
    let order = order_state(&mut gateway, &key).await;
    assert_eq!(order.state, "succeeded");
    assert_eq!(order.captured, "8.00");
    assert_eq!(
        support::held(&stack, "s1"),
        792,
        "one posting, net of the 1% fee"
    );
    let metrics = scrape(&gateway).await;
    assert!(
        metrics.contains("tally_gateway_webhooks_total{kind=\"unchanged\"} 2"),
        "{metrics}"
    );
    stack.audit();
    gateway.stop().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_whose_psp_call_failed_is_settled_by_the_refund_sweep_without_a_client_retry() {
    let (stack, mut gateway, key) = start(false).await;
    pay_by_card(&mut gateway, &key, "c1", "o1", "40.00").await;
    assert_eq!(
        settled_order(&mut gateway, &key, "o1").await.state,
        "succeeded"
    );
    stack.psp.inject_faults("error_500", 1).await.unwrap();
    let refused = gateway
        .payments
        .refund_payment(authed(
            pb::RefundPaymentRequest {
                order_id: "o1".to_string(),
                refund_id: "r1".to_string(),
                amount: "15.00".to_string(),
            },
            &key,
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    // The client never retries; once the call's time is up the executor's sweep refunds it.
    let deadline = Instant::now() + Duration::from_millis(support::WAIT_MS_MAX);
    loop {
        let order = gateway
            .payments
            .get_payment_order(authed(
                pb::GetPaymentOrderRequest {
                    order_id: "o1".to_string(),
                },
                &key,
            ))
            .await
            .unwrap()
            .into_inner();
        if order
            .refunds
            .first()
            .is_some_and(|r| r.state == "succeeded")
        {
            assert_eq!(order.refunded, "15.00");
            break;
        }
        assert!(Instant::now() < deadline, "refund never settled: {order:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refunds: Vec<u64> = stack
        .psp
        .sim_ledger()
        .await
        .unwrap()
        .into_iter()
        .filter(|row| row.kind == "refund")
        .map(|row| row.amount_minor)
        .collect();
    assert_eq!(refunds, [1_500], "refunded once at the PSP");
    stack.audit();
    gateway.stop().await;
    stack.stop().await;
}
