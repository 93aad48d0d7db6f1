//! The one conversion between the protobuf messages of [`crate::ledger`] and `tally_ledger` types.
//!
//! Requests come in through validating `TryFrom` impls that refuse with a [`ConvertError`], whose
//! `code()` is stable and snake_case (amount and metadata refusals reuse the ledger's own codes)
//! and whose message says what to fix. Responses go out through `From` impls, or through
//! functions where the ledger type lacks the currency needed to print its amounts.
//!
//! Money crosses the boundary only as decimal strings: `tally_ledger::parse_amount` on the way in,
//! [`format_balance`] (exact, any `u128`) on the way out. Nothing here panics on input.
//!
//! A post of part of a hold is the one request that cannot be converted alone: its amount is in
//! the hold's currency, which only the ledger state knows. [`TransferDraft`] carries it as a string
//! until the server resolves the currency ([`TransferDraft::resolve`], or
//! [`transfers_from_pb`] for a whole request).
//!
//! Batches: [`accounts_from_pb`], [`transfers_from_pb`] and [`close_accounts_from_pb`] convert a
//! request into the commands to propose plus a [`BatchResponder`] that merges the ledger's results
//! with the items refused here into one `BatchResponse`, keeping linked chains all-or-nothing.

use crate::ledger as pb;
use std::collections::BTreeMap;
use tally_ledger::limits::{BATCH_COMMANDS_MAX, HISTORY_PAGE_ENTRIES_MAX};
use tally_ledger::{
    parse_amount, Account, AccountClosed, AccountCreated, AccountError, AccountFlags, AccountId,
    AmountError, Balances, CloseAccount, Command, CommandResult, Currency, EntryPhase,
    HistoryEntry, HistoryEvent, HistoryPage, IdempotencyBegun, IdempotencyCompleted, Metadata,
    MetadataError, NewAccount, NewTransfer, QueryError, Side, Transfer, TransferCreated,
    TransferId, TransferKind, TransferRecord, UnknownCurrency, ZeroAmount,
};

/// Page size of `GetAccountHistory` when the request's `limit` is 0 (unset).
pub const HISTORY_PAGE_ENTRIES_DEFAULT: usize = 100;

/// ASCII metadata key under which an error `tonic::Status` carries its stable snake_case code.
pub const ERROR_CODE_METADATA_KEY: &str = "tally-error-code";

