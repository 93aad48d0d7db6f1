//! The payments workload: shops, clients of the gateways' public gRPC API (the same calls a
//! merchant's backend makes), over simulated sockets. Each shop sets up the platform merchant,
//! two sellers and a buyer, then sends checkouts of one to three orders paid by card (captured
//! at once, declined, behind 3-D Secure, or authorized and captured later in full or in part) or
//! by QR; acts as the buyer on the PSP's pages; refunds and fulfils some orders; and at the end
//! pays the sellers out. A call whose answer was lost is sent again with the same ids (checkout,
//! refund and payout ids make every write idempotent), on the other gateway.
//!
//! Every payment read goes into [`PaymentHistory`]: a state a client saw may never be followed
//! by an earlier one (payment states only move forward), and every checkout must end — every
//! order final, every refund and payout settled — within the liveness bound.

use crate::config::SimConfig;
use crate::gateways::{gateway_grpc, ADMIN_TOKEN, PSP_HOST, PSP_PORT};
use crate::net;
use crate::trace::Trace;
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;
use tally_net::HttpClient;
use tally_proto::payments as pb;
use tally_proto::payments::merchants_client::MerchantsClient;
use tally_proto::payments::payments_client::PaymentsClient;
use tally_proto::payments::payouts_client::PayoutsClient;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

/// The merchant every checkout is made under (a marketplace), and its sellers.
pub const PLATFORM: &str = "platform";
pub const SELLERS: [&str; 2] = ["s1", "s2"];
pub const BUYER: &str = "b1";
/// Deadline of one call to a gateway (it may wait on the PSP and the ledger inside).
const CALL_TIMEOUT_MS: u64 = 4_000;
/// Pause between polls of a payment that is still moving.
const POLL_MS: u64 = 250;
/// Pause before a call is sent again after a lost answer.
const RETRY_MS: u64 = 200;

/// The forward order of an order's states, as the API names them (`OrderState::rank`).
pub fn order_rank(state: &str) -> Option<u8> {
    match state {
        "not_started" => Some(0),
        "executing" | "retry_scheduled" | "dead_lettered" => Some(1),
        "pending" => Some(2),
        "authorized" => Some(3),
        "succeeded" | "failed" | "canceled" => Some(4),
        _ => None,
    }
}

fn payout_rank(status: &str) -> Option<u8> {
    match status {
        "pending" => Some(0),
        "in_transit" => Some(1),
        "paid" | "failed" | "canceled" => Some(2),
        _ => None,
    }
}

/// What the shops saw, for the checkers.
#[derive(Default)]
pub struct PaymentHistory {
    /// Every order a shop created, by id: the highest state rank a read showed.
    pub orders: BTreeMap<String, (u8, String)>,
    /// Every checkout a shop sent (answered or not), in order.
    pub checkouts: Vec<String>,
    /// Payouts a shop created, by id: the highest status rank a read showed.
    pub payouts: BTreeMap<String, (u8, String)>,
    /// Every payout id a shop sent (created, refused, or never answered).
    pub payouts_sent: Vec<String>,
    pub checkouts_created: u64,
    pub orders_succeeded: u64,
    pub refunds: u64,
    pub captures: u64,
    pub payouts_paid: u64,
    pub calls_answered: u64,
    pub violations: Vec<String>,
    pub unresolved: Vec<String>,
    pub shops_done: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    /// `tok_visa`, captured at once.
    Card,
    /// `tok_decline`: refused by the PSP.
    Declined,
    /// `tok_3ds`: pending until the buyer approves on the PSP's page.
    ThreeDs,
    /// QR: pending until the buyer's app pays.
    Qr,
    /// `tok_visa` with manual capture: authorized, then captured by the shop.
    Manual,
}

/// What the shop will do with one order once it is charged.
#[derive(Clone, Debug)]
struct OrderPlan {
    amount_minor: u64,
    /// Capture this much of an authorization (manual capture).
    capture_minor: u64,
    /// Refund this much once captured (0: none).
    refund_minor: u64,
    fulfil: bool,
    /// Whether the buyer completes a pending charge successfully.
    buyer_approves: bool,
}

