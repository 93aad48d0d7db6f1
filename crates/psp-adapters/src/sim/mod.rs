//! `tally-psp-sim`: an HTTP PSP for development and tests.
//!
//! Routes (JSON): `POST /v1/charges` (header `idempotency-key`), `GET /v1/charges?idempotency_key=`,
//! `GET /v1/charges/{id}`, `POST /v1/charges/{id}/capture`, `POST /v1/charges/{id}/cancel`,
//! `POST /v1/refunds`; simulator controls: `POST /v1/sim/charges/{id}/complete` (the buyer
//! finishes a 3-D Secure or QR charge; a signed webhook follows), `POST /v1/sim/webhooks/{id}/resend`,
//! `POST /v1/sim/faults` (`{"fault": "timeout"|"error_500"|"lost_response"|"latency=<ms>",
//! "count": n}` for the next n charges, captures, cancels or refunds), `GET /v1/sim/ledger`, `GET /healthz`. A header
//! `x-sim-fault` injects a fault into one request (a charge, capture, cancel or refund).
//!
//! Test tokens: `tok_decline` and `tok_insufficient` decline, `tok_3ds` is pending until
//! completed, any other `tok_*` succeeds; anything else is refused (no card numbers here).
//!
//! Buyer pages: a `hosted` charge (and a `tok_3ds` one) is pending with a redirect to
//! `GET /v1/pay/{registration token}`; submitting it (`POST`, a form with `card_token`, or
//! `approve=yes` for 3-D Secure) completes the charge, sends the signed webhook and redirects
//! the buyer to the charge's `return_url` with `charge_id` and `status`.

mod state;

pub use state::{Fault, CHARGES_MAX};

use crate::model::{
    Charge, ChargeRequest, ChargeStatus, PayoutRequest, RefundRequest, WebhookEvent,
};
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use state::{Refusal, SimState};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tally_net::{Dialer, HttpClient, Protocols};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

/// How long a `timeout` fault keeps the client waiting by default: longer than any sane client
/// deadline.
const TIMEOUT_FAULT_MS: u64 = 30_000;
/// Webhook deliveries per event before giving up (tests can resend).
const WEBHOOK_ATTEMPTS_MAX: u32 = 5;
const WEBHOOK_BACKOFF_BASE_MS: u64 = 100;
/// Deadline of one webhook POST.
const WEBHOOK_TIMEOUT_MS: u64 = 5_000;

/// The simulator's wall clock, Unix ms: the system's, or a simulation's.
pub type WallClockMs = Arc<dyn Fn() -> u64 + Send + Sync>;

/// What the simulator takes from its surroundings: its clock and how it reaches the webhook
/// receiver. Production: the system clock and OS TCP; a simulation passes its own.
#[derive(Clone)]
pub struct SimEnv {
    pub clock_ms: WallClockMs,
    pub dialer: Dialer,
}

impl Default for SimEnv {
    fn default() -> Self {
        SimEnv {
            clock_ms: Arc::new(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            }),
            dialer: Dialer::tcp(),
        }
    }
}

#[derive(Clone)]
pub struct SimConfig {
    /// Where signed webhooks go; none are sent when unset.
    pub webhook_url: Option<String>,
    pub webhook_secret: Vec<u8>,
    /// How long a `timeout` fault holds the request (then nothing is charged).
    pub timeout_fault_ms: u64,
    /// The base URL buyers reach the simulator at, for payment pages.
    pub public_url: String,
    /// Faults queued at start, in order: (`timeout` | `error_500` | `lost_response` |
    /// `invalid_request` | `latency=<ms>`, how many money calls get it). Check them with
    /// [`is_fault`].
    pub faults: Vec<(String, u32)>,
    /// How long a payout stays in transit before it is paid (0: paid at once).
    pub payout_settle_ms: u64,
    /// Webhook misbehaviour, like a real PSP's: some dropped, duplicated or late (and so out of
    /// order).
    pub webhook_chaos: WebhookChaos,
}

