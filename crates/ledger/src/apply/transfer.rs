//! Creating transfers: single-phase, pending (a hold), and the post or void that settles a hold.

use super::txn::Txn;
use crate::account::Account;
use crate::command::TransferCreated;
use crate::errors::TransferError;
use crate::ids::{AccountId, TransferId};
use crate::limits::NANOS_PER_SECOND;
use crate::money::Currency;
use crate::store::{HistoryEntry, HistoryEvent, LedgerRead, Side};
use crate::transfer::{
    EntryPhase, Hold, HoldStatus, NewTransfer, Transfer, TransferKind, TransferRecord,
};

pub(super) fn create<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    new: &NewTransfer,
    timestamp_ns: u64,
) -> Result<TransferCreated, TransferError> {
    validate(new)?;
    if let Some(existing) = txn.transfer(new.id) {
        if !txn.bugs.transfer_applies_twice {
            return replay(&existing, new);
        }
    }
    let outcome = match &new.kind {
        TransferKind::Single {
            debit_account_id,
            credit_account_id,
            amount_minor,
            currency,
        } => open(
            txn,
            new,
            timestamp_ns,
            Movement {
                debit_account_id: *debit_account_id,
                credit_account_id: *credit_account_id,
                amount_minor: *amount_minor,
                currency: *currency,
                timeout_s: None,
            },
        ),
        TransferKind::Pending {
            debit_account_id,
            credit_account_id,
            amount_minor,
            currency,
            timeout_s,
        } => open(
            txn,
            new,
            timestamp_ns,
            Movement {
                debit_account_id: *debit_account_id,
                credit_account_id: *credit_account_id,
                amount_minor: *amount_minor,
                currency: *currency,
                timeout_s: Some(*timeout_s),
            },
        ),
        TransferKind::PostPending {
            pending_id,
            amount_minor,
        } => settle(
            txn,
            new,
            timestamp_ns,
            *pending_id,
            Settlement::Post(*amount_minor),
        ),
        TransferKind::VoidPending { pending_id } => {
            settle(txn, new, timestamp_ns, *pending_id, Settlement::Void)
        }
    };
    match outcome {
        Ok(()) => Ok(TransferCreated::Created { timestamp_ns }),
        Err(error) => {
            // Keep the id taken, so a retry gets this answer even once the state has changed.
            // Inside a chain that then fails, the rollback removes this record again: a failed
            // chain leaves no trace and may be retried whole.
            if error.depends_on_state() {
                txn.insert_transfer(
                    new.id,
                    TransferRecord::Failed {
                        request: new.clone(),
                        error: error.clone(),
                        timestamp_ns,
                    },
                );
            }
            Err(error)
        }
    }
}

/// Checks what the request alone can tell, before any state is read.
fn validate(new: &NewTransfer) -> Result<(), TransferError> {
    if new.id.is_zero() {
        return Err(TransferError::IdMustNotBeZero);
    }
    if new.id.is_int_max() {
        return Err(TransferError::IdMustNotBeIntMax);
    }
    match &new.kind {
        TransferKind::Single {
            debit_account_id,
            credit_account_id,
            amount_minor,
            ..
        }
        | TransferKind::Pending {
            debit_account_id,
            credit_account_id,
            amount_minor,
            ..
        } => {
            if debit_account_id.is_zero() {
                return Err(TransferError::DebitAccountIdMustNotBeZero);
            }
            if debit_account_id.is_int_max() {
                return Err(TransferError::DebitAccountIdMustNotBeIntMax);
            }
            if credit_account_id.is_zero() {
                return Err(TransferError::CreditAccountIdMustNotBeZero);
            }
            if credit_account_id.is_int_max() {
                return Err(TransferError::CreditAccountIdMustNotBeIntMax);
            }
            if debit_account_id == credit_account_id {
                return Err(TransferError::AccountsMustBeDifferent);
            }
            if *amount_minor == 0 {
                return Err(TransferError::AmountMustNotBeZero);
            }
        }
        TransferKind::PostPending {
            pending_id,
            amount_minor,
        } => {
            validate_pending_id(new.id, *pending_id)?;
            if *amount_minor == Some(0) {
                return Err(TransferError::AmountMustNotBeZero);
            }
        }
        TransferKind::VoidPending { pending_id } => validate_pending_id(new.id, *pending_id)?,
    }
    Ok(())
}

fn validate_pending_id(id: TransferId, pending_id: TransferId) -> Result<(), TransferError> {
    if pending_id.is_zero() {
        return Err(TransferError::PendingIdMustNotBeZero);
    }
    if pending_id.is_int_max() {
        return Err(TransferError::PendingIdMustNotBeIntMax);
    }
    if pending_id == id {
        return Err(TransferError::PendingIdMustBeDifferent);
    }
    Ok(())
}

