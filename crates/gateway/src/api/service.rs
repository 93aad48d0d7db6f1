//! The payments API itself, independent of transport: authentication, rate limits, card-number
//! refusal, the risk check, then ledger commands and PSP calls. The gRPC service and the JSON
//! facade are thin adapters over [`PaymentsApi`].
//!
//! Stateless: every decision lands in the replicated ledger, so any number of gateways serve the
//! same merchants. Rate-limit buckets are per gateway (a limit is per gateway copy).

use super::auth::{key_lookup_limiter, CachedKey};
use super::convert::{self, id};
use super::create_input::{parse_create, refuse_cards, CreateInput};
use super::error::{ApiError, ErrorKind};
use crate::api_key;
use crate::executor::Clock;
use crate::idempotency_hash::request_hash;
use crate::lru::LruMap;
use crate::rate_limit::RateLimiter;
use crate::risk::{Fallback, FallbackLimits, RiskPolicy, RiskRequest, RiskService};
use crate::secret::Secret;
use crate::signing::{self, NonceCache};
use prost::Message;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tally_ledger::limits::NANOS_PER_MILLISECOND;
use tally_ledger::payment::{
    BuyerId, CheckoutId, MerchantId, NewBuyer, NewMerchant, NewPayment, OrderId, OrderState,
    Payment, PaymentCommand, PaymentError, PaymentMethod, PaymentOutcome, PaymentQuery,
    PaymentQueryResult, PspName, RefundId, RefundState, RiskOutcome, RiskRecord, PAYMENTS_PAGE_MAX,
};
use tally_ledger::{format_amount, Currency};
use tally_proto::client::LedgerClient;
use tally_proto::payments as pb;
use tally_psp::{ErrorKind as PspErrorKind, Psp, PspError, RefundRequest};

/// Stripe's retention of idempotency keys: 24 hours.
pub const IDEMPOTENCY_RETENTION_MS_DEFAULT: u64 = 24 * 60 * 60 * 1_000;

/// Payments per `ListPayments` page when the client does not say.
pub const LIST_PAGE_SIZE_DEFAULT: u32 = 20;

#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// The PSP every payment of this gateway goes through (the ledger's receivable account).
    pub psp_name: PspName,
    /// Bearer token of the `Merchants` (operator) API; `None` disables it.
    pub admin_token: Option<Secret<String>>,
    /// Payments that may go ahead unassessed when the risk service is down.
    pub risk_fallback: FallbackLimits,
    /// Deadline of one PSP call made on a client's behalf (capture, cancel, refund).
    pub psp_call_timeout_ms: u64,
    /// How long a begun idempotency key keeps other calls with it away; must cover a call.
    pub idempotency_lease_ms: u64,
    /// How long a client's idempotency key is kept after its first use (1 ms to 30 days); a key
    /// reused after that is a new request. Stripe's 24 hours by default.
    pub idempotency_retention_ms: u64,
    /// How long a key record read from the ledger is reused to authenticate (0: never); a
    /// revocation takes effect on this gateway within it.
    pub api_key_cache_ms: u64,
    /// Refuse requests without a `tally-signature` (an HMAC keyed by the API key's signing
    /// secret, see `signing`); when false a signature is still checked if sent.
    pub require_signatures: bool,
    /// Accept `http://` webhook endpoints (local development); otherwise only `https://`, so
    /// deliveries are encrypted and cannot be pointed at plain-text internal services.
    pub webhook_allow_http: bool,
}

/// API key records one gateway keeps (the least recently used goes first).
pub const API_KEYS_CACHED_MAX: usize = 100_000;

pub struct PaymentsApi {
    ledger: LedgerClient,
    psp: Arc<dyn Psp>,
    risk: Arc<dyn RiskService>,
    pub(super) rate_limiter: Mutex<RateLimiter>,
    /// Ledger reads of API keys this copy has not cached, per client address.
    pub(super) key_lookups: Mutex<RateLimiter>,
    /// Nonces of signed requests this copy saw within the replay window: refuses a replay to
    /// this copy without a ledger round trip. The replicated record (`claim_nonce`) is what
    /// refuses it on every copy.
    pub(super) nonces: Mutex<NonceCache>,
    /// Key lookups by key id, found or not, each reused for `api_key_cache_ms`.
    pub(super) key_cache: Mutex<LruMap<Option<CachedKey>>>,
    /// Draws API key secrets. Seeded from the OS in production, from a seed in simulations.
    rng: Mutex<StdRng>,
    clock: Clock,
    pub(super) config: ApiConfig,
}

