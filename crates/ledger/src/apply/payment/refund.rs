//! Refunds, in two steps around the PSP call: `begin` holds the seller's funds (and the fee share
//! the platform gives back) with pending transfers, so that money is there when the PSP confirms;
//! `complete` posts the holds on success or voids them on failure. Partial refunds add up and
//! never exceed what was captured.

use super::super::txn::Txn;
use super::postings::{ensure_account, post, Movement};
use super::{changed, check_text, invalid_transition, payment_of, unchanged};
use crate::limits::{NANOS_PER_MILLISECOND, ORDER_LEASE_MS_MAX, REFUNDS_PER_ORDER_MAX};
use crate::payment::chart::{self, transfer_code, Role};
use crate::payment::work::{log_attempt, AttemptRecord};
use crate::payment::RefundRetry;
use crate::payment::{
    FundsSource, OrderId, OrderState, PaymentError, PaymentOutcome, Refund, RefundId, RefundState,
};
use crate::store::LedgerRead;
use crate::transfer::TransferKind;

pub(super) fn begin<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    order_id: &OrderId,
    refund_id: &RefundId,
    amount_minor: u64,
    check_after_ms: u64,
    now_ns: u64,
) -> Result<PaymentOutcome, PaymentError> {
    if check_after_ms == 0 || check_after_ms > ORDER_LEASE_MS_MAX {
        return Err(PaymentError::LeaseOutOfRange {
            lease_ms: check_after_ms,
        });
    }
    let mut payment = payment_of(txn, order_id)?;
    let psp = payment.psp.clone();
    let order = payment
        .order_mut(order_id)
        .expect("payment_of found the order");
    if let Some(existing) = order.refunds.iter().find(|r| &r.refund_id == refund_id) {
        if existing.amount_minor == amount_minor {
            return unchanged(payment);
        }
        return Err(PaymentError::RefundExistsWithDifferentFields {
            refund: refund_id.to_string(),
        });
    }
    if order.state != OrderState::Succeeded {
        return Err(invalid_transition(order_id, order.state.name(), "refund"));
    }
    if order.refunds.len() >= REFUNDS_PER_ORDER_MAX {
        return Err(PaymentError::TooManyRefunds {
            order: order_id.to_string(),
        });
    }
    let refundable_minor = order.captured_minor - order.refund_committed_minor();
    if amount_minor == 0 || amount_minor > refundable_minor {
        return Err(PaymentError::RefundExceedsCaptured {
            order: order_id.to_string(),
            refundable_minor,
        });
    }
    // The platform gives back the fee in proportion to what is refunded; computing the running
    // total (not each share) makes the shares add up to the whole fee once all is refunded.
    let committed_after = u128::from(order.refund_committed_minor() + amount_minor);
    let fee_total_after =
        (u128::from(order.fee_minor) * committed_after / u128::from(order.captured_minor)) as u64;
    // Failed refunds give their shares back, so the committed shares need not follow the
    // proportion any more: clamp to what is left of the fee and of this refund, and, while the
    // funds are still held, take at least what the order's held funds cannot cover (the fee
    // left always can: held + fee left = captured - committed >= this refund).
    let fee_left_minor = order.fee_minor - order.fee_refunded_committed_minor();
    let mut fee_share_minor = fee_total_after
        .saturating_sub(order.fee_refunded_committed_minor())
        .min(amount_minor)
        .min(fee_left_minor);
    if !order.released {
        fee_share_minor = fee_share_minor
            .max(amount_minor.saturating_sub(order.held_minor))
            .min(amount_minor)
            .min(fee_left_minor);
    }
    let seller_share_minor = amount_minor - fee_share_minor;

    let currency = order.currency;
    let source = if order.released {
        FundsSource::Available
    } else {
        FundsSource::Held
    };
    let seller_account = match source {
        FundsSource::Held => chart::merchant_held(&order.seller_id, currency),
        FundsSource::Available => chart::merchant_available(&order.seller_id, currency),
    };
    match source {
        FundsSource::Held => {
            assert!(
                order.held_minor >= seller_share_minor,
                "order {order_id}: held {} below the refund's seller share {seller_share_minor}",
                order.held_minor
            );
            order.held_minor -= seller_share_minor;
        }
        FundsSource::Available => {
            let available = txn
                .account(seller_account)
                .map_or(0, |account| account.balances.credit_available());
            if available < i128::from(seller_share_minor) {
                return Err(PaymentError::InsufficientSellerFunds {
                    seller: order.seller_id.to_string(),
                });
            }
        }
    }
    let receivable = chart::psp_receivable(&psp, currency);
    ensure_account(txn, receivable, Role::PspReceivable, currency, now_ns)?;
    let holds = [
        (
            "refund",
            seller_account,
            seller_share_minor,
            transfer_code::REFUND,
        ),
        (
            "fee",
            chart::platform_fees(currency),
            fee_share_minor,
            transfer_code::FEE_REFUND,
        ),
    ];
    for (purpose, debit, amount, code) in holds {
        if amount == 0 {
            continue;
        }
        let movement = Movement {
            id: chart::refund_transfer(purpose, order_id, refund_id),
            kind: TransferKind::Pending {
                debit_account_id: debit,
                credit_account_id: receivable,
                amount_minor: amount,
                currency,
                timeout_s: 0,
            },
            code,
        };
        post(txn, order_id, movement)?;
    }
    order.refunds.push(Refund {
        refund_id: refund_id.clone(),
        amount_minor,
        fee_share_minor,
        source,
        state: RefundState::Pending,
        attempt: 0,
        check_at_ns: Some(now_ns + check_after_ms * NANOS_PER_MILLISECOND),
        dead_at_ns: None,
        attempts: Vec::new(),
        retry_base: 0,
        created_at_ns: now_ns,
        updated_at_ns: now_ns,
    });
    order.updated_at_ns = now_ns;
    changed(txn, payment, now_ns)
}

