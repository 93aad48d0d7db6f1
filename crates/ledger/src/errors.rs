//! Every refusal `apply` can answer, one enum per command kind. Each variant has a stable
//! snake_case code (it keeps its meaning once shipped) and a message that says what to fix.

use crate::ids::TransferId;
use crate::limits::{
    BATCH_COMMANDS_MAX, IDEMPOTENCY_LEASE_MS_MAX, IDEMPOTENCY_RESPONSE_BYTES_MAX,
    IDEMPOTENCY_RETAIN_MS_MAX, TIMESTAMP_NS_MAX,
};
use crate::money::Currency;
use serde::{Deserialize, Serialize};

macro_rules! codes {
    ($name:ident { $($variant:ident $( { $($field:ident),* } )? => $code:literal,)* }) => {
        impl $name {
            /// The stable, machine-readable code of this refusal.
            pub fn code(&self) -> &'static str {
                match self {
                    $($name::$variant $( { $($field: _),* } )? => $code,)*
                }
            }
        }
    };
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AccountError {
    #[error("another command linked with this one failed, so none of the chain was applied; fix that command and resend the chain")]
    LinkedEventFailed,
    #[error("the batch ends inside a linked chain: clear `linked` on the chain's last command")]
    LinkedEventChainOpen,
    #[error("account id must not be zero")]
    IdMustNotBeZero,
    #[error("account id must not be 2^128-1, which is reserved")]
    IdMustNotBeIntMax,
    #[error("account ids of 2^127 and above are reserved for accounts the ledger derives (payments); pick an id below 2^127")]
    IdReserved,
    #[error(
        "debits_must_not_exceed_credits and credits_must_not_exceed_debits cannot both be set"
    )]
    FlagsAreMutuallyExclusive,
    #[error("an account with this id exists with a different currency; pick a new id")]
    ExistsWithDifferentCurrency,
    #[error("an account with this id exists with a different code; pick a new id")]
    ExistsWithDifferentCode,
    #[error("an account with this id exists with different flags; pick a new id")]
    ExistsWithDifferentFlags,
    #[error("an account with this id exists with different metadata; pick a new id")]
    ExistsWithDifferentMetadata,
    /// A bug in the ledger stopped this command; nothing of it was applied.
    #[error("internal error: the ledger hit a bug applying this command and applied nothing of it; report it with the command, and retrying the same command gets the same answer")]
    Internal,
}