impl PaymentsApi {
    pub fn new(
        ledger: LedgerClient,
        psp: Arc<dyn Psp>,
        risk: Arc<dyn RiskService>,
        rate_limiter: RateLimiter,
        rng: StdRng,
        clock: Clock,
        config: ApiConfig,
    ) -> Self {
        PaymentsApi {
            ledger,
            psp,
            risk,
            rate_limiter: Mutex::new(rate_limiter),
            key_cache: Mutex::new(LruMap::new(API_KEYS_CACHED_MAX)),
            key_lookups: Mutex::new(key_lookup_limiter()),
            nonces: Mutex::new(
                NonceCache::new(signing::NONCE_CACHE_ENTRIES_MAX)
                    .expect("the module's own bound is valid"),
            ),
            rng: Mutex::new(rng),
            clock,
            config,
        }
    }

    /// An RNG for production: seeded from the operating system.
    pub fn os_rng() -> StdRng {
        StdRng::from_os_rng()
    }

    /// Fills `bytes` from the API's RNG (secrets it generates).
    pub(super) fn fill_random(&self, bytes: &mut [u8]) {
        use rand::RngCore;
        self.rng
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .fill_bytes(bytes);
    }

    pub(super) fn psp_name(&self) -> &PspName {
        &self.config.psp_name
    }

    pub(super) fn ledger(&self) -> &LedgerClient {
        &self.ledger
    }

    pub(super) fn idempotency_lease_ms(&self) -> u64 {
        self.config.idempotency_lease_ms
    }

    pub(super) fn idempotency_retention_ms(&self) -> u64 {
        self.config.idempotency_retention_ms
    }

    pub(super) fn now_ms(&self) -> u64 {
        (self.clock)() / NANOS_PER_MILLISECOND
    }

    // ---- payments ----------------------------------------------------------------------------

    pub async fn create_payment(
        &self,
        merchant: &MerchantId,
        request: &pb::CreatePaymentRequest,
    ) -> Result<pb::Payment, ApiError> {
        let CreateInput {
            checkout_id,
            buyer_id,
            method,
            capture,
            orders,
            currency,
            total_minor,
        } = parse_create(request)?;
        let hash = request_hash(
            "POST",
            "/tally.payments.v1.Payments/CreatePayment",
            &request.encode_to_vec(),
        );
        // A retry is answered from the ledger without a second risk check (velocity counts
        // attempts, and a retry is not a new attempt).
        if let Some(existing) = self.find_payment(&checkout_id).await? {
            if existing.merchant_id != *merchant {
                return Err(ApiError::new(
                    ErrorKind::AlreadyExists,
                    "checkout_exists_with_different_request",
                    format!("checkout {checkout_id} exists; pick a new checkout id"),
                ));
            }
            if existing.request_hash == hash {
                return Ok(convert::payment_to_pb(&existing));
            }
        }
        let risk = match &method {
            Some(method) => self.assess(&buyer_id, method, total_minor, currency, orders.len())?,
            // An intent is assessed when it is confirmed with a method.
            None => RiskRecord {
                outcome: RiskOutcome::Approve,
                flagged: false,
                reasons: vec!["not_assessed_until_confirmed".to_string()],
            },
        };
        let command = PaymentCommand::CreatePayment(NewPayment {
            checkout_id,
            merchant_id: merchant.clone(),
            buyer_id,
            method,
            capture,
            psp: self.config.psp_name.clone(),
            risk,
            request_hash: hash,
            orders,
        });
        let payment = self.execute_payment(command).await?;
        Ok(convert::payment_to_pb(&payment))
    }

