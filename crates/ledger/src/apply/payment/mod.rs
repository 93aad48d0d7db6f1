//! Applying payment commands. Each command runs inside its own all-or-nothing scope (the
//! overlay's chain), so a command that fails half-way (a ledger transfer refused after the
//! payment record changed) leaves nothing behind.

mod checkout;
mod execution;
mod outbox;
mod parties;
mod payout;
mod postings;
mod refund;

use super::txn::Txn;
use super::EventClock;
use crate::limits::DISCARD_REASON_BYTES_MAX;
use crate::payment::{OrderId, Payment, PaymentCommand, PaymentError, PaymentOutcome, WorkRef};
use crate::store::LedgerRead;

pub(super) use postings::release_due_holds;

/// Runs one payment command at the clock's next timestamp; the transfers it posts take the
/// timestamps after it.
pub(super) fn execute<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    command: &PaymentCommand,
    clock: &mut EventClock,
) -> Result<PaymentOutcome, PaymentError> {
    let timestamp_ns = clock.tick();
    txn.begin_chain();
    let result = txn.with_posting_clock(clock, |txn| dispatch(txn, command, timestamp_ns));
    if result.is_ok() {
        txn.commit_chain();
    } else {
        txn.rollback_chain();
    }
    result
}

fn dispatch<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    command: &PaymentCommand,
    now_ns: u64,
) -> Result<PaymentOutcome, PaymentError> {
    match command {
        PaymentCommand::CreateMerchant(new) => parties::create_merchant(txn, new, now_ns),
        PaymentCommand::UpdateMerchantFees {
            merchant_id,
            fees,
            hold_period_s,
        } => parties::update_fees(txn, merchant_id, fees, *hold_period_s, now_ns),
        PaymentCommand::AddApiKey {
            merchant_id,
            key_id,
            secret_hash,
            signing_secret,
        } => parties::add_api_key(
            txn,
            merchant_id,
            key_id,
            secret_hash,
            signing_secret,
            now_ns,
        ),
        PaymentCommand::RotateSigningSecret {
            merchant_id,
            key_id,
            signing_secret,
            keep_previous,
        } => parties::rotate_signing_secret(
            txn,
            merchant_id,
            key_id,
            signing_secret,
            *keep_previous,
            now_ns,
        ),
        PaymentCommand::RevokeApiKey {
            merchant_id,
            key_id,
        } => parties::revoke_api_key(txn, merchant_id, key_id, now_ns),
        PaymentCommand::CreateBuyer(new) => parties::create_buyer(txn, new, now_ns),
        PaymentCommand::CreatePayment(new) => checkout::create(txn, new, now_ns),
        PaymentCommand::ConfirmPayment {
            checkout_id,
            method,
        } => checkout::confirm(txn, checkout_id, method, now_ns),
        PaymentCommand::ClaimOrder { order_id, lease_ms } => {
            execution::claim(txn, order_id, *lease_ms, now_ns)
        }
        PaymentCommand::RecordChargeOutcome {
            order_id,
            outcome,
            event_id,
        } => execution::record_outcome(txn, order_id, outcome, event_id.as_deref(), now_ns),
        PaymentCommand::RecordCapture {
            order_id,
            amount_minor,
        } => execution::record_capture(txn, order_id, *amount_minor, now_ns),
        PaymentCommand::CancelOrder { order_id } => execution::cancel(txn, order_id, now_ns),
        PaymentCommand::BeginRefund {
            order_id,
            refund_id,
            amount_minor,
            check_after_ms,
        } => refund::begin(
            txn,
            order_id,
            refund_id,
            *amount_minor,
            *check_after_ms,
            now_ns,
        ),
        PaymentCommand::ClaimRefund {
            order_id,
            refund_id,
            lease_ms,
        } => refund::claim(txn, order_id, refund_id, *lease_ms, now_ns),
        PaymentCommand::RecordRefundRetry {
            order_id,
            refund_id,
            outcome,
        } => refund::record_retry(txn, order_id, refund_id, outcome, now_ns),
        PaymentCommand::CompleteRefund {
            order_id,
            refund_id,
            succeeded,
        } => refund::complete(txn, order_id, refund_id, *succeeded, now_ns),
        PaymentCommand::FulfillOrder { order_id } => postings::fulfill(txn, order_id, now_ns),
        PaymentCommand::CreatePayout(new) => payout::create(txn, new, now_ns),
        PaymentCommand::ClaimPayout {
            payout_id,
            lease_ms,
        } => payout::claim(txn, payout_id, *lease_ms, now_ns),
        PaymentCommand::RecordPayoutOutcome { payout_id, outcome } => {
            payout::record_outcome(txn, payout_id, outcome, now_ns)
        }
        PaymentCommand::CancelPayout { payout_id } => payout::cancel(txn, payout_id, now_ns),
        PaymentCommand::SetPayoutSchedule {
            merchant_id,
            currency,
            schedule,
        } => payout::set_schedule(txn, merchant_id, *currency, schedule.as_ref(), now_ns),
        PaymentCommand::RunPayoutSchedule {
            merchant_id,
            currency,
        } => payout::run_schedule(txn, merchant_id, *currency, now_ns),
        PaymentCommand::AddWebhookEndpoint {
            merchant_id,
            endpoint,
        } => outbox::add_endpoint(txn, merchant_id, endpoint, now_ns),
        PaymentCommand::RotateWebhookSecret {
            merchant_id,
            endpoint_id,
            secret,
            keep_previous,
        } => outbox::rotate_secret(
            txn,
            merchant_id,
            endpoint_id,
            &secret.0,
            *keep_previous,
            now_ns,
        ),
        PaymentCommand::RemoveWebhookEndpoint {
            merchant_id,
            endpoint_id,
        } => outbox::remove_endpoint(txn, merchant_id, endpoint_id, now_ns),
        PaymentCommand::ClaimDelivery {
            delivery_id,
            lease_ms,
        } => outbox::claim(txn, delivery_id, *lease_ms, now_ns),
        PaymentCommand::RecordDelivery {
            delivery_id,
            attempt,
            outcome,
        } => outbox::record(txn, delivery_id, attempt, outcome, now_ns),
        PaymentCommand::RedriveWork { work } => match work {
            WorkRef::Charge(order_id) => execution::redrive(txn, order_id, now_ns),
            WorkRef::Payout(payout_id) => payout::redrive(txn, payout_id, now_ns),
            WorkRef::Delivery(delivery_id) => outbox::redeliver(txn, delivery_id, now_ns),
            WorkRef::Refund(order_id, refund_id) => {
                refund::redrive(txn, order_id, refund_id, now_ns)
            }
        },
        PaymentCommand::DiscardWork { work, reason } => {
            if reason.is_empty() || reason.len() > DISCARD_REASON_BYTES_MAX {
                return Err(PaymentError::DiscardReasonInvalid);
            }
            match work {
                WorkRef::Charge(order_id) => execution::discard(txn, order_id, reason, now_ns),
                WorkRef::Payout(payout_id) => payout::discard(txn, payout_id, reason, now_ns),
                WorkRef::Delivery(delivery_id) => outbox::discard(txn, delivery_id),
                // Giving up on a refund fails it: the held funds go back to the seller.
                WorkRef::Refund(order_id, refund_id) => {
                    refund::complete(txn, order_id, refund_id, false, now_ns)
                }
            }
        }
    }
}

