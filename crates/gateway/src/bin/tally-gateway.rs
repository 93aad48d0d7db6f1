//! `tally-gateway`: the stateless payments tier. Run any number of copies against one
//! `tally-node` cluster; each serves the public API and executes due orders.
//!
//! TLS by default: both listeners serve `--cert`/`--key`; the gateway calls the nodes over
//! mutual TLS with the same certificate (its identity must be `gateway-<name>.id.tally`) and
//! trusts `--ca` for them, for an `https` PSP and for `https` webhook endpoints.

use anyhow::{bail, Context, Result};
use clap::Parser;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use tally_gateway::api::ApiConfig;
use tally_gateway::executor::{Clock, ExecutorConfig};
use tally_gateway::payout_worker::PayoutWorkerConfig;
use tally_gateway::server::{serve, GatewayEnv, GatewaySettings};
use tally_gateway::webhook_dispatcher::DispatcherConfig;
use tally_gateway::{Backoff, FallbackLimits, RateLimitConfig, RiskRules, Secret, VelocityRules};
use tally_ledger::payment::PspName;
use tally_ledger::{parse_amount, Currency, ZeroAmount};
use tally_net::tls::{reload_on_hangup, TlsArgs};
use tally_proto::client::{ClientConfig, LedgerClient};

#[derive(Parser, Debug)]
#[command(name = "tally-gateway", version, about = "Tally's payments gateway")]
struct Args {
    /// Client API addresses of the cluster's nodes, comma-separated.
    #[arg(
        long,
        env = "TALLY_NODES",
        value_delimiter = ',',
        default_value = "127.0.0.1:7100"
    )]
    nodes: Vec<String>,
    /// Public gRPC (`tally.payments.v1`, health, reflection).
    #[arg(long, env = "TALLY_GATEWAY_GRPC", default_value = "127.0.0.1:7200")]
    grpc_listen: String,
    /// HTTP: JSON facade, PSP webhooks, /healthz, /readyz, /metrics.
    #[arg(long, env = "TALLY_GATEWAY_HTTP", default_value = "127.0.0.1:7280")]
    http_listen: String,
    /// Base URL of the PSP (the simulator speaks the same API).
    #[arg(long, env = "TALLY_PSP_URL", default_value = "http://127.0.0.1:7300")]
    psp_url: String,
    /// Name of the PSP in the ledger's chart of accounts.
    #[arg(long, env = "TALLY_PSP_NAME", default_value = "sim")]
    psp_name: String,
    /// Secrets PSP webhooks may be signed with: repeat the flag (or separate by commas) while
    /// rotating, so the old and the new secret are both accepted until the PSP has switched.
    #[arg(
        long,
        env = "TALLY_PSP_WEBHOOK_SECRET",
        hide_env_values = true,
        default_value = "dev-webhook-secret",
        value_delimiter = ',',
        value_parser = secret_arg
    )]
    psp_webhook_secret: Vec<Secret<String>>,
    #[arg(long, env = "TALLY_PSP_TIMEOUT_MS", default_value_t = 10_000)]
    psp_timeout_ms: u64,
    /// Bearer token of the merchants (operator) API; unset disables that API.
    #[arg(long, env = "TALLY_ADMIN_TOKEN", hide_env_values = true, value_parser = secret_arg)]
    admin_token: Option<Secret<String>>,
    /// Requests a merchant, and each of its API keys, may burst, then `--rate-limit-per-s`
    /// sustained (per gateway copy; a key's budget is checked before its record is read).
    #[arg(long, default_value_t = 1_000)]
    rate_limit_burst: u32,
    #[arg(long, default_value_t = 500)]
    rate_limit_per_s: u32,
    /// Largest single payment, as `CUR=amount` (repeatable); unlisted currencies get 1000000.
    #[arg(long = "risk-amount-max", value_name = "CUR=AMOUNT")]
    risk_amount_max: Vec<String>,
    #[arg(long, default_value_t = 60_000)]
    risk_velocity_window_ms: u64,
    /// Payments per buyer within the window before review.
    #[arg(long, default_value_t = 30)]
    risk_velocity_buyer_max: u32,
    /// Payments per card token within the window before review.
    #[arg(long, default_value_t = 30)]
    risk_velocity_token_max: u32,
    #[arg(long = "risk-block-buyer")]
    risk_block_buyer: Vec<String>,
    #[arg(long = "risk-block-token")]
    risk_block_token: Vec<String>,
    /// Payments up to this (`CUR=amount`, repeatable) go ahead flagged when risk is down.
    #[arg(long = "risk-fallback-max", value_name = "CUR=AMOUNT")]
    risk_fallback_max: Vec<String>,
    /// Reuse an API key record read from the ledger for this long (0: read it every request);
    /// a revoked key stops working on this gateway within it.
    #[arg(long, default_value_t = 1_000)]
    api_key_cache_ms: u64,
    /// Refuse payment requests without a `tally-signature` HMAC, keyed by the API key's signing
    /// secret (`tss_…`, shown once by `tally merchant api-key`); a nonce is accepted once across
    /// every gateway copy.
    #[arg(long, env = "TALLY_REQUIRE_SIGNATURES")]
    require_signatures: bool,
    #[command(flatten)]
    tls: TlsArgs,
    /// Serve the API only; execute no orders.
    #[arg(long)]
    no_executor: bool,
    #[arg(long, default_value_t = 30_000)]
    lease_ms: u64,
    #[arg(long, default_value_t = 100)]
    idle_poll_ms: u64,
    /// Orders the executor works at once.
    #[arg(long, default_value_t = 64)]
    executor_concurrency: usize,
    /// A pending order (3-D Secure, QR, hosted page) the buyer has not completed this long after
    /// it was created is canceled at the PSP and fails with `expired`.
    #[arg(long, default_value_t = tally_gateway::executor::PENDING_EXPIRY_MS_DEFAULT)]
    pending_expiry_ms: u64,
    /// How long a client's `Idempotency-Key` is kept after its first use (1 ms to 30 days).
    /// Within it a retry gets the first answer; after it the key is forgotten and a request
    /// reusing it is a new request.
    #[arg(long, default_value_t = tally_gateway::api::IDEMPOTENCY_RETENTION_MS_DEFAULT)]
    idempotency_retention_ms: u64,
    #[arg(long, default_value_t = 200)]
    retry_base_ms: u64,
    #[arg(long, default_value_t = 60_000)]
    retry_max_ms: u64,
    #[arg(long, default_value_t = 8)]
    retry_attempts_max: u32,
    /// Run no payouts or payout schedules on this gateway.
    #[arg(long)]
    no_payouts: bool,
    /// Payout retries: slower than charges (no buyer waits), spread over hours.
    #[arg(long, default_value_t = 5_000)]
    payout_retry_base_ms: u64,
    #[arg(long, default_value_t = 3_600_000)]
    payout_retry_max_ms: u64,
    #[arg(long, default_value_t = 16)]
    payout_retry_attempts_max: u32,
    /// How long after the PSP accepted a payout its status is checked (again).
    #[arg(long, default_value_t = 60_000)]
    payout_check_ms: u64,
    /// Deliver no webhooks to merchants from this gateway.
    #[arg(long)]
    no_webhooks_out: bool,
    /// Webhook delivery retries: over hours, then the dead-letter queue.
    #[arg(long, default_value_t = 10_000)]
    webhook_retry_base_ms: u64,
    #[arg(long, default_value_t = 3_600_000)]
    webhook_retry_max_ms: u64,
    #[arg(long, default_value_t = 14)]
    webhook_retry_attempts_max: u32,
    /// Accept http:// webhook endpoints (local development only).
    #[arg(long)]
    webhook_allow_http: bool,
    /// Internal networks webhook endpoints may resolve to anyway (CIDR or address,
    /// repeatable). Without it, an endpoint whose name resolves to a loopback, private,
    /// link-local (cloud metadata) or other non-public address gets no delivery.
    #[arg(long = "webhook-allow-net", value_name = "CIDR")]
    webhook_allow_net: Vec<String>,
    /// PEM bundle trusted for https webhook endpoints, besides the system's roots.
    #[arg(long, env = "TALLY_WEBHOOK_CA")]
    webhook_ca: Option<std::path::PathBuf>,
    /// Trust only --webhook-ca for webhook endpoints, not the system's roots.
    #[arg(long, requires = "webhook_ca")]
    webhook_ca_only: bool,
    /// Deadline of one delivery POST.
    #[arg(long, default_value_t = 10_000)]
    webhook_timeout_ms: u64,
    /// text or json.
    #[arg(long, env = "TALLY_LOG_FORMAT", default_value = "text")]
    log_format: String,
}

