//! The payment commands the gateway submits through Raft, and what they answer.

use super::ids::{ApiKeyId, BuyerId, CheckoutId, MerchantId, OrderId, PayoutId, PspName, RefundId};
use super::model::{
    Buyer, CaptureMode, FeeSchedule, Merchant, NextAction, Payment, PaymentMethod, RiskRecord,
};
use super::outbox::{Delivery, DeliveryAttempt, DeliveryOutcome, WebhookEndpoint};
use super::payout::{Payout, PayoutInterval};
use super::work::WorkRef;
use crate::money::Currency;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewMerchant {
    pub id: MerchantId,
    pub name: String,
    pub fees: FeeSchedule,
    pub hold_period_s: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewBuyer {
    pub id: BuyerId,
    pub wallet_currencies: Vec<Currency>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewOrder {
    pub order_id: OrderId,
    pub seller_id: MerchantId,
    pub amount_minor: u64,
    pub currency: Currency,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewPayment {
    pub checkout_id: CheckoutId,
    pub merchant_id: MerchantId,
    pub buyer_id: BuyerId,
    /// `None` creates an intent, confirmed later with a method.
    pub method: Option<PaymentMethod>,
    pub capture: CaptureMode,
    pub psp: PspName,
    pub risk: RiskRecord,
    /// The gateway's digest of the client request: a retry carries the same one.
    pub request_hash: [u8; 32],
    pub orders: Vec<NewOrder>,
}

/// What the PSP said about an order's charge (from the executor's call, a status check or a
/// webhook). Recording an outcome only ever moves an order forward.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChargeOutcome {
    /// Accepted, to be completed asynchronously (3-D Secure, QR) after the buyer's action.
    Pending {
        psp_charge_id: String,
        next_action: Option<NextAction>,
    },
    Authorized {
        psp_charge_id: String,
        amount_minor: u64,
    },
    Captured {
        psp_charge_id: String,
        amount_minor: u64,
    },
    /// A terminal refusal (declined card, invalid request): the order fails.
    Declined { code: String, message: String },
    /// A timeout or other retryable error of the claim `attempt`; the next attempt may start at
    /// `retry_at_ns`. Ignored when the attempt is no longer the current one.
    Retryable {
        attempt: u64,
        code: String,
        message: String,
        retry_at_ns: u64,
    },
    /// Retries ran out: the order goes to the dead-letter queue for an operator.
    Exhausted { code: String, message: String },
    /// The PSP refused the request itself (malformed, unsupported) in a way no retry fixes and
    /// that is not a buyer's decline: straight to the dead-letter queue.
    Poison { code: String, message: String },
}

/// What a failed refund attempt (claim `attempt`) leads to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefundRetry {
    Retryable {
        attempt: u64,
        code: String,
        message: String,
        retry_at_ns: u64,
    },
    Exhausted {
        attempt: u64,
        code: String,
        message: String,
    },
    Poison {
        attempt: u64,
        code: String,
        message: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewPayout {
    pub payout_id: PayoutId,
    pub merchant_id: MerchantId,
    pub currency: crate::money::Currency,
    /// `None` pays out the whole available balance.
    pub amount_minor: Option<u64>,
    pub psp: PspName,
}

/// What the PSP said about a payout (from the worker's call, a status check or a webhook).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PayoutOutcome {
    /// Accepted; the bank transfer is under way. The worker checks its status at
    /// `check_at_ns` unless a webhook settles it first.
    InTransit {
        psp_payout_id: String,
        check_at_ns: u64,
    },
    /// Arrived: the held funds are posted.
    Paid { psp_payout_id: String },
    /// Refused for good (closed account, say): the held funds go back to available.
    Failed { code: String, message: String },
    /// A retryable error of claim `attempt`; the next attempt may start at `retry_at_ns`.
    Retryable {
        attempt: u64,
        code: String,
        message: String,
        retry_at_ns: u64,
    },
    /// Claim `attempt` found its retries used up: dead-lettered, funds stay held until
    /// re-driven or discarded.
    Exhausted {
        attempt: u64,
        code: String,
        message: String,
    },
    /// Claim `attempt` met an error no retry can help: dead-lettered at once.
    Poison {
        attempt: u64,
        code: String,
        message: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentCommand {
    CreateMerchant(NewMerchant),
    UpdateMerchantFees {
        merchant_id: MerchantId,
        fees: FeeSchedule,
        hold_period_s: u32,
    },
    AddApiKey {
        merchant_id: MerchantId,
        key_id: ApiKeyId,
        secret_hash: [u8; 32],
        signing_secret: super::SigningSecret,
    },
    /// Replaces a key's signing secret; `keep_previous` keeps the old one valid too until the
    /// next rotation, so clients can switch without refusals.
    RotateSigningSecret {
        merchant_id: MerchantId,
        key_id: ApiKeyId,
        signing_secret: super::SigningSecret,
        keep_previous: bool,
    },
    RevokeApiKey {
        merchant_id: MerchantId,
        key_id: ApiKeyId,
    },
    CreateBuyer(NewBuyer),
    CreatePayment(NewPayment),
    /// Gives an intent its method; a wallet payment then settles at once.
    ConfirmPayment {
        checkout_id: CheckoutId,
        method: PaymentMethod,
    },
    /// An executor claims an order for `lease_ms` before calling the PSP.
    ClaimOrder {
        order_id: OrderId,
        lease_ms: u64,
    },
    RecordChargeOutcome {
        order_id: OrderId,
        outcome: ChargeOutcome,
        /// The provider's webhook event id when the outcome came by webhook: an event already
        /// applied to the order is answered `unchanged`.
        event_id: Option<String>,
    },
    /// Records a capture the PSP confirmed for an authorized order (full or partial).
    RecordCapture {
        order_id: OrderId,
        amount_minor: u64,
    },
    /// Cancels an order that never reached the PSP, or one whose authorization the PSP canceled.
    CancelOrder {
        order_id: OrderId,
    },
    /// Holds the seller's funds for a refund before the PSP is asked to refund.
    BeginRefund {
        order_id: OrderId,
        refund_id: RefundId,
        amount_minor: u64,
        /// How long the caller has to settle it before the refund worker takes over.
        check_after_ms: u64,
    },
    /// The refund worker claims a pending refund whose check time came, for `lease_ms`.
    ClaimRefund {
        order_id: OrderId,
        refund_id: RefundId,
        lease_ms: u64,
    },
    /// A failed attempt of the refund worker: retry later, or dead-letter.
    RecordRefundRetry {
        order_id: OrderId,
        refund_id: RefundId,
        outcome: RefundRetry,
    },
    /// Settles a begun refund with the PSP's answer: posts the held funds or releases them.
    CompleteRefund {
        order_id: OrderId,
        refund_id: RefundId,
        succeeded: bool,
    },
    /// The seller delivered: held funds move to the seller's available balance now.
    FulfillOrder {
        order_id: OrderId,
    },
    /// Holds the seller's available funds and queues the payout for the payout worker.
    CreatePayout(NewPayout),
    /// A payout worker claims a due payout for `lease_ms` before calling the PSP.
    ClaimPayout {
        payout_id: PayoutId,
        lease_ms: u64,
    },
    RecordPayoutOutcome {
        payout_id: PayoutId,
        outcome: PayoutOutcome,
    },
    /// Cancels a payout that never reached the PSP; the held funds go back to available.
    CancelPayout {
        payout_id: PayoutId,
    },
    /// Sets (or with `None` removes) the merchant's payout schedule for `currency`.
    SetPayoutSchedule {
        merchant_id: MerchantId,
        currency: crate::money::Currency,
        schedule: Option<ScheduleSpec>,
    },
    /// Runs a due schedule: pays out the available balance if it reaches the minimum, and sets
    /// the next run. Not due yet: unchanged (so racing workers create one payout).
    RunPayoutSchedule {
        merchant_id: MerchantId,
        currency: crate::money::Currency,
    },
    /// Registers where the merchant's payment events go (one secret, at creation).
    AddWebhookEndpoint {
        merchant_id: MerchantId,
        endpoint: WebhookEndpoint,
    },
    /// Signs with `secret` from now on; `keep_previous` keeps the newest old one signing too.
    RotateWebhookSecret {
        merchant_id: MerchantId,
        endpoint_id: String,
        secret: super::WebhookSecret,
        keep_previous: bool,
    },
    RemoveWebhookEndpoint {
        merchant_id: MerchantId,
        endpoint_id: String,
    },
    /// A gateway claims a due delivery for `lease_ms` before POSTing it.
    ClaimDelivery {
        delivery_id: String,
        lease_ms: u64,
    },
    /// Records one delivery attempt of the current claim and what follows from it.
    RecordDelivery {
        delivery_id: String,
        attempt: DeliveryAttempt,
        outcome: DeliveryOutcome,
    },
    /// Puts dead-lettered work back in its retry queue, due now (a delivery: also a delivered
    /// one, to send it again).
    RedriveWork {
        work: WorkRef,
    },
    /// Gives up on dead-lettered work for good: a charge fails, a payout fails and its funds
    /// go back to available.
    DiscardWork {
        work: WorkRef,
        reason: String,
    },
}

/// A payout schedule as a client sets it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleSpec {
    pub interval: PayoutInterval,
    pub minimum_minor: u64,
    pub psp: PspName,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentOutcome {
    Merchant {
        merchant: Merchant,
        created: bool,
    },
    Buyer {
        buyer: Buyer,
        created: bool,
    },
    /// The payment after the command; `changed` is false for a retry or a stale event.
    Payment {
        payment: Payment,
        changed: bool,
    },
    Payout {
        payout: Payout,
        changed: bool,
    },
    /// The caller holds the payout for `attempt` until `lease_until_ns`.
    PayoutClaimed {
        attempt: u64,
        lease_until_ns: u64,
        payout: Payout,
    },
    Delivery {
        delivery: Delivery,
        changed: bool,
    },
    DeliveryClaimed {
        attempt: u64,
        delivery: Delivery,
    },
    /// A schedule ran (`payout` is the one it created, if the balance reached the minimum) or
    /// was not due (`ran` false); `next_run_at_ns` is its next run either way.
    ScheduleRan {
        ran: bool,
        payout: Option<Payout>,
        next_run_at_ns: u64,
    },
    /// The caller holds `order_id` for `attempt` until `lease_until_ns`.
    Claimed {
        attempt: u64,
        lease_until_ns: u64,
        payment: Payment,
    },
}

impl PaymentOutcome {
    pub fn code(&self) -> &'static str {
        match self {
            PaymentOutcome::Merchant { created: true, .. }
            | PaymentOutcome::Buyer { created: true, .. }
            | PaymentOutcome::Payment { changed: true, .. }
            | PaymentOutcome::Payout { changed: true, .. }
            | PaymentOutcome::Delivery { changed: true, .. }
            | PaymentOutcome::ScheduleRan { ran: true, .. } => "ok",
            PaymentOutcome::Merchant { created: false, .. }
            | PaymentOutcome::Buyer { created: false, .. } => "exists",
            PaymentOutcome::Payment { changed: false, .. }
            | PaymentOutcome::Payout { changed: false, .. }
            | PaymentOutcome::Delivery { changed: false, .. }
            | PaymentOutcome::ScheduleRan { ran: false, .. } => "unchanged",
            PaymentOutcome::Claimed { .. }
            | PaymentOutcome::PayoutClaimed { .. }
            | PaymentOutcome::DeliveryClaimed { .. } => "claimed",
        }
    }
}