/// Why a request could not become a ledger type (or a response could not be read back).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    #[error("{field} is missing: set it to the 128-bit id {{hi, lo}}")]
    IdMissing { field: &'static str },
    #[error("{field} is missing: set it")]
    FieldMissing { field: &'static str },
    #[error("{field}: {source}")]
    CurrencyUnknown {
        field: &'static str,
        source: UnknownCurrency,
    },
    #[error("{field}: {source}")]
    Amount {
        field: &'static str,
        source: AmountError,
    },
    #[error("{source}: shorten or drop entries")]
    Metadata { source: MetadataError },
    #[error("transfer kind is missing: set exactly one of single, pending, post_pending or void_pending")]
    KindMissing,
    #[error("{field} is {given} but codes are 16-bit: use a value in 0..=65535")]
    CodeOutOfRange { field: &'static str, given: u32 },
    #[error("limit {given} is outside 1..={HISTORY_PAGE_ENTRIES_MAX}: ask for at most {HISTORY_PAGE_ENTRIES_MAX} entries per page, or send 0 for the default of {HISTORY_PAGE_ENTRIES_DEFAULT}")]
    LimitOutOfRange { given: u32 },
    #[error("request has {items} items but at most {BATCH_COMMANDS_MAX} are allowed: split it")]
    BatchTooLarge { items: usize },
    #[error("pending transfer {pending_id} not found: posting part of a hold needs the hold's currency, so create the pending transfer first (in an earlier request or earlier in this one)")]
    PendingTransferNotFound { pending_id: TransferId },
    #[error("{field} has the unknown value {value}: use one of the enum's named values")]
    EnumUnknown { field: &'static str, value: i32 },
    #[error("transfer {id} was not applied (refused with {code}), so it has no applied form")]
    TransferNotApplied { id: TransferId, code: String },
}

impl ConvertError {
    /// The stable, machine-readable code of this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            ConvertError::IdMissing { .. } => "id_missing",
            ConvertError::FieldMissing { .. } => "field_missing",
            ConvertError::CurrencyUnknown { .. } => "currency_unknown",
            ConvertError::Amount { source, .. } => source.code(),
            ConvertError::Metadata { source } => source.code(),
            ConvertError::KindMissing => "kind_missing",
            ConvertError::CodeOutOfRange { .. } => "code_out_of_range",
            ConvertError::LimitOutOfRange { .. } => "limit_out_of_range",
            ConvertError::BatchTooLarge { .. } => "batch_too_large",
            ConvertError::PendingTransferNotFound { .. } => "pending_transfer_not_found",
            ConvertError::EnumUnknown { .. } => "enum_unknown",
            ConvertError::TransferNotApplied { .. } => "transfer_not_applied",
        }
    }
}

/// A `tonic::Status` with `code`, `message`, and `error_code` under [`ERROR_CODE_METADATA_KEY`].
pub fn status_with_code(code: tonic::Code, error_code: &str, message: String) -> tonic::Status {
    let mut status = tonic::Status::new(code, message);
    if let Ok(value) = tonic::metadata::MetadataValue::try_from(error_code) {
        status.metadata_mut().insert(ERROR_CODE_METADATA_KEY, value);
    }
    status
}

/// A whole request refused (malformed lookup, history or balance request, oversized batch):
/// `INVALID_ARGUMENT` with the error's code in the metadata.
impl From<ConvertError> for tonic::Status {
    fn from(error: ConvertError) -> Self {
        status_with_code(
            tonic::Code::InvalidArgument,
            error.code(),
            error.to_string(),
        )
    }
}

/// The status a query refusal is answered with: `NOT_FOUND` for a missing account,
/// `INVALID_ARGUMENT` for a bad page size, `OUT_OF_RANGE` for a time before the account existed.
/// (Never `FAILED_PRECONDITION`: clients read that code as "not the leader".)
pub fn query_error_status(error: &QueryError) -> tonic::Status {
    let code = match error {
        QueryError::AccountNotFound(_) => tonic::Code::NotFound,
        QueryError::LimitOutOfRange { .. } => tonic::Code::InvalidArgument,
        QueryError::AccountNotCreatedYet { .. } => tonic::Code::OutOfRange,
    };
    status_with_code(code, error.code(), error.to_string())
}

// ---------------------------------------------------------------------------------------------
// Ids, currencies, amounts, metadata.

impl From<u128> for pb::Uint128 {
    fn from(value: u128) -> Self {
        pb::Uint128 {
            hi: (value >> 64) as u64,
            lo: value as u64,
        }
    }
}

impl From<pb::Uint128> for u128 {
    fn from(value: pb::Uint128) -> Self {
        (u128::from(value.hi) << 64) | u128::from(value.lo)
    }
}

impl From<AccountId> for pb::Uint128 {
    fn from(id: AccountId) -> Self {
        id.0.into()
    }
}

impl From<TransferId> for pb::Uint128 {
    fn from(id: TransferId) -> Self {
        id.0.into()
    }
}

fn required_id(field: &'static str, value: Option<pb::Uint128>) -> Result<u128, ConvertError> {
    value
        .map(u128::from)
        .ok_or(ConvertError::IdMissing { field })
}

fn currency_code(field: &'static str, code: &str) -> Result<Currency, ConvertError> {
    code.parse()
        .map_err(|source| ConvertError::CurrencyUnknown { field, source })
}

fn positive_amount(
    field: &'static str,
    given: &str,
    currency: Currency,
) -> Result<u64, ConvertError> {
    parse_amount(given, currency, ZeroAmount::Refused)
        .map_err(|source| ConvertError::Amount { field, source })
}

fn code_u16(field: &'static str, given: u32) -> Result<u16, ConvertError> {
    u16::try_from(given).map_err(|_| ConvertError::CodeOutOfRange { field, given })
}

fn metadata_map(entries: BTreeMap<String, String>) -> Result<Metadata, ConvertError> {
    Metadata::new(entries).map_err(|source| ConvertError::Metadata { source })
}

fn metadata_to_pb(metadata: &Metadata) -> BTreeMap<String, String> {
    metadata
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Prints `minor` minor units of `currency` as a decimal string with the currency's full scale,
/// exactly, for any `u128` (balances can exceed what `format_amount`'s `u64` holds).
pub fn format_balance(minor: u128, currency: Currency) -> String {
    let exponent = currency.exponent() as usize;
    let digits = minor.to_string();
    if exponent == 0 {
        return digits;
    }
    let padded = format!("{digits:0>width$}", width = exponent + 1);
    let (whole, fraction) = padded.split_at(padded.len() - exponent);
    format!("{whole}.{fraction}")
}

/// [`format_balance`] of a signed value (an available balance can be negative).
pub fn format_signed_balance(value: i128, currency: Currency) -> String {
    let magnitude = format_balance(value.unsigned_abs(), currency);
    if value < 0 {
        format!("-{magnitude}")
    } else {
        magnitude
    }
}

/// Parses a balance printed by [`format_balance`] (zero allowed) back into minor units.
pub fn parse_balance(given: &str, currency: Currency) -> Result<u128, AmountError> {
    let malformed = || AmountError::Malformed {
        given: given.to_owned(),
    };
    let unsigned = given.strip_prefix('-').unwrap_or(given);
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (unsigned, None),
    };
    let all_digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole) || !fraction.is_none_or(all_digits) {
        return Err(malformed());
    }
    if unsigned.len() != given.len() {
        return Err(AmountError::Negative {
            given: given.to_owned(),
        });
    }
    let fraction = fraction.unwrap_or("");
    let exponent = currency.exponent();
    let scale = u32::try_from(fraction.len()).unwrap_or(u32::MAX);
    if scale > exponent {
        return Err(AmountError::TooManyDecimals {
            given: given.to_owned(),
            currency,
            scale,
            exponent,
        });
    }
    let overflow = || AmountError::Overflow {
        given: given.to_owned(),
        currency,
        max: format_balance(u128::MAX, currency),
    };
    let whole: u128 = whole.parse().map_err(|_| overflow())?;
    let fraction: u128 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().map_err(|_| overflow())?
    };
    whole
        .checked_mul(10u128.pow(exponent))
        .and_then(|w| w.checked_add(fraction * 10u128.pow(exponent - scale)))
        .ok_or_else(overflow)
}

// ---------------------------------------------------------------------------------------------
// Requests: accounts.

impl TryFrom<pb::NewAccount> for NewAccount {
    type Error = ConvertError;

