//! One gateway process: the public gRPC services (payments, merchants, health, reflection), the
//! HTTP side (JSON facade, PSP webhooks, health, metrics) and the PSP executor, all stopped by
//! one shutdown signal. The binary and the end-to-end tests both start gateways through
//! [`serve`], so the tests run exactly what operators run.

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
use tally_proto::client::LedgerClient;
use tally_psp::Psp;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

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

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("gRPC reflection could not load the descriptors: {0}")]
    Reflection(String),
    #[error("serving gRPC failed: {0}")]
    Grpc(#[from] tonic::transport::Error),
    #[error("serving HTTP failed: {0}")]
    Http(#[from] std::io::Error),
}

/// Serves until `shutdown` resolves; in-flight requests finish first.
pub async fn serve(
    settings: GatewaySettings,
    ledger: LedgerClient,
    psp: Arc<dyn Psp>,
    clock: Clock,
    grpc_listener: TcpListener,
    http_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), GatewayError> {
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
    let grpc_server = tonic::transport::Server::builder()
        .add_service(grpc.payments_service())
        .add_service(grpc.merchants_service())
        .add_service(grpc.payouts_service())
        .add_service(grpc.dead_letters_service())
        .add_service(grpc.webhooks_service())
        .add_service(health_service)
        .add_service(reflection)
        .serve_with_incoming_shutdown(
            TcpListenerStream::new(grpc_listener),
            stopped(stop_rx.clone()),
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
    let http_server = {
        let stop_rx = stop_rx.clone();
        async move {
            axum::serve(http_listener, router)
                .with_graceful_shutdown(stopped(stop_rx))
                .await
        }
    };

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
                let dispatcher = Dispatcher::new(ledger, config, clock, seed).with_metrics(metrics);
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
    let (grpc_result, http_result, (), (), (), ()) = tokio::join!(
        grpc_server,
        http_server,
        executor_task,
        payout_task,
        dispatcher_task,
        stopper
    );
    grpc_result?;
    http_result?;
    Ok(())
}