/// Answers a retry of an id the ledger already holds: the original outcome for the same body,
/// a refusal for a different one.
fn replay(existing: &TransferRecord, new: &NewTransfer) -> Result<TransferCreated, TransferError> {
    match existing {
        TransferRecord::Applied(transfer) if transfer.request.same_body(new) => {
            Ok(TransferCreated::Exists {
                timestamp_ns: transfer.timestamp_ns,
            })
        }
        TransferRecord::Applied(_) => Err(TransferError::ExistsWithDifferentFields),
        TransferRecord::Failed { request, error, .. } if request.same_body(new) => {
            Err(error.clone())
        }
        TransferRecord::Failed { .. } => Err(TransferError::IdAlreadyFailed),
    }
}

/// The money a single or pending transfer moves.
struct Movement {
    debit_account_id: AccountId,
    credit_account_id: AccountId,
    amount_minor: u64,
    currency: Currency,
    /// `Some` for a pending transfer.
    timeout_s: Option<u32>,
}

fn open<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    new: &NewTransfer,
    timestamp_ns: u64,
    movement: Movement,
) -> Result<(), TransferError> {
    let mut debit = txn
        .account(movement.debit_account_id)
        .ok_or(TransferError::DebitAccountNotFound)?;
    let mut credit = txn
        .account(movement.credit_account_id)
        .ok_or(TransferError::CreditAccountNotFound)?;
    if debit.currency != credit.currency {
        return Err(TransferError::AccountsMustHaveTheSameCurrency {
            debit: debit.currency,
            credit: credit.currency,
        });
    }
    if movement.currency != debit.currency {
        return Err(TransferError::TransferCurrencyMustMatchAccounts {
            transfer: movement.currency,
            accounts: debit.currency,
        });
    }
    if debit.is_closed() {
        return Err(TransferError::DebitAccountClosed);
    }
    if credit.is_closed() {
        return Err(TransferError::CreditAccountClosed);
    }

    let amount = u128::from(movement.amount_minor);
    let pending = movement.timeout_s.is_some();
    let (debits, credits) = if pending {
        (
            &mut debit.balances.debits_pending,
            &mut credit.balances.credits_pending,
        )
    } else {
        (
            &mut debit.balances.debits_posted,
            &mut credit.balances.credits_posted,
        )
    };
    *debits = debits
        .checked_add(amount)
        .ok_or(TransferError::OverflowsDebits)?;
    *credits = credits
        .checked_add(amount)
        .ok_or(TransferError::OverflowsCredits)?;
    // Only the debit side grew on the debit account, and only the credit side on the credit
    // account, so each can break at most one rule.
    if !debit.balances.obey(debit.flags) {
        return Err(TransferError::ExceedsCredits);
    }
    if !credit.balances.obey(credit.flags) {
        return Err(TransferError::ExceedsDebits);
    }

    let (phase, event) = match movement.timeout_s {
        None => (EntryPhase::Single, HistoryEvent::Single),
        Some(timeout_s) => {
            let expires_at_ns = (timeout_s > 0).then(|| {
                // Bounded by TIMESTAMP_NS_MAX + u32::MAX seconds, far below u64::MAX.
                timestamp_ns + u64::from(timeout_s) * NANOS_PER_SECOND
            });
            txn.put_hold(Hold {
                pending_id: new.id,
                debit_account_id: debit.id,
                credit_account_id: credit.id,
                amount_minor: movement.amount_minor,
                currency: movement.currency,
                expires_at_ns,
                status: HoldStatus::Pending,
            });
            (EntryPhase::Pending, HistoryEvent::Pending)
        }
    };
    record(
        txn,
        new,
        timestamp_ns,
        phase,
        event,
        movement.amount_minor,
        debit,
        credit,
    );
    Ok(())
}

enum Settlement {
    /// Post this much (all of the hold when `None`) and release the rest.
    Post(Option<u64>),
    Void,
}

