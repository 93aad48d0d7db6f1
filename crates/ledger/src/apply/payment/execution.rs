//! The order state machine an executor drives: claim with a lease, record what the PSP said,
//! capture an authorization, cancel. Every transition goes forward only (`OrderState::rank`),
//! so outcomes may arrive late, twice or out of order (webhook before response) and the order
//! still ends where the PSP says it is.

use super::super::txn::Txn;
use super::postings::{capture, CaptureSource};
use super::{changed, check_text, invalid_transition, payment_of, unchanged};
use crate::limits::{
    NANOS_PER_MILLISECOND, NEXT_ACTION_BYTES_MAX, ORDER_ERROR_BYTES_MAX, ORDER_LEASE_MS_MAX,
    PENDING_CHECK_AFTER_MS, PSP_REFERENCE_BYTES_MAX, WEBHOOK_EVENTS_PER_ORDER_MAX,
};
use crate::payment::work::{log_attempt, AttemptRecord};
use crate::payment::{
    ChargeOutcome, NextAction, Order, OrderError, OrderId, OrderState, PaymentError, PaymentMethod,
    PaymentOutcome,
};
use crate::store::LedgerRead;

/// The rank of `OrderState::Pending`, whatever its check time.
const PENDING_RANK: u8 = 2;

pub(super) fn claim<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    order_id: &OrderId,
    lease_ms: u64,
    now_ns: u64,
) -> Result<PaymentOutcome, PaymentError> {
    if lease_ms == 0 || lease_ms > ORDER_LEASE_MS_MAX {
        return Err(PaymentError::LeaseOutOfRange { lease_ms });
    }
    let mut payment = payment_of(txn, order_id)?;
    match &payment.method {
        None => {
            return Err(PaymentError::NotConfirmed {
                checkout: payment.checkout_id.to_string(),
            })
        }
        Some(PaymentMethod::Wallet) => {
            return Err(PaymentError::NotClaimable {
                order: order_id.to_string(),
                state: "a wallet payment (settled without a PSP)".to_string(),
            })
        }
        Some(PaymentMethod::Card { .. } | PaymentMethod::Qr | PaymentMethod::Hosted { .. }) => {}
    }
    let order = payment
        .order_mut(order_id)
        .expect("payment_of found the order");
    match order.state {
        OrderState::NotStarted => {}
        OrderState::RetryScheduled { not_before_ns } if not_before_ns <= now_ns => {}
        OrderState::Executing { lease_until_ns } if lease_until_ns <= now_ns => {}
        OrderState::Executing { lease_until_ns }
        | OrderState::RetryScheduled {
            not_before_ns: lease_until_ns,
        } => {
            return Err(PaymentError::LeaseHeld {
                order: order_id.to_string(),
                lease_until_ns,
            })
        }
        _ => {
            return Err(PaymentError::NotClaimable {
                order: order_id.to_string(),
                state: order.state.name().to_string(),
            })
        }
    }
    let lease_until_ns = if txn.bugs.lease_ignored {
        now_ns + lease_ms
    } else {
        now_ns + lease_ms * NANOS_PER_MILLISECOND
    };
    order.attempt += 1;
    order.state = OrderState::Executing { lease_until_ns };
    order.updated_at_ns = now_ns;
    let attempt = order.attempt;
    let outcome = changed(txn, payment, now_ns)?;
    let PaymentOutcome::Payment { payment, .. } = outcome else {
        unreachable!("changed answers with the payment")
    };
    Ok(PaymentOutcome::Claimed {
        attempt,
        lease_until_ns,
        payment,
    })
}

fn check_outcome(outcome: &ChargeOutcome, order: &Order) -> Result<(), PaymentError> {
    match outcome {
        ChargeOutcome::Pending {
            psp_charge_id,
            next_action,
        } => {
            check_text("psp_charge_id", psp_charge_id, PSP_REFERENCE_BYTES_MAX)?;
            match next_action {
                Some(NextAction::RedirectToUrl { url: text })
                | Some(NextAction::ShowQr { payload: text }) => {
                    check_text("next_action", text, NEXT_ACTION_BYTES_MAX)
                }
                None => Ok(()),
            }
        }
        ChargeOutcome::Authorized {
            psp_charge_id,
            amount_minor,
        }
        | ChargeOutcome::Captured {
            psp_charge_id,
            amount_minor,
        } => {
            check_text("psp_charge_id", psp_charge_id, PSP_REFERENCE_BYTES_MAX)?;
            if *amount_minor == 0 || *amount_minor > order.amount_minor {
                return Err(PaymentError::AmountTooLarge {
                    requested_minor: *amount_minor,
                    allowed_minor: order.amount_minor,
                });
            }
            Ok(())
        }
        ChargeOutcome::Declined { code, message }
        | ChargeOutcome::Retryable { code, message, .. }
        | ChargeOutcome::Exhausted { code, message }
        | ChargeOutcome::Poison { code, message } => {
            check_text("error.code", code, ORDER_ERROR_BYTES_MAX)?;
            check_text("error.message", message, ORDER_ERROR_BYTES_MAX)
        }
    }
}

