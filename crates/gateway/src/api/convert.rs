//! The one place where the public payments protobuf types and the `tally-ledger` payment types
//! meet: parsing with stable error codes on the way in, formatting on the way out.

use super::error::ApiError;
use std::collections::BTreeMap;
use tally_ledger::payment::{
    chart, Buyer, CaptureMode, DeadLetter, Delivery, FeeSchedule, Merchant, NextAction, Order,
    OrderError, OrderState, PartyStatus, Payment, PaymentMethod, Payout, RefundState, RiskOutcome,
    WebhookEndpoint, WorkState,
};
use tally_ledger::{format_amount, parse_amount, Currency, ZeroAmount};
use tally_proto::payments as pb;

/// Parses one of the ledger's string ids, naming the field in the error.
pub fn id<T>(field: &str, text: &str) -> Result<T, ApiError>
where
    T: TryFrom<String, Error = tally_ledger::payment::InvalidId>,
{
    T::try_from(text.to_string()).map_err(|error| {
        ApiError::invalid(
            error.code(),
            format!("{field}: {error} (ids are 1 to 64 of A-Z a-z 0-9 _ - . :)"),
        )
    })
}

pub fn currency(field: &str, text: &str) -> Result<Currency, ApiError> {
    text.parse::<Currency>().map_err(|error| {
        ApiError::invalid(
            "currency_unknown",
            format!("{field}: {error}; use an ISO 4217 code such as \"USD\""),
        )
    })
}

/// A positive decimal amount in `currency`, as minor units.
pub fn amount(field: &str, text: &str, currency: Currency) -> Result<u64, ApiError> {
    parse_amount(text, currency, ZeroAmount::Refused)
        .map_err(|error| ApiError::invalid(error.code(), format!("{field}: {error}")))
}

pub fn method_from_pb(
    method: Option<&pb::PaymentMethod>,
) -> Result<Option<PaymentMethod>, ApiError> {
    use pb::payment_method::Method;
    match method.and_then(|m| m.method.as_ref()) {
        None => Ok(None),
        Some(Method::CardToken(token)) if token.is_empty() => Err(ApiError::invalid(
            "card_token_missing",
            "payment_method.card_token is empty: pass the PSP's token for the card",
        )),
        Some(Method::CardToken(token)) => Ok(Some(PaymentMethod::Card {
            token: token.clone(),
        })),
        Some(Method::Wallet(_)) => Ok(Some(PaymentMethod::Wallet)),
        Some(Method::Qr(_)) => Ok(Some(PaymentMethod::Qr)),
        Some(Method::Hosted(hosted)) => Ok(Some(PaymentMethod::Hosted {
            return_url: hosted.return_url.clone(),
        })),
    }
}

pub fn capture_from_pb(value: i32) -> Result<CaptureMode, ApiError> {
    match pb::CaptureMethod::try_from(value) {
        Ok(pb::CaptureMethod::Unspecified | pb::CaptureMethod::Automatic) => {
            Ok(CaptureMode::Automatic)
        }
        Ok(pb::CaptureMethod::Manual) => Ok(CaptureMode::Manual),
        Err(_) => Err(ApiError::invalid(
            "enum_unknown",
            format!("capture_method {value} is unknown: use AUTOMATIC or MANUAL"),
        )),
    }
}

fn capture_to_pb(mode: CaptureMode) -> i32 {
    match mode {
        CaptureMode::Automatic => pb::CaptureMethod::Automatic as i32,
        CaptureMode::Manual => pb::CaptureMethod::Manual as i32,
    }
}

pub fn method_name(method: Option<&PaymentMethod>) -> &'static str {
    match method {
        None => "",
        Some(PaymentMethod::Card { .. }) => "card",
        Some(PaymentMethod::Wallet) => "wallet",
        Some(PaymentMethod::Qr) => "qr",
        Some(PaymentMethod::Hosted { .. }) => "hosted",
    }
}

fn risk_name(outcome: RiskOutcome) -> &'static str {
    match outcome {
        RiskOutcome::Approve => "approve",
        RiskOutcome::Review => "review",
        RiskOutcome::Decline => "decline",
    }
}

