//! One gateway process: the public gRPC services (payments, merchants, health, reflection), the
//! HTTP side (JSON facade, PSP webhooks, health, metrics) and the PSP executor, all stopped by
//! one shutdown signal. The binary and the end-to-end tests start gateways through [`serve`], the
//! simulation through [`serve_incoming`] on its own sockets: the same code either way.

use crate::api::facade::{self, FacadeState};
use crate::api::grpc::PaymentsGrpc;
use crate::api::{ApiConfig, PaymentsApi};
use crate::executor::{Clock, Executor, ExecutorConfig};
use crate::http::{self, HttpState};
use crate::metrics::Metrics;
use crate::payout_worker::{PayoutWorker, PayoutWorkerConfig};
use crate::rate_limit::{RateLimitConfig, RateLimiter};
use crate::risk::{RiskRules, RulesEngine};
use crate::webhook_dispatcher::{Dispatcher, DispatcherConfig};
use crate::ConfigError;
use std::future::Future;
use std::sync::Arc;
use tally_net::{Dialer, Protocols, ServerSecurity};
use tally_proto::client::LedgerClient;
use tally_psp::Psp;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::{Stream, StreamExt};
use tonic::service::Routes;

/// Everything a gateway needs besides its listeners.
pub struct GatewaySettings {
    pub api: ApiConfig,
    pub rate_limit: RateLimitConfig,
    pub risk: RiskRules,
    /// `None`: this gateway serves the API only and executes no orders.
    pub executor: Option<ExecutorConfig>,
    /// `None`: this gateway runs no payouts or payout schedules.
    pub payout_worker: Option<PayoutWorkerConfig>,
    /// `None`: this gateway delivers no webhooks to merchants.
    pub dispatcher: Option<DispatcherConfig>,
    /// Seeds the executor's jitter and API-key generation; `None` seeds from the OS.
    pub seed: Option<u64>,
}

/// What a gateway takes from its surroundings: the cluster, the PSP, the clock, and how it
/// reaches merchants' webhook endpoints. A simulation passes its own of each.
#[derive(Clone)]
pub struct GatewayEnv {
    pub ledger: LedgerClient,
    pub psp: Arc<dyn Psp>,
    pub clock: Clock,
    /// How merchants' webhook endpoints are reached.
    pub dialer: Dialer,
    /// How both listeners secure connections: TLS in production (payment clients show no
    /// certificate; their API keys authenticate them), `InsecureDev` for dev stacks and
    /// simulations.
    pub security: ServerSecurity,
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("gRPC reflection could not load the descriptors: {0}")]
    Reflection(String),
}

/// Serves on OS listeners until `shutdown` resolves; in-flight requests finish first.
pub async fn serve(
    settings: GatewaySettings,
    env: GatewayEnv,
    grpc_listener: TcpListener,
    http_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), GatewayError> {
    // Small requests must not wait for Nagle's algorithm.
    let nodelay = |stream: std::io::Result<tokio::net::TcpStream>| {
        stream.inspect(|stream| {
            let _ = stream.set_nodelay(true);
        })
    };
    serve_incoming(
        settings,
        env,
        TcpListenerStream::new(grpc_listener).map(nodelay),
        TcpListenerStream::new(http_listener).map(nodelay),
        shutdown,
    )
    .await
}

/// [`serve`] on any streams of accepted connections (a simulation's sockets).
pub async fn serve_incoming<G, GIo, H, HIo, E>(
    settings: GatewaySettings,
    env: GatewayEnv,
    grpc_incoming: G,
    http_incoming: H,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), GatewayError>
where
    G: Stream<Item = Result<GIo, E>>,
    GIo: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Stream<Item = Result<HIo, E>>,
    HIo: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    E: std::fmt::Display,
{
    let GatewayEnv {
        ledger,
        psp,
        clock,
        dialer,
        security,
    } = env;
    if let Some(config) = &settings.executor {
        config.validate()?;
    }
    if let Some(config) = &settings.payout_worker {
        config.validate()?;
    }
    let metrics = Arc::new(Metrics::new());
    let psp_name = settings.api.psp_name.to_string();
    let rng = match settings.seed {
        Some(seed) => rand::SeedableRng::seed_from_u64(seed),
        None => PaymentsApi::os_rng(),
    };
    let api = Arc::new(PaymentsApi::new(
        ledger.clone(),
        psp.clone(),
        Arc::new(RulesEngine::new(settings.risk)?),
        RateLimiter::new(settings.rate_limit)?,
        rng,
        clock.clone(),
        settings.api,
    ));

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };

    let grpc = PaymentsGrpc::new(api.clone(), metrics.clone());
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<tally_proto::payments::payments_server::PaymentsServer<PaymentsGrpc>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(tally_proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| GatewayError::Reflection(e.to_string()))?;
    let routes = Routes::new(grpc.payments_service())
        .add_service(grpc.merchants_service())
        .add_service(grpc.payouts_service())
        .add_service(grpc.dead_letters_service())
        .add_service(grpc.webhooks_service())
        .add_service(health_service)
        .add_service(reflection);
    let grpc_server = tally_net::serve(
        routes,
        Protocols::Http2Only,
        security.clone(),
        grpc_incoming,
        stop_rx.clone(),
    );

    let router = http::router(HttpState {
        ledger: ledger.clone(),
        psp: psp.clone(),
        psp_name,
        metrics: metrics.clone(),
        clock: clock.clone(),
    })
    .merge(facade::router(FacadeState {
        api,
        metrics: metrics.clone(),
    }));
    let http_server = tally_net::serve(
        router,
        Protocols::Http1AndHttp2,
        security,
        http_incoming,
        stop_rx.clone(),
    );

    let payout_task = {
        let stop_rx = stop_rx.clone();
        let (ledger, psp, clock, metrics) =
            (ledger.clone(), psp.clone(), clock.clone(), metrics.clone());
        let config = settings.payout_worker;
        let seed = settings.seed.map(|seed| seed ^ 0x7061_796f_7574);
        async move {
            if let Some(config) = config {
                let seed = seed.unwrap_or_else(rand::random);
                let worker =
                    PayoutWorker::new(ledger, psp, config, clock, seed).with_metrics(metrics);
                worker.run(stopped(stop_rx)).await;
            }
        }
    };
    let dispatcher_task = {
        let stop_rx = stop_rx.clone();
        let (ledger, clock, metrics) = (ledger.clone(), clock.clone(), metrics.clone());
        let config = settings.dispatcher;
        let seed = settings.seed.map(|seed| seed ^ 0x0064_656c_6976_6572);
        async move {
            if let Some(config) = config {
                let seed = seed.unwrap_or_else(rand::random);
                let dispatcher =
                    Dispatcher::new(ledger, config, clock, seed, &dialer).with_metrics(metrics);
                dispatcher.run(stopped(stop_rx)).await;
            }
        }
    };
    let executor_task = {
        let stop_rx = stop_rx.clone();
        async move {
            if let Some(config) = settings.executor {
                let seed = settings.seed.unwrap_or_else(rand::random);
                let executor =
                    Executor::new(ledger, psp, config, clock, seed).with_metrics(metrics);
                executor.run(stopped(stop_rx)).await;
            }
        }
    };
    let stopper = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    };
    tokio::join!(
        grpc_server,
        http_server,
        executor_task,
        payout_task,
        dispatcher_task,
        stopper
    );
    Ok(())
}