    pub async fn confirm_payment(
        &self,
        merchant: &MerchantId,
        request: &pb::ConfirmPaymentRequest,
    ) -> Result<pb::Payment, ApiError> {
        if let Some(pb::payment_method::Method::CardToken(token)) = request
            .payment_method
            .as_ref()
            .and_then(|m| m.method.as_ref())
        {
            refuse_cards([("payment_method.card_token", token.as_str())])?;
        }
        let checkout_id: CheckoutId = id("checkout_id", &request.checkout_id)?;
        let method =
            convert::method_from_pb(request.payment_method.as_ref())?.ok_or_else(|| {
                ApiError::invalid(
                    "payment_method_missing",
                    "payment_method is required to confirm a payment",
                )
            })?;
        let payment = self.owned_payment(merchant, &checkout_id).await?;
        if payment.method.is_none() {
            let currency = payment.orders[0].currency;
            let total_minor = payment.orders.iter().map(|o| o.amount_minor).sum();
            let risk = self.assess(
                &payment.buyer_id,
                &method,
                total_minor,
                currency,
                payment.orders.len(),
            )?;
            if risk.outcome != RiskOutcome::Approve {
                return Err(ApiError::new(
                    ErrorKind::FailedPrecondition,
                    if risk.outcome == RiskOutcome::Decline {
                        "risk_declined"
                    } else {
                        "risk_review"
                    },
                    format!(
                        "the risk check did not approve this payment ({}); it stays unconfirmed",
                        risk.reasons.join(", ")
                    ),
                ));
            }
        }
        let payment = self
            .execute_payment(PaymentCommand::ConfirmPayment {
                checkout_id,
                method,
            })
            .await?;
        Ok(convert::payment_to_pb(&payment))
    }

    pub async fn get_payment(
        &self,
        merchant: &MerchantId,
        checkout_id: &str,
    ) -> Result<pb::Payment, ApiError> {
        let checkout_id: CheckoutId = id("checkout_id", checkout_id)?;
        let payment = self.owned_payment(merchant, &checkout_id).await?;
        Ok(convert::payment_to_pb(&payment))
    }

    pub async fn get_order(
        &self,
        merchant: &MerchantId,
        order_id: &str,
    ) -> Result<pb::PaymentOrder, ApiError> {
        let order_id: OrderId = id("order_id", order_id)?;
        let payment = self.owned_payment_of_order(merchant, &order_id).await?;
        let order = payment
            .order(&order_id)
            .ok_or_else(|| order_not_found(&order_id))?;
        Ok(convert::order_to_pb(&payment, order))
    }

    pub async fn list_payments(
        &self,
        merchant: &MerchantId,
        request: &pb::ListPaymentsRequest,
    ) -> Result<pb::ListPaymentsResponse, ApiError> {
        let limit = match request.page_size {
            0 => LIST_PAGE_SIZE_DEFAULT,
            size if size as usize <= PAYMENTS_PAGE_MAX => size,
            size => {
                return Err(ApiError::invalid(
                    "page_size_out_of_range",
                    format!("page_size {size} is above {PAYMENTS_PAGE_MAX}"),
                ))
            }
        };
        let before = if request.page_token.is_empty() {
            None
        } else {
            Some(parse_page_token(&request.page_token)?)
        };
        let (payments, next) = match self
            .ledger
            .query_payments(&PaymentQuery::MerchantPayments {
                merchant_id: merchant.clone(),
                before,
                limit,
            })
            .await?
        {
            PaymentQueryResult::MerchantPayments { payments, next } => (payments, next),
            _ => return Err(unexpected_answer()),
        };
        Ok(pb::ListPaymentsResponse {
            payments: payments
                .iter()
                .filter(|p| request.status.is_empty() || p.status().name() == request.status)
                .map(convert::payment_to_pb)
                .collect(),
            next_page_token: next
                .map(|(created_at_ns, checkout)| format!("{created_at_ns}.{checkout}"))
                .unwrap_or_default(),
        })
    }

    /// Captures an authorized order at the PSP, then records it. A repeat after success answers
    /// the payment as it is.
    pub async fn capture(
        &self,
        merchant: &MerchantId,
        request: &pb::CapturePaymentRequest,
    ) -> Result<pb::Payment, ApiError> {
        let order_id: OrderId = id("order_id", &request.order_id)?;
        let payment = self.owned_payment_of_order(merchant, &order_id).await?;
        let order = payment
            .order(&order_id)
            .ok_or_else(|| order_not_found(&order_id))?;
        let amount_minor = if request.amount.is_empty() {
            order.authorized_minor
        } else {
            convert::amount("amount", &request.amount, order.currency)?
        };
        if order.state == OrderState::Succeeded && order.captured_minor == amount_minor {
            return Ok(convert::payment_to_pb(&payment));
        }
        if order.state != OrderState::Authorized {
            return Err(ApiError::new(
                ErrorKind::FailedPrecondition,
                "invalid_transition",
                format!(
                    "order {order_id} is {}; only an authorized order can be captured",
                    order.state.name()
                ),
            ));
        }
        let charge_id = order.psp_charge_id.clone().unwrap_or_default();
        let charge = self
            .psp_call(
                self.psp
                    .capture(&charge_id, amount_minor, &format!("{order_id}:capture")),
            )
            .await?;
        let payment = self
            .execute_in(
                PaymentCommand::RecordCapture {
                    order_id,
                    amount_minor: charge.captured_minor,
                },
                order.currency,
            )
            .await?;
        Ok(convert::payment_to_pb(&payment))
    }

