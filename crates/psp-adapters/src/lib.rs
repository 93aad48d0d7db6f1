//! `tally-psp`: the payment service provider boundary.
//!
//! - [`Psp`]: what the gateway needs from any PSP: charge or authorize under an idempotency key,
//!   capture, cancel, refund, look a charge up by its idempotency key (for a sweeper whose
//!   response was lost), and verify a webhook.
//! - [`SimPsp`]: the adapter for [`sim`], `tally-psp-sim`, an HTTP PSP that behaves like a real
//!   one (idempotency keys, declines by test token, authorize/capture, refunds, asynchronous
//!   completion by signed webhook, fault injection) and keeps its own record of every money
//!   movement, so a test can prove nothing was charged twice.

mod client;
mod error;
mod model;
pub mod sim;
pub mod webhook;

pub use client::{SimPsp, SimPspConfig};
pub use error::{ErrorKind, PspError, WebhookError};
pub use model::{
    Charge, ChargeRequest, ChargeStatus, NextAction, PaymentMethod, Payout, PayoutRequest,
    PayoutStatus, Refund, RefundRequest, SimLedgerRow, WebhookEvent,
};

/// A payment service provider. Every mutating call carries an idempotency key: resending it
/// (after a timeout, a crash, a lost response) never moves money twice.
#[async_trait::async_trait]
pub trait Psp: Send + Sync {
    async fn charge(&self, request: ChargeRequest) -> Result<Charge, PspError>;
    async fn capture(
        &self,
        charge_id: &str,
        amount_minor: u64,
        idempotency_key: &str,
    ) -> Result<Charge, PspError>;
    async fn cancel(&self, charge_id: &str, idempotency_key: &str) -> Result<Charge, PspError>;
    async fn refund(&self, request: RefundRequest) -> Result<Refund, PspError>;
    /// The charge made under `idempotency_key`, if any.
    async fn charge_status(&self, idempotency_key: &str) -> Result<Option<Charge>, PspError>;
    /// Sends a seller's money to its bank under `request.idempotency_key` (the payout id).
    async fn payout(&self, request: PayoutRequest) -> Result<Payout, PspError>;
    /// The payout made under `idempotency_key`, if any.
    async fn payout_status(&self, idempotency_key: &str) -> Result<Option<Payout>, PspError>;
    /// Checks a webhook's signature over the raw body against every active secret and parses
    /// it; fails closed.
    fn verify_webhook(
        &self,
        raw_body: &[u8],
        signature_header: &str,
        now_unix_s: u64,
    ) -> Result<WebhookEvent, WebhookError>;
}