/// The payment holding `order_id`, or `order_not_found`.
fn payment_of<S: LedgerRead>(
    txn: &Txn<'_, S>,
    order_id: &OrderId,
) -> Result<Payment, PaymentError> {
    txn.payment_of_order(order_id)
        .ok_or_else(|| PaymentError::OrderNotFound {
            order: order_id.to_string(),
        })
}

fn unchanged(payment: Payment) -> Result<PaymentOutcome, PaymentError> {
    Ok(PaymentOutcome::Payment {
        payment,
        changed: false,
    })
}

/// Writes `payment` (stamped `now_ns`) and answers with it.
fn changed<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    mut payment: Payment,
    now_ns: u64,
) -> Result<PaymentOutcome, PaymentError> {
    payment.updated_at_ns = now_ns;
    // The events this change makes are written by the same command (the outbox).
    outbox::emit_events(txn, &payment, now_ns)?;
    txn.put_payment(payment.clone());
    Ok(PaymentOutcome::Payment {
        payment,
        changed: true,
    })
}

fn invalid_transition(order: &OrderId, state: &str, action: &str) -> PaymentError {
    PaymentError::InvalidTransition {
        order: order.to_string(),
        state: state.to_string(),
        action: action.to_string(),
    }
}

fn check_text(field: &str, value: &str, bytes_max: usize) -> Result<(), PaymentError> {
    if value.len() > bytes_max {
        return Err(PaymentError::FieldTooLong {
            field: field.to_string(),
        });
    }
    Ok(())
}