fn settle<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    new: &NewTransfer,
    timestamp_ns: u64,
    pending_id: TransferId,
    settlement: Settlement,
) -> Result<(), TransferError> {
    let Some(mut hold) = txn.hold(pending_id) else {
        return Err(match txn.transfer(pending_id) {
            Some(TransferRecord::Applied(_)) => {
                TransferError::PendingTransferNotPending { pending_id }
            }
            _ => TransferError::PendingTransferNotFound { pending_id },
        });
    };
    match hold.status {
        HoldStatus::Pending => {}
        HoldStatus::Posted { .. } => {
            return Err(TransferError::PendingTransferAlreadyPosted { pending_id })
        }
        HoldStatus::Voided { .. } => {
            return Err(TransferError::PendingTransferAlreadyVoided { pending_id })
        }
        HoldStatus::Expired { .. } => {
            return Err(TransferError::PendingTransferExpired { pending_id })
        }
    }
    // The expiry sweep is bounded per batch, so a hold may be past its deadline and not swept
    // yet. It is expired all the same: money never moves on a hold after its timeout.
    if hold.is_expired_at(timestamp_ns) {
        return Err(TransferError::PendingTransferExpired { pending_id });
    }
    let mut debit = existing_account(txn, hold.debit_account_id);
    let mut credit = existing_account(txn, hold.credit_account_id);
    let held = u128::from(hold.amount_minor);
    release(&mut debit, &mut credit, held);

    let (phase, event, amount_minor) = match settlement {
        Settlement::Post(requested) => {
            let amount_minor = requested.unwrap_or(hold.amount_minor);
            if amount_minor > hold.amount_minor {
                return Err(TransferError::ExceedsPendingTransferAmount {
                    requested_minor: amount_minor,
                    pending_minor: hold.amount_minor,
                });
            }
            if debit.is_closed() {
                return Err(TransferError::DebitAccountClosed);
            }
            if credit.is_closed() {
                return Err(TransferError::CreditAccountClosed);
            }
            let amount = u128::from(amount_minor);
            debit.balances.debits_posted = debit
                .balances
                .debits_posted
                .checked_add(amount)
                .ok_or(TransferError::OverflowsDebits)?;
            credit.balances.credits_posted = credit
                .balances
                .credits_posted
                .checked_add(amount)
                .ok_or(TransferError::OverflowsCredits)?;
            hold.finish(HoldStatus::Posted {
                by: new.id,
                amount_minor,
                at_ns: timestamp_ns,
            });
            (
                EntryPhase::PostPending,
                HistoryEvent::PostPending,
                amount_minor,
            )
        }
        Settlement::Void => {
            hold.finish(HoldStatus::Voided {
                by: new.id,
                at_ns: timestamp_ns,
            });
            (
                EntryPhase::VoidPending,
                HistoryEvent::VoidPending,
                hold.amount_minor,
            )
        }
    };
    // Posting at most what was held cannot break a balance rule the hold already obeyed.
    debug_assert!(debit.balances.obey(debit.flags) && credit.balances.obey(credit.flags));
    txn.put_hold(hold);
    record(
        txn,
        new,
        timestamp_ns,
        phase,
        event,
        amount_minor,
        debit,
        credit,
    );
    Ok(())
}

/// Takes a hold's amount off both accounts' pending balances.
pub(super) fn release(debit: &mut Account, credit: &mut Account, held: u128) {
    debit.balances.debits_pending = debit
        .balances
        .debits_pending
        .checked_sub(held)
        .expect("a pending hold is counted in its debit account's pending debits");
    credit.balances.credits_pending = credit
        .balances
        .credits_pending
        .checked_sub(held)
        .expect("a pending hold is counted in its credit account's pending credits");
}

/// Accounts are never deleted, so an account a hold names must exist.
pub(super) fn existing_account<S: LedgerRead>(txn: &Txn<'_, S>, id: AccountId) -> Account {
    txn.account(id)
        .unwrap_or_else(|| panic!("account {id} named by a hold does not exist"))
}

/// Writes an applied transfer: both accounts, the immutable entry and both history entries.
#[allow(clippy::too_many_arguments)]
fn record<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    new: &NewTransfer,
    timestamp_ns: u64,
    phase: EntryPhase,
    event: HistoryEvent,
    amount_minor: u64,
    debit: Account,
    credit: Account,
) {
    let transfer = Transfer {
        request: new.clone(),
        debit_account_id: debit.id,
        credit_account_id: credit.id,
        amount_minor,
        currency: debit.currency,
        phase,
        timestamp_ns,
    };
    push_history_pair(
        txn,
        new.id,
        timestamp_ns,
        event,
        amount_minor,
        &debit,
        &credit,
    );
    txn.put_account(debit);
    txn.put_account(credit);
    txn.insert_transfer(new.id, TransferRecord::Applied(transfer));
}

pub(super) fn push_history_pair<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    transfer_id: TransferId,
    timestamp_ns: u64,
    event: HistoryEvent,
    amount_minor: u64,
    debit: &Account,
    credit: &Account,
) {
    for (account, side) in [(debit, Side::Debit), (credit, Side::Credit)] {
        txn.push_history(HistoryEntry {
            account_id: account.id,
            timestamp_ns,
            transfer_id,
            event,
            side,
            amount_minor,
            balances: account.balances,
        });
    }
}
