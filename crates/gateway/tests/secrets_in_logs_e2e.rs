//! No secret reaches a log: the whole stack (node, PSP simulator, gateway) runs a payment flow
//! with every secret in play — the operator token, an API key and its signing secret, a
//! merchant's webhook secret, the PSP's webhook secret — at DEBUG level into one buffer, which
//! is then searched for each of them. One test in this file: the subscriber is process-global.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{
    authed, card, checkout, fast_retries, onboard_signing, pending_order, permissive_risk,
    settled_order, Stack, ADMIN_TOKEN, PREVIOUS_WEBHOOK_SECRET,
};
use tally_proto::payments as pb;
use tally_psp::sim::SimConfig;

const PSP_WEBHOOK_SECRET: &[u8] = b"whsec_psp_never_logged_4b1d";
const MERCHANT_WEBHOOK_SECRET: &str = "whsec_merchant_never_logged_9c2e";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

fn signed_create(
    key: &str,
    secret: &str,
    request: &pb::CreatePaymentRequest,
) -> tonic::Request<pb::CreatePaymentRequest> {
    let body = prost::Message::encode_to_vec(request);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let header = tally_gateway::signing::sign(
        secret.as_bytes(),
        now_ms,
        &[5; 16],
        "POST",
        "/tally%2Epayments%2Ev1%2EPayments/CreatePayment",
        &body,
    )
    .unwrap();
    let mut request = authed(request.clone(), key);
    request
        .metadata_mut()
        .insert("tally-signature", header.parse().unwrap());
    request
}

/// A merchant endpoint that answers 200 to every delivery, counting them.
async fn receiver() -> (String, Arc<Mutex<u32>>) {
    let count = Arc::new(Mutex::new(0u32));
    let seen = count.clone();
    let app = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move || {
            let seen = seen.clone();
            async move {
                *seen.lock().unwrap() += 1;
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_flow_logged_at_debug_level_shows_no_secret() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(logs.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");

    let stack = Stack::start_with_gateway_webhooks(SimConfig {
        webhook_secret: PSP_WEBHOOK_SECRET.to_vec(),
        ..SimConfig::default()
    })
    .await;
    let mut gateway = stack
        .start_gateway(Some(fast_retries()), permissive_risk())
        .await;
    let (key, signing_secret) = onboard_signing(&mut gateway).await;
    let (url, delivered) = receiver().await;
    support::add_endpoint(&mut gateway, &key, &url, MERCHANT_WEBHOOK_SECRET).await;

    // A signed card payment, a refused signature, and a QR payment the PSP's webhook settles.
    let paid = checkout(
        "c1",
        card("tok_visa"),
        pb::CaptureMethod::Automatic,
        &[("o1", "s1", "5.00")],
    );
    gateway
        .payments
        .create_payment(signed_create(&key, &signing_secret, &paid))
        .await
        .expect("signed payment");
    let _ = gateway
        .payments
        .create_payment(signed_create(&key, &key, &paid))
        .await
        .expect_err("signed with the wrong secret");
    let _ = gateway
        .payments
        .get_payment(authed(
            pb::GetPaymentRequest {
                checkout_id: "c1".into(),
            },
            "tk_bogus_key",
        ))
        .await
        .expect_err("a bogus key");
    assert_eq!(
        settled_order(&mut gateway, &key, "o1").await.state,
        "succeeded"
    );
    gateway
        .payments
        .create_payment(authed(
            checkout(
                "c2",
                Some(pb::PaymentMethod {
                    method: Some(pb::payment_method::Method::Qr(pb::QrMethod {})),
                }),
                pb::CaptureMethod::Automatic,
                &[("o2", "s1", "6.00")],
            ),
            &key,
        ))
        .await
        .expect("QR payment");
    let charge_id = pending_order(&mut gateway, &key, "o2").await.psp_charge_id;
    stack
        .psp
        .complete_pending(&charge_id, true)
        .await
        .expect("buyer pays");
    assert_eq!(
        settled_order(&mut gateway, &key, "o2").await.state,
        "succeeded"
    );
    let deadline = Instant::now() + Duration::from_millis(support::WAIT_MS_MAX);
    while *delivered.lock().unwrap() == 0 {
        assert!(Instant::now() < deadline, "no webhook delivered");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    gateway.stop().await;
    stack.stop().await;
    // What a careless `?config` in a log line would print: masked too.
    tracing::debug!(config = ?SimConfig { webhook_secret: PSP_WEBHOOK_SECRET.to_vec(), ..SimConfig::default() }, "sim config");

    let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(
        text.contains("DEBUG"),
        "the flow logged at debug level ({} bytes)",
        text.len()
    );
    let api_key_secret_part = key.rsplit('_').next().unwrap().to_string();
    let secrets: [(&str, String); 7] = [
        ("operator token", ADMIN_TOKEN.to_string()),
        ("API key", key.clone()),
        ("API key secret part", api_key_secret_part),
        ("signing secret", signing_secret.clone()),
        (
            "merchant webhook secret",
            MERCHANT_WEBHOOK_SECRET.to_string(),
        ),
        (
            "PSP webhook secret",
            String::from_utf8_lossy(PSP_WEBHOOK_SECRET).into_owned(),
        ),
        (
            "previous PSP webhook secret",
            String::from_utf8_lossy(PREVIOUS_WEBHOOK_SECRET).into_owned(),
        ),
    ];
    for (what, secret) in secrets {
        // As text, and as a derived `Debug` of its bytes would print it.
        let as_bytes = format!("{:?}", secret.as_bytes());
        let as_bytes = &as_bytes[1..as_bytes.len() - 1];
        for shown in [secret.as_str(), as_bytes] {
            let Some(at) = text.find(shown) else {
                continue;
            };
            let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
            let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
            panic!("the {what} is in the logs: {}", &text[line_start..line_end]);
        }
    }
}
