//! The storage boundary: what `apply` reads (`LedgerRead`) and what it hands back to be written
//! (`ChangeSet`).
//!
//! `apply` never writes. It reads point values and short ranges through `LedgerRead`, keeps its
//! own writes in an overlay, and returns every change of the batch as one `ChangeSet` in a
//! deterministic order. The caller persists the change set atomically; the replicated store
//! writes it in the same RocksDB write batch as the Raft last-applied id. A backend therefore
//! only needs point gets, ordered range scans and atomic batch writes, which RocksDB has, so the
//! ledger never needs every account in memory.
//!
//! Reads are infallible by contract: a replica that cannot read its own state cannot apply the
//! log deterministically, so a backend that hits an I/O error or corrupt bytes must stop the
//! process (panic) rather than answer something else. Raft recovers the node from its peers.

use crate::account::{Account, Balances};
use crate::idempotency::{IdempotencyKey, IdempotencyRecord};
use crate::ids::{AccountId, TransferId};
use crate::money::Currency;
use crate::transfer::{Hold, TransferRecord};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Read access to ledger state, as `apply` and the queries need it.
pub trait LedgerRead {
    fn meta(&self) -> LedgerMeta;
    fn account(&self, id: AccountId) -> Option<Account>;
    fn transfer(&self, id: TransferId) -> Option<TransferRecord>;
    fn hold(&self, pending_id: TransferId) -> Option<Hold>;
    fn idempotency(&self, key: &IdempotencyKey) -> Option<IdempotencyRecord>;
    /// Ids of pending holds whose expiry is at or before `up_to_ns`, earliest expiry first (ties
    /// by id), at most `limit`.
    fn holds_expiring(&self, up_to_ns: u64, limit: usize) -> Vec<TransferId>;
    /// An account's history entries with `timestamp_ns >= from_ns`, oldest first, at most `limit`.
    fn history(&self, account_id: AccountId, from_ns: u64, limit: usize) -> Vec<HistoryEntry>;
    /// An account's latest history entry at or before `at_ns`.
    fn history_at_or_before(&self, account_id: AccountId, at_ns: u64) -> Option<HistoryEntry>;
    /// Every account in id order (audits and snapshots; never on the apply path).
    fn scan_accounts(&self, visit: &mut dyn FnMut(&Account));
    /// Every hold, pending or final, in id order (audits and snapshots).
    fn scan_holds(&self, visit: &mut dyn FnMut(&Hold));
}

/// Ledger-wide values, rewritten by every batch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerMeta {
    /// The timestamp of the last event applied; every event's timestamp is larger.
    pub last_timestamp_ns: u64,
    pub batches_applied: u64,
    /// BLAKE3 over the previous value, the batch timestamp, the commands and their results.
    /// Replicas that applied the same log have the same chain; a difference is divergence.
    pub hash_chain: [u8; 32],
    /// Per currency, the sums of every account's balances. Kept from the balance changes each
    /// batch writes, so "debits equal credits" is checked after every batch without a scan; an
    /// audit recomputes them from the accounts.
    pub totals: BTreeMap<Currency, Balances>,
}

/// Which side of a transfer an account was on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Side {
    Debit,
    Credit,
}

/// What changed an account's balances.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HistoryEvent {
    Single,
    Pending,
    PostPending,
    VoidPending,
    /// A hold reached its timeout; `transfer_id` is the pending transfer's.
    Expired,
}

/// One change to one account, with the balances right after it. Keyed by
/// `(account_id, timestamp_ns)`, unique because every event has its own timestamp.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub account_id: AccountId,
    pub timestamp_ns: u64,
    pub transfer_id: TransferId,
    pub event: HistoryEvent,
    pub side: Side,
    pub amount_minor: u64,
    pub balances: Balances,
}

/// Everything one batch changed, ordered so that any backend writes the same bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangeSet {
    /// New values of created or changed accounts, by id.
    pub accounts: Vec<Account>,
    /// Newly recorded transfers, by id. Existing records are never rewritten.
    pub transfers: Vec<(TransferId, TransferRecord)>,
    /// New or changed holds, by pending id.
    pub holds: Vec<Hold>,
    /// `(expires_at_ns, pending_id)` pairs to add to / remove from the expiry index.
    pub expiry_inserts: Vec<(u64, TransferId)>,
    pub expiry_removes: Vec<(u64, TransferId)>,
    /// New history entries, in event order.
    pub history: Vec<HistoryEntry>,
    /// New or changed idempotency records, by key.
    pub idempotency: Vec<IdempotencyRecord>,
    pub meta: LedgerMeta,
}
