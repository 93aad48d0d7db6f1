//! `tally-psp-sim`: runs the PSP simulator (see `tally_psp::sim`) on an address.

use clap::Parser;
use tally_net::tls::{reload_on_hangup, TlsArgs};
use tally_psp::sim::{serve, SimConfig, SimEnv, WebhookChaos};

#[derive(Parser)]
#[command(
    about = "Tally's PSP simulator: idempotent charges, captures, refunds, async webhooks, fault injection"
)]
struct Args {
    /// Address to serve HTTP on.
    #[arg(long, env = "TALLY_PSP_LISTEN", default_value = "127.0.0.1:7300")]
    listen: String,
    /// Where to send signed webhooks (e.g. the gateway's http://127.0.0.1:7280/v1/webhooks/psp).
    #[arg(long, env = "TALLY_PSP_WEBHOOK_URL")]
    webhook_url: Option<String>,
    /// The secret webhooks are signed with; the gateway must be given the same one.
    #[arg(
        long,
        env = "TALLY_PSP_WEBHOOK_SECRET",
        default_value = "dev-webhook-secret"
    )]
    webhook_secret: String,
    /// How long an injected `timeout` fault holds a request before giving up uncharged.
    #[arg(long, default_value_t = 30_000)]
    timeout_fault_ms: u64,
    /// Faults for the first money calls, in order: KIND:COUNT with KIND one of timeout,
    /// error_500, lost_response, invalid_request, latency=<ms> (repeatable; more by
    /// POST /v1/sim/faults).
    #[arg(long = "fault", value_name = "KIND:COUNT")]
    faults: Vec<String>,
    /// The base URL buyers reach the simulator at (payment pages); default http://<listen>.
    #[arg(long, env = "TALLY_PSP_PUBLIC_URL")]
    public_url: Option<String>,
    /// How long a payout stays in transit before the bank has it (0: paid at once).
    #[arg(long, default_value_t = 0)]
    payout_settle_ms: u64,
    /// Percent of webhook events dropped (the gateway's status checks must cover them).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    webhook_drop_pct: u8,
    /// Percent of webhook events sent twice.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    webhook_duplicate_pct: u8,
    /// Percent of webhook events delayed by up to --webhook-delay-ms-max (so out of order).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    webhook_delay_pct: u8,
    #[arg(long, default_value_t = 2_000)]
    webhook_delay_ms_max: u64,
    /// Seed of the webhook chaos draws, to replay a run.
    #[arg(long, default_value_t = 0)]
    webhook_chaos_seed: u64,
    /// TLS: the simulator serves HTTPS with --cert/--key and trusts --ca for an https
    /// --webhook-url.
    #[command(flatten)]
    tls: TlsArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let mut faults = Vec::with_capacity(args.faults.len());
    for entry in &args.faults {
        let parsed = entry
            .rsplit_once(':')
            .and_then(|(kind, count)| Some((kind, count.parse::<u32>().ok()?)))
            .filter(|(kind, _)| tally_psp::sim::is_fault(kind));
        let Some((kind, count)) = parsed else {
            anyhow::bail!("--fault {entry:?}: write KIND:COUNT, KIND one of timeout, error_500, lost_response, invalid_request, latency=<ms>");
        };
        faults.push((kind.to_string(), count));
    }
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
    let security = args.tls.server_security(false)?;
    reload_on_hangup(&security);
    let env = SimEnv {
        dialer: args.tls.https_dialer(tally_net::Dialer::tcp())?,
        ..SimEnv::default()
    };
    let scheme = if args.tls.insecure_dev {
        "http"
    } else {
        "https"
    };
    tracing::info!(listen = %args.listen, tls = !args.tls.insecure_dev, "PSP simulator serving");
    serve(
        listener,
        SimConfig {
            webhook_url: args.webhook_url,
            webhook_secret: args.webhook_secret.into_bytes(),
            timeout_fault_ms: args.timeout_fault_ms,
            public_url: args
                .public_url
                .unwrap_or_else(|| format!("{scheme}://{}", args.listen)),
            faults,
            payout_settle_ms: args.payout_settle_ms,
            webhook_chaos: WebhookChaos {
                drop_pct: args.webhook_drop_pct,
                duplicate_pct: args.webhook_duplicate_pct,
                delay_pct: args.webhook_delay_pct,
                delay_ms_max: args.webhook_delay_ms_max,
                seed: args.webhook_chaos_seed,
            },
        },
        env,
        security,
    )
    .await?;
    Ok(())
}
