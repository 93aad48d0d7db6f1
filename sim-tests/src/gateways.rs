//! The payments tier in simulation: gateway hosts running the real `tally-gateway` (public API,
//! charge executor, payout worker, PSP webhooks in) over turmoil's sockets, and one host running
//! the real PSP simulator (`tally_psp::sim`) on the simulated clock. A gateway holds no state, so
//! its crash loses only work in flight; its restart starts afresh. The harness keeps the PSP's
//! handle to queue PSP faults and to read the PSP's own money record for the checkers.

use crate::charge_calls::ChargeCalls;
use crate::cluster::{api_endpoints, skewed_clock};
use crate::config::SimConfig;
use crate::net;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;
use tally_gateway::api::ApiConfig;
use tally_gateway::executor::ExecutorConfig;
use tally_gateway::payout_worker::PayoutWorkerConfig;
use tally_gateway::server::{serve_incoming, GatewayEnv, GatewaySettings};
use tally_gateway::{Backoff, FallbackLimits, RateLimitConfig, RiskRules, Secret};
use tally_ledger::payment::PspName;
use tally_net::Protocols;
use tally_proto::client::{ClientConfig, LedgerClient};
use tally_psp::sim::{Sim as PspSim, SimConfig as PspConfig, SimEnv, WebhookChaos};
use tally_psp::{SimPsp, SimPspConfig};
use turmoil::Sim;

pub const GATEWAY_GRPC_PORT: u16 = 7200;
pub const GATEWAY_HTTP_PORT: u16 = 7280;
pub const PSP_HOST: &str = "psp";
pub const PSP_PORT: u16 = 7300;
pub const PSP_NAME: &str = "sim";
pub const ADMIN_TOKEN: &str = "sim-admin-token";
const WEBHOOK_SECRET: &[u8] = b"sim-webhook-secret";
/// How long a claim keeps other executors off an order or payout: longer than a PSP call's
/// deadline plus the ledger's answer, plus twice the largest leader clock skew (a new leader's
/// stamps may run up to that far ahead of the old one's), so an honoured lease never lets two
/// charge calls for one order overlap (`charge_calls`).
pub const LEASE_MS: u64 = 10_000;
/// Deadline of one PSP call from a gateway; within the lease.
pub const PSP_TIMEOUT_MS: u64 = 1_500;
/// How long an injected PSP `timeout` holds the request: past the gateway's deadline.
const PSP_TIMEOUT_FAULT_MS: u64 = 2_500;
/// How long a payout stays in transit at the PSP.
const PAYOUT_SETTLE_MS: u64 = 1_500;
/// Largest clock skew of a gateway, either way.
const GATEWAY_SKEW_MS_MAX: i64 = 1_000;

pub fn gateway_name(index: usize) -> String {
    format!("gateway{}", index + 1)
}

/// A gateway's public gRPC address.
pub fn gateway_grpc(index: usize) -> String {
    format!("http://{}:{GATEWAY_GRPC_PORT}", gateway_name(index))
}

/// The gateways' settings: the production shapes, with bounds sized to the fault window (a
/// retry budget that outlasts it, so an order dead-letters only on a poison answer).
fn settings(config: &SimConfig, index: usize) -> GatewaySettings {
    let mut executor = ExecutorConfig::new(
        Backoff::new(100, 2_000, 60).expect("the simulation's backoff is in range"),
    );
    executor.lease_ms = LEASE_MS;
    executor.psp_call_timeout_ms = PSP_TIMEOUT_MS;
    executor.idle_poll_ms = 100;
    executor.orders_in_flight_max = 8;
    let mut payouts = PayoutWorkerConfig::new(
        Backoff::new(200, 2_000, 60).expect("the simulation's backoff is in range"),
    );
    payouts.lease_ms = LEASE_MS;
    payouts.psp_call_timeout_ms = PSP_TIMEOUT_MS;
    payouts.idle_poll_ms = 500;
    payouts.in_transit_check_ms = 1_000;
    GatewaySettings {
        api: ApiConfig {
            psp_name: PspName::new(PSP_NAME).expect("a valid PSP name"),
            admin_token: Some(Secret::new(ADMIN_TOKEN.to_string())),
            risk_fallback: FallbackLimits::default(),
            psp_call_timeout_ms: PSP_TIMEOUT_MS,
            idempotency_lease_ms: 3 * PSP_TIMEOUT_MS,
            idempotency_retention_ms: tally_gateway::api::IDEMPOTENCY_RETENTION_MS_DEFAULT,
            api_key_cache_ms: 1_000,
            require_signatures: false,
            webhook_allow_http: true,
        },
        rate_limit: RateLimitConfig {
            burst_requests_max: 10_000,
            refill_requests_per_s: 10_000,
            merchants_max: 1_000,
        },
        risk: RiskRules::permissive(100_000_000),
        executor: Some(executor),
        payout_worker: Some(payouts),
        // Merchants' webhook endpoints are not simulated yet.
        dispatcher: None,
        seed: Some(config.seed ^ (0x6a7e_0000 + index as u64)),
    }
}