pub(super) fn record_outcome<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    order_id: &OrderId,
    outcome: &ChargeOutcome,
    event_id: Option<&str>,
    now_ns: u64,
) -> Result<PaymentOutcome, PaymentError> {
    if let Some(event_id) = event_id {
        check_text("event_id", event_id, PSP_REFERENCE_BYTES_MAX)?;
    }
    let mut payment = payment_of(txn, order_id)?;
    // An intent's orders are never charged: no PSP outcome can belong to them.
    if payment.method.is_none() {
        return Err(PaymentError::NotConfirmed {
            checkout: payment.checkout_id.to_string(),
        });
    }
    let psp = payment.psp.clone();
    let order = payment
        .order_mut(order_id)
        .expect("payment_of found the order");
    check_outcome(outcome, order)?;
    if let (Some(event_id), true) = (event_id, txn.bugs.webhook_applied_without_dedupe) {
        if let (ChargeOutcome::Captured { amount_minor, .. }, true) =
            (outcome, order.state.is_final())
        {
            repost_capture_planted_bug(txn, &order.clone(), &psp, event_id, *amount_minor, now_ns)?;
            return unchanged(payment);
        }
    }
    if event_id.is_some_and(|id| order.webhook_events.iter().any(|seen| seen == id)) {
        return unchanged(payment);
    }
    let failed_attempt = |order: &Order, code: &str, message: &str| AttemptRecord {
        attempt: order.attempt,
        at_ns: now_ns,
        code: code.to_string(),
        message: message.to_string(),
    };
    let rank = order.state.rank();
    let error = |code: &str, message: &str| {
        Some(OrderError {
            code: code.to_string(),
            message: message.to_string(),
        })
    };
    match outcome {
        ChargeOutcome::Pending {
            psp_charge_id,
            next_action,
        } => {
            // Still pending at a status check pushes the next check out (same rank, so not a
            // step back); anything past pending ignores it.
            if rank > PENDING_RANK {
                return unchanged(payment);
            }
            order.psp_charge_id = Some(psp_charge_id.clone());
            // A status check may not repeat the action; keep the one the charge gave.
            if next_action.is_some() {
                order.next_action = next_action.clone();
            }
            order.state = OrderState::Pending {
                check_at_ns: now_ns + PENDING_CHECK_AFTER_MS * NANOS_PER_MILLISECOND,
            };
        }
        ChargeOutcome::Authorized {
            psp_charge_id,
            amount_minor,
        } => {
            if rank >= OrderState::Authorized.rank() {
                return unchanged(payment);
            }
            order.psp_charge_id = Some(psp_charge_id.clone());
            order.authorized_minor = *amount_minor;
            order.state = OrderState::Authorized;
        }
        ChargeOutcome::Captured {
            psp_charge_id,
            amount_minor,
        } => {
            if order.state.is_final() {
                return unchanged(payment);
            }
            order.psp_charge_id = Some(psp_charge_id.clone());
            order.authorized_minor = order.authorized_minor.max(*amount_minor);
            capture(txn, order, CaptureSource::Psp(&psp), *amount_minor, now_ns)?;
        }
        ChargeOutcome::Declined { code, message } => {
            if rank >= OrderState::Authorized.rank() {
                return unchanged(payment);
            }
            order.state = OrderState::Failed;
            order.last_error = error(code, message);
        }
        ChargeOutcome::Retryable {
            attempt,
            code,
            message,
            retry_at_ns,
        } => {
            // Only the current claim may schedule its retry; a stale executor's error says
            // nothing about the attempt running now.
            let current =
                matches!(order.state, OrderState::Executing { .. }) && order.attempt == *attempt;
            if !current {
                return unchanged(payment);
            }
            order.state = OrderState::RetryScheduled {
                not_before_ns: (*retry_at_ns).max(now_ns),
            };
            order.last_error = error(code, message);
            let record = failed_attempt(order, code, message);
            log_attempt(&mut order.attempts, record);
        }
        ChargeOutcome::Exhausted { code, message } | ChargeOutcome::Poison { code, message } => {
            let dead = matches!(order.state, OrderState::DeadLettered { .. });
            if rank >= PENDING_RANK || dead {
                return unchanged(payment);
            }
            order.state = OrderState::DeadLettered { dead_at_ns: now_ns };
            order.last_error = error(code, message);
            let record = failed_attempt(order, code, message);
            log_attempt(&mut order.attempts, record);
        }
    }
    if let Some(event_id) = event_id {
        order.webhook_events.push(event_id.to_string());
        if order.webhook_events.len() > WEBHOOK_EVENTS_PER_ORDER_MAX {
            order.webhook_events.remove(0);
        }
    }
    if order.state.rank() > PENDING_RANK {
        order.next_action = None;
    }
    order.updated_at_ns = now_ns;
    changed(txn, payment, now_ns)
}

