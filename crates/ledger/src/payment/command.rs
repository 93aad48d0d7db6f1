//! The payment commands the gateway submits through Raft, and what they answer.

use super::ids::{ApiKeyId, BuyerId, CheckoutId, MerchantId, OrderId, PspName, RefundId};
use super::model::{
    Buyer, CaptureMode, FeeSchedule, Merchant, NextAction, Payment, PaymentMethod, RiskRecord,
};
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
    /// Retries ran out: the order fails and is left for an operator.
    Exhausted { code: String, message: String },
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
            | PaymentOutcome::Payment { changed: true, .. } => "ok",
            PaymentOutcome::Merchant { created: false, .. }
            | PaymentOutcome::Buyer { created: false, .. } => "exists",
            PaymentOutcome::Payment { changed: false, .. } => "unchanged",
            PaymentOutcome::Claimed { .. } => "claimed",
        }
    }
}