/// By hand: the webhook secret must never reach a log.
impl std::fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimConfig")
            .field("webhook_url", &self.webhook_url)
            .field("webhook_secret", &"[masked]")
            .field("timeout_fault_ms", &self.timeout_fault_ms)
            .field("public_url", &self.public_url)
            .field("faults", &self.faults)
            .field("payout_settle_ms", &self.payout_settle_ms)
            .field("webhook_chaos", &self.webhook_chaos)
            .finish()
    }
}

/// Percentages of webhook events the simulator drops, sends twice, or delays by up to
/// `delay_ms_max` (which reorders them), drawn from `seed`.
#[derive(Clone, Debug, Default)]
pub struct WebhookChaos {
    pub drop_pct: u8,
    pub duplicate_pct: u8,
    pub delay_pct: u8,
    pub delay_ms_max: u64,
    pub seed: u64,
}

/// Whether `text` names a fault the simulator can inject.
pub fn is_fault(text: &str) -> bool {
    Fault::parse(text).is_some()
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            webhook_url: None,
            webhook_secret: Vec::new(),
            timeout_fault_ms: TIMEOUT_FAULT_MS,
            public_url: "http://127.0.0.1:7300".to_string(),
            faults: Vec::new(),
            payout_settle_ms: 0,
            webhook_chaos: WebhookChaos::default(),
        }
    }
}

/// One simulated PSP: its state, behind the HTTP API [`Sim::router`] serves. A simulation keeps
/// the handle to inject faults and to read the PSP's own money record between steps.
#[derive(Clone)]
pub struct Sim {
    state: Arc<Mutex<SimState>>,
    config: Arc<SimConfig>,
    http: HttpClient,
    chaos_rng: Arc<Mutex<StdRng>>,
    clock_ms: WallClockMs,
}

impl Sim {
    /// A simulator on the system clock, sending webhooks over OS TCP.
    pub fn new(config: SimConfig) -> Self {
        Sim::with_env(config, SimEnv::default())
    }