pub fn payment_to_pb(payment: &Payment) -> pb::Payment {
    pb::Payment {
        checkout_id: payment.checkout_id.to_string(),
        merchant_id: payment.merchant_id.to_string(),
        buyer_id: payment.buyer_id.to_string(),
        status: payment.status().name().to_string(),
        payment_method: method_name(payment.method.as_ref()).to_string(),
        capture_method: capture_to_pb(payment.capture),
        risk: Some(pb::RiskDecision {
            outcome: risk_name(payment.risk.outcome).to_string(),
            flagged: payment.risk.flagged,
            reasons: payment.risk.reasons.clone(),
        }),
        orders: payment
            .orders
            .iter()
            .map(|order| order_to_pb(payment, order))
            .collect(),
        created_at_unix_ns: payment.created_at_ns,
        updated_at_unix_ns: payment.updated_at_ns,
    }
}

pub fn order_to_pb(payment: &Payment, order: &Order) -> pb::PaymentOrder {
    let money = |minor: u64| format_amount(minor, order.currency);
    let refunded = order.refunded_minor();
    pb::PaymentOrder {
        order_id: order.order_id.to_string(),
        checkout_id: payment.checkout_id.to_string(),
        seller_id: order.seller_id.to_string(),
        amount: money(order.amount_minor),
        currency: order.currency.code().to_string(),
        state: order.state.name().to_string(),
        attempt: order.attempt,
        psp_charge_id: order.psp_charge_id.clone().unwrap_or_default(),
        authorized: money(order.authorized_minor),
        captured: money(order.captured_minor),
        fee: money(order.fee_minor),
        refunded: money(refunded),
        held: money(if order.released { 0 } else { order.held_minor }),
        refunds: order
            .refunds
            .iter()
            .map(|refund| pb::Refund {
                refund_id: refund.refund_id.to_string(),
                amount: money(refund.amount_minor),
                state: match refund.state {
                    RefundState::Pending => "pending",
                    RefundState::Succeeded => "succeeded",
                    RefundState::Failed => "failed",
                }
                .to_string(),
            })
            .collect(),
        last_error_code: error_code(&order.last_error),
        last_error_message: error_message(&order.last_error),
        updated_at_unix_ns: order.updated_at_ns,
        next_action_url: match &order.next_action {
            Some(NextAction::RedirectToUrl { url }) => url.clone(),
            _ => String::new(),
        },
        qr_payload: match &order.next_action {
            Some(NextAction::ShowQr { payload }) => payload.clone(),
            _ => String::new(),
        },
    }
}

/// Whether an order still waits for the PSP or an executor (used by clients that poll).
pub fn order_in_flight(order: &Order) -> bool {
    order.state.rank() < OrderState::Authorized.rank()
}

pub fn fees_from_pb(fees: Option<&pb::FeeSchedule>) -> Result<FeeSchedule, ApiError> {
    let Some(fees) = fees else {
        return Ok(FeeSchedule {
            bps: 0,
            fixed_minor: BTreeMap::new(),
        });
    };
    let mut fixed_minor = BTreeMap::new();
    for (code, text) in &fees.fixed {
        let currency = currency("fees.fixed", code)?;
        let minor = parse_amount(text, currency, ZeroAmount::Allowed)
            .map_err(|error| ApiError::invalid(error.code(), format!("fees.fixed: {error}")))?;
        fixed_minor.insert(currency, minor);
    }
    Ok(FeeSchedule {
        bps: fees.bps,
        fixed_minor,
    })
}

fn fees_to_pb(fees: &FeeSchedule) -> pb::FeeSchedule {
    pb::FeeSchedule {
        bps: fees.bps,
        fixed: fees
            .fixed_minor
            .iter()
            .map(|(currency, minor)| {
                (
                    currency.code().to_string(),
                    format_amount(*minor, *currency),
                )
            })
            .collect(),
    }
}

pub fn merchant_to_pb(merchant: &Merchant) -> pb::Merchant {
    pb::Merchant {
        merchant_id: merchant.id.to_string(),
        name: merchant.name.clone(),
        status: match merchant.status {
            PartyStatus::Active => "active",
            PartyStatus::Disabled => "disabled",
        }
        .to_string(),
        fees: Some(fees_to_pb(&merchant.fees)),
        hold_period_s: merchant.hold_period_s,
        api_keys: merchant
            .api_keys
            .iter()
            .map(|key| pb::ApiKey {
                key_id: key.key_id.to_string(),
                revoked: key.revoked_at_ns.is_some(),
                created_at_unix_ns: key.created_at_ns,
            })
            .collect(),
    }
}

