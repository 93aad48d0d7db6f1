//! The PSP simulator through the `SimPsp` adapter over real HTTP on loopback.

use std::collections::BTreeMap;
use std::time::Duration;
use tally_net::ServerSecurity;
use tally_psp::sim::{serve, SimConfig, SimEnv};
use tally_psp::{
    ChargeRequest, ChargeStatus, ErrorKind, PaymentMethod, Psp, RefundRequest, SimPsp, SimPspConfig,
};
use tokio::net::TcpListener;

const SECRET: &[u8] = b"test-webhook-secret";

async fn start(webhook_url: Option<String>, timeout_ms: u64) -> SimPsp {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(
        listener,
        SimConfig {
            webhook_url,
            webhook_secret: SECRET.to_vec(),
            public_url: base_url.clone(),
            ..SimConfig::default()
        },
        SimEnv::default(),
        ServerSecurity::InsecureDev,
    ));
    SimPsp::new(SimPspConfig {
        base_url,
        timeout_ms,
        webhook_secrets: vec![SECRET.to_vec()],
    })
}

fn charge_request(key: &str, token: &str, amount_minor: u64, capture: bool) -> ChargeRequest {
    ChargeRequest {
        idempotency_key: key.to_string(),
        amount_minor,
        currency: "USD".to_string(),
        method: PaymentMethod::Card {
            token: token.to_string(),
        },
        capture,
        return_url: None,
        metadata: BTreeMap::new(),
    }
}

async fn charges_under(psp: &SimPsp, key: &str) -> usize {
    psp.sim_ledger()
        .await
        .unwrap()
        .iter()
        .filter(|row| row.idempotency_key == key && row.kind == "charge")
        .count()
}

#[tokio::test]
async fn a_retry_under_the_same_key_returns_the_same_charge_and_another_body_is_refused() {
    let psp = start(None, 2_000).await;
    let first = psp
        .charge(charge_request("o1", "tok_ok", 500, true))
        .await
        .unwrap();
    let again = psp
        .charge(charge_request("o1", "tok_ok", 500, true))
        .await
        .unwrap();
    assert_eq!(first, again);
    assert_eq!(first.status, ChargeStatus::Captured);
    assert_eq!(charges_under(&psp, "o1").await, 1);
    let error = psp
        .charge(charge_request("o1", "tok_ok", 501, true))
        .await
        .unwrap_err();
    assert_eq!(
        (error.kind, error.code.as_str()),
        (ErrorKind::Terminal, "idempotency_key_reused")
    );
    assert_eq!(psp.charge_status("o1").await.unwrap(), Some(first));
    assert_eq!(psp.charge_status("nope").await.unwrap(), None);
}

#[tokio::test]
async fn test_tokens_decline_and_card_numbers_are_refused() {
    let psp = start(None, 2_000).await;
    let declined = psp
        .charge(charge_request("o1", "tok_decline", 500, true))
        .await
        .unwrap();
    assert!(
        matches!(declined.status, ChargeStatus::Declined { ref code, .. } if code == "card_declined")
    );
    let poor = psp
        .charge(charge_request("o2", "tok_insufficient", 500, true))
        .await
        .unwrap();
    assert!(
        matches!(poor.status, ChargeStatus::Declined { ref code, .. } if code == "insufficient_funds")
    );
    let error = psp
        .charge(charge_request("o3", "4242424242424242", 500, true))
        .await
        .unwrap_err();
    assert_eq!(
        (error.kind, error.code.as_str()),
        (ErrorKind::Terminal, "invalid_request")
    );
    assert!(psp.sim_ledger().await.unwrap().is_empty(), "no money moved");
}

