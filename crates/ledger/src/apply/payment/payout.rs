//! Payouts and their schedules: hold the seller's available funds, let a worker claim the
//! payout with a lease, and settle it with the PSP's answer (post or void the hold). Like
//! orders, a payout only moves forward, so a late or repeated answer changes nothing.

use super::super::txn::Txn;
use super::check_text;
use super::parties::{merchant, updated};
use super::postings::{ensure_account, post_with, single, Movement};
use crate::limits::{
    NANOS_PER_MILLISECOND, ORDER_ERROR_BYTES_MAX, ORDER_LEASE_MS_MAX,
    PAYOUT_SCHEDULES_PER_MERCHANT_MAX, PSP_REFERENCE_BYTES_MAX,
};
use crate::metadata::Metadata;
use crate::money::Currency;
use crate::payment::chart::{self, transfer_code, Role};
use crate::payment::work::{error, log_attempt, AttemptRecord};
use crate::payment::{
    MerchantId, NewPayout, PartyStatus, PaymentError, PaymentOutcome, Payout, PayoutId,
    PayoutOutcome, PayoutSchedule, PayoutState, ScheduleSpec, WorkState,
};
use crate::store::LedgerRead;
use crate::transfer::TransferKind;
use std::collections::BTreeMap;

fn payout_of<S: LedgerRead>(txn: &Txn<'_, S>, id: &PayoutId) -> Result<Payout, PaymentError> {
    txn.payout(id).ok_or_else(|| PaymentError::PayoutNotFound {
        payout: id.to_string(),
    })
}

fn unchanged(payout: Payout) -> Result<PaymentOutcome, PaymentError> {
    Ok(PaymentOutcome::Payout {
        payout,
        changed: false,
    })
}

fn changed<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    mut payout: Payout,
    now_ns: u64,
) -> Result<PaymentOutcome, PaymentError> {
    payout.updated_at_ns = now_ns;
    txn.put_payout(payout.clone());
    Ok(PaymentOutcome::Payout {
        payout,
        changed: true,
    })
}

fn invalid(payout: &Payout, action: &str) -> PaymentError {
    PaymentError::PayoutInvalidTransition {
        payout: payout.payout_id.to_string(),
        state: match payout.work {
            WorkState::Dead { .. } => format!("{} (dead-lettered)", payout.state.name()),
            _ => payout.state.name().to_string(),
        },
        action: action.to_string(),
    }
}

fn metadata(payout: &PayoutId) -> Metadata {
    Metadata::new(BTreeMap::from([(
        "payout_id".to_string(),
        payout.to_string(),
    )]))
    .expect("a payout id fits in metadata")
}

/// What the seller can pay out now in `currency`.
fn available_minor<S: LedgerRead>(
    txn: &Txn<'_, S>,
    merchant: &MerchantId,
    currency: Currency,
) -> u64 {
    txn.account(chart::merchant_available(merchant, currency))
        .map_or(0, |account| {
            u64::try_from(account.balances.credit_available().max(0)).unwrap_or(u64::MAX)
        })
}

pub(super) fn create<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    new: &NewPayout,
    now_ns: u64,
) -> Result<PaymentOutcome, PaymentError> {
    if let Some(existing) = txn.payout(&new.payout_id) {
        let same = existing.merchant_id == new.merchant_id
            && existing.currency == new.currency
            && existing.psp == new.psp
            && new.amount_minor.is_none_or(|a| a == existing.amount_minor);
        if same {
            return unchanged(existing);
        }
        return Err(PaymentError::PayoutExistsWithDifferentFields {
            payout: new.payout_id.to_string(),
        });
    }
    if new
        .payout_id
        .as_str()
        .starts_with(chart::SCHEDULED_PAYOUT_PREFIX)
    {
        return Err(PaymentError::PayoutIdReserved {
            payout: new.payout_id.to_string(),
        });
    }
    open(txn, new, false, now_ns)
}

