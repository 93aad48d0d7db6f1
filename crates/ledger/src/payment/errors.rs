//! Every refusal a payment command can answer. Codes are stable and snake_case; messages say
//! what to fix.

use crate::errors::TransferError;
use crate::limits::{
    API_KEYS_PER_MERCHANT_MAX, CURRENCIES_PER_PARTY_MAX, DISCARD_REASON_BYTES_MAX, FEE_BPS_MAX,
    HOLD_PERIOD_S_MAX, MERCHANT_NAME_BYTES_MAX, ORDERS_PER_PAYMENT_MAX, ORDER_LEASE_MS_MAX,
    PSP_REFERENCE_BYTES_MAX, REFUNDS_PER_ORDER_MAX, RISK_REASONS_MAX,
};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum PaymentError {
    #[error("payment commands apply on their own: clear `linked` on the command before it")]
    CannotBeLinked,
    #[error(
        "merchant {merchant} exists with different settings; pick a new id or update its fees"
    )]
    MerchantExistsWithDifferentFields { merchant: String },
    #[error("merchant {merchant} not found: create it first")]
    MerchantNotFound { merchant: String },
    #[error("merchant {merchant} is disabled")]
    MerchantDisabled { merchant: String },
    #[error("seller {seller} not found: create the merchant first")]
    SellerNotFound { seller: String },
    #[error("seller {seller} is disabled and cannot be paid")]
    SellerDisabled { seller: String },
    #[error("buyer {buyer} not found: create the buyer first")]
    BuyerNotFound { buyer: String },
    #[error("buyer {buyer} is disabled")]
    BuyerDisabled { buyer: String },
    #[error("buyer {buyer} exists with different wallets; pick a new id")]
    BuyerExistsWithDifferentFields { buyer: String },
    #[error("fee rate {bps} bps is above {FEE_BPS_MAX} (100%)")]
    FeeBpsTooHigh { bps: u32 },
    #[error("hold period {hold_period_s} s is above {HOLD_PERIOD_S_MAX} s")]
    HoldPeriodTooLong { hold_period_s: u32 },
    #[error("{field} is too long or has too many entries (merchant names up to {MERCHANT_NAME_BYTES_MAX} bytes, tokens and PSP ids up to {PSP_REFERENCE_BYTES_MAX}, up to {RISK_REASONS_MAX} risk reasons, up to {CURRENCIES_PER_PARTY_MAX} currencies)")]
    FieldTooLong { field: String },
    #[error("a checkout needs 1 to {ORDERS_PER_PAYMENT_MAX} orders ({orders} given)")]
    OrderCount { orders: usize },
    #[error("order id {order} appears twice in the checkout")]
    DuplicateOrderId { order: String },
    #[error("order id {order} already belongs to another checkout; order ids are unique")]
    OrderIdTaken { order: String },
    #[error("order {order} has amount zero: each order must be positive")]
    AmountMustNotBeZero { order: String },
    #[error("checkout {checkout} exists with a different request; a retry must resend the same body, a new payment needs a new checkout id")]
    CheckoutExistsWithDifferentRequest { checkout: String },
    #[error("payment {checkout} not found")]
    PaymentNotFound { checkout: String },
    #[error("order {order} not found")]
    OrderNotFound { order: String },
    #[error("payment {checkout} already has a payment method")]
    AlreadyConfirmed { checkout: String },
    #[error("payment {checkout} has no payment method yet: confirm it first")]
    NotConfirmed { checkout: String },
    #[error("a wallet payment cannot capture manually: use automatic capture")]
    WalletPaymentsCaptureAutomatically,
    #[error("order {order} is {state} and cannot be claimed now")]
    NotClaimable { order: String, state: String },
    #[error("order {order} is being executed until {lease_until_ns} ns; retry after")]
    LeaseHeld { order: String, lease_until_ns: u64 },
    #[error("lease {lease_ms} ms must be between 1 and {ORDER_LEASE_MS_MAX} ms")]
    LeaseOutOfRange { lease_ms: u64 },
    #[error("order {order} is {state}; {action} is not allowed in that state")]
    InvalidTransition {
        order: String,
        state: String,
        action: String,
    },
    #[error("amount of {requested_minor} minor units is above what is allowed here ({allowed_minor} minor units)")]
    AmountTooLarge {
        requested_minor: u64,
        allowed_minor: u64,
    },
    #[error("order {order} can be refunded at most {refundable_minor} more minor units")]
    RefundExceedsCaptured {
        order: String,
        refundable_minor: u64,
    },
    #[error("refund {refund} exists with a different amount or order; use a new refund id")]
    RefundExistsWithDifferentFields { refund: String },
    #[error("refund {refund} not found on order {order}")]
    RefundNotFound { refund: String, order: String },
    #[error("order {order} has {REFUNDS_PER_ORDER_MAX} refunds already")]
    TooManyRefunds { order: String },
    #[error("buyer {buyer} has no {currency} wallet")]
    WalletNotFound { buyer: String, currency: String },
    #[error("seller {seller} lacks the funds for this refund (already paid out?)")]
    InsufficientSellerFunds { seller: String },
    #[error(
        "merchant {merchant} has {API_KEYS_PER_MERCHANT_MAX} API keys: revoke and remove one first"
    )]
    TooManyApiKeys { merchant: String },
    #[error("API key {key} exists with a different secret")]
    ApiKeyExists { key: String },
    #[error("API key {key} not found")]
    ApiKeyNotFound { key: String },
    #[error("API key {key} is revoked: create a new key instead")]
    ApiKeyRevoked { key: String },
    /// A ledger transfer a payment posts was refused. Payments check what they can beforehand;
    /// this reports anything else instead of applying half a command.
    #[error(
        "return_url must be an absolute http:// or https:// URL the buyer can be sent back to"
    )]
    ReturnUrlInvalid,
    #[error("the ledger refused a payment transfer: {code}")]
    TransferRefused { code: String },
    #[error(
        "payout id {payout} is reserved for scheduled payouts (prefix po_sched_); pick another"
    )]
    PayoutIdReserved { payout: String },
    #[error("payout {payout} not found")]
    PayoutNotFound { payout: String },
    #[error("payout {payout} exists with a different merchant, currency, amount or PSP; use a new payout id")]
    PayoutExistsWithDifferentFields { payout: String },
    #[error("merchant {merchant} has {available_minor} minor units of {currency} available; a payout must be positive and at most that")]
    PayoutExceedsAvailable {
        merchant: String,
        currency: String,
        available_minor: u64,
    },
    #[error("payout {payout} is {state}; {action} is not allowed in that state")]
    PayoutInvalidTransition {
        payout: String,
        state: String,
        action: String,
    },
    #[error(
        "payout {payout} is held by a worker until {lease_until_ns} ns or not due; retry after"
    )]
    PayoutNotClaimable { payout: String, lease_until_ns: u64 },
    #[error("merchant {merchant} has no {currency} payout schedule")]
    ScheduleNotFound { merchant: String, currency: String },
    #[error("{work} is not in the dead-letter queue")]
    NotDeadLettered { work: String },
    #[error("delivery {delivery} not found")]
    DeliveryNotFound { delivery: String },
    #[error("delivery {delivery} is held by a gateway or not due until {until_ns} ns")]
    DeliveryNotClaimable { delivery: String, until_ns: u64 },
    #[error("webhook endpoint invalid: {reason}")]
    EndpointInvalid { reason: String },
    #[error("webhook endpoint {endpoint} not found")]
    EndpointNotFound { endpoint: String },
    #[error("a discard needs a reason of 1 to {DISCARD_REASON_BYTES_MAX} bytes")]
    DiscardReasonInvalid,
    /// A bug in the ledger stopped this command; nothing of it was applied.
    #[error("internal error: the ledger hit a bug applying this payment command and applied nothing of it; report it with the request")]
    Internal,
    #[error("payment {checkout} is {status}; {action} is not allowed in that state")]
    PaymentInvalidTransition {
        checkout: String,
        status: String,
        action: String,
    },
}