codes!(AccountError {
    LinkedEventFailed => "linked_event_failed",
    LinkedEventChainOpen => "linked_event_chain_open",
    IdMustNotBeZero => "id_must_not_be_zero",
    IdMustNotBeIntMax => "id_must_not_be_int_max",
    IdReserved => "id_reserved",
    FlagsAreMutuallyExclusive => "flags_are_mutually_exclusive",
    ExistsWithDifferentCurrency => "exists_with_different_currency",
    ExistsWithDifferentCode => "exists_with_different_code",
    ExistsWithDifferentFlags => "exists_with_different_flags",
    ExistsWithDifferentMetadata => "exists_with_different_metadata",
    Internal => "internal_error",
});

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum TransferError {
    #[error("another command linked with this one failed, so none of the chain was applied; fix that command and resend the chain")]
    LinkedEventFailed,
    #[error("the batch ends inside a linked chain: clear `linked` on the chain's last command")]
    LinkedEventChainOpen,
    #[error("transfer id must not be zero")]
    IdMustNotBeZero,
    #[error("transfer id must not be 2^128-1, which is reserved")]
    IdMustNotBeIntMax,
    #[error("transfer ids of 2^127 and above are reserved for transfers the ledger derives (payments); pick an id below 2^127")]
    IdReserved,
    #[error("a transfer with this id exists with a different body; a retry must resend the same body, a new transfer needs a new id")]
    ExistsWithDifferentFields,
    #[error("a transfer with this id was refused earlier with a different body; a new transfer needs a new id")]
    IdAlreadyFailed,
    #[error("debit account id must not be zero")]
    DebitAccountIdMustNotBeZero,
    #[error("debit account id must not be 2^128-1")]
    DebitAccountIdMustNotBeIntMax,
    #[error("credit account id must not be zero")]
    CreditAccountIdMustNotBeZero,
    #[error("credit account id must not be 2^128-1")]
    CreditAccountIdMustNotBeIntMax,
    #[error("debit and credit account must be different accounts")]
    AccountsMustBeDifferent,
    #[error("amount must not be zero")]
    AmountMustNotBeZero,
    #[error("pending id must not be zero")]
    PendingIdMustNotBeZero,
    #[error("pending id must not be 2^128-1")]
    PendingIdMustNotBeIntMax,
    #[error("pending id must name another transfer, not this one")]
    PendingIdMustBeDifferent,
    #[error("debit account not found: create it first")]
    DebitAccountNotFound,
    #[error("credit account not found: create it first")]
    CreditAccountNotFound,
    #[error("debit account is in {debit} but credit account is in {credit}: both must hold the same currency")]
    AccountsMustHaveTheSameCurrency { debit: Currency, credit: Currency },
    #[error("transfer is in {transfer} but the accounts hold {accounts}")]
    TransferCurrencyMustMatchAccounts {
        transfer: Currency,
        accounts: Currency,
    },
    #[error("debit account is closed")]
    DebitAccountClosed,
    #[error("credit account is closed")]
    CreditAccountClosed,
    #[error(
        "debit account would have more debits than credits, which its flags forbid: fund it first"
    )]
    ExceedsCredits,
    #[error("credit account would have more credits than debits, which its flags forbid")]
    ExceedsDebits,
    #[error("debit account's debits would overflow")]
    OverflowsDebits,
    #[error("credit account's credits would overflow")]
    OverflowsCredits,
    #[error("pending transfer {pending_id} not found")]
    PendingTransferNotFound { pending_id: TransferId },
    #[error("transfer {pending_id} is not a pending transfer, so it cannot be posted or voided")]
    PendingTransferNotPending { pending_id: TransferId },
    #[error("pending transfer {pending_id} was already posted")]
    PendingTransferAlreadyPosted { pending_id: TransferId },
    #[error("pending transfer {pending_id} was already voided")]
    PendingTransferAlreadyVoided { pending_id: TransferId },
    #[error("pending transfer {pending_id} has expired and its funds were released")]
    PendingTransferExpired { pending_id: TransferId },
    #[error("post of {requested_minor} exceeds the pending amount {pending_minor}; post at most the pending amount")]
    ExceedsPendingTransferAmount {
        requested_minor: u64,
        pending_minor: u64,
    },
    /// A bug in the ledger stopped this command; nothing of it was applied.
    #[error("internal error: the ledger hit a bug applying this transfer and applied nothing of it; report it with the transfer")]
    Internal,
    #[error("the debit account is a payments account the ledger derives (ids of 2^127 and above): its money moves only through payment commands")]
    DebitAccountReserved,
    #[error("the credit account is a payments account the ledger derives (ids of 2^127 and above): of those, a transfer may credit only a buyer's wallet (a top-up)")]
    CreditAccountReserved,
    #[error("pending transfer {pending_id} is one the payments ledger holds (ids of 2^127 and above): only payment commands post or void it")]
    PendingIdReserved { pending_id: TransferId },
}

codes!(TransferError {
    LinkedEventFailed => "linked_event_failed",
    LinkedEventChainOpen => "linked_event_chain_open",
    IdMustNotBeZero => "id_must_not_be_zero",
    IdMustNotBeIntMax => "id_must_not_be_int_max",
    IdReserved => "id_reserved",
    ExistsWithDifferentFields => "exists_with_different_fields",
    IdAlreadyFailed => "id_already_failed",
    DebitAccountIdMustNotBeZero => "debit_account_id_must_not_be_zero",
    DebitAccountIdMustNotBeIntMax => "debit_account_id_must_not_be_int_max",
    CreditAccountIdMustNotBeZero => "credit_account_id_must_not_be_zero",
    CreditAccountIdMustNotBeIntMax => "credit_account_id_must_not_be_int_max",
    AccountsMustBeDifferent => "accounts_must_be_different",
    AmountMustNotBeZero => "amount_must_not_be_zero",
    PendingIdMustNotBeZero => "pending_id_must_not_be_zero",
    PendingIdMustNotBeIntMax => "pending_id_must_not_be_int_max",
    PendingIdMustBeDifferent => "pending_id_must_be_different",
    DebitAccountNotFound => "debit_account_not_found",
    CreditAccountNotFound => "credit_account_not_found",
    AccountsMustHaveTheSameCurrency { debit, credit } => "accounts_must_have_the_same_currency",
    TransferCurrencyMustMatchAccounts { transfer, accounts } => "transfer_currency_must_match_accounts",
    DebitAccountClosed => "debit_account_closed",
    CreditAccountClosed => "credit_account_closed",
    ExceedsCredits => "exceeds_credits",
    ExceedsDebits => "exceeds_debits",
    OverflowsDebits => "overflows_debits",
    OverflowsCredits => "overflows_credits",
    PendingTransferNotFound { pending_id } => "pending_transfer_not_found",
    PendingTransferNotPending { pending_id } => "pending_transfer_not_pending",
    PendingTransferAlreadyPosted { pending_id } => "pending_transfer_already_posted",
    PendingTransferAlreadyVoided { pending_id } => "pending_transfer_already_voided",
    PendingTransferExpired { pending_id } => "pending_transfer_expired",
    ExceedsPendingTransferAmount { requested_minor, pending_minor } => "exceeds_pending_transfer_amount",
    Internal => "internal_error",
    DebitAccountReserved => "debit_account_reserved",
    CreditAccountReserved => "credit_account_reserved",
    PendingIdReserved { pending_id } => "pending_id_reserved",
});

