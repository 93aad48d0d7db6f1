//! `tally-ledger`: Tally's pure ledger core.
//!
//! A double-entry ledger with client-chosen ids, two-phase transfers (holds), linked chains that
//! apply all-or-nothing, and generic idempotency records. Everything enters through one
//! deterministic function, [`apply`]: `(state, commands, timestamp) -> (results, changes)`.
//!
//! Architecture invariants (see ARCHITECTURE.md):
//! - no async, clock, randomness, I/O or hash-map iteration order reaches an output;
//! - time is the batch timestamp the Raft leader stamped on the log entry;
//! - state is read through [`LedgerRead`] and written only by the caller, from the returned
//!   [`ChangeSet`], so any key-value store with atomic batches can hold it;
//! - per currency, debits equal credits (posted and pending) after every batch, no account breaks
//!   its flags, a transfer id applies at most once, entries and final hold states never change.

mod account;
mod apply;
mod audit;
mod command;
mod errors;
mod idempotency;
mod ids;
pub mod limits;
mod mem_store;
mod metadata;
mod money;
pub mod payment;
mod query;
mod store;
mod transfer;

pub use account::{Account, AccountFlags, Balances, CloseAccount, NewAccount};
pub use apply::{
    apply, apply_with_bugs, panic_text, Applied, ApplyFault, PlantedBugs, PLANTED_PANIC_CODE,
};
pub use audit::{audit, AuditReport, InvariantViolation};
pub use command::{
    AccountClosed, AccountCreated, Command, CommandResult, IdempotencyBegun, IdempotencyCompleted,
    TransferCreated,
};
pub use errors::{AccountError, BatchError, CloseAccountError, IdempotencyError, TransferError};
pub use idempotency::{
    BeginIdempotent, CompleteIdempotent, IdempotencyKey, IdempotencyKeyLength, IdempotencyRecord,
    IdempotencyState, RequestHash,
};
pub use ids::{AccountId, TransferId};
pub use mem_store::MemStore;
pub use metadata::{Metadata, MetadataError};
pub use money::{
    amount_from_decimal, amount_to_decimal, format_amount, parse_amount, AmountError, Currency,
    UnknownCurrency, ZeroAmount,
};
pub use query::{account_history, balance_as_of, HistoryPage, QueryError};
pub use store::{
    ChangeSet, HistoryEntry, HistoryEvent, LedgerMeta, LedgerRead, Side, StoreFailure,
};
pub use transfer::{
    EntryPhase, Hold, HoldStatus, NewTransfer, Transfer, TransferKind, TransferRecord,
};
