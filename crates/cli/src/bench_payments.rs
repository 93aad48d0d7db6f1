//! `tally bench-payments`: concurrent clients create one-order card payments through a gateway
//! for a fixed time, then wait until every payment is settled by the gateway's executor. Prints
//! created payments/s with the create latency (recorded in the replicated ledger) and settled
//! payments/s (charged at the PSP and posted).
//!
//! Start the gateway with rate limits and velocity rules above the offered load, or the risk
//! rules and the limiter (rightly) stop the benchmark's single merchant.

use crate::output::print_record;
use crate::payments::GatewayArgs;
use anyhow::{bail, Context, Result};
use clap::Args;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tally_proto::payments as pb;
use tally_proto::payments::merchants_client::MerchantsClient;
use tally_proto::payments::payments_client::PaymentsClient;
use tonic::transport::Channel;

#[derive(Args, Debug, Clone)]
pub struct BenchPaymentsArgs {
    /// Concurrent clients, each with one request in flight.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// How long to create payments for.
    #[arg(long, default_value_t = 20)]
    duration_s: u64,
    /// Buyers (and card tokens) the payments spread over.
    #[arg(long, default_value_t = 100)]
    buyers: u32,
    /// Longest wait for the executor to settle what was created.
    #[arg(long, default_value_t = 120)]
    settle_timeout_s: u64,
}

/// Latencies above this are recorded as this (an hour, in microseconds).
const LATENCY_US_MAX: u64 = 3_600_000_000;

fn authed<T>(message: T, token: &str) -> Result<tonic::Request<T>> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    Ok(request)
}

fn card(token: String) -> Option<pb::PaymentMethod> {
    Some(pb::PaymentMethod {
        method: Some(pb::payment_method::Method::CardToken(token)),
    })
}

async fn onboard(channel: Channel, args: &BenchPaymentsArgs, admin_token: &str) -> Result<String> {
    let mut merchants = MerchantsClient::new(channel);
    for (id, bps) in [("bench-platform", 0), ("bench-seller", 100)] {
        let created = merchants
            .create_merchant(authed(
                pb::CreateMerchantRequest {
                    merchant_id: id.to_string(),
                    name: id.to_string(),
                    fees: Some(pb::FeeSchedule {
                        bps,
                        fixed: BTreeMap::new(),
                    }),
                    hold_period_s: 0,
                },
                admin_token,
            )?)
            .await;
        if let Err(status) = created {
            if status.code() != tonic::Code::AlreadyExists {
                bail!("creating merchant {id}: {}", status.message());
            }
        }
    }
    for buyer in 0..args.buyers {
        merchants
            .create_buyer(authed(
                pb::CreateBuyerRequest {
                    buyer_id: format!("bench-buyer-{buyer}"),
                    wallet_currencies: vec![],
                },
                admin_token,
            )?)
            .await
            .with_context(|| format!("creating buyer bench-buyer-{buyer}"))?;
    }
    Ok(merchants
        .create_api_key(authed(
            pb::CreateApiKeyRequest {
                merchant_id: "bench-platform".to_string(),
            },
            admin_token,
        )?)
        .await
        .context("creating the bench API key")?
        .into_inner()
        .api_key)
}

