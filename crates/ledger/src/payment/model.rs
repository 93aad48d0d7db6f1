//! The records of the payments domain: merchants, buyers, and payments with their orders and
//! refunds. They live in the same replicated state as the ledger, and every change to them that
//! moves money posts its ledger transfers in the same command, so the wallets and the ledger
//! can never disagree.

use super::ids::{ApiKeyId, BuyerId, CheckoutId, MerchantId, OrderId, PspName, RefundId};
use super::payout::PayoutSchedule;
use super::work::AttemptRecord;
use crate::money::Currency;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PartyStatus {
    Active,
    Disabled,
}

/// What the platform keeps of each captured order: `bps` basis points plus a fixed amount per
/// currency, never more than the captured amount itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeeSchedule {
    pub bps: u32,
    pub fixed_minor: BTreeMap<Currency, u64>,
}

impl FeeSchedule {
    /// The fee on `captured_minor`, rounded down, capped at `captured_minor`.
    pub fn fee_minor(&self, captured_minor: u64, currency: Currency) -> u64 {
        let rate = u128::from(captured_minor) * u128::from(self.bps) / 10_000;
        let fixed = u128::from(self.fixed_minor.get(&currency).copied().unwrap_or(0));
        // The cap keeps the sum below `captured_minor`, which fits in u64.
        (rate + fixed).min(u128::from(captured_minor)) as u64
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    pub key_id: ApiKeyId,
    /// SHA-256 of the secret; the secret itself is never stored.
    pub secret_hash: [u8; 32],
    /// What signed requests are checked with: the current secret first, then, during a
    /// rotation, the previous one (at most `SIGNING_SECRETS_PER_KEY_MAX`).
    pub signing_secrets: Vec<super::SigningSecret>,
    pub created_at_ns: u64,
    pub revoked_at_ns: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Merchant {
    pub id: MerchantId,
    pub name: String,
    pub status: PartyStatus,
    pub fees: FeeSchedule,
    /// After capture, funds stay held this long unless the order is fulfilled earlier.
    pub hold_period_s: u32,
    pub api_keys: Vec<ApiKeyRecord>,
    /// At most one per currency.
    pub payout_schedules: Vec<PayoutSchedule>,
    /// Where this merchant's payment events are delivered.
    pub webhook_endpoints: Vec<super::outbox::WebhookEndpoint>,
    pub created_at_ns: u64,
    pub updated_at_ns: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Buyer {
    pub id: BuyerId,
    pub status: PartyStatus,
    /// Currencies the buyer holds a wallet in (`buyer:<id>:wallet`).
    pub wallet_currencies: Vec<Currency>,
    pub created_at_ns: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentMethod {
    /// A card, by the PSP's token only: card numbers never reach Tally.
    Card { token: String },
    /// The buyer's wallet in the ledger; no PSP is involved.
    Wallet,
    /// A QR payment through the PSP, completed asynchronously.
    Qr,
    /// The PSP's hosted payment page: the buyer enters the card on the PSP's page and comes
    /// back to `return_url`; completed asynchronously like QR.
    Hosted { return_url: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CaptureMode {
    /// Charge at once.
    Automatic,
    /// Authorize now; capture (fully or partly) or cancel later.
    Manual,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RiskOutcome {
    Approve,
    Review,
    Decline,
}

/// The risk check the gateway ran before the payment, recorded with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskRecord {
    pub outcome: RiskOutcome,
    /// Set when the payment went ahead without a full check (the risk service was down).
    pub flagged: bool,
    pub reasons: Vec<String>,
}

/// An error an order met, kept for operators and clients.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderError {
    pub code: String,
    pub message: String,
}

/// Where an order stands. Transitions only go forward (see [`OrderState::rank`]), so a late or
/// duplicated event can never undo a later one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderState {
    /// Waiting for an executor to claim it.
    NotStarted,
    /// An executor holds the claim for `attempt` until `lease_until_ns`, and may be talking to
    /// the PSP right now.
    Executing {
        lease_until_ns: u64,
    },
    /// The last attempt met a retryable error; the next may start at `not_before_ns`. The PSP
    /// may have charged (a lost response), so the next attempt reuses the same PSP key.
    RetryScheduled {
        not_before_ns: u64,
    },
    /// Retries ran out, or the PSP refused the request in a way no retry fixes: the order waits
    /// in the dead-letter queue for an operator to re-drive (back to `RetryScheduled`, whose
    /// first step is a status check) or discard (`Failed`). The PSP may have charged, so this
    /// is not final.
    DeadLettered {
        dead_at_ns: u64,
    },
    /// The PSP accepted the charge but completes it later (3-D Secure, QR): a webhook or a status
    /// check settles it.
    Pending {
        check_at_ns: u64,
    },
    /// Authorized, not captured (manual capture).
    Authorized,
    /// Captured; money moved. Refunds do not change the state, they are counted on the order.
    Succeeded,
    Failed,
    Canceled,
}

impl OrderState {
    /// Forward order of states: a transition to a lower rank is refused.
    pub fn rank(&self) -> u8 {
        match self {
            OrderState::NotStarted => 0,
            OrderState::Executing { .. }
            | OrderState::RetryScheduled { .. }
            | OrderState::DeadLettered { .. } => 1,
            // `apply::payment::execution::PENDING_RANK` names this value.
            OrderState::Pending { .. } => 2,
            OrderState::Authorized => 3,
            OrderState::Succeeded | OrderState::Failed | OrderState::Canceled => 4,
        }
    }

    pub fn is_final(&self) -> bool {
        matches!(
            self,
            OrderState::Succeeded | OrderState::Failed | OrderState::Canceled
        )
    }

    pub fn name(&self) -> &'static str {
        match self {
            OrderState::NotStarted => "not_started",
            OrderState::Executing { .. } => "executing",
            OrderState::RetryScheduled { .. } => "retry_scheduled",
            OrderState::DeadLettered { .. } => "dead_lettered",
            OrderState::Pending { .. } => "pending",
            OrderState::Authorized => "authorized",
            OrderState::Succeeded => "succeeded",
            OrderState::Failed => "failed",
            OrderState::Canceled => "canceled",
        }
    }

    /// When an executor (or the sweeper) should next look at an order in this state, if ever.
    pub fn due_ns(&self, created_at_ns: u64) -> Option<u64> {
        match self {
            OrderState::NotStarted => Some(created_at_ns),
            OrderState::Executing { lease_until_ns } => Some(*lease_until_ns),
            OrderState::RetryScheduled { not_before_ns } => Some(*not_before_ns),
            OrderState::Pending { check_at_ns } => Some(*check_at_ns),
            OrderState::Authorized
            | OrderState::DeadLettered { .. }
            | OrderState::Succeeded
            | OrderState::Failed
            | OrderState::Canceled => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefundState {
    /// The seller's funds are held; the PSP refund is under way.
    Pending,
    Succeeded,
    Failed,
}

/// Which seller account a refund draws on: held funds before release, available after.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FundsSource {
    Held,
    Available,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub refund_id: RefundId,
    pub amount_minor: u64,
    /// The share of the platform fee given back with this refund.
    pub fee_share_minor: u64,
    pub source: FundsSource,
    pub state: RefundState,
    /// Claims by the refund worker so far.
    pub attempt: u64,
    /// While pending: when the refund worker should take it (the API call that began it had
    /// until then to settle it). `None` once settled or dead-lettered.
    pub check_at_ns: Option<u64>,
    /// Set while the refund waits in the dead-letter queue.
    pub dead_at_ns: Option<u64>,
    pub attempts: Vec<AttemptRecord>,
    pub retry_base: u64,
    pub created_at_ns: u64,
    pub updated_at_ns: u64,
}

/// What the buyer must do to complete a charge the PSP left pending.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NextAction {
    /// Open this page (3-D Secure, a hosted payment page), then come back.
    RedirectToUrl { url: String },
    /// Scan this QR payload with a banking or wallet app.
    ShowQr { payload: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub order_id: OrderId,
    pub seller_id: MerchantId,
    pub amount_minor: u64,
    pub currency: Currency,
    pub state: OrderState,
    /// Claims so far; the current claim's number while executing.
    pub attempt: u64,
    pub psp_charge_id: Option<String>,
    pub authorized_minor: u64,
    pub captured_minor: u64,
    pub fee_minor: u64,
    /// What is still in the seller's held account for this order.
    pub held_minor: u64,
    /// When held funds move to the seller's available balance (set at capture).
    pub release_at_ns: Option<u64>,
    pub released: bool,
    pub refunds: Vec<Refund>,
    pub last_error: Option<OrderError>,
    /// Failed attempts, newest last (at most `ATTEMPTS_KEPT_MAX`).
    pub attempts: Vec<AttemptRecord>,
    /// The attempt count when an operator last re-drove it: the retry budget counts from here.
    pub retry_base: u64,
    /// Provider event ids already applied (newest last, at most `WEBHOOK_EVENTS_PER_ORDER_MAX`).
    pub webhook_events: Vec<String>,
    /// Set while the order is pending at the PSP on the buyer; cleared when it moves on.
    pub next_action: Option<NextAction>,
    pub created_at_ns: u64,
    pub updated_at_ns: u64,
}

impl Order {
    /// Refunded for good.
    pub fn refunded_minor(&self) -> u64 {
        self.refund_sum(|state| state == RefundState::Succeeded)
    }

    /// Refunded or being refunded: what a new refund must stay within, with `captured_minor`.
    pub fn refund_committed_minor(&self) -> u64 {
        self.refund_sum(|state| state != RefundState::Failed)
    }

    pub fn fee_refunded_committed_minor(&self) -> u64 {
        self.refunds
            .iter()
            .filter(|refund| refund.state != RefundState::Failed)
            .map(|refund| refund.fee_share_minor)
            .sum()
    }

    fn refund_sum(&self, include: impl Fn(RefundState) -> bool) -> u64 {
        self.refunds
            .iter()
            .filter(|refund| include(refund.state))
            .map(|refund| refund.amount_minor)
            .sum()
    }

    /// The first rule of the order's own accounting it breaks, if any.
    pub fn inconsistency(&self) -> Option<String> {
        let id = &self.order_id;
        let broken = if self.captured_minor > self.amount_minor {
            "captured more than the amount"
        } else if self.authorized_minor > self.amount_minor {
            "authorized more than the amount"
        } else if self.fee_minor > self.captured_minor {
            "fee above captured"
        } else if self.refund_committed_minor() > self.captured_minor {
            "refunds above captured"
        } else if self.fee_refunded_committed_minor() > self.fee_minor {
            "fee refunds above the fee"
        } else if self.held_minor > self.captured_minor - self.fee_minor {
            "more held than captured net of fees"
        } else if self.refunds.len() > crate::limits::REFUNDS_PER_ORDER_MAX {
            "more refunds than an order may have"
        } else if self.attempts.len() > crate::limits::ATTEMPTS_KEPT_MAX {
            "attempt log over its bound"
        } else if self.webhook_events.len() > crate::limits::WEBHOOK_EVENTS_PER_ORDER_MAX {
            "webhook event log over its bound"
        } else if self.captured_minor > 0 && self.state != OrderState::Succeeded {
            "captured but not succeeded"
        } else {
            return None;
        };
        Some(format!("order {id}: {broken}"))
    }

    /// Checks the order's own accounting. Called on every order a command writes: a broken
    /// rule there is a bug in the command.
    pub fn assert_consistent(&self) {
        if let Some(broken) = self.inconsistency() {
            panic!("{broken}");
        }
    }
}

/// A checkout: one buyer paying one or more sellers, idempotent by `checkout_id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub checkout_id: CheckoutId,
    /// The merchant whose API key created it.
    pub merchant_id: MerchantId,
    pub buyer_id: BuyerId,
    /// `None` for an intent waiting for `ConfirmPayment`.
    pub method: Option<PaymentMethod>,
    pub capture: CaptureMode,
    pub psp: PspName,
    pub risk: RiskRecord,
    /// Digest of the creating request, to tell a retry from a different request under the same id.
    pub request_hash: [u8; 32],
    pub orders: Vec<Order>,
    pub created_at_ns: u64,
    pub updated_at_ns: u64,
}

/// A payment's overall status, derived from its orders.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentStatus {
    RequiresPaymentMethod,
    Processing,
    RequiresCapture,
    Succeeded,
    PartiallySucceeded,
    Failed,
    Canceled,
}

impl PaymentStatus {
    pub fn name(self) -> &'static str {
        match self {
            PaymentStatus::RequiresPaymentMethod => "requires_payment_method",
            PaymentStatus::Processing => "processing",
            PaymentStatus::RequiresCapture => "requires_capture",
            PaymentStatus::Succeeded => "succeeded",
            PaymentStatus::PartiallySucceeded => "partially_succeeded",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Canceled => "canceled",
        }
    }
}

impl Payment {
    pub fn status(&self) -> PaymentStatus {
        let all = |f: &dyn Fn(&OrderState) -> bool| self.orders.iter().all(|o| f(&o.state));
        let any = |f: &dyn Fn(&OrderState) -> bool| self.orders.iter().any(|o| f(&o.state));
        if self.method.is_none() {
            // An intent's orders never start; canceling it cancels them all.
            if all(&|s| *s == OrderState::Canceled) {
                return PaymentStatus::Canceled;
            }
            return PaymentStatus::RequiresPaymentMethod;
        }
        if any(&|s| s.rank() < OrderState::Authorized.rank()) {
            PaymentStatus::Processing
        } else if any(&|s| *s == OrderState::Authorized) {
            PaymentStatus::RequiresCapture
        } else if all(&|s| *s == OrderState::Succeeded) {
            PaymentStatus::Succeeded
        } else if any(&|s| *s == OrderState::Succeeded) {
            PaymentStatus::PartiallySucceeded
        } else if all(&|s| *s == OrderState::Canceled) {
            PaymentStatus::Canceled
        } else {
            PaymentStatus::Failed
        }
    }

    pub fn order(&self, order_id: &OrderId) -> Option<&Order> {
        self.orders.iter().find(|order| &order.order_id == order_id)
    }

    pub fn order_mut(&mut self, order_id: &OrderId) -> Option<&mut Order> {
        self.orders
            .iter_mut()
            .find(|order| &order.order_id == order_id)
    }
}