#[tokio::test]
async fn authorize_capture_part_then_refund_up_to_the_captured_amount() {
    let psp = start(None, 2_000).await;
    let charge = psp
        .charge(charge_request("o1", "tok_ok", 1_000, false))
        .await
        .unwrap();
    assert_eq!(charge.status, ChargeStatus::Authorized);
    let captured = psp
        .capture(&charge.charge_id, 600, "capture:o1")
        .await
        .unwrap();
    assert_eq!(captured.captured_minor, 600);
    // Same key: a replay; a second capture under a new key is refused.
    assert_eq!(
        psp.capture(&charge.charge_id, 600, "capture:o1")
            .await
            .unwrap(),
        captured
    );
    let error = psp
        .capture(&charge.charge_id, 100, "capture:o1-b")
        .await
        .unwrap_err();
    assert_eq!(error.code, "charge_not_authorized");
    for (key, amount) in [("r1", 200), ("r2", 400)] {
        let refund = RefundRequest {
            charge_id: charge.charge_id.clone(),
            amount_minor: amount,
            idempotency_key: key.to_string(),
        };
        psp.refund(refund.clone()).await.unwrap();
        psp.refund(refund).await.unwrap();
    }
    let over = psp
        .refund(RefundRequest {
            charge_id: charge.charge_id.clone(),
            amount_minor: 1,
            idempotency_key: "r3".to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        (over.kind, over.code.as_str()),
        (ErrorKind::Terminal, "refund_exceeds_captured")
    );
    let refunds: u64 = psp
        .sim_ledger()
        .await
        .unwrap()
        .iter()
        .filter(|row| row.kind == "refund")
        .map(|row| row.amount_minor)
        .sum();
    assert_eq!(refunds, 600, "each refund counted once");
}

#[tokio::test]
async fn a_lost_response_is_retryable_and_the_retry_finds_the_single_charge() {
    let psp = start(None, 2_000).await;
    psp.inject_faults("lost_response", 1).await.unwrap();
    let error = psp
        .charge(charge_request("o1", "tok_ok", 700, true))
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::Retryable);
    assert!(
        psp.charge_status("o1").await.unwrap().is_some(),
        "it was charged"
    );
    let retry = psp
        .charge(charge_request("o1", "tok_ok", 700, true))
        .await
        .unwrap();
    assert_eq!(retry.status, ChargeStatus::Captured);
    assert_eq!(charges_under(&psp, "o1").await, 1);
}

#[tokio::test]
async fn a_timeout_is_retryable_and_charges_nothing() {
    let psp = start(None, 300).await;
    psp.inject_faults("timeout", 1).await.unwrap();
    let error = psp
        .charge(charge_request("o1", "tok_ok", 700, true))
        .await
        .unwrap_err();
    assert_eq!(
        (error.kind, error.code.as_str()),
        (ErrorKind::Retryable, "timeout")
    );
    assert_eq!(psp.charge_status("o1").await.unwrap(), None);
    // The first request is still in flight at the PSP: a retry is told to wait, not charged.
    let busy = psp
        .charge(charge_request("o1", "tok_ok", 700, true))
        .await
        .unwrap_err();
    assert_eq!(
        (busy.kind, busy.code.as_str()),
        (ErrorKind::Retryable, "request_in_progress")
    );
    assert_eq!(charges_under(&psp, "o1").await, 0);
}

#[tokio::test]
async fn a_three_d_secure_charge_completes_by_a_signed_webhook() {
    use axum::routing::post;
    let (sender, mut received) = tokio::sync::mpsc::channel::<(Vec<u8>, String)>(4);
    let receiver = axum::Router::new().route(
        "/hook",
        post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let sender = sender.clone();
                async move {
                    let signature = headers
                        .get("tally-psp-signature")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    let _ = sender.send((body.to_vec(), signature)).await;
                    "ok"
                }
            },
        ),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    let psp = start(Some(hook_url), 2_000).await;
    let charge = psp
        .charge(charge_request("o1", "tok_3ds", 900, true))
        .await
        .unwrap();
    assert!(matches!(charge.status, ChargeStatus::Pending { .. }));
    psp.complete_pending(&charge.charge_id, true).await.unwrap();
    let (body, signature) = tokio::time::timeout(Duration::from_secs(5), received.recv())
        .await
        .expect("webhook arrives")
        .expect("channel open");
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let event = psp.verify_webhook(&body, &signature, now_s).unwrap();
    assert_eq!(event.idempotency_key, "o1");
    assert_eq!(event.charge.status, ChargeStatus::Captured);
    let mut tampered = body.clone();
    tampered[0] = b' ';
    assert!(psp.verify_webhook(&tampered, &signature, now_s).is_err());
    assert_eq!(charges_under(&psp, "o1").await, 1);
}