/// A secret flag's value, masked from `Debug` the moment it is parsed.
fn secret_arg(value: &str) -> Result<Secret<String>, std::convert::Infallible> {
    Ok(Secret::new(value.to_string()))
}

fn amounts_by_currency(flag: &str, given: &[String]) -> Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for entry in given {
        let Some((code, amount)) = entry.split_once('=') else {
            bail!("--{flag} {entry:?}: write CUR=AMOUNT, e.g. USD=5000.00");
        };
        let currency: Currency = code
            .parse()
            .with_context(|| format!("--{flag} {entry:?}"))?;
        let minor = parse_amount(amount, currency, ZeroAmount::Refused)
            .with_context(|| format!("--{flag} {entry:?}"))?;
        out.insert(currency.code().to_string(), minor);
    }
    Ok(out)
}

fn settings(args: &Args) -> Result<GatewaySettings> {
    let mut amount_max = amounts_by_currency("risk-amount-max", &args.risk_amount_max)?;
    for currency in Currency::ALL {
        let default_minor = 1_000_000u64 * 10u64.pow(currency.exponent());
        amount_max
            .entry(currency.code().to_string())
            .or_insert(default_minor);
    }
    let executor = if args.no_executor {
        None
    } else {
        let mut config = ExecutorConfig::new(Backoff::new(
            args.retry_base_ms,
            args.retry_max_ms,
            args.retry_attempts_max,
        )?);
        config.lease_ms = args.lease_ms;
        config.idle_poll_ms = args.idle_poll_ms;
        config.orders_in_flight_max = args.executor_concurrency.max(1);
        config.pending_expiry_ms = args.pending_expiry_ms;
        config.psp_call_timeout_ms = args.psp_timeout_ms;
        Some(config)
    };
    let payout_worker = if args.no_payouts {
        None
    } else {
        let mut config = PayoutWorkerConfig::new(Backoff::new(
            args.payout_retry_base_ms,
            args.payout_retry_max_ms,
            args.payout_retry_attempts_max,
        )?);
        config.lease_ms = args.lease_ms;
        config.psp_call_timeout_ms = args.psp_timeout_ms;
        config.in_transit_check_ms = args.payout_check_ms;
        Some(config)
    };
    let dispatcher = if args.no_webhooks_out {
        None
    } else {
        let mut config = DispatcherConfig::new(Backoff::new(
            args.webhook_retry_base_ms,
            args.webhook_retry_max_ms,
            args.webhook_retry_attempts_max,
        )?);
        config.lease_ms = args.lease_ms;
        config.request_timeout_ms = args.webhook_timeout_ms;
        Some(config)
    };
    Ok(GatewaySettings {
        api: ApiConfig {
            psp_name: PspName::new(args.psp_name.clone()).context("--psp-name")?,
            admin_token: args.admin_token.clone(),
            risk_fallback: FallbackLimits {
                proceed_amount_minor_max_by_currency: amounts_by_currency(
                    "risk-fallback-max",
                    &args.risk_fallback_max,
                )?,
            },
            psp_call_timeout_ms: args.psp_timeout_ms,
            // Covers the slowest call: a capture or refund waiting its whole PSP deadline.
            idempotency_lease_ms: args.psp_timeout_ms.saturating_mul(3).max(1_000),
            idempotency_retention_ms: args.idempotency_retention_ms,
            require_signatures: args.require_signatures,
            api_key_cache_ms: args.api_key_cache_ms,
            webhook_allow_http: args.webhook_allow_http,
        },
        rate_limit: RateLimitConfig {
            burst_requests_max: args.rate_limit_burst,
            refill_requests_per_s: args.rate_limit_per_s,
            merchants_max: 100_000,
        },
        risk: RiskRules {
            amount_minor_max_by_currency: amount_max,
            orders_per_payment_max: 16,
            velocity: VelocityRules {
                window_ms: args.risk_velocity_window_ms,
                buyer_payments_max: args.risk_velocity_buyer_max,
                payment_token_payments_max: args.risk_velocity_token_max,
                keys_max: 100_000,
            },
            blocked_buyer_ids: args
                .risk_block_buyer
                .iter()
                .cloned()
                .collect::<BTreeSet<_>>(),
            blocked_payment_tokens: args
                .risk_block_token
                .iter()
                .cloned()
                .collect::<BTreeSet<_>>(),
        },
        executor,
        payout_worker,
        dispatcher,
        seed: None,
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

/// How merchants' webhook endpoints are reached: resolved here and checked against the
/// internal-address policy at every delivery, then HTTPS against the system's roots (and
/// `--webhook-ca`), HTTP/2 or 1.1.
fn webhook_dialer(args: &Args) -> Result<tally_net::Dialer> {
    let policy = tally_net::guard::AddressPolicy::parse(&args.webhook_allow_net)
        .map_err(|e| anyhow::anyhow!("--webhook-allow-net: {e}"))?;
    let extra = match &args.webhook_ca {
        Some(path) => Some(tally_net::tls::PemSource::read(path)?),
        None => None,
    };
    let tls = tally_net::tls::ClientTls::public(extra.as_ref(), !args.webhook_ca_only)
        .context("setting up TLS to webhook endpoints (see --webhook-ca)")?;
    Ok(tally_net::guard::guarded_tcp(policy).with_https(tls))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let builder = tracing_subscriber::fmt().with_env_filter(
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
    );
    match args.log_format.as_str() {
        "text" => builder.init(),
        "json" => builder.json().init(),
        other => bail!("unknown log format {other:?}: use text or json"),
    }
    let settings = settings(&args)?;
    let security = args
        .tls
        .server_security(false)
        .context("setting up TLS for the gateway's listeners")?;
    reload_on_hangup(&security);
    let cluster_dialer = args
        .tls
        .dialer(tally_net::Dialer::tcp())
        .context("setting up mutual TLS to the cluster")?;
    let https_dialer = args
        .tls
        .https_dialer(tally_net::Dialer::tcp())
        .context("setting up TLS to the PSP")?;
    let webhook_dialer = webhook_dialer(&args)?;
    let ledger =
        LedgerClient::connect_via(args.nodes.clone(), ClientConfig::default(), cluster_dialer)
            .await
            .with_context(|| format!("connecting to the cluster at {:?}", args.nodes))?;
    let psp = Arc::new(tally_psp::SimPsp::with_dialer(
        tally_psp::SimPspConfig {
            base_url: args.psp_url.clone(),
            timeout_ms: args.psp_timeout_ms,
            webhook_secrets: args
                .psp_webhook_secret
                .iter()
                .map(|secret| secret.expose().clone().into_bytes())
                .collect(),
        },
        &https_dialer,
    ));
    let grpc_listener = tokio::net::TcpListener::bind(&args.grpc_listen)
        .await
        .with_context(|| format!("binding gRPC address {}", args.grpc_listen))?;
    let http_listener = tokio::net::TcpListener::bind(&args.http_listen)
        .await
        .with_context(|| format!("binding HTTP address {}", args.http_listen))?;
    let clock: Clock = Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    });
    tracing::info!(grpc = %args.grpc_listen, http = %args.http_listen, psp = %args.psp_url, nodes = ?args.nodes, executor = !args.no_executor, "gateway started");
    let env = GatewayEnv {
        ledger,
        psp,
        clock,
        dialer: webhook_dialer,
        security,
    };
    serve(
        settings,
        env,
        grpc_listener,
        http_listener,
        shutdown_signal(),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parsed_flags_debug_print_no_secret() {
        let args = Args::try_parse_from([
            "tally-gateway",
            "--nodes",
            "https://127.0.0.1:7100",
            "--insecure-dev",
            "--admin-token",
            "adm_6f1d2c",
            "--psp-webhook-secret",
            "whsec_a81f,whsec_b92e",
        ])
        .expect("the flags parse");
        let shown = format!("{args:?}");
        for secret in ["adm_6f1d2c", "whsec_a81f", "whsec_b92e"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert_eq!(args.psp_webhook_secret.len(), 2);
        assert_eq!(args.psp_webhook_secret[1].expose(), "whsec_b92e");
    }
}