impl PaymentError {
    pub fn code(&self) -> &'static str {
        use PaymentError::*;
        match self {
            CannotBeLinked => "cannot_be_linked",
            MerchantExistsWithDifferentFields { .. } => "merchant_exists_with_different_fields",
            MerchantNotFound { .. } => "merchant_not_found",
            MerchantDisabled { .. } => "merchant_disabled",
            SellerNotFound { .. } => "seller_not_found",
            SellerDisabled { .. } => "seller_disabled",
            BuyerNotFound { .. } => "buyer_not_found",
            BuyerDisabled { .. } => "buyer_disabled",
            BuyerExistsWithDifferentFields { .. } => "buyer_exists_with_different_fields",
            FeeBpsTooHigh { .. } => "fee_bps_too_high",
            HoldPeriodTooLong { .. } => "hold_period_too_long",
            FieldTooLong { .. } => "field_too_long",
            OrderCount { .. } => "order_count",
            DuplicateOrderId { .. } => "duplicate_order_id",
            OrderIdTaken { .. } => "order_id_taken",
            AmountMustNotBeZero { .. } => "amount_must_not_be_zero",
            CheckoutExistsWithDifferentRequest { .. } => "checkout_exists_with_different_request",
            PaymentNotFound { .. } => "payment_not_found",
            OrderNotFound { .. } => "order_not_found",
            AlreadyConfirmed { .. } => "already_confirmed",
            NotConfirmed { .. } => "not_confirmed",
            WalletPaymentsCaptureAutomatically => "wallet_payments_capture_automatically",
            NotClaimable { .. } => "not_claimable",
            LeaseHeld { .. } => "lease_held",
            LeaseOutOfRange { .. } => "lease_out_of_range",
            InvalidTransition { .. } => "invalid_transition",
            AmountTooLarge { .. } => "amount_too_large",
            RefundExceedsCaptured { .. } => "refund_exceeds_captured",
            RefundExistsWithDifferentFields { .. } => "refund_exists_with_different_fields",
            RefundNotFound { .. } => "refund_not_found",
            TooManyRefunds { .. } => "too_many_refunds",
            WalletNotFound { .. } => "wallet_not_found",
            InsufficientSellerFunds { .. } => "insufficient_seller_funds",
            TooManyApiKeys { .. } => "too_many_api_keys",
            ApiKeyExists { .. } => "api_key_exists",
            ApiKeyNotFound { .. } => "api_key_not_found",
            ApiKeyRevoked { .. } => "api_key_revoked",
            TransferRefused { .. } => "transfer_refused",
            ReturnUrlInvalid => "return_url_invalid",
            PayoutNotFound { .. } => "payout_not_found",
            PayoutIdReserved { .. } => "payout_id_reserved",
            PayoutExistsWithDifferentFields { .. } => "payout_exists_with_different_fields",
            PayoutExceedsAvailable { .. } => "payout_exceeds_available",
            PayoutInvalidTransition { .. } => "payout_invalid_transition",
            PayoutNotClaimable { .. } => "payout_not_claimable",
            ScheduleNotFound { .. } => "schedule_not_found",
            NotDeadLettered { .. } => "not_dead_lettered",
            DiscardReasonInvalid => "discard_reason_invalid",
            DeliveryNotFound { .. } => "delivery_not_found",
            DeliveryNotClaimable { .. } => "delivery_not_claimable",
            EndpointInvalid { .. } => "endpoint_invalid",
            EndpointNotFound { .. } => "endpoint_not_found",
            Internal => "internal_error",
            PaymentInvalidTransition { .. } => "payment_invalid_transition",
        }
    }

    pub(crate) fn transfer_refused(error: TransferError) -> Self {
        PaymentError::TransferRefused {
            code: error.code().to_string(),
        }
    }
}
