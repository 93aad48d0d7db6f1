//! The whole payments stack in one process, over real loopback sockets: a `tally-node` cluster
//! (RocksDB on disk, gRPC), the PSP simulator (HTTP), and gateway parts (executor, webhooks).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tally_gateway::api::ApiConfig;
use tally_gateway::executor::{Clock, Executor, ExecutorConfig};
use tally_gateway::server::{serve, GatewayEnv, GatewaySettings};
use tally_gateway::{Backoff, FallbackLimits, RateLimitConfig, RiskRules, Secret};
use tally_ledger::payment::chart;
use tally_ledger::payment::{
    BuyerId, CaptureMode, CheckoutId, FeeSchedule, MerchantId, NewBuyer, NewMerchant, NewOrder,
    NewPayment, OrderId, OrderState, Payment, PaymentCommand, PaymentMethod, PaymentOutcome,
    PaymentQuery, PaymentQueryResult, PspName, RiskOutcome, RiskRecord,
};
use tally_ledger::{AccountId, Currency, LedgerRead};
use tally_proto::client::LedgerClient;
use tally_proto::payments as pb;
use tally_proto::payments::dead_letters_client::DeadLettersClient;
use tally_proto::payments::merchants_client::MerchantsClient;
use tally_proto::payments::payments_client::PaymentsClient;
use tally_proto::payments::payouts_client::PayoutsClient;
use tally_proto::payments::webhook_endpoints_client::WebhookEndpointsClient;
use tally_raft_store::kv::RocksKv;
use tally_raft_store::{ledger_view, Node, NodeInfo, RaftTuning};
use tokio::net::TcpListener;

/// A webhook secret being rotated out: still accepted next to the simulator's own.
pub const PREVIOUS_WEBHOOK_SECRET: &[u8] = b"whsec_previous";

/// Every wait in these tests is bounded by this.
pub const WAIT_MS_MAX: u64 = 20_000;

pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos() as u64
    })
}

pub struct Stack {
    /// The first gateway's HTTP listener, bound early so the simulator can send webhooks to it.
    gateway_http: std::sync::Mutex<Option<std::net::TcpListener>>,
    pub dir: tempfile::TempDir,
    pub kv: Arc<RocksKv>,
    pub node_api: String,
    pub ledger: LedgerClient,
    pub psp_url: String,
    pub psp: Arc<tally_psp::SimPsp>,
    node_stop: Option<tokio::sync::oneshot::Sender<()>>,
    node_task: Option<tokio::task::JoinHandle<()>>,
    /// `api_key_cache_ms` of the gateways started from now on (1 s unless set).
    pub key_cache_ms: std::sync::atomic::AtomicU64,
}

impl Stack {
    /// A single-node cluster and a PSP simulator with `sim` settings.
    pub async fn start(sim: tally_psp::sim::SimConfig) -> Stack {
        Stack::start_inner(sim, false).await
    }

    /// As `start`, with the simulator's webhooks sent to the first gateway started.
    pub async fn start_with_gateway_webhooks(sim: tally_psp::sim::SimConfig) -> Stack {
        Stack::start_inner(sim, true).await
    }