    pub fn with_env(config: SimConfig, env: SimEnv) -> Self {
        let mut state = SimState::new(config.public_url.clone());
        for (text, count) in &config.faults {
            let queued = Fault::parse(text)
                .ok_or(())
                .and_then(|fault| state.queue_faults(fault, *count).map_err(|_| ()));
            if queued.is_err() {
                tracing::warn!(fault = %text, count, "start-up fault not queued (unknown, or over the bound)");
            }
        }
        Sim {
            state: Arc::new(Mutex::new(state)),
            http: HttpClient::new(&env.dialer, WEBHOOK_TIMEOUT_MS),
            chaos_rng: Arc::new(Mutex::new(StdRng::seed_from_u64(config.webhook_chaos.seed))),
            config: Arc::new(config),
            clock_ms: env.clock_ms,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SimState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn now_ms(&self) -> u64 {
        (self.clock_ms)()
    }

    fn now_s(&self) -> u64 {
        self.now_ms() / 1_000
    }

    /// Makes the next `count` money calls meet `fault`.
    pub fn queue_faults(&self, fault: Fault, count: u32) -> Result<(), String> {
        self.state()
            .queue_faults(fault, count)
            .map_err(|refusal| refusal.message)
    }

    /// Drops every queued fault (a simulation's faults end with its fault window).
    pub fn clear_faults(&self) {
        while self.state().next_fault().is_some() {}
    }

    /// Every money movement so far, in order.
    pub fn money_record(&self) -> Vec<crate::model::SimLedgerRow> {
        self.state().ledger()
    }

    /// Every charge so far, by charge id.
    pub fn charges(&self) -> Vec<Charge> {
        self.state().charges()
    }

    /// The buyer finishes a pending charge; the signed webhook goes out as chaos allows.
    pub fn complete_pending(&self, charge_id: &str, succeed: bool) -> Result<Charge, String> {
        let completed = self.state().complete(charge_id, succeed, self.now_s());
        match completed {
            Ok((charge, event)) => {
                tokio::spawn(deliver(self.clone(), event));
                Ok(charge)
            }
            Err(refused) => Err(refused.message),
        }
    }

    /// The HTTP API over this simulator.
    pub fn router(&self) -> Router {
        router_over(self.clone())
    }
}

/// The HTTP API of a fresh simulator (system clock, OS TCP).
pub fn router(config: SimConfig) -> Router {
    Sim::new(config).router()
}

fn router_over(sim: Sim) -> Router {
    Router::new()
        .route("/v1/charges", post(create_charge).get(charge_by_key))
        .route("/v1/charges/{id}", get(charge_by_id))
        .route("/v1/charges/{id}/capture", post(capture))
        .route("/v1/charges/{id}/cancel", post(cancel))
        .route("/v1/refunds", post(refund))
        .route("/v1/payouts", post(create_payout).get(payout_by_key))
        .route("/v1/sim/charges/{id}/complete", post(complete))
        .route("/v1/pay/{token}", get(page).post(pay))
        .route("/v1/sim/webhooks/{id}/resend", post(resend))
        .route("/v1/sim/faults", post(faults))
        .route("/v1/sim/ledger", get(ledger))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(sim)
}

/// Serves the simulator on `listener` until the task is dropped: over TLS unless `security` is
/// `InsecureDev`, sending webhooks through `env`'s dialer.
pub async fn serve(
    listener: TcpListener,
    config: SimConfig,
    env: SimEnv,
    security: tally_net::ServerSecurity,
) -> std::io::Result<()> {
    // The stop sender lives as long as this future: dropping the task stops the server.
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tally_net::serve(
        Sim::with_env(config, env).router(),
        Protocols::Http1AndHttp2,
        security,
        TcpListenerStream::new(listener),
        stop_rx,
    )
    .await;
    Ok(())
}

fn error(status: u16, code: &str, message: impl Into<String>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::json!({ "error": { "code": code, "message": message.into() } });
    (status, Json(body)).into_response()
}

fn refusal(refusal: Refusal) -> Response {
    error(refusal.status, refusal.code, refusal.message)
}

fn ok<T: serde::Serialize>(value: T) -> Response {
    Json(value).into_response()
}

fn idempotency_key(headers: &HeaderMap) -> Option<String> {
    headers
        .get("idempotency-key")
        .and_then(|value| value.to_str().ok())
        .filter(|key| !key.is_empty() && key.len() <= 255)
        .map(str::to_string)
}

async fn create_charge(
    State(sim): State<Sim>,
    headers: HeaderMap,
    Json(request): Json<ChargeRequest>,
) -> Response {
    let fault = match keyed_fault(&sim, &headers, &request.idempotency_key) {
        Ok(fault) => fault,
        Err(response) => return *response,
    };
    // The body as received, minus nothing: a retry must send the same one.
    let fingerprint = serde_json::to_string(&request).unwrap_or_default();
    match sim.state().begin_charge(&request, &fingerprint) {
        Ok(Some(stored)) => return ok(stored),
        Ok(None) => {}
        Err(refused) => return refusal(refused),
    }
    // Like a real PSP, the charge runs to its end even if the client hangs up (a crashed or
    // timed-out gateway): the key never stays in flight for good.
    let work = async move {
        match fault {
            Some(Fault::Timeout) => {
                tokio::time::sleep(Duration::from_millis(sim.config.timeout_fault_ms)).await;
                sim.state().abandon_charge(&request.idempotency_key);
                error(504, "timeout", "injected timeout")
            }
            Some(Fault::Error500) => {
                sim.state().abandon_charge(&request.idempotency_key);
                error(500, "psp_unavailable", "injected error")
            }
            Some(Fault::InvalidRequest) => {
                sim.state().abandon_charge(&request.idempotency_key);
                error(400, "invalid_request", "injected poison request")
            }
            Some(Fault::LostResponse) => {
                let charged = sim.state().charge(&request, &fingerprint);
                match charged {
                    // Charged and recorded; the client only sees a failure.
                    Ok(_) => error(500, "psp_unavailable", "injected lost response"),
                    Err(refused) => refusal(refused),
                }
            }
            Some(Fault::Latency { ms }) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                let charged = sim.state().charge(&request, &fingerprint);
                charged.map_or_else(refusal, ok)
            }
            None => {
                let charged = sim.state().charge(&request, &fingerprint);
                charged.map_or_else(refusal, ok)
            }
        }
    };
    match tokio::spawn(work).await {
        Ok(response) => response,
        Err(_) => error(500, "psp_unavailable", "the charge task failed"),
    }
}

#[derive(Deserialize)]
struct KeyQuery {
    idempotency_key: String,
}

async fn charge_by_key(State(sim): State<Sim>, Query(query): Query<KeyQuery>) -> Response {
    let charge = sim.state().charge_by_key(&query.idempotency_key);
    match charge {
        Some(charge) => ok(charge),
        None => error(404, "not_found", "no charge under this idempotency key"),
    }
}

async fn charge_by_id(State(sim): State<Sim>, Path(id): Path<String>) -> Response {
    let charge = sim.state().charge_by_id(&id);
    match charge {
        Some(charge) => ok(charge),
        None => error(404, "not_found", format!("no charge {id}")),
    }
}

#[derive(Deserialize)]
struct CaptureBody {
    amount_minor: u64,
}

async fn capture(
    State(sim): State<Sim>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(body): Json<CaptureBody>,
) -> Response {
    let Some(key) = idempotency_key(&headers) else {
        return error(400, "invalid_request", "send an idempotency-key header");
    };
    let fault = match fault_of(&sim, &headers) {
        Ok(fault) => fault,
        Err(response) => return *response,
    };
    with_fault(fault, sim.config.timeout_fault_ms, || {
        sim.state().capture(&id, body.amount_minor, &key)
    })
    .await
}

async fn cancel(State(sim): State<Sim>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let Some(key) = idempotency_key(&headers) else {
        return error(400, "invalid_request", "send an idempotency-key header");
    };
    let fault = match fault_of(&sim, &headers) {
        Ok(fault) => fault,
        Err(response) => return *response,
    };
    with_fault(fault, sim.config.timeout_fault_ms, || {
        sim.state().cancel(&id, &key)
    })
    .await
}

async fn refund(
    State(sim): State<Sim>,
    headers: HeaderMap,
    Json(request): Json<RefundRequest>,
) -> Response {
    let fault = match keyed_fault(&sim, &headers, &request.idempotency_key) {
        Ok(fault) => fault,
        Err(response) => return *response,
    };
    let fingerprint = serde_json::to_string(&request).unwrap_or_default();
    with_fault(fault, sim.config.timeout_fault_ms, || {
        sim.state().refund(&request, &fingerprint)
    })
    .await
}

async fn create_payout(
    State(sim): State<Sim>,
    headers: HeaderMap,
    Json(request): Json<PayoutRequest>,
) -> Response {
    let fault = match keyed_fault(&sim, &headers, &request.idempotency_key) {
        Ok(fault) => fault,
        Err(response) => return *response,
    };
    let fingerprint = serde_json::to_string(&request).unwrap_or_default();
    let now = sim.now_ms();
    let arrives_at_ms = now + sim.config.payout_settle_ms;
    with_fault(fault, sim.config.timeout_fault_ms, || {
        sim.state()
            .payout(&request, &fingerprint, arrives_at_ms, now)
    })
    .await
}

async fn payout_by_key(State(sim): State<Sim>, Query(query): Query<KeyQuery>) -> Response {
    let payout = sim
        .state()
        .payout_by_key(&query.idempotency_key, sim.now_ms());
    match payout {
        Some(payout) => ok(payout),
        None => error(404, "not_found", "no payout under this idempotency key"),
    }
}

/// The fault for a money call whose body names its idempotency key: refused (400) unless the
/// `idempotency-key` header carries the same key.
fn keyed_fault(
    sim: &Sim,
    headers: &HeaderMap,
    body_key: &str,
) -> Result<Option<Fault>, Box<Response>> {
    if idempotency_key(headers).as_deref() != Some(body_key) {
        return Err(Box::new(error(
            400,
            "invalid_request",
            "send the idempotency-key header, equal to the body's idempotency_key",
        )));
    }
    fault_of(sim, headers)
}

/// The fault for this request: the `x-sim-fault` header's, else the next queued one. A header
/// naming no known fault is answered 400 (boxed: a response is large next to a fault).
fn fault_of(sim: &Sim, headers: &HeaderMap) -> Result<Option<Fault>, Box<Response>> {
    match headers
        .get("x-sim-fault")
        .and_then(|value| value.to_str().ok())
        .map(|text| Fault::parse(text).ok_or(text.to_string()))
    {
        Some(Ok(fault)) => Ok(Some(fault)),
        Some(Err(text)) => Err(Box::new(error(
            400,
            "invalid_request",
            format!("unknown fault {text:?}"),
        ))),
        None => Ok(sim.state().next_fault()),
    }
}

/// Runs a capture, cancel or refund under `fault`: a timeout or 500 does nothing, a lost
/// response acts and then fails, latency waits and then acts.
async fn with_fault<T: serde::Serialize>(
    fault: Option<Fault>,
    timeout_fault_ms: u64,
    act: impl FnOnce() -> Result<T, Refusal>,
) -> Response {
    match fault {
        Some(Fault::Timeout) => {
            tokio::time::sleep(Duration::from_millis(timeout_fault_ms)).await;
            error(504, "timeout", "injected timeout")
        }
        Some(Fault::Error500) => error(500, "psp_unavailable", "injected error"),
        Some(Fault::InvalidRequest) => error(400, "invalid_request", "injected poison request"),
        Some(Fault::LostResponse) => match act() {
            Ok(_) => error(500, "psp_unavailable", "injected lost response"),
            Err(refused) => refusal(refused),
        },
        Some(Fault::Latency { ms }) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            act().map_or_else(refusal, ok)
        }
        None => act().map_or_else(refusal, ok),
    }
}