/// Holds the funds and stores the payout, due for the worker now.
fn open<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    new: &NewPayout,
    scheduled: bool,
    now_ns: u64,
) -> Result<PaymentOutcome, PaymentError> {
    if txn.payout(&new.payout_id).is_some() {
        return Err(PaymentError::PayoutExistsWithDifferentFields {
            payout: new.payout_id.to_string(),
        });
    }
    let seller = merchant(txn, &new.merchant_id)?;
    if seller.status != PartyStatus::Active {
        return Err(PaymentError::MerchantDisabled {
            merchant: seller.id.to_string(),
        });
    }
    let available = available_minor(txn, &seller.id, new.currency);
    let amount_minor = new.amount_minor.unwrap_or(available);
    if amount_minor == 0 || amount_minor > available {
        return Err(PaymentError::PayoutExceedsAvailable {
            merchant: seller.id.to_string(),
            currency: new.currency.code().to_string(),
            available_minor: available,
        });
    }
    let currency = new.currency;
    let in_transit = chart::merchant_payout_in_transit(&seller.id, currency);
    ensure_account(
        txn,
        in_transit,
        Role::MerchantPayoutInTransit,
        currency,
        now_ns,
    )?;
    let hold = Movement {
        id: chart::payout_transfer("hold", &new.payout_id),
        kind: TransferKind::Pending {
            debit_account_id: chart::merchant_available(&seller.id, currency),
            credit_account_id: in_transit,
            amount_minor,
            currency,
            timeout_s: 0,
        },
        code: transfer_code::PAYOUT,
    };
    post_with(txn, metadata(&new.payout_id), hold)?;
    let payout = Payout {
        payout_id: new.payout_id.clone(),
        merchant_id: seller.id,
        currency,
        amount_minor,
        psp: new.psp.clone(),
        state: PayoutState::Pending,
        work: WorkState::Due { at_ns: now_ns },
        attempt: 0,
        psp_payout_id: None,
        last_error: None,
        attempts: Vec::new(),
        retry_base: 0,
        scheduled,
        created_at_ns: now_ns,
        updated_at_ns: now_ns,
    };
    changed(txn, payout, now_ns)
}

pub(super) fn claim<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    payout_id: &PayoutId,
    lease_ms: u64,
    now_ns: u64,
) -> Result<PaymentOutcome, PaymentError> {
    if lease_ms == 0 || lease_ms > ORDER_LEASE_MS_MAX {
        return Err(PaymentError::LeaseOutOfRange { lease_ms });
    }
    let mut payout = payout_of(txn, payout_id)?;
    match payout.work {
        WorkState::Due { at_ns } | WorkState::Leased { until_ns: at_ns } if at_ns <= now_ns => {}
        WorkState::Due { at_ns } | WorkState::Leased { until_ns: at_ns } => {
            return Err(PaymentError::PayoutNotClaimable {
                payout: payout_id.to_string(),
                lease_until_ns: at_ns,
            })
        }
        WorkState::Idle | WorkState::Dead { .. } => return Err(invalid(&payout, "claim")),
    }
    let lease_until_ns = now_ns + lease_ms * NANOS_PER_MILLISECOND;
    payout.attempt += 1;
    payout.work = WorkState::Leased {
        until_ns: lease_until_ns,
    };
    let attempt = payout.attempt;
    let PaymentOutcome::Payout { payout, .. } = changed(txn, payout, now_ns)? else {
        unreachable!("changed answers with the payout")
    };
    Ok(PaymentOutcome::PayoutClaimed {
        attempt,
        lease_until_ns,
        payout,
    })
}

fn check_outcome(outcome: &PayoutOutcome) -> Result<(), PaymentError> {
    match outcome {
        PayoutOutcome::InTransit { psp_payout_id, .. } | PayoutOutcome::Paid { psp_payout_id } => {
            check_text("psp_payout_id", psp_payout_id, PSP_REFERENCE_BYTES_MAX)
        }
        PayoutOutcome::Failed { code, message }
        | PayoutOutcome::Retryable { code, message, .. }
        | PayoutOutcome::Exhausted { code, message, .. }
        | PayoutOutcome::Poison { code, message, .. } => {
            check_text("error.code", code, ORDER_ERROR_BYTES_MAX)?;
            check_text("error.message", message, ORDER_ERROR_BYTES_MAX)
        }
    }
}

/// Settles the hold: `post` sends the money out (and clears it against what the PSP owes),
/// otherwise the funds go back to available.
fn settle<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    payout: &Payout,
    post: bool,
    now_ns: u64,
) -> Result<(), PaymentError> {
    let pending_id = chart::payout_transfer("hold", &payout.payout_id);
    let tag = metadata(&payout.payout_id);
    if !post {
        let void = Movement {
            id: chart::payout_transfer("void", &payout.payout_id),
            kind: TransferKind::VoidPending { pending_id },
            code: transfer_code::PAYOUT,
        };
        return post_with(txn, tag, void);
    }
    let posted = Movement {
        id: chart::payout_transfer("post", &payout.payout_id),
        kind: TransferKind::PostPending {
            pending_id,
            amount_minor: None,
        },
        code: transfer_code::PAYOUT,
    };
    post_with(txn, tag.clone(), posted)?;
    let currency = payout.currency;
    let receivable = chart::psp_receivable(&payout.psp, currency);
    ensure_account(txn, receivable, Role::PspReceivable, currency, now_ns)?;
    let cleared = single(
        chart::payout_transfer("settle", &payout.payout_id),
        chart::merchant_payout_in_transit(&payout.merchant_id, currency),
        receivable,
        payout.amount_minor,
        currency,
        transfer_code::PAYOUT_SETTLE,
    );
    post_with(txn, tag, cleared)
}