    /// Cancels every order of the checkout that can be: not yet started, or authorized (the
    /// authorization is voided at the PSP first). Orders already final are left as they are;
    /// an order in flight at the PSP is refused, since it may be charged.
    pub async fn cancel(
        &self,
        merchant: &MerchantId,
        request: &pb::CancelPaymentRequest,
    ) -> Result<pb::Payment, ApiError> {
        let checkout_id: CheckoutId = id("checkout_id", &request.checkout_id)?;
        let mut payment = self.owned_payment(merchant, &checkout_id).await?;
        if let Some(busy) = payment.orders.iter().find(|o| {
            matches!(
                o.state,
                OrderState::Executing { .. }
                    | OrderState::RetryScheduled { .. }
                    | OrderState::Pending { .. }
            )
        }) {
            return Err(ApiError::new(
                ErrorKind::FailedPrecondition,
                "order_in_flight",
                format!(
                    "order {} is {} at the PSP; wait for its outcome, then cancel or refund",
                    busy.order_id,
                    busy.state.name()
                ),
            ));
        }
        let orders: Vec<_> = payment.orders.clone();
        for order in orders {
            match order.state {
                OrderState::NotStarted => {}
                OrderState::Authorized => {
                    let charge_id = order.psp_charge_id.clone().unwrap_or_default();
                    self.psp_call(
                        self.psp
                            .cancel(&charge_id, &format!("{}:cancel", order.order_id)),
                    )
                    .await?;
                }
                _ => continue,
            }
            payment = self
                .execute_payment(PaymentCommand::CancelOrder {
                    order_id: order.order_id.clone(),
                })
                .await?;
        }
        Ok(convert::payment_to_pb(&payment))
    }

    /// Refunds part of a captured order: holds the seller's share in the ledger, asks the PSP
    /// (the refund id is its idempotency key), then posts or releases. A retry with the same
    /// refund id resumes where the first call stopped.
    pub async fn refund(
        &self,
        merchant: &MerchantId,
        request: &pb::RefundPaymentRequest,
    ) -> Result<pb::Payment, ApiError> {
        let order_id: OrderId = id("order_id", &request.order_id)?;
        let refund_id: RefundId = id("refund_id", &request.refund_id)?;
        let payment = self.owned_payment_of_order(merchant, &order_id).await?;
        let order = payment
            .order(&order_id)
            .ok_or_else(|| order_not_found(&order_id))?;
        let amount_minor = convert::amount("amount", &request.amount, order.currency)?;
        let charge_id = order.psp_charge_id.clone().unwrap_or_default();
        let payment = self
            .execute_in(
                PaymentCommand::BeginRefund {
                    order_id: order_id.clone(),
                    refund_id: refund_id.clone(),
                    amount_minor,
                    // Past this call's own deadline, the executor's refund sweep takes over.
                    check_after_ms: self.config.idempotency_lease_ms,
                },
                order.currency,
            )
            .await?;
        let state = payment
            .order(&order_id)
            .and_then(|o| o.refunds.iter().find(|r| r.refund_id == refund_id))
            .map(|r| r.state);
        if state != Some(RefundState::Pending) {
            return Ok(convert::payment_to_pb(&payment));
        }
        let answer = self
            .psp_raw(self.psp.refund(RefundRequest {
                charge_id,
                amount_minor,
                idempotency_key: refund_id.to_string(),
            }))
            .await;
        let succeeded = match answer {
            Ok(_) => true,
            Err(error) if error.kind == PspErrorKind::Terminal => false,
            // Unknown outcome: the refund stays pending (seller funds held) until a retry of the
            // same refund id or the executor's refund sweep settles it; the PSP key makes it
            // happen once.
            Err(error) => return Err(psp_error(error)),
        };
        let payment = self
            .execute_payment(PaymentCommand::CompleteRefund {
                order_id,
                refund_id,
                succeeded,
            })
            .await?;
        Ok(convert::payment_to_pb(&payment))
    }