#[derive(Deserialize)]
struct CompleteBody {
    succeed: bool,
}

async fn complete(
    State(sim): State<Sim>,
    Path(id): Path<String>,
    Json(body): Json<CompleteBody>,
) -> Response {
    let completed = sim.state().complete(&id, body.succeed, sim.now_s());
    match completed {
        Ok((charge, event)) => {
            tokio::spawn(deliver(sim.clone(), event));
            ok::<Charge>(charge)
        }
        Err(refused) => refusal(refused),
    }
}

/// A buyer page: the hosted payment page asks for a card (a test token), a 3-D Secure page
/// for approval.
async fn page(State(sim): State<Sim>, Path(token): Path<String>) -> Response {
    let Some(page) = sim.state().page(&token) else {
        return error(
            404,
            "not_found",
            "no payment page with this registration token",
        );
    };
    let Some(charge) = sim.state().charge_by_id(&page.charge_id) else {
        return error(404, "not_found", "the page's charge is gone");
    };
    if !matches!(charge.status, ChargeStatus::Pending { .. }) {
        return Html("<!doctype html><p>This payment is already complete.</p>".to_string())
            .into_response();
    }
    let amount = format!("{} minor units of {}", charge.amount_minor, charge.currency);
    let field = if page.asks_card {
        r#"<label>Card (test token) <input name="card_token" value="tok_visa"></label>"#
    } else {
        r#"<input type="hidden" name="approve" value="yes"><p>Approve this payment?</p>"#
    };
    Html(format!(
        "<!doctype html><title>Tally PSP simulator</title><h1>Pay {amount}</h1>\
         <form method=\"post\">{field}<button>Pay</button></form>"
    ))
    .into_response()
}