pub(super) fn record_outcome<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    payout_id: &PayoutId,
    outcome: &PayoutOutcome,
    now_ns: u64,
) -> Result<PaymentOutcome, PaymentError> {
    check_outcome(outcome)?;
    let mut payout = payout_of(txn, payout_id)?;
    let dead = matches!(payout.work, WorkState::Dead { .. });
    let failed_attempt = |payout: &Payout, code: &str, message: &str| AttemptRecord {
        attempt: payout.attempt,
        at_ns: now_ns,
        code: code.to_string(),
        message: message.to_string(),
    };
    match outcome {
        PayoutOutcome::InTransit {
            psp_payout_id,
            check_at_ns,
        } => {
            // A status check that finds it still in transit pushes the next check out. A dead
            // letter keeps waiting for its operator, but learns that the PSP has the payout
            // (which makes a discard impossible).
            if payout.state.is_final() {
                return unchanged(payout);
            }
            payout.state = PayoutState::InTransit;
            payout.psp_payout_id = Some(psp_payout_id.clone());
            if !dead {
                payout.work = WorkState::Due {
                    at_ns: (*check_at_ns).max(now_ns),
                };
            }
        }
        PayoutOutcome::Paid { psp_payout_id } => match payout.state {
            PayoutState::Paid => return unchanged(payout),
            PayoutState::Failed | PayoutState::Canceled => return Err(invalid(&payout, "pay")),
            PayoutState::Pending | PayoutState::InTransit => {
                settle(txn, &payout, true, now_ns)?;
                payout.state = PayoutState::Paid;
                payout.psp_payout_id = Some(psp_payout_id.clone());
                payout.work = WorkState::Idle;
            }
        },
        PayoutOutcome::Failed { code, message } => match payout.state {
            PayoutState::Failed => return unchanged(payout),
            PayoutState::Paid | PayoutState::Canceled => return Err(invalid(&payout, "fail")),
            PayoutState::Pending | PayoutState::InTransit => {
                settle(txn, &payout, false, now_ns)?;
                payout.state = PayoutState::Failed;
                payout.work = WorkState::Idle;
                payout.last_error = Some(error(code, message));
            }
        },
        PayoutOutcome::Retryable {
            attempt,
            code,
            message,
            retry_at_ns,
        } => {
            // Only the current claim may schedule its retry.
            let current =
                matches!(payout.work, WorkState::Leased { .. }) && payout.attempt == *attempt;
            if !current {
                return unchanged(payout);
            }
            let record = failed_attempt(&payout, code, message);
            log_attempt(&mut payout.attempts, record);
            payout.last_error = Some(error(code, message));
            payout.work = WorkState::Due {
                at_ns: (*retry_at_ns).max(now_ns),
            };
        }
        PayoutOutcome::Exhausted {
            attempt,
            code,
            message,
        }
        | PayoutOutcome::Poison {
            attempt,
            code,
            message,
        } => {
            // Only the current claim may dead-letter: a stale worker's verdict is about an
            // attempt that is no longer running.
            let current =
                matches!(payout.work, WorkState::Leased { .. }) && payout.attempt == *attempt;
            if payout.state.is_final() || !current {
                return unchanged(payout);
            }
            let record = failed_attempt(&payout, code, message);
            log_attempt(&mut payout.attempts, record);
            payout.last_error = Some(error(code, message));
            payout.work = WorkState::Dead { at_ns: now_ns };
        }
    }
    changed(txn, payout, now_ns)
}

/// Cancels a payout no worker has claimed yet (it never reached the PSP).
pub(super) fn cancel<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    payout_id: &PayoutId,
    now_ns: u64,
) -> Result<PaymentOutcome, PaymentError> {
    let mut payout = payout_of(txn, payout_id)?;
    match payout.state {
        PayoutState::Canceled => return unchanged(payout),
        PayoutState::Pending if payout.attempt == 0 => {}
        _ => return Err(invalid(&payout, "cancel (it may have reached the PSP)")),
    }
    settle(txn, &payout, false, now_ns)?;
    payout.state = PayoutState::Canceled;
    payout.work = WorkState::Idle;
    changed(txn, payout, now_ns)
}

