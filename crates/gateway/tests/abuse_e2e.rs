//! Abuse costs no ledger reads: requests with made-up API keys are refused from the gateway's
//! memory where it can, and a client address guessing key ids gets a bounded number of ledger
//! lookups per second. A whole gateway over a real node on loopback.

mod support;

use std::time::Instant;
use support::{authed, error_code, permissive_risk, Stack};
use tally_gateway::api::{KEY_LOOKUPS_PER_ADDRESS_BURST, KEY_LOOKUPS_PER_ADDRESS_PER_S};
use tally_proto::payments as pb;
use tally_psp::sim::SimConfig;

/// A well-formed key no merchant holds: `tk_<16 hex id>_<64 hex secret>`.
fn made_up_key(n: u64) -> String {
    format!("tk_{n:016x}_{}", "5a".repeat(32))
}

fn get() -> pb::GetPaymentOrderRequest {
    pb::GetPaymentOrderRequest {
        order_id: "o1".to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_key_id_is_refused_from_memory_without_another_ledger_read() {
    let mut stack = Stack::start(SimConfig::default()).await;
    // Long enough to outlast stopping the node below.
    stack
        .key_cache_ms
        .store(60_000, std::sync::atomic::Ordering::Relaxed);
    let mut gateway = stack.start_gateway(None, permissive_risk()).await;
    let unknown = made_up_key(0xdead);
    let first = gateway
        .payments
        .get_payment_order(authed(get(), &unknown))
        .await
        .unwrap_err();
    assert_eq!(error_code(&first), "api_key_unknown", "{first:?}");

    // With the ledger gone, the same id is still answered (from the negative cache), while an id never seen needs the ledger and cannot be answered.
    stack.stop_node().await;
    let again = gateway
        .payments
        .get_payment_order(authed(get(), &unknown))
        .await
        .unwrap_err();
    assert_eq!(error_code(&again), "api_key_unknown", "{again:?}");
    let fresh = gateway
        .payments
        .get_payment_order(authed(get(), &made_up_key(0xbeef)))
        .await
        .unwrap_err();
    assert_ne!(error_code(&fresh), "api_key_unknown", "{fresh:?}");
    gateway.stop().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_guessing_key_ids_gets_a_bounded_number_of_ledger_lookups() {
    let stack = Stack::start(SimConfig::default()).await;
    let mut gateway = stack.start_gateway(None, permissive_risk()).await;
    let started = Instant::now();
    let mut looked_up = 0u64;
    let mut limited = None;
    for n in 0..5_000u64 {
        let status = gateway
            .payments
            .get_payment_order(authed(get(), &made_up_key(n)))
            .await
            .unwrap_err();
        match error_code(&status).as_str() {
            "api_key_unknown" => looked_up += 1,
            "key_lookups_limited" => {
                limited = Some(status);
                break;
            }
            other => panic!("unexpected refusal {other}: {status:?}"),
        }
    }
    let limited = limited.expect("a guessing address is limited");
    assert_eq!(limited.code(), tonic::Code::ResourceExhausted);
    assert!(limited.metadata().get("retry-after-ms").is_some());
    // The burst, plus what refilled while the guesses were made.
    let elapsed_s = started.elapsed().as_secs_f64();
    let allowed = f64::from(KEY_LOOKUPS_PER_ADDRESS_BURST)
        + f64::from(KEY_LOOKUPS_PER_ADDRESS_PER_S) * elapsed_s
        + 1.0;
    assert!(
        (looked_up as f64) <= allowed && looked_up >= u64::from(KEY_LOOKUPS_PER_ADDRESS_BURST),
        "{looked_up} lookups in {elapsed_s:.2} s"
    );
    gateway.stop().await;
    stack.stop().await;
}