    async fn start_inner(mut sim: tally_psp::sim::SimConfig, webhooks_to_gateway: bool) -> Stack {
        let gateway_http = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        gateway_http.set_nonblocking(true).expect("nonblocking");
        if webhooks_to_gateway {
            sim.webhook_url = Some(format!(
                "http://{}/webhooks/sim",
                gateway_http.local_addr().unwrap()
            ));
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let raft_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let api_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let info = NodeInfo {
            raft_addr: raft_listener.local_addr().unwrap().to_string(),
            api_addr: api_listener.local_addr().unwrap().to_string(),
        };
        let kv = Arc::new(RocksKv::open(&dir.path().join("node-1")).expect("open store"));
        let node = Node::open(
            1,
            info.clone(),
            kv.clone(),
            &RaftTuning::default(),
            tally_raft_store::system_clock(),
        )
        .await
        .expect("open node");
        node.raft
            .initialize(BTreeMap::from([(1, info.clone())]))
            .await
            .expect("initialize");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let node_task = tokio::spawn(async move {
            let _ = node
                .serve(raft_listener, api_listener, async move {
                    let _ = stopped.await;
                })
                .await;
        });
        let ledger = LedgerClient::connect(vec![info.api_addr.clone()])
            .await
            .expect("client connects");

        let psp_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let psp_url = format!("http://{}", psp_listener.local_addr().unwrap());
        sim.public_url = psp_url.clone();
        tokio::spawn(tally_psp::sim::serve(
            psp_listener,
            sim.clone(),
            tally_psp::sim::SimEnv::default(),
            tally_net::ServerSecurity::InsecureDev,
        ));
        let psp = Arc::new(tally_psp::SimPsp::new(tally_psp::SimPspConfig {
            base_url: psp_url.clone(),
            timeout_ms: 1_000,
            // The simulator's secret and a previous one, as during a rotation.
            webhook_secrets: vec![sim.webhook_secret.clone(), PREVIOUS_WEBHOOK_SECRET.to_vec()],
        }));
        let stack = Stack {
            gateway_http: std::sync::Mutex::new(Some(gateway_http)),
            dir,
            kv,
            node_api: info.api_addr,
            ledger,
            psp_url,
            psp,
            node_stop: Some(stop),
            node_task: Some(node_task),
            key_cache_ms: std::sync::atomic::AtomicU64::new(1_000),
        };
        stack.wait_ready().await;
        stack
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_millis(WAIT_MS_MAX);
        loop {
            let probe = PaymentQuery::OrdersDue {
                up_to_ns: 0,
                limit: 1,
            };
            if self.ledger.query_payments(&probe).await.is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "node not ready in time");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A whole gateway (gRPC, HTTP, and an executor unless `executor` is `None`) over this
    /// stack, started the way the `tally-gateway` binary starts it.
    pub async fn start_gateway(
        &self,
        executor: Option<ExecutorConfig>,
        risk: RiskRules,
    ) -> Gateway {
        let generous = RateLimitConfig {
            burst_requests_max: 10_000,
            refill_requests_per_s: 10_000,
            merchants_max: 1_000,
        };
        self.start_gateway_limited(executor, risk, generous).await
    }

    /// As `start_gateway`, with per-merchant rate limits `rate_limit`.
    pub async fn start_gateway_limited(
        &self,
        executor: Option<ExecutorConfig>,
        risk: RiskRules,
        rate_limit: RateLimitConfig,
    ) -> Gateway {
        self.start_gateway_via(executor, risk, rate_limit, tally_net::Dialer::tcp())
            .await
    }

    /// As `start_gateway`, reaching merchants' webhook endpoints through `webhook_dialer`.
    pub async fn start_gateway_via(
        &self,
        executor: Option<ExecutorConfig>,
        risk: RiskRules,
        rate_limit: RateLimitConfig,
        webhook_dialer: tally_net::Dialer,
    ) -> Gateway {
        let grpc_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let grpc_addr = grpc_listener.local_addr().unwrap().to_string();
        let reserved = self.gateway_http.lock().unwrap().take();
        let http_listener = match reserved {
            Some(listener) => TcpListener::from_std(listener).expect("listener"),
            None => TcpListener::bind("127.0.0.1:0").await.expect("bind"),
        };
        let http_url = format!("http://{}", http_listener.local_addr().unwrap());
        let settings = GatewaySettings {
            api: ApiConfig {
                psp_name: PspName::new("sim").unwrap(),
                admin_token: Some(Secret::new(ADMIN_TOKEN.to_string())),
                risk_fallback: FallbackLimits::default(),
                psp_call_timeout_ms: 1_500,
                idempotency_lease_ms: 5_000,
                idempotency_retention_ms: tally_gateway::api::IDEMPOTENCY_RETENTION_MS_DEFAULT,
                require_signatures: false,
                api_key_cache_ms: self.key_cache_ms.load(std::sync::atomic::Ordering::Relaxed),
                // The tests' merchant endpoints listen on plain loopback HTTP.
                webhook_allow_http: true,
            },
            rate_limit,
            risk,
            payout_worker: executor.as_ref().map(|_| test_payout_worker()),
            dispatcher: executor.as_ref().map(|_| test_dispatcher()),
            executor,
            seed: Some(7),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let env = GatewayEnv {
            ledger: self.ledger.clone(),
            psp: self.psp.clone(),
            clock: system_clock(),
            dialer: webhook_dialer,
            security: tally_net::ServerSecurity::InsecureDev,
        };
        let task = tokio::spawn(serve(
            settings,
            env,
            grpc_listener,
            http_listener,
            async move {
                let _ = stopped.await;
            },
        ));
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc_addr}"))
            .unwrap()
            .connect()
            .await
            .expect("gateway gRPC connects");
        Gateway {
            grpc_addr,
            http_url,
            payments: PaymentsClient::new(channel.clone()),
            merchants: MerchantsClient::new(channel.clone()),
            payouts: PayoutsClient::new(channel.clone()),
            dead_letters: DeadLettersClient::new(channel.clone()),
            webhooks: WebhookEndpointsClient::new(channel),
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn executor(&self, config: ExecutorConfig, seed: u64) -> Executor {
        Executor::new(
            self.ledger.clone(),
            self.psp.clone(),
            config,
            system_clock(),
            seed,
        )
    }

    pub async fn run(&self, commands: Vec<PaymentCommand>) -> Vec<String> {
        self.ledger
            .execute_payments(&commands)
            .await
            .expect("ledger answers")
            .iter()
            .map(|r| {
                r.as_ref()
                    .map_or_else(|e| e.code(), PaymentOutcome::code)
                    .to_string()
            })
            .collect()
    }

    /// Three sellers (1% fee, no hold period), the platform merchant and a buyer `b1`.
    pub async fn seed_parties(&self) {
        let mut commands = Vec::new();
        for id in ["platform", "s1", "s2", "s3"] {
            commands.push(PaymentCommand::CreateMerchant(NewMerchant {
                id: MerchantId::new(id).unwrap(),
                name: id.to_string(),
                fees: FeeSchedule {
                    bps: 100,
                    fixed_minor: BTreeMap::new(),
                },
                hold_period_s: 0,
            }));
        }
        commands.push(PaymentCommand::CreateBuyer(NewBuyer {
            id: BuyerId::new("b1").unwrap(),
            wallet_currencies: vec![Currency::USD],
        }));
        let codes = self.run(commands).await;
        assert!(codes.iter().all(|c| c == "ok"), "{codes:?}");
    }

    pub async fn checkout(
        &self,
        checkout: &str,
        token: &str,
        capture: CaptureMode,
        orders: &[(&str, &str, u64)],
    ) {
        let new = NewPayment {
            checkout_id: CheckoutId::new(checkout).unwrap(),
            merchant_id: MerchantId::new("platform").unwrap(),
            buyer_id: BuyerId::new("b1").unwrap(),
            method: Some(if token == "qr" {
                PaymentMethod::Qr
            } else {
                PaymentMethod::Card {
                    token: token.to_string(),
                }
            }),
            capture,
            psp: PspName::new("sim").unwrap(),
            risk: RiskRecord {
                outcome: RiskOutcome::Approve,
                flagged: false,
                reasons: vec![],
            },
            request_hash: [3; 32],
            orders: orders
                .iter()
                .map(|(order, seller, amount_minor)| NewOrder {
                    order_id: OrderId::new(*order).unwrap(),
                    seller_id: MerchantId::new(*seller).unwrap(),
                    amount_minor: *amount_minor,
                    currency: Currency::USD,
                })
                .collect(),
        };
        let codes = self.run(vec![PaymentCommand::CreatePayment(new)]).await;
        assert_eq!(codes, ["ok"]);
    }

    pub async fn payment_of(&self, order: &str) -> Payment {
        match self
            .ledger
            .query_payments(&PaymentQuery::PaymentOfOrder {
                order_id: OrderId::new(order).unwrap(),
            })
            .await
            .expect("query")
        {
            PaymentQueryResult::Payment(Some(payment)) => payment,
            other => panic!("no payment for {order}: {other:?}"),
        }
    }

    pub async fn order_state(&self, order: &str) -> OrderState {
        let payment = self.payment_of(order).await;
        payment
            .order(&OrderId::new(order).unwrap())
            .expect("order")
            .state
            .clone()
    }

    /// Sweeps with `executor` until `order` reaches a final state or the wait runs out.
    pub async fn drive_until_final(&self, executor: &Executor, order: &str) -> OrderState {
        let deadline = Instant::now() + Duration::from_millis(WAIT_MS_MAX);
        loop {
            executor.sweep().await.expect("sweep runs");
            let state = self.order_state(order).await;
            if state.is_final() || state == OrderState::Authorized {
                return state;
            }
            assert!(
                Instant::now() < deadline,
                "order {order} stuck in {state:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The ledger's full audit (zero-sum per currency, flags, holds, held funds vs orders).
    pub fn audit(&self) {
        tally_ledger::audit(&ledger_view(&*self.kv)).expect("ledger invariants hold");
    }

    /// Stops the node (gateways stay up and find the ledger unavailable).
    pub async fn stop_node(&mut self) {
        if let Some(stop) = self.node_stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.node_task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.node_stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.node_task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

pub const ADMIN_TOKEN: &str = "admin-token-for-tests";

/// Permissive rules: 1,000,000 USD per payment, 1,000 payments per window.
pub fn permissive_risk() -> RiskRules {
    RiskRules::permissive(100_000_000)
}

/// A running gateway and gRPC clients to it.
pub struct Gateway {
    pub grpc_addr: String,
    pub http_url: String,
    pub payments: PaymentsClient<tonic::transport::Channel>,
    pub merchants: MerchantsClient<tonic::transport::Channel>,
    pub payouts: PayoutsClient<tonic::transport::Channel>,
    pub dead_letters: DeadLettersClient<tonic::transport::Channel>,
    pub webhooks: WebhookEndpointsClient<tonic::transport::Channel>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), tally_gateway::server::GatewayError>>>,
}

impl Gateway {
    /// Stops it at once, as a crash would (in-flight work is dropped, leases stay taken).
    pub fn kill(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

/// `message` with `authorization: Bearer <token>`.
pub fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii token"),
    );
    request
}

/// The stable error code a gateway put on a refusal.
pub fn error_code(status: &tonic::Status) -> String {
    status
        .metadata()
        .get("tally-error-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

pub fn fast_retries() -> ExecutorConfig {
    let mut config = ExecutorConfig::new(Backoff::new(10, 50, 5).expect("valid backoff"));
    config.lease_ms = 2_000;
    config.psp_call_timeout_ms = 1_500;
    config
}

/// A webhook dispatcher quick enough for tests: 6 attempts within about two seconds, so an
/// endpoint that is down for a moment is still reached while one down for good dead-letters.
pub fn test_dispatcher() -> tally_gateway::webhook_dispatcher::DispatcherConfig {
    let mut config = tally_gateway::webhook_dispatcher::DispatcherConfig::new(
        tally_gateway::Backoff::new(100, 400, 5).expect("valid backoff"),
    );
    config.idle_poll_ms = 50;
    config.request_timeout_ms = 2_000;
    config
}

/// A payout worker quick enough for tests: short polls and status checks, three quick retries.
pub fn test_payout_worker() -> tally_gateway::payout_worker::PayoutWorkerConfig {
    let mut config = tally_gateway::payout_worker::PayoutWorkerConfig::new(
        tally_gateway::Backoff::new(50, 200, 3).expect("valid backoff"),
    );
    config.idle_poll_ms = 50;
    config.in_transit_check_ms = 200;
    config.psp_call_timeout_ms = 1_000;
    config
}

// ---- helpers of the end-to-end tests --------------------------------------------------

/// Sets up merchants `platform`, `s1`..`s3` (1% fee, held until fulfilled), buyer `b1` with a
/// USD wallet, and an API key of `platform`. Answers the key.
pub async fn onboard(gateway: &mut Gateway) -> String {
    onboard_signing(gateway).await.0
}

/// [`onboard`], answering the API key and its signing secret.
pub async fn onboard_signing(gateway: &mut Gateway) -> (String, String) {
    for id in ["platform", "s1", "s2", "s3"] {
        gateway
            .merchants
            .create_merchant(authed(
                pb::CreateMerchantRequest {
                    merchant_id: id.to_string(),
                    name: format!("Merchant {id}"),
                    fees: Some(pb::FeeSchedule {
                        bps: 100,
                        fixed: BTreeMap::new(),
                    }),
                    hold_period_s: 0,
                },
                ADMIN_TOKEN,
            ))
            .await
            .expect("merchant created");
    }
    gateway
        .merchants
        .create_buyer(authed(
            pb::CreateBuyerRequest {
                buyer_id: "b1".to_string(),
                wallet_currencies: vec!["USD".to_string()],
            },
            ADMIN_TOKEN,
        ))
        .await
        .expect("buyer created");
    let created = gateway
        .merchants
        .create_api_key(authed(
            pb::CreateApiKeyRequest {
                merchant_id: "platform".to_string(),
            },
            ADMIN_TOKEN,
        ))
        .await
        .expect("key created")
        .into_inner();
    (created.api_key, created.signing_secret)
}

pub fn card(token: &str) -> Option<pb::PaymentMethod> {
    Some(pb::PaymentMethod {
        method: Some(pb::payment_method::Method::CardToken(token.to_string())),
    })
}

pub fn checkout(
    checkout_id: &str,
    method: Option<pb::PaymentMethod>,
    capture: pb::CaptureMethod,
    orders: &[(&str, &str, &str)],
) -> pb::CreatePaymentRequest {
    pb::CreatePaymentRequest {
        checkout_id: checkout_id.to_string(),
        buyer_id: "b1".to_string(),
        orders: orders
            .iter()
            .map(|(order, seller, amount)| pb::NewOrder {
                order_id: order.to_string(),
                seller_id: seller.to_string(),
                amount: amount.to_string(),
                currency: "USD".to_string(),
            })
            .collect(),
        payment_method: method,
        capture_method: capture as i32,
        metadata: BTreeMap::new(),
    }
}

/// Polls the order until it leaves the states in which it waits for the PSP or an executor.
pub async fn settled_order(gateway: &mut Gateway, key: &str, order: &str) -> pb::PaymentOrder {
    let deadline = Instant::now() + Duration::from_millis(WAIT_MS_MAX);
    loop {
        let current = gateway
            .payments
            .get_payment_order(authed(
                pb::GetPaymentOrderRequest {
                    order_id: order.to_string(),
                },
                key,
            ))
            .await
            .expect("order readable")
            .into_inner();
        if ["authorized", "succeeded", "failed", "canceled"].contains(&current.state.as_str()) {
            return current;
        }
        assert!(
            Instant::now() < deadline,
            "order {order} stuck in {}",
            current.state
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Creates checkout `checkout` of one order to seller `s1`, charged now by card `tok_visa`.
pub async fn pay_by_card(
    gateway: &mut Gateway,
    key: &str,
    checkout_id: &str,
    order: &str,
    amount: &str,
) {
    gateway
        .payments
        .create_payment(authed(
            checkout(
                checkout_id,
                card("tok_visa"),
                pb::CaptureMethod::Automatic,
                &[(order, "s1", amount)],
            ),
            key,
        ))
        .await
        .expect("payment created");
}

/// Polls the order until the PSP has left it pending on the buyer.
pub async fn pending_order(gateway: &mut Gateway, key: &str, order: &str) -> pb::PaymentOrder {
    let deadline = Instant::now() + Duration::from_millis(WAIT_MS_MAX);
    loop {
        let current = gateway
            .payments
            .get_payment_order(authed(
                pb::GetPaymentOrderRequest {
                    order_id: order.to_string(),
                },
                key,
            ))
            .await
            .expect("order readable")
            .into_inner();
        if current.state == "pending" {
            return current;
        }
        assert!(Instant::now() < deadline, "never pending: {current:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The gateway's `/metrics` text.
pub async fn scrape(gateway: &Gateway) -> String {
    reqwest::get(format!("{}/metrics", gateway.http_url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

pub fn balance(stack: &Stack, account: AccountId) -> i128 {
    let view = tally_raft_store::ledger_view(&*stack.kv);
    view.account(account).map_or(0, |a| {
        a.balances.credits_posted as i128 - a.balances.debits_posted as i128
    })
}

pub fn held(stack: &Stack, seller: &str) -> i128 {
    balance(
        stack,
        chart::merchant_held(&MerchantId::new(seller).unwrap(), Currency::USD),
    )
}

pub fn available(stack: &Stack, seller: &str) -> i128 {
    balance(
        stack,
        chart::merchant_available(&MerchantId::new(seller).unwrap(), Currency::USD),
    )
}

/// Registers endpoint `ep1` at `url` signing with `secret`, which is answered once.
pub async fn add_endpoint(gateway: &mut Gateway, key: &str, url: &str, secret: &str) {
    let endpoint = gateway
        .webhooks
        .create_endpoint(authed(
            pb::CreateEndpointRequest {
                merchant_id: String::new(),
                endpoint_id: "ep1".to_string(),
                url: url.to_string(),
                event_types: Vec::new(),
                secret: secret.to_string(),
            },
            key,
        ))
        .await
        .expect("endpoint created")
        .into_inner();
    assert_eq!(endpoint.secret, secret, "shown once, at creation");
}

/// The merchant's webhook deliveries, first page of 100.
pub async fn deliveries(gateway: &mut Gateway, key: &str) -> Vec<pb::WebhookDelivery> {
    gateway
        .webhooks
        .list_deliveries(authed(
            pb::ListDeliveriesRequest {
                merchant_id: String::new(),
                page_size: 100,
                page_token: String::new(),
            },
            key,
        ))
        .await
        .expect("deliveries listed")
        .into_inner()
        .deliveries
}