impl TransferError {
    /// Whether this refusal depends on ledger state rather than on the request alone. Such a
    /// refusal of a transfer outside a chain is recorded under its id, so a retry gets the same
    /// answer even after the state has changed.
    pub fn depends_on_state(&self) -> bool {
        use TransferError::*;
        matches!(
            self,
            DebitAccountNotFound
                | CreditAccountNotFound
                | AccountsMustHaveTheSameCurrency { .. }
                | TransferCurrencyMustMatchAccounts { .. }
                | DebitAccountClosed
                | CreditAccountClosed
                | ExceedsCredits
                | ExceedsDebits
                | OverflowsDebits
                | OverflowsCredits
                | PendingTransferNotFound { .. }
                | PendingTransferNotPending { .. }
                | PendingTransferAlreadyPosted { .. }
                | PendingTransferAlreadyVoided { .. }
                | PendingTransferExpired { .. }
                | ExceedsPendingTransferAmount { .. }
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum CloseAccountError {
    #[error("another command linked with this one failed, so none of the chain was applied; fix that command and resend the chain")]
    LinkedEventFailed,
    #[error("the batch ends inside a linked chain: clear `linked` on the chain's last command")]
    LinkedEventChainOpen,
    #[error("account not found")]
    AccountNotFound,
    #[error("accounts with ids of 2^127 and above belong to the payments ledger and cannot be closed by a client")]
    IdReserved,
    /// A bug in the ledger stopped this command; nothing of it was applied.
    #[error("internal error: the ledger hit a bug applying this command and applied nothing of it; report it with the command")]
    Internal,
}

codes!(CloseAccountError {
    LinkedEventFailed => "linked_event_failed",
    LinkedEventChainOpen => "linked_event_chain_open",
    AccountNotFound => "account_not_found",
    IdReserved => "id_reserved",
    Internal => "internal_error",
});

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum IdempotencyError {
    #[error("another command linked with this one failed, so none of the chain was applied; fix that command and resend the chain")]
    LinkedEventFailed,
    #[error(
        "the same key was used for a different request; a new request needs a new idempotency key"
    )]
    RequestMismatch,
    #[error("a request with this key is still being processed; retry after its lease ends at {lease_until_ns} ns")]
    InProgress { lease_until_ns: u64 },
    #[error("no request with this key was begun")]
    NotFound,
    #[error(
        "this attempt's lease was lost to attempt {current_attempt}; its result must be discarded"
    )]
    LeaseLost { current_attempt: u64 },
    #[error("the key was already completed with a different response")]
    CompletedWithDifferentResponse,
    #[error("lease must be between 1 and {IDEMPOTENCY_LEASE_MS_MAX} ms")]
    LeaseOutOfRange,
    #[error("response is larger than {IDEMPOTENCY_RESPONSE_BYTES_MAX} bytes")]
    ResponseTooLarge,
    /// A bug in the ledger stopped this command; nothing of it was applied.
    #[error("internal error: the ledger hit a bug applying this command and applied nothing of it; report it with the command")]
    Internal,
    #[error("retention must be between 1 and {IDEMPOTENCY_RETAIN_MS_MAX} ms")]
    RetentionOutOfRange,
}

codes!(IdempotencyError {
    LinkedEventFailed => "linked_event_failed",
    RequestMismatch => "idempotency_request_mismatch",
    InProgress { lease_until_ns } => "idempotency_in_progress",
    NotFound => "idempotency_key_not_found",
    LeaseLost { current_attempt } => "idempotency_lease_lost",
    CompletedWithDifferentResponse => "idempotency_completed_with_different_response",
    LeaseOutOfRange => "idempotency_lease_out_of_range",
    ResponseTooLarge => "idempotency_response_too_large",
    Internal => "internal_error",
    RetentionOutOfRange => "idempotency_retention_out_of_range",
});

/// Refusal of a whole batch: nothing in it was applied. Only a buggy or malicious proposer sends
/// one, since the replication layer checks these bounds before proposing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("batch has {commands} commands; at most {BATCH_COMMANDS_MAX} are allowed: split it")]
    TooManyCommands { commands: usize },
    #[error("batch timestamp {timestamp_ns} is outside 1..={TIMESTAMP_NS_MAX} ns")]
    TimestampOutOfRange { timestamp_ns: u64 },
}

impl BatchError {
    pub fn code(&self) -> &'static str {
        match self {
            BatchError::TooManyCommands { .. } => "batch_too_large",
            BatchError::TimestampOutOfRange { .. } => "batch_timestamp_out_of_range",
        }
    }
}
