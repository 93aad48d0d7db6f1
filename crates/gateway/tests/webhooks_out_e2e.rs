//! Webhooks out, end to end: a merchant's endpoint (an HTTP server in the test) receives the
//! payment events the ledger's outbox holds, signed, at least once, in event-id order per
//! payment, retried while the endpoint is down and dead-lettered when it stays down; a
//! redelivery by API sends an event again.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{
    add_endpoint, authed, card, checkout, fast_retries, onboard, permissive_risk, settled_order,
    Gateway, Stack, ADMIN_TOKEN,
};
use tally_proto::payments as pb;
use tally_psp::sim::SimConfig;

const MERCHANT_SECRET: &str = "whsec_merchant";

/// What the merchant's server saw of one accepted delivery.
#[derive(Clone, Debug)]
struct Received {
    event_id: String,
    kind: String,
    signature: String,
}

#[derive(Clone, Default)]
struct Receiver {
    /// Answer 503 while set.
    down: Arc<Mutex<bool>>,
    /// Every request answered 2xx, in arrival order.
    received: Arc<Mutex<Vec<Received>>>,
    /// Requests refused while down.
    refused: Arc<Mutex<u32>>,
}

async fn start_receiver() -> (String, Receiver) {
    use axum::routing::post;
    let receiver = Receiver::default();
    let state = receiver.clone();
    let app = axum::Router::new().route(
        "/hooks",
        post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let state = state.clone();
                async move {
                    if *state.down.lock().unwrap() {
                        *state.refused.lock().unwrap() += 1;
                        return (
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            "down for maintenance",
                        );
                    }
                    let event: serde_json::Value = serde_json::from_slice(&body).unwrap();
                    let signature = headers
                        .get("tally-signature")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    // The merchant's check: any v1 over "<t>.<body>" with its secret.
                    let t = signature
                        .split(',')
                        .find_map(|p| p.strip_prefix("t="))
                        .unwrap()
                        .to_string();
                    let expected = tally_psp::webhook::sign(
                        MERCHANT_SECRET.as_bytes(),
                        t.parse().unwrap(),
                        &body,
                    );
                    let expected_v1 = expected.split_once(',').unwrap().1.to_string();
                    assert!(
                        signature.split(',').any(|p| p == expected_v1),
                        "signature {signature} does not verify"
                    );
                    assert_eq!(event["data"]["payment_order_id"], "o1");
                    state.received.lock().unwrap().push(Received {
                        event_id: event["id"].as_str().unwrap().to_string(),
                        kind: event["type"].as_str().unwrap().to_string(),
                        signature,
                    });
                    (axum::http::StatusCode::OK, "thanks")
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, receiver)
}

async fn start() -> (Stack, Gateway, String) {
    let stack = Stack::start(SimConfig {
        webhook_secret: b"whsec_test".to_vec(),
        ..SimConfig::default()
    })
    .await;
    let mut gateway = stack
        .start_gateway(Some(fast_retries()), permissive_risk())
        .await;
    let key = onboard(&mut gateway).await;
    (stack, gateway, key)
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_millis(support::WAIT_MS_MAX);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// An authorized order, captured, then refunded in part: three events for one payment.
async fn three_events(gateway: &mut Gateway, key: &str) {
    gateway
        .payments
        .create_payment(authed(
            checkout(
                "c1",
                card("tok_visa"),
                pb::CaptureMethod::Manual,
                &[("o1", "s1", "20.00")],
            ),
            key,
        ))
        .await
        .unwrap();
    assert_eq!(settled_order(gateway, key, "o1").await.state, "authorized");
    gateway
        .payments
        .capture_payment(authed(
            pb::CapturePaymentRequest {
                order_id: "o1".to_string(),
                amount: String::new(),
            },
            key,
        ))
        .await
        .unwrap();
    gateway
        .payments
        .refund_payment(authed(
            pb::RefundPaymentRequest {
                order_id: "o1".to_string(),
                refund_id: "r1".to_string(),
                amount: "5.00".to_string(),
            },
            key,
        ))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_down_for_a_while_gets_every_event_in_order_once_it_is_back() {
    let (stack, mut gateway, key) = start().await;
    let (url, receiver) = start_receiver().await;
    add_endpoint(&mut gateway, &key, &url, MERCHANT_SECRET).await;
    *receiver.down.lock().unwrap() = true;
    three_events(&mut gateway, &key).await;
    let refused = receiver.refused.clone();
    wait_until("two refused attempts", || *refused.lock().unwrap() >= 2).await;
    // Only the payment's oldest event is tried while the endpoint refuses.
    let listed = support::deliveries(&mut gateway, &key).await;
    assert_eq!(listed.len(), 3, "{listed:?}");
    let tried: Vec<&pb::WebhookDelivery> =
        listed.iter().filter(|d| !d.attempts.is_empty()).collect();
    assert_eq!(tried.len(), 1, "later events wait their turn: {listed:?}");
    assert_eq!(tried[0].event_type, "payment_order.authorized");
    assert!(tried[0]
        .attempts
        .iter()
        .all(|a| a.status == 503 && a.excerpt == "down for maintenance"));

    *receiver.down.lock().unwrap() = false;
    let received = receiver.received.clone();
    wait_until("three events delivered", || {
        received.lock().unwrap().len() >= 3
    })
    .await;
    let got = receiver.received.lock().unwrap().clone();
    let types: Vec<&str> = got.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(
        types,
        [
            "payment_order.authorized",
            "payment_order.succeeded",
            "refund.succeeded"
        ]
    );
    let ids: Vec<&String> = got.iter().map(|r| &r.event_id).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "in event-id order");
    let listed = support::deliveries(&mut gateway, &key).await;
    assert!(listed.iter().all(|d| d.state == "delivered"), "{listed:?}");
    let first = listed
        .iter()
        .find(|d| d.event_type == "payment_order.authorized")
        .unwrap();
    assert_eq!(first.attempts.last().unwrap().status, 200);
    assert!(first.attempts.len() >= 3);
    stack.audit();
    gateway.stop().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_down_for_good_dead_letters_its_events_and_a_redelivery_by_api_succeeds() {
    let (stack, mut gateway, key) = start().await;
    let (url, receiver) = start_receiver().await;
    add_endpoint(&mut gateway, &key, &url, MERCHANT_SECRET).await;
    *receiver.down.lock().unwrap() = true;
    support::pay_by_card(&mut gateway, &key, "c1", "o1", "7.00").await;
    let deadline = Instant::now() + Duration::from_millis(support::WAIT_MS_MAX);
    let letter = loop {
        let letters = gateway
            .dead_letters
            .list_dead_letters(authed(pb::ListDeadLettersRequest::default(), ADMIN_TOKEN))
            .await
            .unwrap()
            .into_inner()
            .dead_letters;
        if let Some(letter) = letters.into_iter().find(|l| l.kind == "delivery") {
            break letter;
        }
        assert!(Instant::now() < deadline, "never dead-lettered");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(letter.history.len(), 6, "every attempt kept: {letter:?}");
    assert!(
        letter.history.iter().all(|a| a.code == "http_503"),
        "{letter:?}"
    );
    let metrics = support::scrape(&gateway).await;
    assert!(
        metrics.contains("tally_gateway_delivery_failures_total{endpoint=\"ep1\"} 6"),
        "{metrics}"
    );
    let listed = support::deliveries(&mut gateway, &key).await;
    assert_eq!(listed.len(), 1);
    assert!(listed[0].dead_lettered);

    *receiver.down.lock().unwrap() = false;
    // The merchant rotates its secret, keeping the old one signing during the switch.
    let rotated = gateway
        .webhooks
        .rotate_secret(authed(
            pb::RotateSecretRequest {
                merchant_id: String::new(),
                endpoint_id: "ep1".to_string(),
                secret: "whsec_next".to_string(),
                keep_previous: true,
            },
            &key,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rotated.active_secrets, 2);
    let again = gateway
        .webhooks
        .redeliver(authed(
            pb::RedeliverRequest {
                merchant_id: String::new(),
                event_id: listed[0].event_id.clone(),
                endpoint_id: "ep1".to_string(),
            },
            &key,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.state, "pending");
    let received = receiver.received.clone();
    wait_until("the redelivery", || !received.lock().unwrap().is_empty()).await;
    let got = receiver.received.lock().unwrap().clone();
    assert_eq!(
        got[0].event_id, listed[0].event_id,
        "the same event id, for deduplication"
    );
    assert_eq!(
        got[0].signature.matches("v1=").count(),
        2,
        "both secrets sign: {}",
        got[0].signature
    );
    let listed = support::deliveries(&mut gateway, &key).await;
    assert_eq!(listed[0].state, "delivered");
    // At the end every event was delivered or dead-lettered, and none is left dead.
    let letters = gateway
        .dead_letters
        .list_dead_letters(authed(pb::ListDeadLettersRequest::default(), ADMIN_TOKEN))
        .await
        .unwrap()
        .into_inner()
        .dead_letters;
    assert!(letters.is_empty(), "{letters:?}");
    stack.audit();
    gateway.stop().await;
    stack.stop().await;
}
