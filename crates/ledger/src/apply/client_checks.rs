//! What a client's own ledger commands may not touch: the accounts and transfers the payments
//! ledger derives (ids of 2^127 and above, `payment::chart`). Payments rely on them: a seller's
//! held account must hold exactly what its orders hold, a payout's hold must settle only with
//! the payout. A client that could close, debit, credit, post or void them could make a later
//! payment command impossible to apply.
//!
//! One exception keeps stored value usable: a client transfer may credit a buyer's wallet
//! (a top-up from the client's own account).

use super::txn::Txn;
use crate::account::{CloseAccount, NewAccount};
use crate::errors::{AccountError, CloseAccountError, TransferError};
use crate::ids::AccountId;
use crate::payment::chart::{is_reserved_id, Role};
use crate::store::LedgerRead;
use crate::transfer::{NewTransfer, TransferKind};

pub(super) fn account(new: &NewAccount) -> Result<(), AccountError> {
    // 2^128-1 is reserved too, with its own code (`account::create` answers it).
    if is_reserved_id(new.id.0) && !new.id.is_int_max() {
        return Err(AccountError::IdReserved);
    }
    Ok(())
}

pub(super) fn close(close: &CloseAccount) -> Result<(), CloseAccountError> {
    // 2^128-1 names no account: `account_not_found`, as before.
    if is_reserved_id(close.id.0) && !close.id.is_int_max() {
        return Err(CloseAccountError::IdReserved);
    }
    Ok(())
}

pub(super) fn transfer<S: LedgerRead>(
    txn: &Txn<'_, S>,
    new: &NewTransfer,
) -> Result<(), TransferError> {
    if is_reserved_id(new.id.0) && !new.id.is_int_max() {
        return Err(TransferError::IdReserved);
    }
    match &new.kind {
        TransferKind::Single {
            debit_account_id,
            credit_account_id,
            ..
        }
        | TransferKind::Pending {
            debit_account_id,
            credit_account_id,
            ..
        } => {
            if is_reserved_id(debit_account_id.0) && !debit_account_id.is_int_max() {
                return Err(TransferError::DebitAccountReserved);
            }
            if is_reserved_id(credit_account_id.0)
                && !credit_account_id.is_int_max()
                && !is_buyer_wallet(txn, *credit_account_id)
            {
                return Err(TransferError::CreditAccountReserved);
            }
        }
        TransferKind::PostPending { pending_id, .. } | TransferKind::VoidPending { pending_id } => {
            if is_reserved_id(pending_id.0) && !pending_id.is_int_max() {
                return Err(TransferError::PendingIdReserved {
                    pending_id: *pending_id,
                });
            }
            // A client's hold made before these checks existed may still name a derived
            // account: it settles only by its own expiry.
            if let Some(hold) = txn.hold(*pending_id) {
                if is_reserved_id(hold.debit_account_id.0) {
                    return Err(TransferError::DebitAccountReserved);
                }
                if is_reserved_id(hold.credit_account_id.0)
                    && !is_buyer_wallet(txn, hold.credit_account_id)
                {
                    return Err(TransferError::CreditAccountReserved);
                }
            }
        }
    }
    Ok(())
}

/// Whether `id` is an existing buyer wallet. Only the ledger creates reserved ids, so the
/// account's code names its role truthfully. A wallet not created yet is refused as reserved.
fn is_buyer_wallet<S: LedgerRead>(txn: &Txn<'_, S>, id: AccountId) -> bool {
    txn.account(id)
        .is_some_and(|account| account.code == Role::BuyerWallet.code())
}