pub async fn run(json: bool, gateway: &GatewayArgs, args: BenchPaymentsArgs) -> Result<()> {
    if args.clients == 0 || args.buyers == 0 {
        bail!("--clients and --buyers must be at least 1");
    }
    let Some(admin_token) = gateway.admin_token.as_deref() else {
        bail!("the benchmark creates its merchants and key: pass --admin-token or set TALLY_ADMIN_TOKEN");
    };
    let channel = crate::payments::channel(gateway).await?;
    let key = onboard(channel.clone(), &args, admin_token).await?;
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("system clock before 1970")?
        .as_millis();

    let created = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(args.duration_s);
    let progress = if json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(args.duration_s)
    };
    progress.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len}s {msg}")
            .expect("static template"),
    );
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(args.clients);
    for client_index in 0..args.clients {
        let mut payments = PaymentsClient::new(channel.clone());
        let (created, refused, stop) = (created.clone(), refused.clone(), stop.clone());
        let (key, buyers) = (key.clone(), args.buyers);
        tasks.push(tokio::spawn(async move {
            let mut latencies =
                Histogram::<u64>::new_with_bounds(1, LATENCY_US_MAX, 3).expect("valid bounds");
            let mut last_order = None;
            let mut sequence: u64 = 0;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                sequence += 1;
                // Hex, so no id holds a long digit run that could pass for a card number.
                let id = format!("b{run_id:x}-{client_index:x}-{sequence:x}");
                let buyer = (sequence as u32).wrapping_add(client_index as u32) % buyers;
                let request = pb::CreatePaymentRequest {
                    checkout_id: format!("c{id}"),
                    buyer_id: format!("bench-buyer-{buyer}"),
                    orders: vec![pb::NewOrder {
                        order_id: format!("o{id}"),
                        seller_id: "bench-seller".to_string(),
                        amount: "10.00".to_string(),
                        currency: "USD".to_string(),
                    }],
                    payment_method: card(format!("tok_bench_{buyer}")),
                    capture_method: pb::CaptureMethod::Automatic as i32,
                    metadata: BTreeMap::new(),
                };
                let Ok(request) = authed(request, &key) else {
                    break;
                };
                let sent = Instant::now();
                match payments.create_payment(request).await {
                    Ok(_) => {
                        let elapsed_us = sent.elapsed().as_micros() as u64;
                        latencies.saturating_record(elapsed_us.clamp(1, LATENCY_US_MAX));
                        created.fetch_add(1, Ordering::Relaxed);
                        last_order = Some(format!("o{id}"));
                    }
                    Err(_) => {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            (latencies, last_order)
        }));
    }
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let elapsed = started.elapsed().as_secs_f64();
        let rate = created.load(Ordering::Relaxed) as f64 / elapsed.max(0.001);
        progress.set_position(elapsed as u64);
        progress.set_message(format!("{rate:.0} payments/s created"));
    }
    stop.store(true, Ordering::Relaxed);
    let mut latencies =
        Histogram::<u64>::new_with_bounds(1, LATENCY_US_MAX, 3).expect("valid bounds");
    let mut last_orders = Vec::new();
    for task in tasks {
        let (client_latencies, last) = task.await.context("bench client panicked")?;
        latencies
            .add(client_latencies)
            .context("merging histograms")?;
        last_orders.extend(last);
    }
    let create_elapsed = started.elapsed().as_secs_f64();
    progress.set_message("waiting for the executor to settle every payment");

    // The executor works due orders oldest first, so once each client's last order is final,
    // every earlier one is too.
    let mut payments = PaymentsClient::new(channel);
    let settle_deadline = Instant::now() + Duration::from_secs(args.settle_timeout_s);
    let mut unsettled = last_orders;
    let mut last_states = BTreeMap::new();
    while !unsettled.is_empty() && Instant::now() < settle_deadline {
        let mut still = Vec::new();
        for order in unsettled {
            let state = payments
                .get_payment_order(authed(
                    pb::GetPaymentOrderRequest {
                        order_id: order.clone(),
                    },
                    &key,
                )?)
                .await
                .map(|r| r.into_inner().state)
                .unwrap_or_default();
            if !["succeeded", "failed", "canceled", "authorized"].contains(&state.as_str()) {
                still.push(order);
            } else {
                *last_states.entry(state).or_insert(0u32) += 1;
            }
        }
        unsettled = still;
        if !unsettled.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let settled_elapsed = started.elapsed().as_secs_f64();
    progress.finish_and_clear();
    if !unsettled.is_empty() {
        bail!(
            "{} clients' last payments were not settled within {} s: is the gateway's executor running?",
            unsettled.len(),
            args.settle_timeout_s
        );
    }
    let total = created.load(Ordering::Relaxed);
    let ms = |us: u64| format!("{:.2}", us as f64 / 1_000.0);
    print_record(
        json,
        vec![
            ("clients", args.clients.to_string()),
            ("create_elapsed_s", format!("{create_elapsed:.2}")),
            ("payments_created", total.to_string()),
            (
                "payments_refused",
                refused.load(Ordering::Relaxed).to_string(),
            ),
            (
                "created_per_s",
                format!("{:.0}", total as f64 / create_elapsed),
            ),
            (
                "create_latency_ms_p50",
                ms(latencies.value_at_quantile(0.50)),
            ),
            (
                "create_latency_ms_p99",
                ms(latencies.value_at_quantile(0.99)),
            ),
            (
                "create_latency_ms_p99_9",
                ms(latencies.value_at_quantile(0.999)),
            ),
            ("all_settled_after_s", format!("{settled_elapsed:.2}")),
            (
                "settled_per_s",
                format!("{:.0}", total as f64 / settled_elapsed),
            ),
            ("last_order_states", format!("{last_states:?}")),
        ],
    );
    Ok(())
}
