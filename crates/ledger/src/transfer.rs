//! Transfers: the request, the immutable applied entry, and the two-phase hold it may open.

use crate::errors::TransferError;
use crate::ids::{AccountId, TransferId};
use crate::metadata::Metadata;
use crate::money::Currency;
use serde::{Deserialize, Serialize};

/// What a transfer does. An enum rather than flags, so that no meaningless combination (a post
/// that is also pending, a void with an amount) can even be written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferKind {
    /// Moves `amount_minor` from debit to credit at once.
    Single {
        debit_account_id: AccountId,
        credit_account_id: AccountId,
        amount_minor: u64,
        currency: Currency,
    },
    /// Reserves `amount_minor` (a hold) until posted, voided or expired. `timeout_s == 0` never
    /// expires.
    Pending {
        debit_account_id: AccountId,
        credit_account_id: AccountId,
        amount_minor: u64,
        currency: Currency,
        timeout_s: u32,
    },
    /// Settles the hold `pending_id`: posts `amount_minor` (all of it when `None`) and releases
    /// the rest.
    PostPending {
        pending_id: TransferId,
        amount_minor: Option<u64>,
    },
    /// Releases the hold `pending_id` entirely.
    VoidPending { pending_id: TransferId },
}

/// A request to apply a transfer. `id` is its idempotency key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTransfer {
    pub id: TransferId,
    pub kind: TransferKind,
    /// The transfer's reason in the client's terms (charge, fee, refund, payout...).
    pub code: u16,
    pub metadata: Metadata,
    /// Links this command with the next one in the batch: they apply all-or-nothing.
    pub linked: bool,
}

impl NewTransfer {
    /// Whether `other` asks for the same thing. `linked` is left out: it describes the batch the
    /// request travelled in, not the transfer.
    pub fn same_body(&self, other: &NewTransfer) -> bool {
        self.id == other.id
            && self.kind == other.kind
            && self.code == other.code
            && self.metadata == other.metadata
    }
}

/// The phase of an applied transfer entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryPhase {
    Single,
    Pending,
    PostPending,
    VoidPending,
}

/// An applied transfer. Immutable once written: corrections are new transfers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// The request exactly as applied, kept to answer retries with the same or a different body.
    pub request: NewTransfer,
    /// Resolved accounts: for a post or void, those of the pending transfer.
    pub debit_account_id: AccountId,
    pub credit_account_id: AccountId,
    /// Resolved amount: posted for single and post, reserved for pending, released for void.
    pub amount_minor: u64,
    pub currency: Currency,
    pub phase: EntryPhase,
    pub timestamp_ns: u64,
}

/// What the ledger remembers under a transfer id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransferRecord {
    Applied(Transfer),
    /// A transfer refused for a reason that depends on ledger state (funds, accounts, holds). Its
    /// id stays taken so that a retry gets the original answer, never a different one because the
    /// state moved on meanwhile.
    Failed {
        request: NewTransfer,
        error: TransferError,
        timestamp_ns: u64,
    },
}

/// The state of a two-phase hold, keyed by the pending transfer's id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub pending_id: TransferId,
    pub debit_account_id: AccountId,
    pub credit_account_id: AccountId,
    pub amount_minor: u64,
    pub currency: Currency,
    pub expires_at_ns: Option<u64>,
    pub status: HoldStatus,
}

/// `Pending` is the only non-final status; nothing ever leaves a final one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HoldStatus {
    Pending,
    Posted {
        by: TransferId,
        amount_minor: u64,
        at_ns: u64,
    },
    Voided {
        by: TransferId,
        at_ns: u64,
    },
    Expired {
        at_ns: u64,
    },
}

impl HoldStatus {
    pub fn is_final(&self) -> bool {
        !matches!(self, HoldStatus::Pending)
    }
}

impl Hold {
    /// Moves a pending hold to a final status. A transition out of a final status is a bug in
    /// the ledger, never a client error, so it stops the process.
    pub fn finish(&mut self, status: HoldStatus) {
        assert!(
            !self.status.is_final(),
            "hold {} left final status {:?}",
            self.pending_id,
            self.status
        );
        assert!(
            status.is_final(),
            "hold {} finished as pending",
            self.pending_id
        );
        self.status = status;
    }

    pub fn is_expired_at(&self, timestamp_ns: u64) -> bool {
        self.expires_at_ns.is_some_and(|at| at <= timestamp_ns)
    }
}
