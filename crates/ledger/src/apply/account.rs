//! Opening and closing accounts.

use super::txn::Txn;
use crate::account::{Account, Balances, CloseAccount, NewAccount};
use crate::command::{AccountClosed, AccountCreated};
use crate::errors::{AccountError, CloseAccountError};
use crate::store::LedgerRead;

pub(super) fn create<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    new: &NewAccount,
    timestamp_ns: u64,
) -> Result<AccountCreated, AccountError> {
    if new.id.is_zero() {
        return Err(AccountError::IdMustNotBeZero);
    }
    if new.id.is_int_max() {
        return Err(AccountError::IdMustNotBeIntMax);
    }
    if new.flags.debits_must_not_exceed_credits && new.flags.credits_must_not_exceed_debits {
        return Err(AccountError::FlagsAreMutuallyExclusive);
    }
    if let Some(existing) = txn.account(new.id) {
        return if existing.currency != new.currency {
            Err(AccountError::ExistsWithDifferentCurrency)
        } else if existing.code != new.code {
            Err(AccountError::ExistsWithDifferentCode)
        } else if existing.flags != new.flags {
            Err(AccountError::ExistsWithDifferentFlags)
        } else if existing.metadata != new.metadata {
            Err(AccountError::ExistsWithDifferentMetadata)
        } else {
            Ok(AccountCreated::Exists {
                timestamp_ns: existing.created_at_ns,
            })
        };
    }
    txn.put_account(Account {
        id: new.id,
        currency: new.currency,
        code: new.code,
        flags: new.flags,
        metadata: new.metadata.clone(),
        balances: Balances::ZERO,
        created_at_ns: timestamp_ns,
        closed_at_ns: None,
    });
    Ok(AccountCreated::Created { timestamp_ns })
}

pub(super) fn close<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    close: &CloseAccount,
    timestamp_ns: u64,
) -> Result<AccountClosed, CloseAccountError> {
    let mut account = txn
        .account(close.id)
        .ok_or(CloseAccountError::AccountNotFound)?;
    if let Some(closed_at_ns) = account.closed_at_ns {
        return Ok(AccountClosed::AlreadyClosed {
            timestamp_ns: closed_at_ns,
        });
    }
    account.closed_at_ns = Some(timestamp_ns);
    txn.put_account(account);
    Ok(AccountClosed::Closed { timestamp_ns })
}
