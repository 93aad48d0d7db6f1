//! Payments on top of the ledger: merchants and their fees, buyers and their wallets, checkouts
//! with one order per seller, and the order state machine an executor drives through the PSP.
//! Commands here run through the same deterministic `apply` as transfers; each one that moves
//! money posts its ledger transfers in the same command (see `chart` for the accounts).

pub mod chart;
mod command;
mod errors;
mod ids;
mod model;
pub mod outbox;
mod payout;
mod query;
mod signing_secret;
pub mod work;

pub use command::{
    ChargeOutcome, NewBuyer, NewMerchant, NewOrder, NewPayment, NewPayout, PaymentCommand,
    PaymentOutcome, PayoutOutcome, RefundRetry, ScheduleSpec,
};
pub use errors::PaymentError;
pub use ids::{
    ApiKeyId, BuyerId, CheckoutId, InvalidId, MerchantId, OrderId, PayoutId, PspName, RefundId,
};
pub use model::{
    ApiKeyRecord, Buyer, CaptureMode, FeeSchedule, FundsSource, Merchant, NextAction, Order,
    OrderError, OrderState, PartyStatus, Payment, PaymentMethod, PaymentStatus, Refund,
    RefundState, RiskOutcome, RiskRecord,
};
pub use outbox::{
    delivery_id, Delivery, DeliveryAttempt, DeliveryOutcome, DeliveryState, OrderEvent,
    WebhookEndpoint, WebhookSecret,
};
pub use payout::{Payout, PayoutInterval, PayoutSchedule, PayoutState, WorkState};
pub use query::{
    dead_letter, query_payments, PaymentQuery, PaymentQueryResult, ORDERS_DUE_PAGE_MAX,
    PAYMENTS_PAGE_MAX, WORK_PAGE_MAX,
};
pub use signing_secret::{
    SigningSecret, SigningSecretLength, SIGNING_SECRETS_PER_KEY_MAX, SIGNING_SECRET_BYTES_MAX,
    SIGNING_SECRET_BYTES_MIN,
};
pub use work::{AttemptRecord, DeadLetter, IndexEntry, TimedIndex, WorkRef};
