//! What crosses the PSP boundary: charge and refund requests and answers, and webhook events.
//! The simulator speaks these as JSON, so the adapter and the simulator share one definition.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PaymentMethod {
    /// A card by the PSP's token; card numbers never leave the PSP.
    Card { token: String },
    /// A QR payment, completed asynchronously by the buyer's app.
    Qr,
    /// The PSP's hosted payment page: the buyer is sent to a page (registration token in its
    /// URL), enters the card there, and is redirected back to `return_url`; a signed webhook
    /// completes the charge.
    Hosted,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeRequest {
    /// The PSP idempotency key; the gateway passes the payment order id.
    pub idempotency_key: String,
    pub amount_minor: u64,
    /// ISO 4217 code.
    pub currency: String,
    pub method: PaymentMethod,
    /// `false` authorizes only; capture follows separately.
    pub capture: bool,
    pub return_url: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NextAction {
    /// 3-D-Secure-like: the buyer completes the charge on the PSP's page.
    RedirectToUrl {
        url: String,
    },
    ShowQr {
        payload: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ChargeStatus {
    Authorized,
    Captured,
    Pending { next_action: NextAction },
    Declined { code: String, message: String },
    Canceled,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Charge {
    pub charge_id: String,
    pub idempotency_key: String,
    pub amount_minor: u64,
    pub currency: String,
    pub status: ChargeStatus,
    pub captured_minor: u64,
    pub refunded_minor: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRequest {
    pub charge_id: String,
    pub amount_minor: u64,
    /// The gateway passes the refund id.
    pub idempotency_key: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub refund_id: String,
    pub charge_id: String,
    pub amount_minor: u64,
    pub idempotency_key: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEvent {
    /// Unique per event; the receiver may dedupe by it.
    pub event_id: String,
    /// `charge.succeeded`, `charge.authorized`, `charge.failed`.
    pub kind: String,
    pub created_unix_s: u64,
    /// The charge's idempotency key (the payment order id).
    pub idempotency_key: String,
    pub charge: Charge,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayoutRequest {
    /// The gateway passes the payout id.
    pub idempotency_key: String,
    pub amount_minor: u64,
    pub currency: String,
    /// The seller's bank account at the PSP (the gateway passes the merchant id).
    pub destination: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum PayoutStatus {
    /// Accepted; the bank transfer is under way.
    InTransit,
    Paid,
    /// Refused for good (closed account); nothing left the PSP.
    Failed {
        code: String,
        message: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payout {
    pub payout_id: String,
    pub idempotency_key: String,
    pub amount_minor: u64,
    pub currency: String,
    pub destination: String,
    #[serde(flatten)]
    pub status: PayoutStatus,
}

/// One money movement in the simulator's own records (`GET /v1/sim/ledger`), so a test can
/// prove nothing was charged, captured or refunded twice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimLedgerRow {
    /// `charge` (money taken at once), `authorization`, `capture`, `refund`, `payout` (the
    /// charge id field then holds the payout id).
    pub kind: String,
    pub charge_id: String,
    pub idempotency_key: String,
    pub amount_minor: u64,
    pub currency: String,
}
