//! Webhooks out over real HTTPS, end to end: the gateway delivers to an endpoint whose
//! certificate chains to a root it trusts, refuses one whose certificate does not (the attempt
//! is recorded with the reason), and refuses an endpoint whose name resolves to an internal
//! address (here 127.0.0.1) unless an operator allow-listed it.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{add_endpoint, fast_retries, onboard, permissive_risk, Gateway, Stack};
use tally_gateway::RateLimitConfig;
use tally_net::guard::{guarded_tcp, AddressPolicy};
use tally_net::tls::{CertAuthority, ClientTls, PemSource, ServerTls, ServerTlsPem};
use tally_net::{Dialer, Protocols, ServerSecurity};
use tally_proto::payments as pb;
use tally_psp::sim::SimConfig;

/// A merchant's HTTPS endpoint with a certificate from `ca` for 127.0.0.1 and localhost;
/// returns its URL and the count of requests it answered.
async fn https_receiver(ca: &CertAuthority) -> (String, Arc<Mutex<u32>>) {
    let issued = ca
        .issue(None, &["127.0.0.1".to_owned(), "localhost".to_owned()], 2)
        .unwrap();
    let tls = ServerTls::from_pem(&ServerTlsPem {
        cert: PemSource::from_text("endpoint cert", &issued.cert_pem),
        key: PemSource::from_text("endpoint key", issued.key_pem.expose()),
        client_ca: None,
    })
    .unwrap();
    let received = Arc::new(Mutex::new(0u32));
    let count = received.clone();
    let app = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move || {
            let count = count.clone();
            async move {
                *count.lock().unwrap() += 1;
                "thanks"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/hooks", listener.local_addr().unwrap());
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _stop_tx = _stop_tx;
        tally_net::serve(
            app,
            Protocols::Http1AndHttp2,
            ServerSecurity::Tls(tls),
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            stop_rx,
        )
        .await
    });
    (url, received)
}

/// The production webhook dialer: addresses checked after DNS, HTTPS trusting `trusted` only.
fn webhook_dialer(trusted: &CertAuthority, allow: &[&str]) -> Dialer {
    let policy =
        AddressPolicy::parse(&allow.iter().map(|a| a.to_string()).collect::<Vec<_>>()).unwrap();
    let roots = PemSource::from_text("trusted CA", trusted.cert_pem());
    guarded_tcp(policy).with_https(ClientTls::public(Some(&roots), false).unwrap())
}

async fn start(dialer: Dialer) -> (Stack, Gateway, String) {
    let stack = Stack::start(SimConfig {
        webhook_secret: b"whsec_test".to_vec(),
        ..SimConfig::default()
    })
    .await;
    let generous = RateLimitConfig {
        burst_requests_max: 10_000,
        refill_requests_per_s: 10_000,
        merchants_max: 1_000,
    };
    let mut gateway = stack
        .start_gateway_via(Some(fast_retries()), permissive_risk(), generous, dialer)
        .await;
    let key = onboard(&mut gateway).await;
    (stack, gateway, key)
}

/// The first delivery's attempts once it has at least one.
async fn first_attempts(gateway: &mut Gateway, key: &str) -> Vec<pb::DeliveryAttempt> {
    let deadline = Instant::now() + Duration::from_millis(support::WAIT_MS_MAX);
    loop {
        let deliveries = support::deliveries(gateway, key).await;
        if let Some(tried) = deliveries.iter().find(|d| !d.attempts.is_empty()) {
            return tried.attempts.clone();
        }
        assert!(Instant::now() < deadline, "no delivery attempted");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_with_a_trusted_certificate_gets_its_events() {
    let trusted = CertAuthority::generate("merchant CA", 2).unwrap();
    let (stack, mut gateway, key) = start(webhook_dialer(&trusted, &["127.0.0.1"])).await;
    let (url, received) = https_receiver(&trusted).await;
    add_endpoint(&mut gateway, &key, &url, "whsec_merchant").await;
    support::pay_by_card(&mut gateway, &key, "c1", "o1", "7.00").await;
    let attempts = first_attempts(&mut gateway, &key).await;
    assert_eq!(attempts[0].status, 200, "{attempts:?}");
    assert!(*received.lock().unwrap() >= 1);
    gateway.stop().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_with_an_untrusted_certificate_gets_nothing_and_the_attempt_says_why() {
    let trusted = CertAuthority::generate("merchant CA", 2).unwrap();
    let self_signed = CertAuthority::generate("self-signed", 2).unwrap();
    let (stack, mut gateway, key) = start(webhook_dialer(&trusted, &["127.0.0.1"])).await;
    let (url, received) = https_receiver(&self_signed).await;
    add_endpoint(&mut gateway, &key, &url, "whsec_merchant").await;
    support::pay_by_card(&mut gateway, &key, "c1", "o1", "7.00").await;
    let attempts = first_attempts(&mut gateway, &key).await;
    assert_eq!(attempts[0].status, 0, "{attempts:?}");
    assert!(
        attempts[0].excerpt.contains("certificate"),
        "the recorded error names the certificate: {attempts:?}"
    );
    assert_eq!(*received.lock().unwrap(), 0, "nothing reached the endpoint");
    gateway.stop().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_resolving_to_loopback_is_refused_unless_allow_listed() {
    let trusted = CertAuthority::generate("merchant CA", 2).unwrap();
    let (stack, mut gateway, key) = start(webhook_dialer(&trusted, &[])).await;
    let (url, received) = https_receiver(&trusted).await;
    // By name, so the refusal comes after DNS: localhost resolves to a loopback address.
    let url = url.replace("127.0.0.1", "localhost");
    add_endpoint(&mut gateway, &key, &url, "whsec_merchant").await;
    support::pay_by_card(&mut gateway, &key, "c1", "o1", "7.00").await;
    let attempts = first_attempts(&mut gateway, &key).await;
    assert_eq!(attempts[0].status, 0, "{attempts:?}");
    assert!(
        attempts[0].excerpt.contains("internal addresses"),
        "the recorded error says why: {attempts:?}"
    );
    assert_eq!(*received.lock().unwrap(), 0, "nothing reached the endpoint");
    gateway.stop().await;
    stack.stop().await;
}