    pub async fn fulfill(
        &self,
        merchant: &MerchantId,
        request: &pb::FulfillOrderRequest,
    ) -> Result<pb::Payment, ApiError> {
        let order_id: OrderId = id("order_id", &request.order_id)?;
        self.owned_payment_of_order(merchant, &order_id).await?;
        let payment = self
            .execute_payment(PaymentCommand::FulfillOrder { order_id })
            .await?;
        Ok(convert::payment_to_pb(&payment))
    }

    // ---- merchants (operator API) ------------------------------------------------------------

    pub async fn create_merchant(
        &self,
        request: &pb::CreateMerchantRequest,
    ) -> Result<pb::Merchant, ApiError> {
        let command = PaymentCommand::CreateMerchant(NewMerchant {
            id: id("merchant_id", &request.merchant_id)?,
            name: request.name.clone(),
            fees: convert::fees_from_pb(request.fees.as_ref())?,
            hold_period_s: request.hold_period_s,
        });
        match self.execute(command).await? {
            PaymentOutcome::Merchant { merchant, .. } => Ok(convert::merchant_to_pb(&merchant)),
            _ => Err(unexpected_answer()),
        }
    }

    pub async fn get_merchant(&self, merchant_id: &str) -> Result<pb::Merchant, ApiError> {
        let merchant_id: MerchantId = id("merchant_id", merchant_id)?;
        match self
            .ledger
            .query_payments(&PaymentQuery::Merchant {
                merchant_id: merchant_id.clone(),
            })
            .await?
        {
            PaymentQueryResult::Merchant(Some(merchant)) => Ok(convert::merchant_to_pb(&merchant)),
            PaymentQueryResult::Merchant(None) => Err(ApiError::not_found(
                "merchant_not_found",
                format!("merchant {merchant_id} not found"),
            )),
            _ => Err(unexpected_answer()),
        }
    }

    pub async fn update_fees(
        &self,
        request: &pb::UpdateFeesRequest,
    ) -> Result<pb::Merchant, ApiError> {
        let command = PaymentCommand::UpdateMerchantFees {
            merchant_id: id("merchant_id", &request.merchant_id)?,
            fees: convert::fees_from_pb(request.fees.as_ref())?,
            hold_period_s: request.hold_period_s,
        };
        match self.execute(command).await? {
            PaymentOutcome::Merchant { merchant, .. } => Ok(convert::merchant_to_pb(&merchant)),
            _ => Err(unexpected_answer()),
        }
    }

    pub async fn create_api_key(
        &self,
        request: &pb::CreateApiKeyRequest,
    ) -> Result<pb::CreateApiKeyResponse, ApiError> {
        let merchant_id: MerchantId = id("merchant_id", &request.merchant_id)?;
        let generated = {
            let mut rng = self
                .rng
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            api_key::generate(&mut *rng)
        };
        let key_id = tally_ledger::payment::ApiKeyId::new(generated.key_id.as_str())
            .map_err(|error| ApiError::invalid(error.code(), error.to_string()))?;
        let (signing_shown, signing_secret) = self.new_signing_secret();
        self.execute(PaymentCommand::AddApiKey {
            merchant_id: merchant_id.clone(),
            key_id: key_id.clone(),
            secret_hash: generated.hash.0,
            signing_secret,
        })
        .await?;
        Ok(pb::CreateApiKeyResponse {
            merchant_id: merchant_id.to_string(),
            key_id: key_id.to_string(),
            api_key: generated.presented.expose().clone(),
            signing_secret: signing_shown.expose().clone(),
        })
    }

    pub async fn revoke_api_key(
        &self,
        request: &pb::RevokeApiKeyRequest,
    ) -> Result<pb::Merchant, ApiError> {
        let command = PaymentCommand::RevokeApiKey {
            merchant_id: id("merchant_id", &request.merchant_id)?,
            key_id: id("key_id", &request.key_id)?,
        };
        match self.execute(command).await? {
            PaymentOutcome::Merchant { merchant, .. } => Ok(convert::merchant_to_pb(&merchant)),
            _ => Err(unexpected_answer()),
        }
    }

