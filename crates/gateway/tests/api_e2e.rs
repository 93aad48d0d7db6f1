//! The public payments API end to end: a whole gateway (gRPC, JSON, executor, webhooks) over a
//! real node (RocksDB, gRPC) and the PSP simulator (HTTP), all on loopback. Every test ends with
//! the ledger's audit (zero-sum per currency, held funds equal to orders) and, where money
//! moved, the simulator's own record matched against the ledger.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::{
    authed, available, balance, card, checkout, error_code, fast_retries, held, onboard,
    pay_by_card, pending_order, permissive_risk, scrape, settled_order, Gateway, Stack,
    ADMIN_TOKEN,
};
use tally_ledger::payment::{chart, BuyerId};
use tally_ledger::{AccountFlags, AccountId, Currency, Metadata, NewAccount};
use tally_proto::payments as pb;
use tally_psp::sim::SimConfig;

/// Every money movement the simulator made is one order's capture in the ledger, and the other
/// way round: per order, the PSP's captured amount equals the ledger's.
async fn assert_psp_record_matches_ledger(stack: &Stack, gateway: &mut Gateway, key: &str) {
    let rows = stack.psp.sim_ledger().await.expect("sim ledger");
    let mut psp_captured: BTreeMap<String, u64> = BTreeMap::new();
    for row in rows
        .iter()
        .filter(|r| r.kind == "charge" || r.kind == "capture")
    {
        *psp_captured.entry(row.idempotency_key.clone()).or_default() += row.amount_minor;
    }
    let charges_per_key = rows.iter().filter(|r| r.kind == "charge").fold(
        BTreeMap::<String, u32>::new(),
        |mut counts, row| {
            *counts.entry(row.idempotency_key.clone()).or_default() += 1;
            counts
        },
    );
    assert!(
        charges_per_key.values().all(|&n| n == 1),
        "charged twice: {charges_per_key:?}"
    );
    let listed = gateway
        .payments
        .list_payments(authed(
            pb::ListPaymentsRequest {
                page_size: 100,
                page_token: String::new(),
                status: String::new(),
            },
            key,
        ))
        .await
        .expect("list")
        .into_inner();
    let mut ledger_captured: BTreeMap<String, u64> = BTreeMap::new();
    for payment in &listed.payments {
        for order in &payment.orders {
            let minor = tally_ledger::parse_amount(
                &order.captured,
                Currency::USD,
                tally_ledger::ZeroAmount::Allowed,
            )
            .unwrap();
            if minor > 0 && payment.payment_method != "wallet" {
                ledger_captured.insert(order.order_id.clone(), minor);
            }
        }
    }
    // Capture keys are `<order>:capture`; fold them onto their order.
    let psp_by_order: BTreeMap<String, u64> =
        psp_captured
            .into_iter()
            .fold(BTreeMap::new(), |mut by_order, (key, minor)| {
                let order = key.trim_end_matches(":capture").to_string();
                *by_order.entry(order).or_default() += minor;
                by_order
            });
    assert_eq!(
        psp_by_order, ledger_captured,
        "PSP record and ledger differ"
    );
}

/// Retries spread over about three seconds: longer than the PSP keeps a timed-out or slow
/// request's key in flight, so the order outlives it instead of exhausting its attempts.
fn patient_retries() -> tally_gateway::executor::ExecutorConfig {
    let mut config = fast_retries();
    config.retry = tally_gateway::Backoff::new(200, 800, 10).expect("valid backoff");
    config
}

async fn start(webhooks: bool) -> (Stack, Gateway, String) {
    start_with(webhooks, fast_retries()).await
}