/// The buyer submits the page: the charge completes (a signed webhook follows) and the buyer
/// is redirected back to the merchant with the outcome.
async fn pay(
    State(sim): State<Sim>,
    Path(token): Path<String>,
    Form(form): Form<BTreeMap<String, String>>,
) -> Response {
    let Some(page) = sim.state().page(&token) else {
        return error(
            404,
            "not_found",
            "no payment page with this registration token",
        );
    };
    let succeed = if page.asks_card {
        match form.get("card_token").map(String::as_str) {
            Some("tok_decline" | "tok_insufficient") => false,
            Some(token) if token.starts_with("tok_") => true,
            _ => {
                return error(
                    400,
                    "invalid_request",
                    "card_token must be a test token such as tok_visa (never a card number)",
                )
            }
        }
    } else {
        form.get("approve").map(String::as_str) == Some("yes")
    };
    let completed = sim.state().complete(&page.charge_id, succeed, sim.now_s());
    let (charge, event) = match completed {
        Ok(done) => done,
        Err(refused) => return refusal(refused),
    };
    tokio::spawn(deliver(sim.clone(), event));
    let status = if succeed { "succeeded" } else { "failed" };
    match page.return_url {
        Some(url) => {
            let separator = if url.contains('?') { '&' } else { '?' };
            Redirect::to(&format!(
                "{url}{separator}charge_id={}&status={status}",
                charge.charge_id
            ))
            .into_response()
        }
        None => Html(format!("<!doctype html><p>Payment {status}.</p>")).into_response(),
    }
}