    pub async fn create_buyer(
        &self,
        request: &pb::CreateBuyerRequest,
    ) -> Result<pb::Buyer, ApiError> {
        let mut wallet_currencies = Vec::with_capacity(request.wallet_currencies.len());
        for code in &request.wallet_currencies {
            wallet_currencies.push(convert::currency("wallet_currencies", code)?);
        }
        let command = PaymentCommand::CreateBuyer(NewBuyer {
            id: id("buyer_id", &request.buyer_id)?,
            wallet_currencies,
        });
        match self.execute(command).await? {
            PaymentOutcome::Buyer { buyer, .. } => Ok(convert::buyer_to_pb(&buyer)),
            _ => Err(unexpected_answer()),
        }
    }

    // ---- helpers -----------------------------------------------------------------------------

    fn assess(
        &self,
        buyer_id: &BuyerId,
        method: &PaymentMethod,
        total_minor: u64,
        currency: Currency,
        order_count: usize,
    ) -> Result<RiskRecord, ApiError> {
        let request = RiskRequest {
            buyer_id: buyer_id.to_string(),
            payment_token: match method {
                PaymentMethod::Card { token } => Some(token.clone()),
                PaymentMethod::Wallet | PaymentMethod::Qr | PaymentMethod::Hosted { .. } => None,
            },
            total_amount_minor: total_minor,
            currency: currency.code().to_string(),
            order_count: u32::try_from(order_count).unwrap_or(u32::MAX),
        };
        let decision = match self.risk.assess(&request, self.now_ms()) {
            Ok(decision) => decision,
            Err(unavailable) => match RiskPolicy::decide_when_unavailable(
                total_minor,
                currency.code(),
                &self.config.risk_fallback,
            ) {
                Fallback::ProceedFlagged => {
                    crate::risk::RiskDecision::proceed_unassessed(&unavailable)
                }
                Fallback::Wait => {
                    return Err(ApiError::new(
                        ErrorKind::Unavailable,
                        unavailable.code(),
                        format!(
                            "{unavailable}; this amount waits for it: retry the same request later"
                        ),
                    ))
                }
            },
        };
        Ok(RiskRecord {
            outcome: match decision.outcome {
                crate::risk::RiskOutcome::Approve => RiskOutcome::Approve,
                crate::risk::RiskOutcome::Review => RiskOutcome::Review,
                crate::risk::RiskOutcome::Decline => RiskOutcome::Decline,
            },
            flagged: decision.flagged,
            reasons: decision
                .reasons
                .iter()
                .map(|reason| reason.code.to_string())
                .collect(),
        })
    }

    /// As `execute_payment`, with the ledger's minor-unit amounts in a refusal written as
    /// decimals of `currency`, the way the client sent them.
    async fn execute_in(
        &self,
        command: PaymentCommand,
        currency: Currency,
    ) -> Result<Payment, ApiError> {
        let results = self.ledger.execute_payments(&[command]).await?;
        match results.into_iter().next() {
            Some(Ok(PaymentOutcome::Payment { payment, .. })) => Ok(payment),
            Some(Ok(_)) | None => Err(unexpected_answer()),
            Some(Err(error)) => {
                let money = |minor: u64| format!("{} {currency}", format_amount(minor, currency));
                let message = match &error {
                    PaymentError::AmountTooLarge {
                        requested_minor,
                        allowed_minor,
                    } => Some(format!(
                        "amount {} is above what is allowed here ({})",
                        money(*requested_minor),
                        money(*allowed_minor)
                    )),
                    PaymentError::RefundExceedsCaptured {
                        order,
                        refundable_minor,
                    } => Some(format!(
                        "order {order} can be refunded at most {} more",
                        money(*refundable_minor)
                    )),
                    _ => None,
                };
                let mut api_error = ApiError::from(error);
                if let Some(message) = message {
                    api_error.message = message;
                }
                Err(api_error)
            }
        }
    }

    pub(super) async fn execute(
        &self,
        command: PaymentCommand,
    ) -> Result<PaymentOutcome, ApiError> {
        let results = self.ledger.execute_payments(&[command]).await?;
        match results.into_iter().next() {
            Some(result) => result.map_err(ApiError::from),
            None => Err(unexpected_answer()),
        }
    }