pub fn buyer_to_pb(buyer: &Buyer) -> pb::Buyer {
    pb::Buyer {
        buyer_id: buyer.id.to_string(),
        wallet_currencies: buyer
            .wallet_currencies
            .iter()
            .map(|c| c.code().to_string())
            .collect(),
        wallet_accounts: buyer
            .wallet_currencies
            .iter()
            .map(|c| {
                (
                    c.code().to_string(),
                    chart::buyer_wallet(&buyer.id, *c).0.to_string(),
                )
            })
            .collect(),
    }
}

pub fn payout_to_pb(payout: &Payout) -> pb::Payout {
    pb::Payout {
        payout_id: payout.payout_id.to_string(),
        merchant_id: payout.merchant_id.to_string(),
        currency: payout.currency.code().to_string(),
        amount: format_amount(payout.amount_minor, payout.currency),
        status: payout.state.name().to_string(),
        dead_lettered: matches!(payout.work, WorkState::Dead { .. }),
        attempt: payout.attempt,
        psp_payout_id: payout.psp_payout_id.clone().unwrap_or_default(),
        last_error_code: error_code(&payout.last_error),
        last_error_message: error_message(&payout.last_error),
        scheduled: payout.scheduled,
        created_at_unix_ns: payout.created_at_ns,
        updated_at_unix_ns: payout.updated_at_ns,
    }
}

pub fn schedules_to_pb(merchant: &Merchant) -> pb::PayoutSchedules {
    pb::PayoutSchedules {
        merchant_id: merchant.id.to_string(),
        schedules: merchant
            .payout_schedules
            .iter()
            .map(|schedule| pb::PayoutSchedule {
                currency: schedule.currency.code().to_string(),
                interval: schedule.interval.name(),
                minimum_amount: format_amount(schedule.minimum_minor, schedule.currency),
                next_run_unix_ns: schedule.next_run_at_ns,
            })
            .collect(),
    }
}

pub fn dead_letter_to_pb(letter: &DeadLetter) -> pb::DeadLetter {
    let amount = letter
        .currency
        .parse::<Currency>()
        .map(|currency| format_amount(letter.amount_minor, currency))
        .unwrap_or_else(|_| letter.amount_minor.to_string());
    pb::DeadLetter {
        work: letter.work.to_string(),
        kind: letter.work.kind().to_string(),
        dead_at_unix_ns: letter.dead_at_ns,
        attempt: letter.attempt,
        last_error_code: error_code(&letter.last_error),
        last_error_message: error_message(&letter.last_error),
        history: letter
            .history
            .iter()
            .map(|attempt| pb::FailedAttempt {
                attempt: attempt.attempt,
                at_unix_ns: attempt.at_ns,
                code: attempt.code.clone(),
                message: attempt.message.clone(),
            })
            .collect(),
        merchant_id: letter.merchant_id.clone(),
        amount,
        currency: letter.currency.clone(),
    }
}

/// An endpoint as the API shows it; its secret only when just created or rotated.
pub fn endpoint_to_pb(endpoint: &WebhookEndpoint, secret: Option<&String>) -> pb::WebhookEndpoint {
    pb::WebhookEndpoint {
        endpoint_id: endpoint.endpoint_id.clone(),
        url: endpoint.url.clone(),
        event_types: endpoint.event_types.clone(),
        secret: secret.cloned().unwrap_or_default(),
        active_secrets: u32::try_from(endpoint.secrets.len()).unwrap_or(u32::MAX),
    }
}

pub fn delivery_to_pb(delivery: &Delivery) -> pb::WebhookDelivery {
    pb::WebhookDelivery {
        event_id: delivery.event.event_id.clone(),
        endpoint_id: delivery.endpoint_id.clone(),
        event_type: delivery.event.kind.clone(),
        order_id: delivery.event.order_id.to_string(),
        state: delivery.state.name().to_string(),
        dead_lettered: matches!(delivery.work, WorkState::Dead { .. }),
        attempts: delivery
            .attempts
            .iter()
            .map(|a| pb::DeliveryAttempt {
                attempt: a.attempt,
                at_unix_ns: a.at_ns,
                status: u32::from(a.status),
                latency_ms: a.latency_ms,
                excerpt: a.excerpt.clone(),
            })
            .collect(),
    }
}

fn error_code(error: &Option<OrderError>) -> String {
    error.as_ref().map(|e| e.code.clone()).unwrap_or_default()
}

fn error_message(error: &Option<OrderError>) -> String {
    error
        .as_ref()
        .map(|e| e.message.clone())
        .unwrap_or_default()
}