#[tokio::test]
async fn a_charge_waiting_for_its_buyer_can_be_canceled_and_then_not_completed() {
    let psp = start(None, 2_000).await;
    let charge = psp
        .charge(charge_request("o1", "tok_3ds", 900, true))
        .await
        .unwrap();
    assert!(matches!(charge.status, ChargeStatus::Pending { .. }));
    let canceled = psp.cancel(&charge.charge_id, "o1:expire").await.unwrap();
    assert_eq!(canceled.status, ChargeStatus::Canceled);
    // The same key replays; the buyer can no longer complete it.
    assert_eq!(
        psp.cancel(&charge.charge_id, "o1:expire").await.unwrap(),
        canceled
    );
    assert!(psp.complete_pending(&charge.charge_id, true).await.is_err());
    let status = psp.charge_status("o1").await.unwrap().unwrap();
    assert_eq!(status.status, ChargeStatus::Canceled);
}

#[tokio::test]
async fn a_hosted_page_takes_the_card_redirects_back_and_the_charge_completes() {
    let psp = start(None, 2_000).await;
    let mut request = charge_request("o-hosted", "unused", 2_500, true);
    request.method = PaymentMethod::Hosted;
    request.return_url = None;
    let refused = psp.charge(request.clone()).await.unwrap_err();
    assert_eq!(
        refused.kind,
        ErrorKind::Terminal,
        "a hosted page needs a return_url"
    );
    request.idempotency_key = "o-hosted-2".to_string();
    request.return_url = Some("https://shop.example/back?cart=7".to_string());
    let pending = psp.charge(request).await.unwrap();
    let ChargeStatus::Pending {
        next_action: tally_psp::NextAction::RedirectToUrl { url },
    } = &pending.status
    else {
        panic!("not a redirect: {pending:?}");
    };
    let buyer = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = buyer.get(url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("card_token"));
    let bad = buyer
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("card_token=4242424242424242")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400, "a card number is never taken");
    let paid = buyer
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("card_token=tok_visa")
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), 303);
    let back = paid.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(
        back,
        format!(
            "https://shop.example/back?cart=7&charge_id={}&status=succeeded",
            pending.charge_id
        )
    );
    let done = psp.charge_status("o-hosted-2").await.unwrap().unwrap();
    assert_eq!(done.status, ChargeStatus::Captured);
    assert_eq!(charges_under(&psp, "o-hosted-2").await, 1);
}

#[tokio::test]
async fn faults_configured_at_start_hit_the_first_money_calls_in_order() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    assert!(tally_psp::sim::is_fault("latency=5"));
    assert!(!tally_psp::sim::is_fault("meteor"));
    tokio::spawn(serve(
        listener,
        SimConfig {
            webhook_secret: SECRET.to_vec(),
            public_url: base_url.clone(),
            faults: vec![("error_500".to_string(), 1), ("meteor".to_string(), 3)],
            ..SimConfig::default()
        },
        SimEnv::default(),
        ServerSecurity::InsecureDev,
    ));
    let psp = SimPsp::new(SimPspConfig {
        base_url,
        timeout_ms: 2_000,
        webhook_secrets: vec![SECRET.to_vec()],
    });
    let first = psp
        .charge(charge_request("o-f", "tok_visa", 100, true))
        .await
        .unwrap_err();
    assert_eq!(first.kind, ErrorKind::Retryable);
    // The unknown start-up fault was skipped, not queued.
    let second = psp
        .charge(charge_request("o-f", "tok_visa", 100, true))
        .await
        .unwrap();
    assert_eq!(second.status, ChargeStatus::Captured);
    assert_eq!(charges_under(&psp, "o-f").await, 1);
}

async fn start_with(config: SimConfig) -> SimPsp {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(
        listener,
        SimConfig {
            webhook_secret: SECRET.to_vec(),
            public_url: base_url.clone(),
            ..config
        },
        SimEnv::default(),
        ServerSecurity::InsecureDev,
    ));
    SimPsp::new(SimPspConfig {
        base_url,
        timeout_ms: 2_000,
        webhook_secrets: vec![SECRET.to_vec()],
    })
}