/// The gateways' ledger client: the production client with deadlines short enough for the
/// simulated faults.
fn ledger_client(nodes: usize) -> Result<LedgerClient, tally_proto::client::ClientError> {
    let config = ClientConfig {
        rpc_timeout_ms: 1_000,
        request_timeout_ms: 3_000,
        retry_attempts_max: 10,
        backoff_initial_ms: 20,
        backoff_max_ms: 250,
    };
    LedgerClient::connect_lazy_with_dialer(api_endpoints(nodes), config, net::dialer())
}

/// The PSP's webhook chaos for a seed: some events dropped, sent twice, or late (reordered).
fn draw_chaos(seed: u64) -> WebhookChaos {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x0b00_c4a0);
    WebhookChaos {
        drop_pct: rng.random_range(0..=15),
        duplicate_pct: rng.random_range(0..=40),
        delay_pct: rng.random_range(0..=40),
        delay_ms_max: 2_000,
        seed,
    }
}

pub struct Gateways {
    pub count: usize,
    running: Vec<bool>,
    /// The PSP simulator's state, shared with its host.
    pub psp: PspSim,
    /// Every gateway's charge calls, for the lease checker.
    pub charge_calls: ChargeCalls,
}

impl Gateways {
    /// Registers the PSP host and one host per gateway.
    pub fn start(sim: &mut Sim<'_>, config: &SimConfig) -> Self {
        let psp = PspSim::with_env(
            PspConfig {
                webhook_url: Some(format!(
                    "http://{}:{GATEWAY_HTTP_PORT}/webhooks/{PSP_NAME}",
                    gateway_name(0)
                )),
                webhook_secret: WEBHOOK_SECRET.to_vec(),
                timeout_fault_ms: PSP_TIMEOUT_FAULT_MS,
                public_url: format!("http://{PSP_HOST}:{PSP_PORT}"),
                faults: Vec::new(),
                payout_settle_ms: PAYOUT_SETTLE_MS,
                webhook_chaos: if config.faults {
                    draw_chaos(config.seed)
                } else {
                    WebhookChaos::default()
                },
            },
            SimEnv {
                clock_ms: Arc::new(|| {
                    let since_epoch = turmoil::since_epoch().unwrap_or_default();
                    u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
                }),
                dialer: net::dialer(),
            },
        );
        let host_psp = psp.clone();
        sim.host(PSP_HOST, move || {
            let psp = host_psp.clone();
            async move {
                let incoming = net::incoming(PSP_PORT).await?;
                // The PSP never stops within a run.
                let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
                tally_net::serve(
                    psp.router(),
                    Protocols::Http1AndHttp2,
                    tally_net::ServerSecurity::InsecureDev,
                    incoming,
                    stop_rx,
                )
                .await;
                Ok(())
            }
        });
        let charge_calls = ChargeCalls::default();
        let mut rng = StdRng::seed_from_u64(config.seed ^ 0x6a7e_5c3e);
        for index in 0..config.gateways {
            let skew_ms = if config.faults {
                rng.random_range(-GATEWAY_SKEW_MS_MAX..=GATEWAY_SKEW_MS_MAX)
            } else {
                0
            };
            let host_config = config.clone();
            let host_calls = charge_calls.clone();
            sim.host(gateway_name(index), move || {
                let config = host_config.clone();
                let calls = host_calls.clone();
                async move {
                    let dialer = net::dialer();
                    let psp = SimPsp::with_dialer(
                        SimPspConfig {
                            base_url: format!("http://{PSP_HOST}:{PSP_PORT}"),
                            timeout_ms: PSP_TIMEOUT_MS,
                            webhook_secrets: vec![WEBHOOK_SECRET.to_vec()],
                        },
                        &dialer,
                    );
                    let env = GatewayEnv {
                        ledger: ledger_client(config.nodes)?,
                        psp: calls.wrap(index, Arc::new(psp)),
                        clock: skewed_clock(skew_ms),
                        dialer,
                        // Plaintext in simulation: ring's randomness cannot be seeded, so TLS
                        // would make two runs of one seed differ.
                        security: tally_net::ServerSecurity::InsecureDev,
                    };
                    let grpc = net::incoming(GATEWAY_GRPC_PORT).await?;
                    let http = net::incoming(GATEWAY_HTTP_PORT).await?;
                    serve_incoming(
                        settings(&config, index),
                        env,
                        grpc,
                        http,
                        std::future::pending(),
                    )
                    .await?;
                    Ok(())
                }
            });
        }
        Gateways {
            count: config.gateways,
            running: vec![true; config.gateways],
            psp,
            charge_calls,
        }
    }

    pub fn is_running(&self, index: usize) -> bool {
        self.running[index]
    }

    /// The gateway process dies: its requests and PSP calls in flight are lost, its leases
    /// stay taken until they run out.
    pub fn crash(&mut self, sim: &mut Sim<'_>, index: usize) {
        sim.crash(gateway_name(index));
        self.running[index] = false;
    }

    pub fn restart(&mut self, sim: &mut Sim<'_>, index: usize) {
        sim.bounce(gateway_name(index));
        self.running[index] = true;
    }
}