pub(super) fn complete<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    order_id: &OrderId,
    refund_id: &RefundId,
    succeeded: bool,
    now_ns: u64,
) -> Result<PaymentOutcome, PaymentError> {
    let mut payment = payment_of(txn, order_id)?;
    let order = payment
        .order_mut(order_id)
        .expect("payment_of found the order");
    let target = if succeeded {
        RefundState::Succeeded
    } else {
        RefundState::Failed
    };
    let index = order
        .refunds
        .iter()
        .position(|r| &r.refund_id == refund_id)
        .ok_or_else(|| PaymentError::RefundNotFound {
            refund: refund_id.to_string(),
            order: order_id.to_string(),
        })?;
    let refund = order.refunds[index].clone();
    match refund.state {
        state if state == target => return unchanged(payment),
        RefundState::Pending => {}
        _ => {
            return Err(invalid_transition(
                order_id,
                "refund already settled the other way",
                if succeeded {
                    "refund succeed"
                } else {
                    "refund fail"
                },
            ))
        }
    }
    let seller_share_minor = refund.amount_minor - refund.fee_share_minor;
    for (purpose, amount) in [
        ("refund", seller_share_minor),
        ("fee", refund.fee_share_minor),
    ] {
        if amount == 0 {
            continue;
        }
        let pending_id = chart::refund_transfer(purpose, order_id, refund_id);
        let (settle, kind) = if succeeded {
            (
                "post",
                TransferKind::PostPending {
                    pending_id,
                    amount_minor: None,
                },
            )
        } else {
            ("void", TransferKind::VoidPending { pending_id })
        };
        let movement = Movement {
            id: chart::refund_transfer(&format!("{purpose}-{settle}"), order_id, refund_id),
            kind,
            code: if purpose == "refund" {
                transfer_code::REFUND
            } else {
                transfer_code::FEE_REFUND
            },
        };
        post(txn, order_id, movement)?;
    }
    if !succeeded && refund.source == FundsSource::Held && seller_share_minor > 0 {
        if order.released {
            // The order was released while this refund held part of its funds: what the void
            // gave back to held goes on to the seller's available balance too.
            let currency = order.currency;
            let available = chart::merchant_available(&order.seller_id, currency);
            ensure_account(txn, available, Role::MerchantAvailable, currency, now_ns)?;
            let movement = super::postings::single(
                chart::refund_transfer("release", order_id, refund_id),
                chart::merchant_held(&order.seller_id, currency),
                available,
                seller_share_minor,
                currency,
                transfer_code::RELEASE,
            );
            post(txn, order_id, movement)?;
        } else {
            order.held_minor += seller_share_minor;
        }
    }
    let stored = &mut order.refunds[index];
    stored.state = target;
    stored.check_at_ns = None;
    stored.dead_at_ns = None;
    stored.updated_at_ns = now_ns;
    order.updated_at_ns = now_ns;
    changed(txn, payment, now_ns)
}

fn refund_index(
    order: &crate::payment::Order,
    order_id: &OrderId,
    refund_id: &RefundId,
) -> Result<usize, PaymentError> {
    order
        .refunds
        .iter()
        .position(|r| &r.refund_id == refund_id)
        .ok_or_else(|| PaymentError::RefundNotFound {
            refund: refund_id.to_string(),
            order: order_id.to_string(),
        })
}