/// A checkout being driven to its end, and what the shop has done to it so far.
struct OpenCheckout {
    checkout_id: String,
    plans: BTreeMap<String, OrderPlan>,
    approved: BTreeSet<String>,
    refunded: BTreeSet<String>,
    fulfilled: BTreeSet<String>,
}

struct Shop {
    index: usize,
    rng: StdRng,
    channels: Vec<Channel>,
    /// The gateway calls go to; moves to the next one after a failed call.
    gateway: usize,
    psp_http: HttpClient,
    api_key: String,
    history: Rc<RefCell<PaymentHistory>>,
    trace: Rc<RefCell<Trace>>,
    deadline: Duration,
}

fn amount(minor: u64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

fn parse_minor(text: &str) -> u64 {
    let (units, cents) = text.split_once('.').unwrap_or((text, "0"));
    let units: u64 = units.parse().unwrap_or(0);
    let cents: u64 = format!("{cents:0<2}")[..2].parse().unwrap_or(0);
    units * 100 + cents
}

/// Calls that failed without a definite answer: the gateway or its path to the ledger or the
/// PSP was down, or the answer was lost. Sent again, with the same ids.
fn retryable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Unknown
            | Code::Aborted
            | Code::Cancelled
            | Code::ResourceExhausted
            | Code::Internal
    )
}

/// `message` with the bearer `token` the gateway authenticates.
fn authorized<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(value) = format!("Bearer {token}").parse() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