    fn try_from(account: pb::NewAccount) -> Result<Self, Self::Error> {
        Ok(NewAccount {
            id: AccountId(required_id("id", account.id)?),
            currency: currency_code("currency", &account.currency)?,
            code: code_u16("code", account.code)?,
            flags: AccountFlags {
                debits_must_not_exceed_credits: account.debits_must_not_exceed_credits,
                credits_must_not_exceed_debits: account.credits_must_not_exceed_debits,
            },
            metadata: metadata_map(account.metadata)?,
            linked: account.linked,
        })
    }
}

impl From<&NewAccount> for pb::NewAccount {
    fn from(account: &NewAccount) -> Self {
        pb::NewAccount {
            id: Some(account.id.into()),
            currency: account.currency.code().to_owned(),
            code: u32::from(account.code),
            debits_must_not_exceed_credits: account.flags.debits_must_not_exceed_credits,
            credits_must_not_exceed_debits: account.flags.credits_must_not_exceed_debits,
            metadata: metadata_to_pb(&account.metadata),
            linked: account.linked,
        }
    }
}

impl From<NewAccount> for pb::NewAccount {
    fn from(account: NewAccount) -> Self {
        (&account).into()
    }
}

impl TryFrom<pb::CloseAccount> for CloseAccount {
    type Error = ConvertError;

    fn try_from(close: pb::CloseAccount) -> Result<Self, Self::Error> {
        Ok(CloseAccount {
            id: AccountId(required_id("id", close.id)?),
            linked: close.linked,
        })
    }
}

impl From<&CloseAccount> for pb::CloseAccount {
    fn from(close: &CloseAccount) -> Self {
        pb::CloseAccount {
            id: Some(close.id.into()),
            linked: close.linked,
        }
    }
}

impl From<CloseAccount> for pb::CloseAccount {
    fn from(close: CloseAccount) -> Self {
        (&close).into()
    }
}

// ---------------------------------------------------------------------------------------------
// Requests: transfers.

/// A converted transfer request: complete, or a post of part of a hold whose amount still has to
/// be parsed in the hold's currency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransferDraft {
    Ready(NewTransfer),
    PartialPost(PartialPost),
}

/// A `PostPending` with an amount, before the hold's currency is known. Everything but the
/// amount is validated; the amount is known to be a plain, non-negative decimal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartialPost {
    pub id: TransferId,
    pub pending_id: TransferId,
    /// The decimal string as sent, in the hold's currency.
    pub amount: String,
    pub code: u16,
    pub metadata: Metadata,
    pub linked: bool,
}

impl PartialPost {
    /// Parses the amount in `hold_currency` (refusing zero) and completes the transfer.
    pub fn resolve(self, hold_currency: Currency) -> Result<NewTransfer, ConvertError> {
        let amount_minor = positive_amount("post_pending.amount", &self.amount, hold_currency)?;
        Ok(NewTransfer {
            id: self.id,
            kind: TransferKind::PostPending {
                pending_id: self.pending_id,
                amount_minor: Some(amount_minor),
            },
            code: self.code,
            metadata: self.metadata,
            linked: self.linked,
        })
    }
}

impl TransferDraft {
    pub fn id(&self) -> TransferId {
        match self {
            TransferDraft::Ready(transfer) => transfer.id,
            TransferDraft::PartialPost(post) => post.id,
        }
    }

    pub fn linked(&self) -> bool {
        match self {
            TransferDraft::Ready(transfer) => transfer.linked,
            TransferDraft::PartialPost(post) => post.linked,
        }
    }

    /// The hold whose currency [`TransferDraft::resolve`] needs, if any.
    pub fn pending_id_to_resolve(&self) -> Option<TransferId> {
        match self {
            TransferDraft::Ready(_) => None,
            TransferDraft::PartialPost(post) => Some(post.pending_id),
        }
    }

    /// Completes the transfer. `hold_currency` is asked only for a partial post; `None` (no such
    /// hold) refuses it with `pending_transfer_not_found`.
    pub fn resolve(
        self,
        hold_currency: impl FnOnce(TransferId) -> Option<Currency>,
    ) -> Result<NewTransfer, ConvertError> {
        match self {
            TransferDraft::Ready(transfer) => Ok(transfer),
            TransferDraft::PartialPost(post) => match hold_currency(post.pending_id) {
                Some(currency) => post.resolve(currency),
                None => Err(ConvertError::PendingTransferNotFound {
                    pending_id: post.pending_id,
                }),
            },
        }
    }
}

impl From<NewTransfer> for TransferDraft {
    fn from(transfer: NewTransfer) -> Self {
        TransferDraft::Ready(transfer)
    }
}

impl TryFrom<pb::NewTransfer> for TransferDraft {
    type Error = ConvertError;

