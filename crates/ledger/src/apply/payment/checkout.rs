//! Creating a checkout (a payment with its orders) and confirming an intent. Wallet payments
//! settle here at once; card and QR orders wait for an executor.

use super::super::txn::Txn;
use super::postings::{capture, CaptureSource};
use super::{changed, check_text, unchanged};
use crate::limits::{
    NEXT_ACTION_BYTES_MAX, ORDERS_PER_PAYMENT_MAX, ORDER_ERROR_BYTES_MAX, PSP_REFERENCE_BYTES_MAX,
    RISK_REASONS_MAX, RISK_REASON_BYTES_MAX,
};
use crate::money::Currency;
use crate::payment::chart;
use crate::payment::{
    CaptureMode, CheckoutId, NewPayment, Order, OrderError, OrderState, PartyStatus, Payment,
    PaymentError, PaymentMethod, PaymentOutcome, RiskOutcome,
};
use crate::store::LedgerRead;
use std::collections::{BTreeMap, BTreeSet};

fn check_method(method: &PaymentMethod, capture: CaptureMode) -> Result<(), PaymentError> {
    match method {
        PaymentMethod::Card { token } => check_text("method.token", token, PSP_REFERENCE_BYTES_MAX),
        PaymentMethod::Wallet if capture == CaptureMode::Manual => {
            Err(PaymentError::WalletPaymentsCaptureAutomatically)
        }
        PaymentMethod::Wallet | PaymentMethod::Qr => Ok(()),
        PaymentMethod::Hosted { return_url } => {
            check_text("method.return_url", return_url, NEXT_ACTION_BYTES_MAX)?;
            if !(return_url.starts_with("https://") || return_url.starts_with("http://")) {
                return Err(PaymentError::ReturnUrlInvalid);
            }
            Ok(())
        }
    }
}

fn check_request<S: LedgerRead>(txn: &Txn<'_, S>, new: &NewPayment) -> Result<(), PaymentError> {
    if new.orders.is_empty() || new.orders.len() > ORDERS_PER_PAYMENT_MAX {
        return Err(PaymentError::OrderCount {
            orders: new.orders.len(),
        });
    }
    if let Some(method) = &new.method {
        check_method(method, new.capture)?;
    }
    if new.risk.reasons.len() > RISK_REASONS_MAX
        || new
            .risk
            .reasons
            .iter()
            .any(|reason| reason.len() > RISK_REASON_BYTES_MAX)
    {
        return Err(PaymentError::FieldTooLong {
            field: "risk.reasons".to_string(),
        });
    }
    let merchant =
        txn.merchant(&new.merchant_id)
            .ok_or_else(|| PaymentError::MerchantNotFound {
                merchant: new.merchant_id.to_string(),
            })?;
    if merchant.status != PartyStatus::Active {
        return Err(PaymentError::MerchantDisabled {
            merchant: new.merchant_id.to_string(),
        });
    }
    let buyer = txn
        .buyer(&new.buyer_id)
        .ok_or_else(|| PaymentError::BuyerNotFound {
            buyer: new.buyer_id.to_string(),
        })?;
    if buyer.status != PartyStatus::Active {
        return Err(PaymentError::BuyerDisabled {
            buyer: new.buyer_id.to_string(),
        });
    }
    let mut seen = BTreeSet::new();
    for order in &new.orders {
        if !seen.insert(&order.order_id) {
            return Err(PaymentError::DuplicateOrderId {
                order: order.order_id.to_string(),
            });
        }
        if order.amount_minor == 0 {
            return Err(PaymentError::AmountMustNotBeZero {
                order: order.order_id.to_string(),
            });
        }
        if txn.payment_of_order(&order.order_id).is_some() {
            return Err(PaymentError::OrderIdTaken {
                order: order.order_id.to_string(),
            });
        }
        let seller =
            txn.merchant(&order.seller_id)
                .ok_or_else(|| PaymentError::SellerNotFound {
                    seller: order.seller_id.to_string(),
                })?;
        if seller.status != PartyStatus::Active {
            return Err(PaymentError::SellerDisabled {
                seller: order.seller_id.to_string(),
            });
        }
    }
    Ok(())
}