async fn resend(State(sim): State<Sim>, Path(id): Path<String>) -> Response {
    let event = sim.state().events.get(&id).cloned();
    match event {
        Some(event) => {
            let delivered = deliver_once(sim.clone(), event).await;
            ok(serde_json::json!({ "delivered": delivered }))
        }
        None => error(404, "not_found", format!("no event {id}")),
    }
}

#[derive(Deserialize)]
struct FaultsBody {
    fault: String,
    count: u32,
}

async fn faults(State(sim): State<Sim>, Json(body): Json<FaultsBody>) -> Response {
    let Some(fault) = Fault::parse(&body.fault) else {
        return error(
            400,
            "invalid_request",
            format!("unknown fault {:?}", body.fault),
        );
    };
    let queued = sim.state().queue_faults(fault, body.count);
    queued.map_or_else(refusal, |()| {
        ok(serde_json::json!({ "queued": body.count }))
    })
}

async fn ledger(State(sim): State<Sim>) -> Response {
    let rows = sim.state().ledger();
    ok(rows)
}

/// What the chaos settings make of one event: dropped, or sent `copies` times after `delay_ms`.
fn chaos_plan(sim: &Sim) -> Option<(u32, u64)> {
    let chaos = &sim.config.webhook_chaos;
    let mut rng = sim
        .chaos_rng
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if rng.random_range(0..100u8) < chaos.drop_pct {
        return None;
    }
    let copies = if rng.random_range(0..100u8) < chaos.duplicate_pct {
        2
    } else {
        1
    };
    let delay_ms = if chaos.delay_ms_max > 0 && rng.random_range(0..100u8) < chaos.delay_pct {
        rng.random_range(0..=chaos.delay_ms_max)
    } else {
        0
    };
    Some((copies, delay_ms))
}

/// Sends an event as the chaos settings say (possibly not at all); true if a copy got a 2xx.
async fn deliver(sim: Sim, event: WebhookEvent) -> bool {
    let Some((copies, delay_ms)) = chaos_plan(&sim) else {
        tracing::info!(event = %event.event_id, "webhook dropped (chaos)");
        return false;
    };
    if delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    }
    let mut delivered = false;
    for _ in 0..copies {
        delivered |= deliver_once(sim.clone(), event.clone()).await;
    }
    delivered
}

/// Posts a signed event to the webhook URL, retrying with backoff; true once a 2xx came back.
async fn deliver_once(sim: Sim, event: WebhookEvent) -> bool {
    let Some(url) = sim.config.webhook_url.clone() else {
        return false;
    };
    let body = match serde_json::to_vec(&event) {
        Ok(body) => body,
        Err(_) => return false,
    };
    for attempt in 0..WEBHOOK_ATTEMPTS_MAX {
        let signature = crate::webhook::sign(&sim.config.webhook_secret, sim.now_s(), &body);
        let sent = sim
            .http
            .request(
                http::Method::POST,
                &url,
                &[
                    ("content-type", "application/json"),
                    ("tally-psp-signature", &signature),
                ],
                Bytes::from(body.clone()),
            )
            .await;
        if sent.is_ok_and(|response| response.status.is_success()) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(WEBHOOK_BACKOFF_BASE_MS << attempt)).await;
    }
    tracing::warn!(event = %event.event_id, "webhook undelivered after {WEBHOOK_ATTEMPTS_MAX} attempts");
    false
}