    fn try_from(transfer: pb::NewTransfer) -> Result<Self, Self::Error> {
        use pb::new_transfer::Kind;
        let id = TransferId(required_id("id", transfer.id)?);
        let kind = transfer.kind.ok_or(ConvertError::KindMissing)?;
        let code = code_u16("code", transfer.code)?;
        let metadata = metadata_map(transfer.metadata)?;
        let linked = transfer.linked;
        let kind = match kind {
            Kind::Single(single) => {
                let currency = currency_code("single.currency", &single.currency)?;
                TransferKind::Single {
                    debit_account_id: AccountId(required_id(
                        "single.debit_account_id",
                        single.debit_account_id,
                    )?),
                    credit_account_id: AccountId(required_id(
                        "single.credit_account_id",
                        single.credit_account_id,
                    )?),
                    amount_minor: positive_amount("single.amount", &single.amount, currency)?,
                    currency,
                }
            }
            Kind::Pending(pending) => {
                let currency = currency_code("pending.currency", &pending.currency)?;
                TransferKind::Pending {
                    debit_account_id: AccountId(required_id(
                        "pending.debit_account_id",
                        pending.debit_account_id,
                    )?),
                    credit_account_id: AccountId(required_id(
                        "pending.credit_account_id",
                        pending.credit_account_id,
                    )?),
                    amount_minor: positive_amount("pending.amount", &pending.amount, currency)?,
                    currency,
                    timeout_s: pending.timeout_s,
                }
            }
            Kind::PostPending(post) => {
                let pending_id =
                    TransferId(required_id("post_pending.pending_id", post.pending_id)?);
                match post.amount {
                    None => TransferKind::PostPending {
                        pending_id,
                        amount_minor: None,
                    },
                    Some(amount) => {
                        // Malformed and negative amounts are refused whatever the currency, so
                        // they are refused now, even when the hold does not exist.
                        if let Err(
                            source @ (AmountError::Malformed { .. } | AmountError::Negative { .. }),
                        ) = parse_amount(&amount, Currency::USD, ZeroAmount::Allowed)
                        {
                            return Err(ConvertError::Amount {
                                field: "post_pending.amount",
                                source,
                            });
                        }
                        return Ok(TransferDraft::PartialPost(PartialPost {
                            id,
                            pending_id,
                            amount,
                            code,
                            metadata,
                            linked,
                        }));
                    }
                }
            }
            Kind::VoidPending(void) => TransferKind::VoidPending {
                pending_id: TransferId(required_id("void_pending.pending_id", void.pending_id)?),
            },
        };
        Ok(TransferDraft::Ready(NewTransfer {
            id,
            kind,
            code,
            metadata,
            linked,
        }))
    }
}

/// The request message of `transfer`. `post_currency` is the currency of the hold a partial post
/// settles, used only to print that amount; without it the amount is written as
/// `"<n> minor units"`, which no parser accepts, so it can never be mistaken for a decimal.
pub fn new_transfer_to_pb(
    transfer: &NewTransfer,
    post_currency: Option<Currency>,
) -> pb::NewTransfer {
    use pb::new_transfer::Kind;
    let kind = match &transfer.kind {
        TransferKind::Single {
            debit_account_id,
            credit_account_id,
            amount_minor,
            currency,
        } => Kind::Single(pb::Single {
            debit_account_id: Some((*debit_account_id).into()),
            credit_account_id: Some((*credit_account_id).into()),
            amount: format_balance(u128::from(*amount_minor), *currency),
            currency: currency.code().to_owned(),
        }),
        TransferKind::Pending {
            debit_account_id,
            credit_account_id,
            amount_minor,
            currency,
            timeout_s,
        } => Kind::Pending(pb::Pending {
            debit_account_id: Some((*debit_account_id).into()),
            credit_account_id: Some((*credit_account_id).into()),
            amount: format_balance(u128::from(*amount_minor), *currency),
            currency: currency.code().to_owned(),
            timeout_s: *timeout_s,
        }),
        TransferKind::PostPending {
            pending_id,
            amount_minor,
        } => Kind::PostPending(pb::PostPending {
            pending_id: Some((*pending_id).into()),
            amount: amount_minor.map(|minor| match post_currency {
                Some(currency) => format_balance(u128::from(minor), currency),
                None => format!("{minor} minor units"),
            }),
        }),
        TransferKind::VoidPending { pending_id } => Kind::VoidPending(pb::VoidPending {
            pending_id: Some((*pending_id).into()),
        }),
    };
    pb::NewTransfer {
        id: Some(transfer.id.into()),
        kind: Some(kind),
        code: u32::from(transfer.code),
        metadata: metadata_to_pb(&transfer.metadata),
        linked: transfer.linked,
    }
}