async fn start_with(
    webhooks: bool,
    executor: tally_gateway::executor::ExecutorConfig,
) -> (Stack, Gateway, String) {
    let sim = SimConfig {
        webhook_url: None,
        webhook_secret: b"whsec_test".to_vec(),
        // Just past the adapter's 1 s deadline: the executor sees a timeout, the PSP holds
        // the key in flight a little longer, then gives up uncharged.
        timeout_fault_ms: 1_200,
        ..SimConfig::default()
    };
    let stack = if webhooks {
        Stack::start_with_gateway_webhooks(sim).await
    } else {
        Stack::start(sim).await
    };
    let mut gateway = stack.start_gateway(Some(executor), permissive_risk()).await;
    let key = onboard(&mut gateway).await;
    (stack, gateway, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_of_three_orders_is_held_then_fulfilled_into_available_net_of_fees() {
    let (stack, mut gateway, key) = start(false).await;
    let created = gateway
        .payments
        .create_payment(authed(
            checkout(
                "c1",
                card("tok_visa"),
                pb::CaptureMethod::Automatic,
                &[
                    ("o1", "s1", "100.00"),
                    ("o2", "s2", "200.00"),
                    ("o3", "s3", "50.00"),
                ],
            ),
            &key,
        ))
        .await
        .expect("created")
        .into_inner();
    assert_eq!(created.orders.len(), 3);
    for order in ["o1", "o2", "o3"] {
        let settled = settled_order(&mut gateway, &key, order).await;
        assert_eq!(settled.state, "succeeded", "{settled:?}");
    }
    assert_eq!(held(&stack, "s1"), 9_900);
    assert_eq!(held(&stack, "s2"), 19_800);
    assert_eq!(held(&stack, "s3"), 4_950);
    for order in ["o1", "o2", "o3"] {
        gateway
            .payments
            .fulfill_order(authed(
                pb::FulfillOrderRequest {
                    order_id: order.to_string(),
                },
                &key,
            ))
            .await
            .expect("fulfilled");
    }
    assert_eq!((held(&stack, "s1"), available(&stack, "s1")), (0, 9_900));
    assert_eq!((held(&stack, "s2"), available(&stack, "s2")), (0, 19_800));
    assert_eq!((held(&stack, "s3"), available(&stack, "s3")), (0, 4_950));
    assert_eq!(
        balance(&stack, chart::platform_fees(Currency::USD)),
        100 + 200 + 50
    );
    let payment = gateway
        .payments
        .get_payment(authed(
            pb::GetPaymentRequest {
                checkout_id: "c1".to_string(),
            },
            &key,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(payment.status, "succeeded");
    assert_eq!(payment.orders[0].held, "0.00");
    assert_psp_record_matches_ledger(&stack, &mut gateway, &key).await;
    let metrics = scrape(&gateway).await;
    assert!(
        metrics.contains("tally_gateway_orders{state=\"succeeded\"} 3"),
        "{metrics}"
    );
    stack.audit();
    gateway.stop().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intent_is_not_charged_until_confirmed_with_a_method() {
    let (stack, mut gateway, key) = start(false).await;
    let intent = gateway
        .payments
        .create_payment(authed(
            checkout(
                "c1",
                None,
                pb::CaptureMethod::Automatic,
                &[("o1", "s1", "12.50")],
            ),
            &key,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(intent.status, "requires_payment_method");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(stack.psp.sim_ledger().await.unwrap().is_empty());
    let confirmed = gateway
        .payments
        .confirm_payment(authed(
            pb::ConfirmPaymentRequest {
                checkout_id: "c1".to_string(),
                payment_method: card("tok_visa"),
            },
            &key,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(confirmed.payment_method, "card");
    assert_eq!(
        settled_order(&mut gateway, &key, "o1").await.state,
        "succeeded"
    );
    assert_psp_record_matches_ledger(&stack, &mut gateway, &key).await;
    stack.audit();
    gateway.stop().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_capture_takes_part_then_two_partial_refunds_and_an_over_refund_is_refused() {
    let (stack, mut gateway, key) = start(false).await;
    gateway
        .payments
        .create_payment(authed(
            checkout(
                "c1",
                card("tok_visa"),
                pb::CaptureMethod::Manual,
                &[("o1", "s1", "100.00")],
            ),
            &key,
        ))
        .await
        .unwrap();
    let authorized = settled_order(&mut gateway, &key, "o1").await;
    assert_eq!(authorized.state, "authorized");
    assert_eq!(authorized.authorized, "100.00");
    assert_eq!(held(&stack, "s1"), 0, "an authorization moves no money");
    let captured = gateway
        .payments
        .capture_payment(authed(
            pb::CapturePaymentRequest {
                order_id: "o1".to_string(),
                amount: "60.00".to_string(),
            },
            &key,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(captured.orders[0].state, "succeeded");
    assert_eq!(captured.orders[0].captured, "60.00");
    assert_eq!(held(&stack, "s1"), 5_940);
    for (refund, amount) in [("r1", "10.00"), ("r2", "20.00")] {
        let after = gateway
            .payments
            .refund_payment(authed(
                pb::RefundPaymentRequest {
                    order_id: "o1".to_string(),
                    refund_id: refund.to_string(),
                    amount: amount.to_string(),
                },
                &key,
            ))
            .await
            .unwrap()
            .into_inner();
        let state = after.orders[0]
            .refunds
            .iter()
            .find(|r| r.refund_id == refund)
            .map(|r| r.state.clone());
        assert_eq!(state.as_deref(), Some("succeeded"));
    }
    let over = gateway
        .payments
        .refund_payment(authed(
            pb::RefundPaymentRequest {
                order_id: "o1".to_string(),
                refund_id: "r3".to_string(),
                amount: "30.01".to_string(),
            },
            &key,
        ))
        .await
        .unwrap_err();
    assert_eq!(over.code(), tonic::Code::FailedPrecondition);
    assert_eq!(error_code(&over), "refund_exceeds_captured");
    assert!(over.message().contains("30.00 USD"), "{}", over.message());
    let order = settled_order(&mut gateway, &key, "o1").await;
    assert_eq!(order.refunded, "30.00");
    let refunds = stack.psp.sim_ledger().await.unwrap();
    assert_eq!(refunds.iter().filter(|r| r.kind == "refund").count(), 2);
    stack.audit();
    gateway.stop().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_payment_settles_at_once_and_one_beyond_the_balance_fails_whole() {
    let (stack, mut gateway, key) = start(false).await;
    // Top the wallet up with an ordinary ledger transfer from an operator funding account.
    let funding = AccountId(4_242);
    stack
        .ledger
        .create_accounts([NewAccount {
            id: funding,
            currency: Currency::USD,
            code: 9,
            flags: AccountFlags::NONE,
            metadata: Metadata::default(),
            linked: false,
        }])
        .await
        .unwrap();
    let wallet = chart::buyer_wallet(&BuyerId::new("b1").unwrap(), Currency::USD);
    let top_up = tally_ledger::NewTransfer {
        id: tally_ledger::TransferId(9_001),
        kind: tally_ledger::TransferKind::Single {
            debit_account_id: funding,
            credit_account_id: wallet,
            amount_minor: 5_000,
            currency: Currency::USD,
        },
        code: 9,
        metadata: Metadata::default(),
        linked: false,
    };
    let answer = stack
        .ledger
        .create_transfers([tally_proto::convert::new_transfer_to_pb(&top_up, None)])
        .await
        .unwrap();
    assert_eq!(answer.results[0].code, "ok", "{answer:?}");
    let wallet_method = Some(pb::PaymentMethod {
        method: Some(pb::payment_method::Method::Wallet(pb::WalletMethod {})),
    });
    let paid = gateway
        .payments
        .create_payment(authed(
            checkout(
                "c1",
                wallet_method.clone(),
                pb::CaptureMethod::Automatic,
                &[("o1", "s1", "30.00")],
            ),
            &key,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(paid.status, "succeeded");
    assert_eq!(balance(&stack, wallet), 2_000);
    assert_eq!(held(&stack, "s1"), 2_970);
    let too_much = gateway
        .payments
        .create_payment(authed(
            checkout(
                "c2",
                wallet_method,
                pb::CaptureMethod::Automatic,
                &[("o2", "s1", "15.00"), ("o3", "s2", "10.00")],
            ),
            &key,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(too_much.status, "failed");
    assert_eq!(balance(&stack, wallet), 2_000, "nothing moved");
    assert!(stack.psp.sim_ledger().await.unwrap().is_empty(), "no PSP");
    stack.audit();
    gateway.stop().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qr_payment_is_completed_by_the_psps_signed_webhook() {
    let (stack, mut gateway, key) = start(true).await;
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
            &key,
        ))
        .await
        .unwrap();
    // The executor charges; the PSP answers pending until the buyer scans the code.
    let order = pending_order(&mut gateway, &key, "o1").await;
    assert!(
        !order.qr_payload.is_empty(),
        "the buyer needs the QR: {order:?}"
    );
    let charge_id = order.psp_charge_id;
    stack
        .psp
        .complete_pending(&charge_id, true)
        .await
        .expect("buyer pays");
    // Pending orders are checked by the sweeper only after a minute: this is the webhook.
    let settled = settled_order(&mut gateway, &key, "o1").await;
    assert_eq!(settled.state, "succeeded");
    assert!(
        settled.qr_payload.is_empty(),
        "nothing left for the buyer to do"
    );
    let metrics = scrape(&gateway).await;
    assert!(
        metrics.contains("tally_gateway_webhooks_total{kind=\"ok\"}"),
        "{metrics}"
    );
    assert_psp_record_matches_ledger(&stack, &mut gateway, &key).await;
    stack.audit();
    gateway.stop().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_velocity_burst_is_stopped_by_the_risk_rules_and_never_charged() {
    let stack = Stack::start(SimConfig::default()).await;
    let mut risk = permissive_risk();
    risk.velocity.buyer_payments_max = 3;
    let mut gateway = stack.start_gateway(Some(fast_retries()), risk).await;
    let key = onboard(&mut gateway).await;
    let mut statuses = Vec::new();
    for n in 1..=5 {
        let payment = gateway
            .payments
            .create_payment(authed(
                checkout(
                    &format!("c{n}"),
                    card(&format!("tok_card{n}")),
                    pb::CaptureMethod::Automatic,
                    &[(&format!("o{n}"), "s1", "5.00")],
                ),
                &key,
            ))
            .await
            .unwrap()
            .into_inner();
        statuses.push((payment.risk.unwrap().outcome, payment.status));
    }
    assert_eq!(statuses[3], ("review".to_string(), "failed".to_string()));
    assert_eq!(statuses[4], ("review".to_string(), "failed".to_string()));
    for n in 1..=3 {
        assert_eq!(
            settled_order(&mut gateway, &key, &format!("o{n}"))
                .await
                .state,
            "succeeded"
        );
    }
    let blocked = settled_order(&mut gateway, &key, "o4").await;
    assert_eq!(blocked.last_error_code, "risk_review");
    let mut charged: Vec<String> = stack
        .psp
        .sim_ledger()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.idempotency_key)
        .collect();
    charged.sort();
    assert_eq!(charged, ["o1", "o2", "o3"]);
    stack.audit();
    gateway.stop().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_psp_timeout_then_success_charges_once() {
    let (stack, mut gateway, key) = start_with(false, patient_retries()).await;
    stack.psp.inject_faults("timeout", 1).await.unwrap();
    pay_by_card(&mut gateway, &key, "c1", "o1", "20.00").await;
    let order = settled_order(&mut gateway, &key, "o1").await;
    assert_eq!(order.state, "succeeded", "{order:?}");
    assert!(order.attempt >= 2, "{order:?}");
    assert_psp_record_matches_ledger(&stack, &mut gateway, &key).await;
    stack.audit();
    gateway.stop().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_charge_whose_response_was_lost_is_found_by_the_status_check_and_charged_once() {
    let (stack, mut gateway, key) = start(false).await;
    stack.psp.inject_faults("lost_response", 1).await.unwrap();
    pay_by_card(&mut gateway, &key, "c1", "o1", "20.00").await;
    let order = settled_order(&mut gateway, &key, "o1").await;
    assert_eq!(order.state, "succeeded", "{order:?}");
    assert_eq!(order.attempt, 2, "{order:?}");
    let rows = stack.psp.sim_ledger().await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_psp_record_matches_ledger(&stack, &mut gateway, &key).await;
    stack.audit();
    gateway.stop().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_mid_payment_is_finished_by_another() {
    let stack = Stack::start(SimConfig::default()).await;
    // The first gateway only serves the API: an executor is started and killed below.
    let mut api = stack.start_gateway(None, permissive_risk()).await;
    let key = onboard(&mut api).await;
    // Slower than the lease: the doomed gateway is still waiting when it dies, and the PSP
    // may finish that charge after the rescuer has taken over.
    stack.psp.inject_faults("latency=2500", 1).await.unwrap();
    let doomed = stack
        .start_gateway(Some(patient_retries()), permissive_risk())
        .await;
    api.payments
        .create_payment(authed(
            checkout(
                "c1",
                card("tok_visa"),
                pb::CaptureMethod::Automatic,
                &[("o1", "s1", "20.00")],
            ),
            &key,
        ))
        .await
        .unwrap();
    // Wait until the doomed gateway holds the lease (it is now waiting on the slow PSP).
    let deadline = Instant::now() + Duration::from_millis(support::WAIT_MS_MAX);
    loop {
        let state = stack.order_state("o1").await;
        if matches!(state, tally_ledger::payment::OrderState::Executing { .. }) {
            break;
        }
        assert!(Instant::now() < deadline, "never executing: {state:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    doomed.kill();
    let _rescuer = stack
        .start_gateway(Some(patient_retries()), permissive_risk())
        .await;
    let order = settled_order(&mut api, &key, "o1").await;
    assert_eq!(order.state, "succeeded", "{order:?}");
    assert!(order.attempt >= 2, "the rescuer took over: {order:?}");
    assert_psp_record_matches_ledger(&stack, &mut api, &key).await;
    stack.audit();
    api.stop().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_checkout_id_answers_the_stored_payment_and_refuses_a_different_body() {
    let (stack, mut gateway, key) = start(false).await;
    let request = checkout(
        "c1",
        card("tok_visa"),
        pb::CaptureMethod::Automatic,
        &[("o1", "s1", "20.00")],
    );
    let first = gateway
        .payments
        .create_payment(authed(request.clone(), &key))
        .await
        .unwrap()
        .into_inner();
    let again = gateway
        .payments
        .create_payment(authed(request.clone(), &key))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.created_at_unix_ns, again.created_at_unix_ns);
    let mut different = request;
    different.orders[0].amount = "21.00".to_string();
    let refused = gateway
        .payments
        .create_payment(authed(different, &key))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::AlreadyExists);
    assert_eq!(
        error_code(&refused),
        "checkout_exists_with_different_request"
    );
    assert_eq!(
        settled_order(&mut gateway, &key, "o1").await.state,
        "succeeded"
    );
    assert_eq!(stack.psp.sim_ledger().await.unwrap().len(), 1);
    stack.audit();
    gateway.stop().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn card_numbers_and_bad_credentials_are_refused_over_grpc_and_json() {
    let (stack, mut gateway, key) = start(false).await;
    let mut request = checkout(
        "c1",
        card("tok_visa"),
        pb::CaptureMethod::Automatic,
        &[("o1", "s1", "20.00")],
    );
    request
        .metadata
        .insert("note".to_string(), "4111 1111 1111 1111".to_string());
    let refused = gateway
        .payments
        .create_payment(authed(request, &key))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert_eq!(error_code(&refused), "card_number_refused");
    assert!(!refused.message().contains("4111"));

    let unauthenticated = gateway
        .payments
        .get_payment(authed(
            pb::GetPaymentRequest {
                checkout_id: "c1".to_string(),
            },
            "tk_0000000000000000_0000000000000000000000000000000000000000000000000000000000000000",
        ))
        .await
        .unwrap_err();
    assert_eq!(unauthenticated.code(), tonic::Code::Unauthenticated);

    let http = reqwest::Client::new();
    let body = serde_json::json!({
        "checkout_id": "c2",
        "buyer_info": {"buyer_id": "b1"},
        "payment_method": {"type": "card", "token": "tok_visa"},
        "payment_orders": [{"payment_order_id": "o2", "seller_account": "s1",
                            "amount": "7.00", "currency": "USD"}],
        "metadata": {"pan": "5555555555554444"}
    });
    let response = http
        .post(format!("{}/v1/payments", gateway.http_url))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: serde_json::Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "card_number_refused");

    let mut body = body;
    body["metadata"] = serde_json::json!({"note": "gift"});
    let no_key = http
        .post(format!("{}/v1/payments", gateway.http_url))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), 401);
    let created = http
        .post(format!("{}/v1/payments", gateway.http_url))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 200);
    let created: serde_json::Value = created.json().await.unwrap();
    assert_eq!(created["payment_orders"][0]["payment_order_id"], "o2");
    assert_eq!(
        settled_order(&mut gateway, &key, "o2").await.state,
        "succeeded"
    );
    let order: serde_json::Value = http
        .get(format!("{}/v1/payments/o2", gateway.http_url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(order["state"], "succeeded");
    assert_eq!(order["captured"], "7.00");
    assert_eq!(stack.psp.sim_ledger().await.unwrap().len(), 1);
    stack.audit();
    gateway.stop().await;
    stack.stop().await;
}

fn keyed<T>(message: T, api_key: &str, idempotency_key: &str) -> tonic::Request<T> {
    let mut request = authed(message, api_key);
    request
        .metadata_mut()
        .insert("idempotency-key", idempotency_key.parse().unwrap());
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_replay_the_answer_refuse_another_request_and_abort_while_running() {
    let (stack, mut gateway, key) = start(false).await;
    let request = checkout(
        "c1",
        card("tok_visa"),
        pb::CaptureMethod::Manual,
        &[("o1", "s1", "40.00")],
    );
    let first = gateway
        .payments
        .create_payment(keyed(request.clone(), &key, "create-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        settled_order(&mut gateway, &key, "o1").await.state,
        "authorized"
    );
    // The replay is the stored answer: the order was still not started when it was stored.
    let replay = gateway
        .payments
        .create_payment(keyed(request, &key, "create-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replay, first);
    let other = checkout(
        "c2",
        card("tok_visa"),
        pb::CaptureMethod::Manual,
        &[("o2", "s1", "40.00")],
    );
    let mismatch = gateway
        .payments
        .create_payment(keyed(other, &key, "create-1"))
        .await
        .unwrap_err();
    assert_eq!(mismatch.code(), tonic::Code::InvalidArgument);
    assert_eq!(error_code(&mismatch), "idempotency_request_mismatch");

    // A slow PSP keeps the first capture running while the same key comes again.
    stack.psp.inject_faults("latency=800", 1).await.unwrap();
    let capture = pb::CapturePaymentRequest {
        order_id: "o1".to_string(),
        amount: "25.00".to_string(),
    };
    let mut slow_client = gateway.payments.clone();
    let slow_request = keyed(capture.clone(), &key, "capture-1");
    let slow = tokio::spawn(async move { slow_client.capture_payment(slow_request).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let busy = gateway
        .payments
        .capture_payment(keyed(capture.clone(), &key, "capture-1"))
        .await
        .unwrap_err();
    assert_eq!(busy.code(), tonic::Code::Aborted);
    assert_eq!(error_code(&busy), "idempotency_in_progress");
    let captured = slow.await.unwrap().unwrap().into_inner();
    assert_eq!(captured.orders[0].captured, "25.00");
    let again = gateway
        .payments
        .capture_payment(keyed(capture, &key, "capture-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, captured);
    let rows = stack.psp.sim_ledger().await.unwrap();
    assert_eq!(rows.iter().filter(|r| r.kind == "capture").count(), 1);
    assert_psp_record_matches_ledger(&stack, &mut gateway, &key).await;
    stack.audit();
    gateway.stop().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_grpc_tools_see_health_reflection_and_http_probes() {
    let (stack, gateway, _key) = start(false).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", gateway.grpc_addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "tally.payments.v1.Payments".to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        serving.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().expect("one answer");
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("not a service list: {answer:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in ["tally.payments.v1.Payments", "tally.payments.v1.Merchants"] {
        assert!(names.iter().any(|n| n == expected), "{names:?}");
    }

    for (path, status) in [("/healthz", 200), ("/readyz", 200), ("/metrics", 200)] {
        let response = reqwest::get(format!("{}{path}", gateway.http_url))
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{path}");
    }
    let metrics = scrape(&gateway).await;
    assert!(
        metrics.contains("tally_gateway_requests_total{route=\"create_api_key\",code=\"ok\"}"),
        "{metrics}"
    );
    gateway.stop().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merchant_over_its_rate_limit_is_told_when_to_retry() {
    let stack = Stack::start(SimConfig::default()).await;
    let limits = tally_gateway::RateLimitConfig {
        burst_requests_max: 3,
        refill_requests_per_s: 1,
        merchants_max: 100,
    };
    let mut gateway = stack
        .start_gateway_limited(None, permissive_risk(), limits)
        .await;
    let key = onboard(&mut gateway).await;
    let get = || pb::GetPaymentOrderRequest {
        order_id: "nope".to_string(),
    };
    for _ in 0..3 {
        let status = gateway
            .payments
            .get_payment_order(authed(get(), &key))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::NotFound);
    }
    let limited = gateway
        .payments
        .get_payment_order(authed(get(), &key))
        .await
        .unwrap_err();
    assert_eq!(limited.code(), tonic::Code::ResourceExhausted);
    assert_eq!(error_code(&limited), "rate_limited");
    let retry_after_ms: u64 = limited
        .metadata()
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("retry-after-ms metadata");
    assert!((1..=1_000).contains(&retry_after_ms), "{retry_after_ms}");
    let http = reqwest::Client::new()
        .get(format!("{}/v1/payments/nope", gateway.http_url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(http.status(), 429);
    assert!(http.headers().contains_key("retry-after"));
    gateway.stop().await;
    stack.stop().await;
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A signed gRPC `CreatePayment` for `request`, signed with `secret` and `nonce`.
fn signed_create(
    key: &str,
    secret: &str,
    nonce: u8,
    request: &pb::CreatePaymentRequest,
) -> tonic::Request<pb::CreatePaymentRequest> {
    let body = prost::Message::encode_to_vec(request);
    let path = "/tally%2Epayments%2Ev1%2EPayments/CreatePayment";
    let header = tally_gateway::signing::sign(
        secret.as_bytes(),
        now_ms(),
        &[nonce; 16],
        "POST",
        path,
        &body,
    )
    .unwrap();
    with_signature(authed(request.clone(), key), &header)
}

/// The `tally-signature` a request carries.
fn signature_of<T>(request: &tonic::Request<T>) -> String {
    request
        .metadata()
        .get("tally-signature")
        .and_then(|value| value.to_str().ok())
        .expect("a signed request")
        .to_string()
}

fn with_signature<T>(mut request: tonic::Request<T>, header: &str) -> tonic::Request<T> {
    request
        .metadata_mut()
        .insert("tally-signature", header.parse().unwrap());
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_requests_verify_once_and_replays_or_tampering_are_refused() {
    use tally_gateway::signing::sign;
    let (stack, mut gateway, _) = start(false).await;
    let (key, secret) = support::onboard_signing(&mut gateway).await;
    assert!(secret.starts_with("tss_"), "{secret}");
    let request = checkout(
        "c1",
        card("tok_visa"),
        pb::CaptureMethod::Automatic,
        &[("o1", "s1", "3.00")],
    );
    let first = signed_create(&key, &secret, 7, &request);
    let header = signature_of(&first);
    gateway
        .payments
        .create_payment(first)
        .await
        .expect("a signed request passes");
    let replayed = gateway
        .payments
        .create_payment(with_signature(authed(request.clone(), &key), &header))
        .await
        .unwrap_err();
    assert_eq!(replayed.code(), tonic::Code::Unauthenticated);
    assert_eq!(error_code(&replayed), "signature_nonce_replayed");
    // The bearer key is not the signing secret: a MAC keyed by it proves nothing.
    let by_bearer = signed_create(&key, &key, 11, &request);
    let refused = gateway
        .payments
        .create_payment(by_bearer)
        .await
        .unwrap_err();
    assert_eq!(error_code(&refused), "signature_mismatch");
    let mut tampered = request.clone();
    tampered.orders[0].amount = "300.00".to_string();
    let body = prost::Message::encode_to_vec(&request);
    let path = "/tally%2Epayments%2Ev1%2EPayments/CreatePayment";
    let fresh = sign(secret.as_bytes(), now_ms(), &[8; 16], "POST", path, &body).unwrap();
    let refused = gateway
        .payments
        .create_payment(with_signature(authed(tampered, &key), &fresh))
        .await
        .unwrap_err();
    assert_eq!(error_code(&refused), "signature_mismatch");

    // Over HTTP the signed path is the one sent.
    let http = reqwest::Client::new();
    let get = |header: String| {
        http.get(format!("{}/v1/payments/o1", gateway.http_url))
            .bearer_auth(&key)
            .header("tally-signature", header)
            .send()
    };
    let ok = get(sign(
        secret.as_bytes(),
        now_ms(),
        &[9; 16],
        "GET",
        "/v1/payments/o1",
        b"",
    )
    .unwrap())
    .await
    .unwrap();
    assert_eq!(ok.status(), 200);
    let stale = get(sign(
        secret.as_bytes(),
        now_ms() - 600_000,
        &[10; 16],
        "GET",
        "/v1/payments/o1",
        b"",
    )
    .unwrap())
    .await
    .unwrap();
    assert_eq!(stale.status(), 401);
    let error: serde_json::Value = stale.json().await.unwrap();
    assert_eq!(
        error["error"]["code"],
        "signature_timestamp_out_of_tolerance"
    );
    assert_eq!(
        settled_order(&mut gateway, &key, "o1").await.state,
        "succeeded"
    );
    stack.audit();
    gateway.stop().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_request_replayed_to_another_gateway_copy_is_refused() {
    let (stack, mut first, _) = start(false).await;
    let (key, secret) = support::onboard_signing(&mut first).await;
    let mut second = stack.start_gateway(None, permissive_risk()).await;
    let request = checkout(
        "c1",
        card("tok_visa"),
        pb::CaptureMethod::Automatic,
        &[("o1", "s1", "3.00")],
    );
    let signed = signed_create(&key, &secret, 21, &request);
    let header = signature_of(&signed);
    first
        .payments
        .create_payment(signed)
        .await
        .expect("the first copy accepts the signed request");
    let replayed = second
        .payments
        .create_payment(with_signature(authed(request, &key), &header))
        .await
        .unwrap_err();
    assert_eq!(replayed.code(), tonic::Code::Unauthenticated);
    assert_eq!(error_code(&replayed), "signature_nonce_replayed");
    second.stop().await;
    first.stop().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_signing_secret_replaces_the_old_one_unless_the_previous_is_kept() {
    let (stack, mut gateway, _) = start(false).await;
    let (key, old) = support::onboard_signing(&mut gateway).await;
    let key_id = key.split('_').nth(1).unwrap().to_string();
    let rotate = |keep_previous: bool| pb::RotateSigningSecretRequest {
        merchant_id: "platform".to_string(),
        key_id: key_id.clone(),
        keep_previous,
    };
    let new = gateway
        .merchants
        .rotate_signing_secret(authed(rotate(true), ADMIN_TOKEN))
        .await
        .expect("rotated")
        .into_inner()
        .signing_secret;
    assert_ne!(new, old);
    let pay = |n: u8| {
        checkout(
            &format!("c{n}"),
            card("tok_visa"),
            pb::CaptureMethod::Automatic,
            &[(format!("o{n}").as_str(), "s1", "1.00")],
        )
    };
    // Both verify while the previous is kept (the key cache may hold the old record briefly).
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    for (n, secret) in [(1u8, &old), (2, &new)] {
        gateway
            .payments
            .create_payment(signed_create(&key, secret, 30 + n, &pay(n)))
            .await
            .unwrap_or_else(|e| panic!("secret {n} verifies: {e:?}"));
    }
    let newest = gateway
        .merchants
        .rotate_signing_secret(authed(rotate(false), ADMIN_TOKEN))
        .await
        .expect("rotated")
        .into_inner()
        .signing_secret;
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let refused = gateway
        .payments
        .create_payment(signed_create(&key, &new, 40, &pay(3)))
        .await
        .unwrap_err();
    assert_eq!(error_code(&refused), "signature_mismatch");
    gateway
        .payments
        .create_payment(signed_create(&key, &newest, 41, &pay(4)))
        .await
        .expect("the newest secret verifies");
    gateway.stop().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hosted_page_payment_sends_the_buyer_to_the_psp_and_back_and_the_webhook_settles_it() {
    let (stack, mut gateway, key) = start(true).await;
    let hosted = Some(pb::PaymentMethod {
        method: Some(pb::payment_method::Method::Hosted(pb::HostedMethod {
            return_url: "https://shop.example/thanks".to_string(),
        })),
    });
    gateway
        .payments
        .create_payment(authed(
            checkout(
                "c1",
                hosted,
                pb::CaptureMethod::Automatic,
                &[("o1", "s1", "12.00")],
            ),
            &key,
        ))
        .await
        .unwrap();
    let page_url = pending_order(&mut gateway, &key, "o1")
        .await
        .next_action_url;
    assert!(page_url.starts_with(&stack.psp_url), "{page_url}");
    let buyer = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    assert_eq!(buyer.get(&page_url).send().await.unwrap().status(), 200);
    let paid = buyer
        .post(&page_url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("card_token=tok_visa")
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), 303);
    let back = paid.headers()["location"].to_str().unwrap();
    assert!(
        back.starts_with("https://shop.example/thanks?charge_id=")
            && back.ends_with("status=succeeded"),
        "{back}"
    );
    let settled = settled_order(&mut gateway, &key, "o1").await;
    assert_eq!(settled.state, "succeeded");
    assert!(settled.next_action_url.is_empty());
    assert_psp_record_matches_ledger(&stack, &mut gateway, &key).await;
    stack.audit();
    gateway.stop().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_api_key_stops_working_within_the_key_cache_time() {
    let (stack, mut gateway, key) = start(false).await;
    let get = || pb::GetPaymentOrderRequest {
        order_id: "nope".to_string(),
    };
    let known = gateway
        .payments
        .get_payment_order(authed(get(), &key))
        .await
        .unwrap_err();
    assert_eq!(known.code(), tonic::Code::NotFound, "the key works");
    let flipped = if key.ends_with('0') { '1' } else { '0' };
    let wrong_secret = format!("{}{flipped}", &key[..key.len() - 1]);
    let wrong = gateway
        .payments
        .get_payment_order(authed(get(), &wrong_secret))
        .await
        .unwrap_err();
    assert_eq!(
        wrong.code(),
        tonic::Code::Unauthenticated,
        "a cached key still checks the secret"
    );
    let key_id = key.split('_').nth(1).unwrap().to_string();
    gateway
        .merchants
        .revoke_api_key(authed(
            pb::RevokeApiKeyRequest {
                merchant_id: "platform".to_string(),
                key_id,
            },
            ADMIN_TOKEN,
        ))
        .await
        .unwrap();
    // The gateway under test caches key records for 1 s.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let revoked = gateway
        .payments
        .get_payment_order(authed(get(), &key))
        .await
        .unwrap_err();
    assert_eq!(revoked.code(), tonic::Code::Unauthenticated);
    assert_eq!(error_code(&revoked), "api_key_revoked");
    gateway.stop().await;
    stack.stop().await;
}