pub(super) fn redrive<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    payout_id: &PayoutId,
    now_ns: u64,
) -> Result<PaymentOutcome, PaymentError> {
    let mut payout = payout_of(txn, payout_id)?;
    if !matches!(payout.work, WorkState::Dead { .. }) {
        return Err(PaymentError::NotDeadLettered {
            work: format!("payout:{payout_id}"),
        });
    }
    payout.work = WorkState::Due { at_ns: now_ns };
    payout.retry_base = payout.attempt;
    changed(txn, payout, now_ns)
}

/// Gives up on a dead-lettered payout: the hold is voided, the funds are available again.
pub(super) fn discard<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    payout_id: &PayoutId,
    reason: &str,
    now_ns: u64,
) -> Result<PaymentOutcome, PaymentError> {
    let mut payout = payout_of(txn, payout_id)?;
    if !matches!(payout.work, WorkState::Dead { .. }) {
        return Err(PaymentError::NotDeadLettered {
            work: format!("payout:{payout_id}"),
        });
    }
    // Once the PSP has accepted it, the money may be on its way: freeing the funds could pay
    // out twice. The gateway also asks the PSP before it sends a discard.
    if payout.state != PayoutState::Pending || payout.psp_payout_id.is_some() {
        return Err(invalid(
            &payout,
            "discard (the PSP accepted it; re-drive it)",
        ));
    }
    settle(txn, &payout, false, now_ns)?;
    payout.state = PayoutState::Failed;
    payout.work = WorkState::Idle;
    payout.last_error = Some(error("discarded", reason));
    changed(txn, payout, now_ns)
}

pub(super) fn set_schedule<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    merchant_id: &MerchantId,
    currency: Currency,
    spec: Option<&ScheduleSpec>,
    now_ns: u64,
) -> Result<PaymentOutcome, PaymentError> {
    let mut seller = merchant(txn, merchant_id)?;
    seller.payout_schedules.retain(|s| s.currency != currency);
    if let Some(spec) = spec {
        if seller.payout_schedules.len() >= PAYOUT_SCHEDULES_PER_MERCHANT_MAX {
            return Err(PaymentError::FieldTooLong {
                field: "payout_schedules".to_string(),
            });
        }
        seller.payout_schedules.push(PayoutSchedule {
            currency,
            interval: spec.interval,
            minimum_minor: spec.minimum_minor,
            psp: spec.psp.clone(),
            next_run_at_ns: spec.interval.next_run_ns(now_ns),
        });
        seller.payout_schedules.sort_by_key(|s| s.currency);
    }
    updated(txn, seller, now_ns)
}

pub(super) fn run_schedule<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    merchant_id: &MerchantId,
    currency: Currency,
    now_ns: u64,
) -> Result<PaymentOutcome, PaymentError> {
    let mut seller = merchant(txn, merchant_id)?;
    let Some(index) = seller
        .payout_schedules
        .iter()
        .position(|s| s.currency == currency)
    else {
        return Err(PaymentError::ScheduleNotFound {
            merchant: merchant_id.to_string(),
            currency: currency.code().to_string(),
        });
    };
    let schedule = seller.payout_schedules[index].clone();
    if schedule.next_run_at_ns > now_ns {
        return Ok(PaymentOutcome::ScheduleRan {
            ran: false,
            payout: None,
            next_run_at_ns: schedule.next_run_at_ns,
        });
    }
    let next_run_at_ns = schedule.interval.next_run_ns(now_ns);
    seller.payout_schedules[index].next_run_at_ns = next_run_at_ns;
    let available = available_minor(txn, merchant_id, currency);
    let payout = if available > 0 && available >= schedule.minimum_minor {
        let new = NewPayout {
            payout_id: chart::scheduled_payout_id(merchant_id, currency, schedule.next_run_at_ns),
            merchant_id: merchant_id.clone(),
            currency,
            amount_minor: Some(available),
            psp: schedule.psp.clone(),
        };
        // A run that cannot pay out (merchant disabled, say) still moves the schedule on, so
        // it never stays due and keeps the workers busy; the next run tries again.
        match open(txn, &new, true, now_ns) {
            Ok(PaymentOutcome::Payout { payout, .. }) => Some(payout),
            Ok(_) => unreachable!("open answers with the payout"),
            Err(_) => None,
        }
    } else {
        None
    };
    updated(txn, seller, now_ns)?;
    Ok(PaymentOutcome::ScheduleRan {
        ran: true,
        payout,
        next_run_at_ns,
    })
}
