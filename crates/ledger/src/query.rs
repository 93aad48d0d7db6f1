//! Read-side queries over any `LedgerRead`: account history pages and balances in time.

use crate::account::Balances;
use crate::ids::AccountId;
use crate::limits::HISTORY_PAGE_ENTRIES_MAX;
use crate::store::{HistoryEntry, LedgerRead};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("account {0} not found")]
    AccountNotFound(AccountId),
    #[error("page size {given} is outside 1..={HISTORY_PAGE_ENTRIES_MAX}")]
    LimitOutOfRange { given: usize },
    #[error(
        "account {account_id} did not exist yet at {at_ns} ns (created at {created_at_ns} ns)"
    )]
    AccountNotCreatedYet {
        account_id: AccountId,
        at_ns: u64,
        created_at_ns: u64,
    },
}

impl QueryError {
    pub fn code(&self) -> &'static str {
        match self {
            QueryError::AccountNotFound(_) => "account_not_found",
            QueryError::LimitOutOfRange { .. } => "limit_out_of_range",
            QueryError::AccountNotCreatedYet { .. } => "account_not_created_yet",
        }
    }
}

/// One page of an account's history, oldest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryPage {
    pub entries: Vec<HistoryEntry>,
    /// Pass as `cursor_ns` for the next page; `None` when this page is the last.
    pub next_cursor_ns: Option<u64>,
}

/// The entries of `account_id` from `cursor_ns` on (the start when `None`), at most `limit`.
pub fn account_history<S: LedgerRead>(
    store: &S,
    account_id: AccountId,
    cursor_ns: Option<u64>,
    limit: usize,
) -> Result<HistoryPage, QueryError> {
    if limit == 0 || limit > HISTORY_PAGE_ENTRIES_MAX {
        return Err(QueryError::LimitOutOfRange { given: limit });
    }
    if store.account(account_id).is_none() {
        return Err(QueryError::AccountNotFound(account_id));
    }
    // One entry more than asked tells whether another page follows.
    let mut entries = store.history(account_id, cursor_ns.unwrap_or(0), limit + 1);
    let next_cursor_ns = if entries.len() > limit {
        entries.truncate(limit);
        entries.last().map(|last| last.timestamp_ns + 1)
    } else {
        None
    };
    Ok(HistoryPage {
        entries,
        next_cursor_ns,
    })
}

/// The balances of `account_id` right after the last event at or before `at_ns`.
pub fn balance_as_of<S: LedgerRead>(
    store: &S,
    account_id: AccountId,
    at_ns: u64,
) -> Result<Balances, QueryError> {
    let account = store
        .account(account_id)
        .ok_or(QueryError::AccountNotFound(account_id))?;
    if at_ns < account.created_at_ns {
        return Err(QueryError::AccountNotCreatedYet {
            account_id,
            at_ns,
            created_at_ns: account.created_at_ns,
        });
    }
    Ok(store
        .history_at_or_before(account_id, at_ns)
        .map_or(Balances::ZERO, |entry| entry.balances))
}