/// Lossless for a [`PartialPost`] (its amount is still the string sent); a `Ready` partial post
/// goes through [`new_transfer_to_pb`] without a currency.
impl From<TransferDraft> for pb::NewTransfer {
    fn from(draft: TransferDraft) -> Self {
        match draft {
            TransferDraft::Ready(transfer) => new_transfer_to_pb(&transfer, None),
            TransferDraft::PartialPost(post) => pb::NewTransfer {
                id: Some(post.id.into()),
                kind: Some(pb::new_transfer::Kind::PostPending(pb::PostPending {
                    pending_id: Some(post.pending_id.into()),
                    amount: Some(post.amount),
                })),
                code: u32::from(post.code),
                metadata: metadata_to_pb(&post.metadata),
                linked: post.linked,
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Batches.

fn index_u32(index: usize) -> u32 {
    // Batches are checked against BATCH_COMMANDS_MAX first, so this never saturates.
    u32::try_from(index).unwrap_or(u32::MAX)
}

/// Refuses a request with more than `BATCH_COMMANDS_MAX` items (writes and lookups alike).
pub fn check_batch_len(items: usize) -> Result<(), ConvertError> {
    if items > BATCH_COMMANDS_MAX {
        return Err(ConvertError::BatchTooLarge { items });
    }
    Ok(())
}

/// A converted batch: the commands to propose, in request order, and how to answer.
#[derive(Debug)]
pub struct PreparedBatch<T> {
    /// The items that passed conversion, in request order. Empty when every item was refused:
    /// then propose nothing and answer `responder.respond(&[])`.
    pub commands: Vec<T>,
    pub responder: BatchResponder,
}

/// Builds a batch's `BatchResponse` from the results of its proposed commands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchResponder {
    /// Request index of each proposed command.
    indices: Vec<u32>,
    /// Results of the items refused before proposing.
    refused: Vec<pb::ItemResult>,
}

impl BatchResponder {
    /// One `ItemResult` per request item, by index. `results` are the ledger's results of
    /// `PreparedBatch::commands`, one per command in the same order.
    ///
    /// # Panics
    /// If `results` has a different length than the proposed commands: that is a bug in the
    /// server, never a client error.
    pub fn respond(self, results: &[CommandResult]) -> pb::BatchResponse {
        assert_eq!(
            results.len(),
            self.indices.len(),
            "one ledger result per proposed command"
        );
        let mut all = self.refused;
        all.extend(
            self.indices
                .iter()
                .zip(results)
                .map(|(&index, result)| item_result(index, result)),
        );
        all.sort_by_key(|result| result.index);
        pb::BatchResponse { results: all }
    }

    /// How many commands the responder expects results for.
    pub fn proposed(&self) -> usize {
        self.indices.len()
    }
}

/// Splits converted items into commands to propose and refusals, chain by chain, so that linked
/// chains stay all-or-nothing: a chain (a run of linked items and the first unlinked one after
/// them, or the end of the request) with a refused item is not proposed at all; its refused items
/// answer their own code, the others `linked_event_failed`, as the ledger would.
///
/// Each item is `(linked, conversion result)`; `linked` is the request item's flag, readable even
/// when its conversion failed.
pub fn prepare_batch<T>(items: Vec<(bool, Result<T, ConvertError>)>) -> PreparedBatch<T> {
    let count = items.len();
    let mut commands = Vec::with_capacity(count);
    let mut indices = Vec::with_capacity(count);
    let mut refused = Vec::new();
    let mut chain: Vec<(u32, Result<T, ConvertError>)> = Vec::new();
    for (position, (linked, item)) in items.into_iter().enumerate() {
        chain.push((index_u32(position), item));
        if linked && position + 1 < count {
            continue;
        }
        if chain.iter().any(|(_, item)| item.is_err()) {
            refused.extend(chain.drain(..).map(|(index, item)| match item {
                Err(error) => item_refused(index, &error),
                Ok(_) => pb::ItemResult {
                    index,
                    code: AccountError::LinkedEventFailed.code().to_owned(),
                    message: AccountError::LinkedEventFailed.to_string(),
                    timestamp_ns: 0,
                },
            }));
        } else {
            for (index, item) in chain.drain(..) {
                if let Ok(command) = item {
                    indices.push(index);
                    commands.push(command);
                }
            }
        }
    }
    PreparedBatch {
        commands,
        responder: BatchResponder { indices, refused },
    }
}

/// Converts a `CreateAccounts` request.
pub fn accounts_from_pb(
    accounts: Vec<pb::NewAccount>,
) -> Result<PreparedBatch<Command>, ConvertError> {
    check_batch_len(accounts.len())?;
    Ok(prepare_batch(
        accounts
            .into_iter()
            .map(|account| {
                let linked = account.linked;
                (
                    linked,
                    NewAccount::try_from(account).map(Command::CreateAccount),
                )
            })
            .collect(),
    ))
}

/// Converts a `CloseAccounts` request.
pub fn close_accounts_from_pb(
    accounts: Vec<pb::CloseAccount>,
) -> Result<PreparedBatch<Command>, ConvertError> {
    check_batch_len(accounts.len())?;
    Ok(prepare_batch(
        accounts
            .into_iter()
            .map(|close| {
                let linked = close.linked;
                (
                    linked,
                    CloseAccount::try_from(close).map(Command::CloseAccount),
                )
            })
            .collect(),
    ))
}

/// Converts a `CreateTransfers` request. A partial post takes the currency of its hold from
/// `hold_currency` (the ledger state: a hold's currency never changes, so any applied state that
/// has the hold answers right), or else from a `Pending` item earlier in the same request; with
/// neither it is refused with `pending_transfer_not_found` and never proposed (a retry once the
/// hold exists can then succeed).
pub fn transfers_from_pb(
    transfers: Vec<pb::NewTransfer>,
    mut hold_currency: impl FnMut(TransferId) -> Option<Currency>,
) -> Result<PreparedBatch<Command>, ConvertError> {
    check_batch_len(transfers.len())?;
    let mut pending_in_request: BTreeMap<TransferId, Currency> = BTreeMap::new();
    let mut items = Vec::with_capacity(transfers.len());
    for transfer in transfers {
        let linked = transfer.linked;
        let converted = TransferDraft::try_from(transfer).and_then(|draft| {
            draft.resolve(|pending_id| {
                hold_currency(pending_id).or_else(|| pending_in_request.get(&pending_id).copied())
            })
        });
        if let Ok(NewTransfer {
            id,
            kind: TransferKind::Pending { currency, .. },
            ..
        }) = &converted
        {
            pending_in_request.entry(*id).or_insert(*currency);
        }
        items.push((linked, converted.map(Command::CreateTransfer)));
    }
    Ok(prepare_batch(items))
}

/// The answer to the item at `index` that the ledger gave `result`.
pub fn item_result(index: u32, result: &CommandResult) -> pb::ItemResult {
    let (message, timestamp_ns) = match result {
        CommandResult::CreateAccount(Ok(
            AccountCreated::Created { timestamp_ns } | AccountCreated::Exists { timestamp_ns },
        ))
        | CommandResult::CreateTransfer(Ok(
            TransferCreated::Created { timestamp_ns } | TransferCreated::Exists { timestamp_ns },
        ))
        | CommandResult::CloseAccount(Ok(
            AccountClosed::Closed { timestamp_ns } | AccountClosed::AlreadyClosed { timestamp_ns },
        )) => (String::new(), *timestamp_ns),
        CommandResult::BeginIdempotent(Ok(
            IdempotencyBegun::Started { .. } | IdempotencyBegun::Completed { .. },
        ))
        | CommandResult::CompleteIdempotent(Ok(
            IdempotencyCompleted::Completed | IdempotencyCompleted::AlreadyCompleted,
        )) => (String::new(), 0),
        CommandResult::CreateAccount(Err(e)) => (e.to_string(), 0),
        CommandResult::CreateTransfer(Err(e)) => (e.to_string(), 0),
        CommandResult::CloseAccount(Err(e)) => (e.to_string(), 0),
        CommandResult::BeginIdempotent(Err(e)) | CommandResult::CompleteIdempotent(Err(e)) => {
            (e.to_string(), 0)
        }
        // Payment results travel on the payments service, never in a ledger batch response.
        CommandResult::Payment(result) => match result.as_ref() {
            Ok(_) => (String::new(), 0),
            Err(e) => (e.to_string(), 0),
        },
    };
    pb::ItemResult {
        index,
        code: result.code().to_owned(),
        message,
        timestamp_ns,
    }
}

/// The answer to the item at `index` that could not be converted.
pub fn item_refused(index: u32, error: &ConvertError) -> pb::ItemResult {
    pb::ItemResult {
        index,
        code: error.code().to_owned(),
        message: error.to_string(),
        timestamp_ns: 0,
    }
}

// ---------------------------------------------------------------------------------------------
// Read requests.

/// Account ids of a `LookupAccounts` request, in request order.
pub fn lookup_account_ids(request: &pb::LookupRequest) -> Result<Vec<AccountId>, ConvertError> {
    check_batch_len(request.ids.len())?;
    Ok(request
        .ids
        .iter()
        .map(|id| AccountId((*id).into()))
        .collect())
}

/// Transfer ids of a `LookupTransfers` request, in request order.
pub fn lookup_transfer_ids(request: &pb::LookupRequest) -> Result<Vec<TransferId>, ConvertError> {
    check_batch_len(request.ids.len())?;
    Ok(request
        .ids
        .iter()
        .map(|id| TransferId((*id).into()))
        .collect())
}

/// A validated `GetAccountHistory` request, ready for `tally_ledger::account_history`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryQuery {
    pub account_id: AccountId,
    pub cursor_ns: Option<u64>,
    /// 1..=HISTORY_PAGE_ENTRIES_MAX (a request's 0 becomes the default).
    pub limit: usize,
}

impl TryFrom<pb::HistoryRequest> for HistoryQuery {
    type Error = ConvertError;

    fn try_from(request: pb::HistoryRequest) -> Result<Self, Self::Error> {
        let account_id = AccountId(required_id("account_id", request.account_id)?);
        let limit = match request.limit {
            0 => HISTORY_PAGE_ENTRIES_DEFAULT,
            given => usize::try_from(given)
                .ok()
                .filter(|&limit| limit <= HISTORY_PAGE_ENTRIES_MAX)
                .ok_or(ConvertError::LimitOutOfRange { given })?,
        };
        Ok(HistoryQuery {
            account_id,
            cursor_ns: request.cursor_ns,
            limit,
        })
    }
}

impl From<HistoryQuery> for pb::HistoryRequest {
    fn from(query: HistoryQuery) -> Self {
        pb::HistoryRequest {
            account_id: Some(query.account_id.into()),
            cursor_ns: query.cursor_ns,
            limit: u32::try_from(query.limit).unwrap_or(u32::MAX),
        }
    }
}

/// A validated `GetBalance` request. `as_of_ns: None` means the account's current balances.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BalanceQuery {
    pub account_id: AccountId,
    pub as_of_ns: Option<u64>,
}

impl TryFrom<pb::BalanceRequest> for BalanceQuery {
    type Error = ConvertError;