pub(super) fn create<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    new: &NewPayment,
    now_ns: u64,
) -> Result<PaymentOutcome, PaymentError> {
    if let Some(existing) = txn.payment(&new.checkout_id) {
        if existing.request_hash == new.request_hash {
            return unchanged(existing);
        }
        return Err(PaymentError::CheckoutExistsWithDifferentRequest {
            checkout: new.checkout_id.to_string(),
        });
    }
    check_request(txn, new)?;
    let orders = new
        .orders
        .iter()
        .map(|order| Order {
            order_id: order.order_id.clone(),
            seller_id: order.seller_id.clone(),
            amount_minor: order.amount_minor,
            currency: order.currency,
            state: OrderState::NotStarted,
            attempt: 0,
            psp_charge_id: None,
            authorized_minor: 0,
            captured_minor: 0,
            fee_minor: 0,
            held_minor: 0,
            release_at_ns: None,
            released: false,
            refunds: Vec::new(),
            last_error: None,
            attempts: Vec::new(),
            retry_base: 0,
            webhook_events: Vec::new(),
            next_action: None,
            created_at_ns: now_ns,
            updated_at_ns: now_ns,
        })
        .collect();
    let mut payment = Payment {
        checkout_id: new.checkout_id.clone(),
        merchant_id: new.merchant_id.clone(),
        buyer_id: new.buyer_id.clone(),
        method: new.method.clone(),
        capture: new.capture,
        psp: new.psp.clone(),
        risk: new.risk.clone(),
        request_hash: new.request_hash,
        orders,
        created_at_ns: now_ns,
        updated_at_ns: now_ns,
    };
    // A payment the risk check did not approve is recorded (with its decision) but never
    // charged: no automatic retry can change a risk decision.
    let refusal = match new.risk.outcome {
        RiskOutcome::Approve => None,
        RiskOutcome::Review => Some((
            "risk_review",
            "the risk check sent this payment to review; it was not charged",
        )),
        RiskOutcome::Decline => Some(("risk_declined", "the risk check declined this payment")),
    };
    if let Some((code, message)) = refusal {
        fail_all(&mut payment, code, message, now_ns);
    } else if payment.method == Some(PaymentMethod::Wallet) {
        settle_from_wallet(txn, &mut payment, now_ns)?;
    }
    changed(txn, payment, now_ns)
}

pub(super) fn confirm<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    checkout_id: &CheckoutId,
    method: &PaymentMethod,
    now_ns: u64,
) -> Result<PaymentOutcome, PaymentError> {
    let mut payment = txn
        .payment(checkout_id)
        .ok_or_else(|| PaymentError::PaymentNotFound {
            checkout: checkout_id.to_string(),
        })?;
    match &payment.method {
        Some(existing) if existing == method => return unchanged(payment),
        Some(_) => {
            return Err(PaymentError::AlreadyConfirmed {
                checkout: checkout_id.to_string(),
            })
        }
        None => {}
    }
    // Orders of an unconfirmed payment never start, but they can be canceled: a canceled
    // intent stays canceled.
    if payment
        .orders
        .iter()
        .any(|order| order.state != OrderState::NotStarted)
    {
        return Err(PaymentError::PaymentInvalidTransition {
            checkout: checkout_id.to_string(),
            status: payment.status().name().to_string(),
            action: "confirm".to_string(),
        });
    }
    check_method(method, payment.capture)?;
    payment.method = Some(method.clone());
    if *method == PaymentMethod::Wallet {
        settle_from_wallet(txn, &mut payment, now_ns)?;
    }
    changed(txn, payment, now_ns)
}

fn fail_all(payment: &mut Payment, code: &str, message: &str, now_ns: u64) {
    debug_assert!(code.len() + message.len() <= ORDER_ERROR_BYTES_MAX);
    for order in &mut payment.orders {
        order.state = OrderState::Failed;
        order.last_error = Some(OrderError {
            code: code.to_string(),
            message: message.to_string(),
        });
        order.updated_at_ns = now_ns;
    }
}

/// Pays every order from the buyer's wallets, all or none: if a wallet lacks funds for the
/// orders in its currency, every order fails with `insufficient_funds` and no money moves.
fn settle_from_wallet<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    payment: &mut Payment,
    now_ns: u64,
) -> Result<(), PaymentError> {
    let mut totals: BTreeMap<Currency, u128> = BTreeMap::new();
    for order in &payment.orders {
        *totals.entry(order.currency).or_default() += u128::from(order.amount_minor);
    }
    for (&currency, &total_minor) in &totals {
        let wallet = chart::buyer_wallet(&payment.buyer_id, currency);
        let Some(account) = txn.account(wallet) else {
            return Err(PaymentError::WalletNotFound {
                buyer: payment.buyer_id.to_string(),
                currency: currency.code().to_string(),
            });
        };
        if account.balances.credit_available() < total_minor as i128 {
            fail_all(
                payment,
                "insufficient_funds",
                "the buyer's wallet lacks the funds for this payment",
                now_ns,
            );
            return Ok(());
        }
    }
    for order in &mut payment.orders {
        let wallet = chart::buyer_wallet(&payment.buyer_id, order.currency);
        let amount_minor = order.amount_minor;
        capture(
            txn,
            order,
            CaptureSource::Wallet(wallet),
            amount_minor,
            now_ns,
        )?;
    }
    Ok(())
}