    async fn execute_payment(&self, command: PaymentCommand) -> Result<Payment, ApiError> {
        match self.execute(command).await? {
            PaymentOutcome::Payment { payment, .. } => Ok(payment),
            _ => Err(unexpected_answer()),
        }
    }

    async fn find_payment(&self, checkout_id: &CheckoutId) -> Result<Option<Payment>, ApiError> {
        match self
            .ledger
            .query_payments(&PaymentQuery::Payment {
                checkout_id: checkout_id.clone(),
            })
            .await?
        {
            PaymentQueryResult::Payment(payment) => Ok(payment),
            _ => Err(unexpected_answer()),
        }
    }

    /// The merchant's payment; another merchant's is reported as not found, never shown.
    async fn owned_payment(
        &self,
        merchant: &MerchantId,
        checkout_id: &CheckoutId,
    ) -> Result<Payment, ApiError> {
        match self.find_payment(checkout_id).await? {
            Some(payment) if payment.merchant_id == *merchant => Ok(payment),
            _ => Err(ApiError::not_found(
                "payment_not_found",
                format!("payment {checkout_id} not found"),
            )),
        }
    }

    async fn owned_payment_of_order(
        &self,
        merchant: &MerchantId,
        order_id: &OrderId,
    ) -> Result<Payment, ApiError> {
        match self
            .ledger
            .query_payments(&PaymentQuery::PaymentOfOrder {
                order_id: order_id.clone(),
            })
            .await?
        {
            PaymentQueryResult::Payment(Some(payment)) if payment.merchant_id == *merchant => {
                Ok(payment)
            }
            PaymentQueryResult::Payment(_) => Err(order_not_found(order_id)),
            _ => Err(unexpected_answer()),
        }
    }

    /// A PSP call on a client's behalf, under the configured deadline (a timeout is retryable).
    async fn psp_raw<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, PspError>>,
    ) -> Result<T, PspError> {
        let timeout = Duration::from_millis(self.config.psp_call_timeout_ms);
        match tokio::time::timeout(timeout, call).await {
            Ok(answer) => answer,
            Err(_) => Err(PspError {
                kind: PspErrorKind::Retryable,
                code: "timeout".to_string(),
                message: format!("no answer within {} ms", timeout.as_millis()),
            }),
        }
    }

    pub(super) fn webhook_allow_http(&self) -> bool {
        self.config.webhook_allow_http
    }

    pub(super) fn psp(&self) -> &Arc<dyn Psp> {
        &self.psp
    }

    pub(super) async fn psp_call<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, PspError>>,
    ) -> Result<T, ApiError> {
        self.psp_raw(call).await.map_err(psp_error)
    }
}

/// A PSP refusal is final for this request; anything else may succeed on a retry.
fn psp_error(error: PspError) -> ApiError {
    match error.kind {
        PspErrorKind::Terminal => ApiError::new(
            ErrorKind::FailedPrecondition,
            &format!("psp_{}", error.code),
            format!("the PSP refused: {}", error.message),
        ),
        PspErrorKind::Retryable => ApiError::new(
            ErrorKind::Unavailable,
            "psp_unavailable",
            format!(
                "the PSP did not complete the call ({}: {}); retry the same request",
                error.code, error.message
            ),
        ),
    }
}

fn parse_page_token(token: &str) -> Result<(u64, CheckoutId), ApiError> {
    let invalid = || {
        ApiError::invalid(
            "page_token_invalid",
            "page_token is not one this API issued: pass next_page_token unchanged",
        )
    };
    let (ns, checkout) = token.split_once('.').ok_or_else(invalid)?;
    let ns: u64 = ns.parse().map_err(|_| invalid())?;
    let checkout = CheckoutId::new(checkout).map_err(|_| invalid())?;
    Ok((ns, checkout))
}

fn order_not_found(order_id: &OrderId) -> ApiError {
    ApiError::not_found("order_not_found", format!("order {order_id} not found"))
}

pub(super) fn unexpected_answer() -> ApiError {
    ApiError::new(
        ErrorKind::Unavailable,
        "unexpected_answer",
        "the ledger answered with the wrong kind of result (mixed versions?); retry later",
    )
}
