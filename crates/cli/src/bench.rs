//! `tally bench`: concurrent clients send batches of transfers between K accounts for a fixed
//! time; prints transfers/s and request latency percentiles from an HDR histogram.

use crate::commands::uint128;
use crate::output::print_record;
use anyhow::{bail, Context, Result};
use clap::Args;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tally_ledger::limits::BATCH_COMMANDS_MAX;
use tally_proto::client::LedgerClient;
use tally_proto::ledger as pb;

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Concurrent clients, each with one request in flight.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Transfers per request (1..=8190).
    #[arg(long, default_value_t = 8190)]
    batch: usize,
    /// Accounts the transfers move money between.
    #[arg(long, default_value_t = 10_000)]
    accounts: u64,
    /// How long to send for.
    #[arg(long, default_value_t = 20)]
    duration_s: u64,
    /// First account id used by the benchmark (accounts are created if missing).
    #[arg(long, default_value_t = 1_000_000_000)]
    account_base: u64,
}

/// Latencies above this are recorded as this (an hour, in microseconds).
const LATENCY_US_MAX: u64 = 3_600_000_000;

pub async fn run(json: bool, client: LedgerClient, args: BenchArgs) -> Result<()> {
    if args.batch == 0 || args.batch > BATCH_COMMANDS_MAX {
        bail!("--batch must be in 1..={BATCH_COMMANDS_MAX}");
    }
    if args.clients == 0 || args.accounts < 2 {
        bail!("--clients must be at least 1 and --accounts at least 2");
    }
    create_accounts(&client, &args).await?;

    // Transfer ids unique across runs: the start time in the high bits, client and sequence low.
    let run_base = u128::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .context("system clock before 1970")?
            .as_nanos() as u64,
    ) << 64;
    let transfers_done = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
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
        let client = client.clone();
        let args = args.clone();
        let (done, failures, stop) = (transfers_done.clone(), failures.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies =
                Histogram::<u64>::new_with_bounds(1, LATENCY_US_MAX, 3).expect("valid bounds");
            let mut sequence: u64 = 0;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let transfers: Vec<pb::NewTransfer> = (0..args.batch)
                    .map(|_| {
                        sequence += 1;
                        let id = run_base
                            + (u128::from(client_index as u64) << 40)
                            + u128::from(sequence);
                        let n = sequence
                            .wrapping_mul(6_364_136_223_846_793_005)
                            .wrapping_add(client_index as u64);
                        let debit = n % args.accounts;
                        let credit = (debit + 1 + (n >> 17) % (args.accounts - 1)) % args.accounts;
                        pb::NewTransfer {
                            id: uint128(id),
                            kind: Some(pb::new_transfer::Kind::Single(pb::Single {
                                debit_account_id: uint128(u128::from(args.account_base + debit)),
                                credit_account_id: uint128(u128::from(args.account_base + credit)),
                                amount: "0.01".into(),
                                currency: "USD".into(),
                            })),
                            code: 1,
                            metadata: Default::default(),
                            linked: false,
                        }
                    })
                    .collect();
                let sent = Instant::now();
                match client.create_transfers(transfers).await {
                    Ok(response) => {
                        let elapsed_us = sent.elapsed().as_micros() as u64;
                        latencies.saturating_record(elapsed_us.clamp(1, LATENCY_US_MAX));
                        let ok = response.results.iter().filter(|r| r.code == "ok").count() as u64;
                        done.fetch_add(ok, Ordering::Relaxed);
                        failures.fetch_add(response.results.len() as u64 - ok, Ordering::Relaxed);
                    }
                    Err(_) => {
                        failures.fetch_add(args.batch as u64, Ordering::Relaxed);
                    }
                }
            }
            latencies
        }));
    }

    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let elapsed = started.elapsed().as_secs_f64();
        let rate = transfers_done.load(Ordering::Relaxed) as f64 / elapsed.max(0.001);
        progress.set_position(elapsed as u64);
        progress.set_message(format!("{rate:.0} transfers/s"));
    }
    stop.store(true, Ordering::Relaxed);
    let mut latencies =
        Histogram::<u64>::new_with_bounds(1, LATENCY_US_MAX, 3).expect("valid bounds");
    for task in tasks {
        latencies
            .add(task.await.context("bench client panicked")?)
            .context("merging histograms")?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    progress.finish_and_clear();

    let transfers = transfers_done.load(Ordering::Relaxed);
    let ms = |us: u64| format!("{:.2}", us as f64 / 1_000.0);
    print_record(
        json,
        vec![
            ("clients", args.clients.to_string()),
            ("transfers_per_request", args.batch.to_string()),
            ("accounts", args.accounts.to_string()),
            ("elapsed_s", format!("{elapsed:.2}")),
            ("transfers_ok", transfers.to_string()),
            (
                "transfers_failed",
                failures.load(Ordering::Relaxed).to_string(),
            ),
            ("requests", latencies.len().to_string()),
            (
                "transfers_per_s",
                format!("{:.0}", transfers as f64 / elapsed),
            ),
            ("latency_ms_p50", ms(latencies.value_at_quantile(0.50))),
            ("latency_ms_p99", ms(latencies.value_at_quantile(0.99))),
            ("latency_ms_p99_9", ms(latencies.value_at_quantile(0.999))),
            ("latency_ms_max", ms(latencies.max())),
        ],
    );
    Ok(())
}

async fn create_accounts(client: &LedgerClient, args: &BenchArgs) -> Result<()> {
    let ids: Vec<u64> = (0..args.accounts).map(|i| args.account_base + i).collect();
    for chunk in ids.chunks(BATCH_COMMANDS_MAX) {
        let accounts: Vec<pb::NewAccount> = chunk
            .iter()
            .map(|id| pb::NewAccount {
                id: uint128(u128::from(*id)),
                currency: "USD".into(),
                code: 1,
                debits_must_not_exceed_credits: false,
                credits_must_not_exceed_debits: false,
                metadata: Default::default(),
                linked: false,
            })
            .collect();
        let response = client
            .create_accounts(accounts)
            .await
            .context("creating bench accounts")?;
        if let Some(bad) = response
            .results
            .iter()
            .find(|r| r.code != "ok" && r.code != "exists")
        {
            bail!("bench account refused: {} {}", bad.code, bad.message);
        }
    }
    Ok(())
}