    fn try_from(request: pb::BalanceRequest) -> Result<Self, Self::Error> {
        Ok(BalanceQuery {
            account_id: AccountId(required_id("account_id", request.account_id)?),
            as_of_ns: request.as_of_ns,
        })
    }
}

impl From<BalanceQuery> for pb::BalanceRequest {
    fn from(query: BalanceQuery) -> Self {
        pb::BalanceRequest {
            account_id: Some(query.account_id.into()),
            as_of_ns: query.as_of_ns,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Responses: balances and accounts.

/// `balances` printed in `currency`.
pub fn balances_to_pb(balances: &Balances, currency: Currency) -> pb::Balances {
    pb::Balances {
        debits_pending: format_balance(balances.debits_pending, currency),
        debits_posted: format_balance(balances.debits_posted, currency),
        credits_pending: format_balance(balances.credits_pending, currency),
        credits_posted: format_balance(balances.credits_posted, currency),
    }
}

/// Reads balances printed in `currency` back.
pub fn balances_from_pb(
    balances: &pb::Balances,
    currency: Currency,
) -> Result<Balances, ConvertError> {
    let parse = |field: &'static str, value: &str| {
        parse_balance(value, currency).map_err(|source| ConvertError::Amount { field, source })
    };
    Ok(Balances {
        debits_pending: parse("balances.debits_pending", &balances.debits_pending)?,
        debits_posted: parse("balances.debits_posted", &balances.debits_posted)?,
        credits_pending: parse("balances.credits_pending", &balances.credits_pending)?,
        credits_posted: parse("balances.credits_posted", &balances.credits_posted)?,
    })
}

/// What an account with `flags` can still spend: `debit_available` for a debit-normal account
/// (`credits_must_not_exceed_debits`, an asset), `credit_available` for every other one.
pub fn available(flags: AccountFlags, balances: &Balances) -> i128 {
    if flags.credits_must_not_exceed_debits {
        balances.debit_available()
    } else {
        balances.credit_available()
    }
}

/// The answer to `GetBalance` for `account` with `balances` (current or as of a time).
pub fn balance_response(account: &Account, balances: &Balances) -> pb::BalanceResponse {
    pb::BalanceResponse {
        balances: Some(balances_to_pb(balances, account.currency)),
        currency: account.currency.code().to_owned(),
        available: format_signed_balance(available(account.flags, balances), account.currency),
    }
}

impl From<&Account> for pb::Account {
    fn from(account: &Account) -> Self {
        pb::Account {
            id: Some(account.id.into()),
            currency: account.currency.code().to_owned(),
            code: u32::from(account.code),
            debits_must_not_exceed_credits: account.flags.debits_must_not_exceed_credits,
            credits_must_not_exceed_debits: account.flags.credits_must_not_exceed_debits,
            metadata: metadata_to_pb(&account.metadata),
            balances: Some(balances_to_pb(&account.balances, account.currency)),
            created_at_ns: account.created_at_ns,
            closed_at_ns: account.closed_at_ns,
        }
    }
}

impl From<Account> for pb::Account {
    fn from(account: Account) -> Self {
        (&account).into()
    }
}

impl TryFrom<pb::Account> for Account {
    type Error = ConvertError;

    fn try_from(account: pb::Account) -> Result<Self, Self::Error> {
        let currency = currency_code("currency", &account.currency)?;
        let balances = account
            .balances
            .as_ref()
            .ok_or(ConvertError::FieldMissing { field: "balances" })?;
        Ok(Account {
            id: AccountId(required_id("id", account.id)?),
            currency,
            code: code_u16("code", account.code)?,
            flags: AccountFlags {
                debits_must_not_exceed_credits: account.debits_must_not_exceed_credits,
                credits_must_not_exceed_debits: account.credits_must_not_exceed_debits,
            },
            metadata: metadata_map(account.metadata)?,
            balances: balances_from_pb(balances, currency)?,
            created_at_ns: account.created_at_ns,
            closed_at_ns: account.closed_at_ns,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Responses: history.

fn event_to_pb(event: HistoryEvent) -> pb::HistoryEvent {
    match event {
        HistoryEvent::Single => pb::HistoryEvent::Single,
        HistoryEvent::Pending => pb::HistoryEvent::Pending,
        HistoryEvent::PostPending => pb::HistoryEvent::PostPending,
        HistoryEvent::VoidPending => pb::HistoryEvent::VoidPending,
        HistoryEvent::Expired => pb::HistoryEvent::Expired,
    }
}

fn event_from_pb(value: i32) -> Result<HistoryEvent, ConvertError> {
    match pb::HistoryEvent::try_from(value) {
        Ok(pb::HistoryEvent::Single) => Ok(HistoryEvent::Single),
        Ok(pb::HistoryEvent::Pending) => Ok(HistoryEvent::Pending),
        Ok(pb::HistoryEvent::PostPending) => Ok(HistoryEvent::PostPending),
        Ok(pb::HistoryEvent::VoidPending) => Ok(HistoryEvent::VoidPending),
        Ok(pb::HistoryEvent::Expired) => Ok(HistoryEvent::Expired),
        Ok(pb::HistoryEvent::Unspecified) | Err(_) => Err(ConvertError::EnumUnknown {
            field: "event",
            value,
        }),
    }
}

fn side_to_pb(side: Side) -> pb::Side {
    match side {
        Side::Debit => pb::Side::Debit,
        Side::Credit => pb::Side::Credit,
    }
}

fn side_from_pb(value: i32) -> Result<Side, ConvertError> {
    match pb::Side::try_from(value) {
        Ok(pb::Side::Debit) => Ok(Side::Debit),
        Ok(pb::Side::Credit) => Ok(Side::Credit),
        Ok(pb::Side::Unspecified) | Err(_) => Err(ConvertError::EnumUnknown {
            field: "side",
            value,
        }),
    }
}

/// `entry` with its amount and balances printed in `currency` (the account's).
pub fn history_entry_to_pb(entry: &HistoryEntry, currency: Currency) -> pb::HistoryEntry {
    pb::HistoryEntry {
        account_id: Some(entry.account_id.into()),
        timestamp_ns: entry.timestamp_ns,
        transfer_id: Some(entry.transfer_id.into()),
        event: event_to_pb(entry.event).into(),
        side: side_to_pb(entry.side).into(),
        amount: format_balance(u128::from(entry.amount_minor), currency),
        balances: Some(balances_to_pb(&entry.balances, currency)),
    }
}

/// Reads a history entry printed in `currency` back.
pub fn history_entry_from_pb(
    entry: pb::HistoryEntry,
    currency: Currency,
) -> Result<HistoryEntry, ConvertError> {
    let balances = entry
        .balances
        .as_ref()
        .ok_or(ConvertError::FieldMissing { field: "balances" })?;
    Ok(HistoryEntry {
        account_id: AccountId(required_id("account_id", entry.account_id)?),
        timestamp_ns: entry.timestamp_ns,
        transfer_id: TransferId(required_id("transfer_id", entry.transfer_id)?),
        event: event_from_pb(entry.event)?,
        side: side_from_pb(entry.side)?,
        amount_minor: parse_amount(&entry.amount, currency, ZeroAmount::Allowed).map_err(
            |source| ConvertError::Amount {
                field: "amount",
                source,
            },
        )?,
        balances: balances_from_pb(balances, currency)?,
    })
}

/// The answer to `GetAccountHistory` for a page of an account in `currency`.
pub fn history_response(page: &HistoryPage, currency: Currency) -> pb::HistoryResponse {
    pb::HistoryResponse {
        entries: page
            .entries
            .iter()
            .map(|entry| history_entry_to_pb(entry, currency))
            .collect(),
        next_cursor_ns: page.next_cursor_ns,
        currency: currency.code().to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// Responses: transfers.

fn phase_to_pb(phase: EntryPhase) -> pb::EntryPhase {
    match phase {
        EntryPhase::Single => pb::EntryPhase::Single,
        EntryPhase::Pending => pb::EntryPhase::Pending,
        EntryPhase::PostPending => pb::EntryPhase::PostPending,
        EntryPhase::VoidPending => pb::EntryPhase::VoidPending,
    }
}

fn phase_from_pb(value: i32) -> Result<EntryPhase, ConvertError> {
    match pb::EntryPhase::try_from(value) {
        Ok(pb::EntryPhase::Single) => Ok(EntryPhase::Single),
        Ok(pb::EntryPhase::Pending) => Ok(EntryPhase::Pending),
        Ok(pb::EntryPhase::PostPending) => Ok(EntryPhase::PostPending),
        Ok(pb::EntryPhase::VoidPending) => Ok(EntryPhase::VoidPending),
        Ok(pb::EntryPhase::Unspecified) | Err(_) => Err(ConvertError::EnumUnknown {
            field: "applied.phase",
            value,
        }),
    }
}

/// The `LookupTransfers` form of a transfer record.
///
/// `hold_currency` matters only for a *refused* partial post, whose request amount is printed in
/// the hold's currency: pass the currency of the hold it names (`LedgerRead::hold`). An applied
/// record carries its own currency, which wins.
pub fn transfer_record_to_pb(
    record: &TransferRecord,
    hold_currency: Option<Currency>,
) -> pb::Transfer {
    match record {
        TransferRecord::Applied(transfer) => pb::Transfer {
            id: Some(transfer.request.id.into()),
            request: Some(new_transfer_to_pb(
                &transfer.request,
                Some(transfer.currency),
            )),
            timestamp_ns: transfer.timestamp_ns,
            outcome: Some(pb::transfer::Outcome::Applied(pb::AppliedTransfer {
                debit_account_id: Some(transfer.debit_account_id.into()),
                credit_account_id: Some(transfer.credit_account_id.into()),
                amount: format_balance(u128::from(transfer.amount_minor), transfer.currency),
                currency: transfer.currency.code().to_owned(),
                phase: phase_to_pb(transfer.phase).into(),
            })),
        },
        TransferRecord::Failed {
            request,
            error,
            timestamp_ns,
        } => pb::Transfer {
            id: Some(request.id.into()),
            request: Some(new_transfer_to_pb(request, hold_currency)),
            timestamp_ns: *timestamp_ns,
            outcome: Some(pb::transfer::Outcome::Failed(pb::FailedTransfer {
                code: error.code().to_owned(),
                message: error.to_string(),
            })),
        },
    }
}

/// [`transfer_record_to_pb`] without a hold currency.
impl From<&TransferRecord> for pb::Transfer {
    fn from(record: &TransferRecord) -> Self {
        transfer_record_to_pb(record, None)
    }
}

impl From<TransferRecord> for pb::Transfer {
    fn from(record: TransferRecord) -> Self {
        transfer_record_to_pb(&record, None)
    }
}

/// Reads an applied transfer back; a refused one is `transfer_not_applied`.
impl TryFrom<pb::Transfer> for Transfer {
    type Error = ConvertError;

    fn try_from(transfer: pb::Transfer) -> Result<Self, Self::Error> {
        let transfer_id = TransferId(required_id("id", transfer.id)?);
        let applied = match transfer.outcome {
            Some(pb::transfer::Outcome::Applied(applied)) => applied,
            Some(pb::transfer::Outcome::Failed(failed)) => {
                return Err(ConvertError::TransferNotApplied {
                    id: transfer_id,
                    code: failed.code,
                })
            }
            None => return Err(ConvertError::FieldMissing { field: "outcome" }),
        };
        let currency = currency_code("applied.currency", &applied.currency)?;
        let request = transfer
            .request
            .ok_or(ConvertError::FieldMissing { field: "request" })?;
        let request = TransferDraft::try_from(request)?.resolve(|_| Some(currency))?;
        Ok(Transfer {
            request,
            debit_account_id: AccountId(required_id(
                "applied.debit_account_id",
                applied.debit_account_id,
            )?),
            credit_account_id: AccountId(required_id(
                "applied.credit_account_id",
                applied.credit_account_id,
            )?),
            amount_minor: positive_amount("applied.amount", &applied.amount, currency)?,
            currency,
            phase: phase_from_pb(applied.phase)?,
            timestamp_ns: transfer.timestamp_ns,
        })
    }
}

#[cfg(test)]
mod tests;