fn payout_request(key: &str, destination: &str, amount_minor: u64) -> tally_psp::PayoutRequest {
    tally_psp::PayoutRequest {
        idempotency_key: key.to_string(),
        amount_minor,
        currency: "USD".to_string(),
        destination: destination.to_string(),
    }
}

#[tokio::test]
async fn a_payout_is_in_transit_then_paid_once_and_a_closed_account_fails() {
    use tally_psp::PayoutStatus;
    let psp = start_with(SimConfig {
        payout_settle_ms: 300,
        ..SimConfig::default()
    })
    .await;
    let sent = psp.payout(payout_request("po1", "s1", 700)).await.unwrap();
    assert_eq!(sent.status, PayoutStatus::InTransit);
    let again = psp.payout(payout_request("po1", "s1", 700)).await.unwrap();
    assert_eq!(again.payout_id, sent.payout_id, "same key, same payout");
    let other = psp
        .payout(payout_request("po1", "s1", 701))
        .await
        .unwrap_err();
    assert_eq!(other.code, "idempotency_key_reused");
    assert!(other.is_poison(), "a reused key is a bug, not a refusal");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let paid = psp.payout_status("po1").await.unwrap().unwrap();
    assert_eq!(paid.status, PayoutStatus::Paid);
    assert_eq!(psp.payout_status("po-none").await.unwrap(), None);
    let failed = psp
        .payout(payout_request("po2", "closed-seller", 100))
        .await
        .unwrap();
    assert!(
        matches!(failed.status, PayoutStatus::Failed { ref code, .. } if code == "account_closed")
    );
    let rows = psp.sim_ledger().await.unwrap();
    let payouts: Vec<_> = rows.iter().filter(|r| r.kind == "payout").collect();
    assert_eq!(
        payouts.len(),
        1,
        "only the paid payout moved money: {rows:?}"
    );
}

#[tokio::test]
async fn an_invalid_request_fault_is_a_poison_error_and_moves_nothing() {
    let psp = start_with(SimConfig {
        faults: vec![("invalid_request".to_string(), 1)],
        ..SimConfig::default()
    })
    .await;
    let error = psp
        .payout(payout_request("po1", "s1", 100))
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::Terminal);
    assert!(error.is_poison());
    assert!(psp.sim_ledger().await.unwrap().is_empty());
}

/// A webhook receiver counting deliveries per event id.
async fn counting_receiver() -> (
    String,
    std::sync::Arc<std::sync::Mutex<BTreeMap<String, u32>>>,
) {
    use axum::routing::post;
    let counts = std::sync::Arc::new(std::sync::Mutex::new(BTreeMap::<String, u32>::new()));
    let seen = counts.clone();
    let receiver = axum::Router::new().route(
        "/hook",
        post(move |body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                let event: tally_psp::WebhookEvent = serde_json::from_slice(&body).unwrap();
                *seen.lock().unwrap().entry(event.event_id).or_default() += 1;
                "ok"
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, receiver).await });
    (url, counts)
}

async fn complete_three(psp: &SimPsp) {
    for key in ["o1", "o2", "o3"] {
        let charge = psp
            .charge(charge_request(key, "tok_3ds", 100, true))
            .await
            .unwrap();
        psp.complete_pending(&charge.charge_id, true).await.unwrap();
    }
}

#[tokio::test]
async fn webhook_chaos_duplicates_or_drops_events_as_configured() {
    use tally_psp::sim::WebhookChaos;
    let (url, counts) = counting_receiver().await;
    let psp = start_with(SimConfig {
        webhook_url: Some(url),
        webhook_chaos: WebhookChaos {
            duplicate_pct: 100,
            ..WebhookChaos::default()
        },
        ..SimConfig::default()
    })
    .await;
    complete_three(&psp).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while counts.lock().unwrap().values().sum::<u32>() < 6 {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            counts.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(counts.lock().unwrap().values().all(|&n| n == 2));

    let (url, counts) = counting_receiver().await;
    let psp = start_with(SimConfig {
        webhook_url: Some(url),
        webhook_chaos: WebhookChaos {
            drop_pct: 100,
            ..WebhookChaos::default()
        },
        ..SimConfig::default()
    })
    .await;
    complete_three(&psp).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(counts.lock().unwrap().is_empty(), "every event dropped");
}