/// The planted bug `webhook_applied_without_dedupe`: a naive handler pays the seller for every
/// capture event it receives, so an order already captured has the money posted once more, from
/// the PSP receivable straight to the seller's available funds, under an id of the event. Every
/// balance rule and the order's own accounting still hold; only the PSP's record shows the charge
/// twice. Never runs in production.
fn repost_capture_planted_bug<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    order: &Order,
    psp: &crate::payment::PspName,
    event_id: &str,
    amount_minor: u64,
    now_ns: u64,
) -> Result<(), PaymentError> {
    use crate::payment::chart::{self, transfer_code, Role};
    let currency = order.currency;
    let available = chart::merchant_available(&order.seller_id, currency);
    super::postings::ensure_account(txn, available, Role::MerchantAvailable, currency, now_ns)?;
    let id = chart::order_transfer(&format!("charge:{event_id}"), &order.order_id);
    let movement = super::postings::single(
        id,
        chart::psp_receivable(psp, currency),
        available,
        amount_minor,
        currency,
        transfer_code::CHARGE,
    );
    super::postings::post(txn, &order.order_id, movement)
}

pub(super) fn record_capture<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    order_id: &OrderId,
    amount_minor: u64,
    now_ns: u64,
) -> Result<PaymentOutcome, PaymentError> {
    let mut payment = payment_of(txn, order_id)?;
    let psp = payment.psp.clone();
    let order = payment
        .order_mut(order_id)
        .expect("payment_of found the order");
    match order.state {
        OrderState::Succeeded if order.captured_minor == amount_minor => return unchanged(payment),
        OrderState::Authorized => {}
        _ => return Err(invalid_transition(order_id, order.state.name(), "capture")),
    }
    if amount_minor == 0 || amount_minor > order.authorized_minor {
        return Err(PaymentError::AmountTooLarge {
            requested_minor: amount_minor,
            allowed_minor: order.authorized_minor,
        });
    }
    capture(txn, order, CaptureSource::Psp(&psp), amount_minor, now_ns)?;
    changed(txn, payment, now_ns)
}

/// Cancels an order that never reached the PSP, or an authorization the PSP already canceled.
/// An order that may have been charged (executing, retrying, pending) cannot be canceled: its
/// outcome must be known first.
pub(super) fn cancel<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    order_id: &OrderId,
    now_ns: u64,
) -> Result<PaymentOutcome, PaymentError> {
    let mut payment = payment_of(txn, order_id)?;
    let order = payment
        .order_mut(order_id)
        .expect("payment_of found the order");
    match order.state {
        OrderState::Canceled => return unchanged(payment),
        OrderState::NotStarted | OrderState::Authorized => {}
        _ => return Err(invalid_transition(order_id, order.state.name(), "cancel")),
    }
    order.state = OrderState::Canceled;
    order.updated_at_ns = now_ns;
    changed(txn, payment, now_ns)
}

/// Puts a dead-lettered order back in the retry queue, due now. Its attempt count stays, so
/// the executor asks the PSP for the charge's status before charging again.
pub(super) fn redrive<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    order_id: &OrderId,
    now_ns: u64,
) -> Result<PaymentOutcome, PaymentError> {
    let mut payment = payment_of(txn, order_id)?;
    let order = payment
        .order_mut(order_id)
        .expect("payment_of found the order");
    if !matches!(order.state, OrderState::DeadLettered { .. }) {
        return Err(PaymentError::NotDeadLettered {
            work: format!("charge:{order_id}"),
        });
    }
    order.state = OrderState::RetryScheduled {
        not_before_ns: now_ns,
    };
    order.retry_base = order.attempt;
    order.updated_at_ns = now_ns;
    changed(txn, payment, now_ns)
}

/// Gives up on a dead-lettered order: it fails with the operator's reason.
pub(super) fn discard<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    order_id: &OrderId,
    reason: &str,
    now_ns: u64,
) -> Result<PaymentOutcome, PaymentError> {
    let mut payment = payment_of(txn, order_id)?;
    let order = payment
        .order_mut(order_id)
        .expect("payment_of found the order");
    if !matches!(order.state, OrderState::DeadLettered { .. }) {
        return Err(PaymentError::NotDeadLettered {
            work: format!("charge:{order_id}"),
        });
    }
    order.state = OrderState::Failed;
    order.last_error = Some(OrderError {
        code: "discarded".to_string(),
        message: reason.to_string(),
    });
    order.updated_at_ns = now_ns;
    changed(txn, payment, now_ns)
}