fn error_code(status: &Status) -> String {
    status
        .metadata()
        .get("tally-error-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// Runs shop `index` to the end: parties, `payments_per_shop` checkouts spread over the fault
/// window and each driven to its end, then payouts of the sellers' available funds.
pub async fn run_shop(
    index: usize,
    config: SimConfig,
    history: Rc<RefCell<PaymentHistory>>,
    trace: Rc<RefCell<Trace>>,
) -> turmoil::Result {
    let dialer = net::dialer();
    let mut channels = Vec::with_capacity(config.gateways);
    for gateway in 0..config.gateways {
        let endpoint = Endpoint::from_shared(gateway_grpc(gateway))?
            .timeout(Duration::from_millis(CALL_TIMEOUT_MS))
            .connect_timeout(Duration::from_millis(1_000));
        channels.push(tally_proto::dial::channel(&dialer, endpoint));
    }
    let mut shop = Shop {
        index,
        rng: StdRng::seed_from_u64(config.seed ^ (0x5409_0000 + index as u64)),
        gateway: index % config.gateways.max(1),
        channels,
        psp_http: HttpClient::new(&dialer, CALL_TIMEOUT_MS),
        api_key: String::new(),
        history,
        trace,
        deadline: Duration::from_millis(config.fault_window_ms + config.payments_liveness_ms),
    };
    if shop.set_up().await {
        // Checkouts are created over the fault window and driven together: a charge waiting on
        // its buyer or its webhook does not hold the next checkout back.
        let pause_ms_max = (config.fault_window_ms / config.payments_per_shop.max(1) as u64).max(1);
        let mut open = Vec::new();
        for n in 0..config.payments_per_shop {
            let pause = shop.rng.random_range(0..pause_ms_max);
            tokio::time::sleep(Duration::from_millis(pause)).await;
            if let Some(checkout) = shop.checkout(n).await {
                open.push(checkout);
            }
            shop.drive_all(&mut open).await;
        }
        while !open.is_empty() && turmoil::elapsed() < shop.deadline {
            tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
            shop.drive_all(&mut open).await;
        }
        shop.pay_out().await;
    }
    shop.history.borrow_mut().shops_done += 1;
    Ok(())
}

impl Shop {
    fn record(&self, what: &str) {
        self.trace.borrow_mut().record(
            turmoil::elapsed(),
            &format!("shop{} {what}", self.index + 1),
        );
    }

    fn violation(&self, what: String) {
        self.record(&format!("VIOLATION {what}"));
        self.history.borrow_mut().violations.push(what);
    }

    fn unresolved(&self, what: String) {
        self.record(&format!("UNRESOLVED {what}"));
        self.history.borrow_mut().unresolved.push(what);
    }

    /// Sends a call until it has a definite answer (`Ok` or a refusal), moving to the next
    /// gateway after each failure; `None` once the liveness bound has passed.
    async fn call<T, F, Fut>(&mut self, what: &str, mut send: F) -> Option<Result<T, Status>>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        loop {
            if turmoil::elapsed() >= self.deadline {
                self.unresolved(format!("shop{}: {what} never answered", self.index + 1));
                return None;
            }
            match send(self.channels[self.gateway].clone()).await {
                Ok(response) => {
                    self.history.borrow_mut().calls_answered += 1;
                    return Some(Ok(response.into_inner()));
                }
                Err(status) if retryable(&status) => {
                    self.gateway = (self.gateway + 1) % self.channels.len();
                    tokio::time::sleep(Duration::from_millis(RETRY_MS)).await;
                }
                Err(status) => {
                    self.history.borrow_mut().calls_answered += 1;
                    return Some(Err(status));
                }
            }
        }
    }

    /// The platform merchant, the sellers (1% fee, held until fulfilled), the buyer and an API
    /// key. Every shop sends the same parties: creating one again with the same fields answers
    /// the stored one.
    async fn set_up(&mut self) -> bool {
        for merchant in std::iter::once(PLATFORM).chain(SELLERS) {
            let request = pb::CreateMerchantRequest {
                merchant_id: merchant.to_string(),
                name: merchant.to_string(),
                fees: Some(pb::FeeSchedule {
                    bps: 100,
                    fixed: Default::default(),
                }),
                hold_period_s: 0,
            };
            let sent = self
                .call("create merchant", |channel| {
                    let request = authorized(request.clone(), ADMIN_TOKEN);
                    async move { MerchantsClient::new(channel).create_merchant(request).await }
                })
                .await;
            match sent {
                Some(Ok(_)) => {}
                Some(Err(status)) => {
                    self.violation(format!("merchant {merchant} refused: {status}"));
                    return false;
                }
                None => return false,
            }
        }
        let buyer = pb::CreateBuyerRequest {
            buyer_id: BUYER.to_string(),
            wallet_currencies: vec!["USD".to_string()],
        };
        match self
            .call("create buyer", |channel| {
                let request = authorized(buyer.clone(), ADMIN_TOKEN);
                async move { MerchantsClient::new(channel).create_buyer(request).await }
            })
            .await
        {
            Some(Ok(_)) => {}
            Some(Err(status)) => {
                self.violation(format!("buyer refused: {status}"));
                return false;
            }
            None => return false,
        }
        let key = pb::CreateApiKeyRequest {
            merchant_id: PLATFORM.to_string(),
        };
        match self
            .call("create api key", |channel| {
                let request = authorized(key.clone(), ADMIN_TOKEN);
                async move { MerchantsClient::new(channel).create_api_key(request).await }
            })
            .await
        {
            Some(Ok(created)) => {
                self.api_key = created.api_key;
                self.record("set up");
                true
            }
            Some(Err(status)) => {
                self.violation(format!("api key refused: {status}"));
                false
            }
            None => false,
        }
    }

    fn draw_method(&mut self) -> Method {
        match self.rng.random_range(0..100) {
            0..=39 => Method::Card,
            40..=49 => Method::Declined,
            50..=64 => Method::ThreeDs,
            65..=74 => Method::Qr,
            _ => Method::Manual,
        }
    }

    fn draw_plan(&mut self) -> OrderPlan {
        let amount_minor = self.rng.random_range(100..10_000);
        let capture_minor = if self.rng.random_bool(0.3) {
            self.rng.random_range(1..=amount_minor)
        } else {
            amount_minor
        };
        let refund_minor = if self.rng.random_bool(0.3) {
            // A refund of the whole capture or of part of it (the shop knows the capture only
            // once it happened; it is clamped then).
            self.rng.random_range(1..=amount_minor)
        } else {
            0
        };
        OrderPlan {
            amount_minor,
            capture_minor,
            refund_minor,
            fulfil: self.rng.random_bool(0.8),
            buyer_approves: self.rng.random_bool(0.85),
        }
    }

    /// Creates checkout `n`; answers it for driving, `None` if it was refused or never answered.
    async fn checkout(&mut self, n: usize) -> Option<OpenCheckout> {
        let checkout_id = format!("c{}_{n}", self.index + 1);
        let method = self.draw_method();
        let order_count = self.rng.random_range(1..=3);
        let mut plans = BTreeMap::new();
        let mut orders = Vec::with_capacity(order_count);
        for k in 0..order_count {
            let order_id = format!("o{}_{n}_{k}", self.index + 1);
            let plan = self.draw_plan();
            orders.push(pb::NewOrder {
                order_id: order_id.clone(),
                seller_id: SELLERS[self.rng.random_range(0..SELLERS.len())].to_string(),
                amount: amount(plan.amount_minor),
                currency: "USD".to_string(),
            });
            self.history
                .borrow_mut()
                .orders
                .insert(order_id.clone(), (0, "not_started".to_string()));
            plans.insert(order_id, plan);
        }
        let payment_method = match method {
            Method::Card | Method::Manual => {
                pb::payment_method::Method::CardToken("tok_visa".into())
            }
            Method::Declined => pb::payment_method::Method::CardToken("tok_decline".into()),
            Method::ThreeDs => pb::payment_method::Method::CardToken("tok_3ds".into()),
            Method::Qr => pb::payment_method::Method::Qr(pb::QrMethod {}),
        };
        let request = pb::CreatePaymentRequest {
            checkout_id: checkout_id.clone(),
            buyer_id: BUYER.to_string(),
            orders,
            payment_method: Some(pb::PaymentMethod {
                method: Some(payment_method),
            }),
            capture_method: if method == Method::Manual {
                pb::CaptureMethod::Manual as i32
            } else {
                pb::CaptureMethod::Automatic as i32
            },
            metadata: Default::default(),
        };
        self.history
            .borrow_mut()
            .checkouts
            .push(checkout_id.clone());
        let key = self.api_key.clone();
        let created = self
            .call(&format!("checkout {checkout_id}"), |channel| {
                let request = authorized(request.clone(), &key);
                async move { PaymentsClient::new(channel).create_payment(request).await }
            })
            .await;
        match created {
            Some(Ok(payment)) => {
                self.history.borrow_mut().checkouts_created += 1;
                self.record(&format!(
                    "{checkout_id} {method:?} created {}",
                    payment.status
                ));
                self.observe(&payment);
            }
            Some(Err(status)) => {
                self.violation(format!("checkout {checkout_id} refused: {status}"));
                return None;
            }
            None => return None,
        }
        Some(OpenCheckout {
            checkout_id,
            plans,
            approved: BTreeSet::new(),
            refunded: BTreeSet::new(),
            fulfilled: BTreeSet::new(),
        })
    }

    /// One pass over the open checkouts; the settled ones leave the list.
    async fn drive_all(&mut self, open: &mut Vec<OpenCheckout>) {
        let mut still = Vec::with_capacity(open.len());
        for mut checkout in std::mem::take(open) {
            if !self.drive(&mut checkout).await && turmoil::elapsed() < self.deadline {
                still.push(checkout);
            }
        }
        *open = still;
    }

    /// Checks a payment read against earlier reads: no order state moves backwards.
    fn observe(&mut self, payment: &pb::Payment) {
        for order in &payment.orders {
            let Some(rank) = order_rank(&order.state) else {
                self.violation(format!(
                    "order {} in an unknown state {:?}",
                    order.order_id, order.state
                ));
                continue;
            };
            let before = self.history.borrow().orders.get(&order.order_id).cloned();
            match before {
                Some((seen, seen_state)) if rank < seen => self.violation(format!(
                    "order {} went backwards: {seen_state} then {}",
                    order.order_id, order.state
                )),
                Some((seen, _)) if rank == seen => {}
                _ => {
                    self.record(&format!("{} {}", order.order_id, order.state));
                    self.history
                        .borrow_mut()
                        .orders
                        .insert(order.order_id.clone(), (rank, order.state.clone()));
                }
            }
        }
    }

    /// Reads the checkout once and acts on it (buyer approval, capture, refund, fulfilment);
    /// true once every order is final and every refund settled.
    async fn drive(&mut self, checkout: &mut OpenCheckout) -> bool {
        let key = self.api_key.clone();
        let get = pb::GetPaymentRequest {
            checkout_id: checkout.checkout_id.clone(),
        };
        let payment = match self
            .call(&format!("read {}", checkout.checkout_id), |channel| {
                let request = authorized(get.clone(), &key);
                async move { PaymentsClient::new(channel).get_payment(request).await }
            })
            .await
        {
            Some(Ok(payment)) => payment,
            Some(Err(status)) => {
                self.violation(format!(
                    "read of {} refused: {status}",
                    checkout.checkout_id
                ));
                return true;
            }
            None => return true,
        };
        self.observe(&payment);
        let mut settled = true;
        for order in &payment.orders {
            let Some(plan) = checkout.plans.get(&order.order_id).cloned() else {
                continue;
            };
            let id = &order.order_id;
            match order.state.as_str() {
                "pending" => {
                    settled = false;
                    if !order.psp_charge_id.is_empty()
                        && !checkout.approved.contains(id)
                        && self
                            .buyer_completes(&order.psp_charge_id, plan.buyer_approves)
                            .await
                    {
                        checkout.approved.insert(id.clone());
                    }
                }
                "authorized" => {
                    settled = false;
                    self.capture(order, &plan).await;
                }
                "succeeded" => {
                    let refund_minor = plan.refund_minor.min(parse_minor(&order.captured));
                    if refund_minor > 0
                        && !checkout.refunded.contains(id)
                        && self.refund(order, refund_minor).await
                    {
                        checkout.refunded.insert(id.clone());
                    }
                    if order.refunds.iter().any(|r| r.state == "pending") {
                        settled = false;
                    } else if plan.fulfil
                        && !checkout.fulfilled.contains(id)
                        && self.fulfil(id).await
                    {
                        // After the refunds: fulfilment moves what is still held to the
                        // seller's available funds, which payouts then take.
                        checkout.fulfilled.insert(id.clone());
                    }
                }
                "failed" | "canceled" => {}
                _ => settled = false,
            }
        }
        settled
    }

    /// The buyer finishes a pending charge on the PSP's side (3-D Secure page, QR app). True
    /// once the PSP has it (now, or on an earlier try whose answer was lost).
    async fn buyer_completes(&mut self, charge_id: &str, approve: bool) -> bool {
        let url = format!("http://{PSP_HOST}:{PSP_PORT}/v1/sim/charges/{charge_id}/complete");
        let body = format!("{{\"succeed\":{approve}}}");
        let sent = self
            .psp_http
            .request(
                http::Method::POST,
                &url,
                &[("content-type", "application/json")],
                Bytes::from(body),
            )
            .await;
        match sent {
            Ok(response) if response.status.is_success() => {
                self.record(&format!("buyer completes {charge_id} approve={approve}"));
                true
            }
            // Completed already: an earlier try got through and its answer was lost.
            Ok(response) if response.status.as_u16() == 400 => true,
            _ => false,
        }
    }

    async fn capture(&mut self, order: &pb::PaymentOrder, plan: &OrderPlan) {
        let request = pb::CapturePaymentRequest {
            order_id: order.order_id.clone(),
            amount: amount(plan.capture_minor),
        };
        let key = self.api_key.clone();
        match self
            .call(&format!("capture {}", order.order_id), |channel| {
                let request = authorized(request.clone(), &key);
                async move { PaymentsClient::new(channel).capture_payment(request).await }
            })
            .await
        {
            Some(Ok(_)) => {
                self.history.borrow_mut().captures += 1;
                self.record(&format!("captured {} {}", order.order_id, request.amount));
            }
            Some(Err(status)) => self.violation(format!(
                "capture of {} refused: {status} ({})",
                order.order_id,
                error_code(&status)
            )),
            None => {}
        }
    }

    /// True once the refund has a definite answer (accepted or refused).
    async fn refund(&mut self, order: &pb::PaymentOrder, refund_minor: u64) -> bool {
        let request = pb::RefundPaymentRequest {
            order_id: order.order_id.clone(),
            refund_id: format!("r_{}", order.order_id),
            amount: amount(refund_minor),
        };
        let key = self.api_key.clone();
        match self
            .call(&format!("refund {}", order.order_id), |channel| {
                let request = authorized(request.clone(), &key);
                async move { PaymentsClient::new(channel).refund_payment(request).await }
            })
            .await
        {
            Some(Ok(_)) => {
                self.history.borrow_mut().refunds += 1;
                self.record(&format!("refund {} {}", order.order_id, request.amount));
                true
            }
            Some(Err(status)) => {
                self.record(&format!(
                    "refund {} refused {}",
                    order.order_id,
                    error_code(&status)
                ));
                true
            }
            None => false,
        }
    }

    async fn fulfil(&mut self, order_id: &str) -> bool {
        let request = pb::FulfillOrderRequest {
            order_id: order_id.to_string(),
        };
        let key = self.api_key.clone();
        match self
            .call(&format!("fulfil {order_id}"), |channel| {
                let request = authorized(request.clone(), &key);
                async move { PaymentsClient::new(channel).fulfill_order(request).await }
            })
            .await
        {
            Some(Ok(_)) => {
                self.record(&format!("fulfilled {order_id}"));
                true
            }
            Some(Err(status)) => {
                self.violation(format!("fulfilment of {order_id} refused: {status}"));
                true
            }
            None => false,
        }
    }

    /// Pays each seller's available funds out (the whole balance), then follows each payout
    /// to its end.
    async fn pay_out(&mut self) {
        for seller in SELLERS {
            let payout_id = format!("po{}_{seller}", self.index + 1);
            let request = pb::CreatePayoutRequest {
                payout_id: payout_id.clone(),
                merchant_id: seller.to_string(),
                currency: "USD".to_string(),
                amount: String::new(),
            };
            self.history
                .borrow_mut()
                .payouts_sent
                .push(payout_id.clone());
            match self
                .call(&format!("payout {payout_id}"), |channel| {
                    let request = authorized(request.clone(), ADMIN_TOKEN);
                    async move { PayoutsClient::new(channel).create_payout(request).await }
                })
                .await
            {
                Some(Ok(payout)) => {
                    self.record(&format!(
                        "{payout_id} created {} {}",
                        payout.amount, payout.status
                    ));
                    self.history
                        .borrow_mut()
                        .payouts
                        .insert(payout_id.clone(), (0, "pending".to_string()));
                    self.follow_payout(&payout_id, seller).await;
                }
                // Nothing available to pay out (another shop's payout took it, or refunds).
                Some(Err(status)) => {
                    self.record(&format!("{payout_id} refused {}", error_code(&status)))
                }
                None => {}
            }
        }
    }

    async fn follow_payout(&mut self, payout_id: &str, seller: &str) {
        let get = pb::GetPayoutRequest {
            payout_id: payout_id.to_string(),
            merchant_id: seller.to_string(),
        };
        loop {
            let payout = match self
                .call(&format!("read {payout_id}"), |channel| {
                    let request = authorized(get.clone(), ADMIN_TOKEN);
                    async move { PayoutsClient::new(channel).get_payout(request).await }
                })
                .await
            {
                Some(Ok(payout)) => payout,
                Some(Err(status)) => {
                    self.violation(format!("read of {payout_id} refused: {status}"));
                    return;
                }
                None => return,
            };
            let Some(rank) = payout_rank(&payout.status) else {
                self.violation(format!(
                    "payout {payout_id} in an unknown status {:?}",
                    payout.status
                ));
                return;
            };
            let before = self.history.borrow().payouts.get(payout_id).cloned();
            if let Some((seen, seen_status)) = before {
                if rank < seen {
                    self.violation(format!(
                        "payout {payout_id} went backwards: {seen_status} then {}",
                        payout.status
                    ));
                } else if rank > seen {
                    self.record(&format!("{payout_id} {}", payout.status));
                    self.history
                        .borrow_mut()
                        .payouts
                        .insert(payout_id.to_string(), (rank, payout.status.clone()));
                }
            }
            if rank == 2 {
                if payout.status == "paid" {
                    self.history.borrow_mut().payouts_paid += 1;
                }
                return;
            }
            tokio::time::sleep(Duration::from_millis(POLL_MS * 2)).await;
        }
    }
}