/// The refund worker takes a pending refund whose check time came (the API call that began it
/// did not settle it: a PSP timeout, a crashed gateway).
pub(super) fn claim<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    order_id: &OrderId,
    refund_id: &RefundId,
    lease_ms: u64,
    now_ns: u64,
) -> Result<PaymentOutcome, PaymentError> {
    if lease_ms == 0 || lease_ms > ORDER_LEASE_MS_MAX {
        return Err(PaymentError::LeaseOutOfRange { lease_ms });
    }
    let mut payment = payment_of(txn, order_id)?;
    let order = payment
        .order_mut(order_id)
        .expect("payment_of found the order");
    let index = refund_index(order, order_id, refund_id)?;
    let refund = &mut order.refunds[index];
    let due = refund.state == RefundState::Pending
        && refund.check_at_ns.is_some_and(|at_ns| at_ns <= now_ns);
    if !due {
        return Err(PaymentError::LeaseHeld {
            order: format!("{order_id} refund {refund_id}"),
            lease_until_ns: refund.check_at_ns.unwrap_or(u64::MAX),
        });
    }
    let lease_until_ns = now_ns + lease_ms * NANOS_PER_MILLISECOND;
    refund.attempt += 1;
    refund.check_at_ns = Some(lease_until_ns);
    refund.updated_at_ns = now_ns;
    let attempt = refund.attempt;
    let PaymentOutcome::Payment { payment, .. } = changed(txn, payment, now_ns)? else {
        unreachable!("changed answers with the payment")
    };
    Ok(PaymentOutcome::Claimed {
        attempt,
        lease_until_ns,
        payment,
    })
}

pub(super) fn record_retry<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    order_id: &OrderId,
    refund_id: &RefundId,
    outcome: &RefundRetry,
    now_ns: u64,
) -> Result<PaymentOutcome, PaymentError> {
    let mut payment = payment_of(txn, order_id)?;
    let order = payment
        .order_mut(order_id)
        .expect("payment_of found the order");
    let index = refund_index(order, order_id, refund_id)?;
    let refund = &mut order.refunds[index];
    let (attempt, code, message) = match outcome {
        RefundRetry::Retryable {
            attempt,
            code,
            message,
            ..
        }
        | RefundRetry::Exhausted {
            attempt,
            code,
            message,
        }
        | RefundRetry::Poison {
            attempt,
            code,
            message,
        } => (*attempt, code, message),
    };
    check_text("error.code", code, crate::limits::ORDER_ERROR_BYTES_MAX)?;
    check_text(
        "error.message",
        message,
        crate::limits::ORDER_ERROR_BYTES_MAX,
    )?;
    // Only the current claim's verdict counts.
    let current = refund.state == RefundState::Pending
        && refund.dead_at_ns.is_none()
        && refund.attempt == attempt;
    if !current {
        return unchanged(payment);
    }
    log_attempt(
        &mut refund.attempts,
        AttemptRecord {
            attempt,
            at_ns: now_ns,
            code: code.clone(),
            message: message.clone(),
        },
    );
    match outcome {
        RefundRetry::Retryable { retry_at_ns, .. } => {
            refund.check_at_ns = Some((*retry_at_ns).max(now_ns));
        }
        RefundRetry::Exhausted { .. } | RefundRetry::Poison { .. } => {
            refund.check_at_ns = None;
            refund.dead_at_ns = Some(now_ns);
        }
    }
    refund.updated_at_ns = now_ns;
    changed(txn, payment, now_ns)
}

/// Puts a dead-lettered refund back to the worker, due now, with a fresh retry budget.
pub(super) fn redrive<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    order_id: &OrderId,
    refund_id: &RefundId,
    now_ns: u64,
) -> Result<PaymentOutcome, PaymentError> {
    let mut payment = payment_of(txn, order_id)?;
    let order = payment
        .order_mut(order_id)
        .expect("payment_of found the order");
    let index = refund_index(order, order_id, refund_id)?;
    let refund = &mut order.refunds[index];
    if refund.dead_at_ns.is_none() {
        return Err(PaymentError::NotDeadLettered {
            work: format!("refund:{order_id}/{refund_id}"),
        });
    }
    refund.dead_at_ns = None;
    refund.check_at_ns = Some(now_ns);
    refund.retry_base = refund.attempt;
    refund.updated_at_ns = now_ns;
    changed(txn, payment, now_ns)
}
