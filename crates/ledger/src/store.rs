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
use crate::payment::{
    ApiKeyId, Buyer, BuyerId, CheckoutId, Delivery, IndexEntry, Merchant, MerchantId, OrderId,
    Payment, Payout, PayoutId, TimedIndex,
};
use crate::transfer::{Hold, TransferRecord};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The panic payload of a store that cannot read its own state (I/O error, corrupt row).
/// `LedgerRead` is infallible by contract: such a replica must stop rather than answer
/// differently from its peers, so `apply` lets this panic through where it contains the
/// panics of buggy commands. Raise it with [`StoreFailure::raise`].
#[derive(Debug)]
pub struct StoreFailure {
    pub message: String,
}

impl StoreFailure {
    /// Stops the apply (and, uncaught, the replica) because the store failed.
    pub fn raise(message: String) -> ! {
        std::panic::panic_any(StoreFailure { message })
    }
}

/// Read access to ledger state, as `apply` and the queries need it. Reads never fail: a backend
/// that cannot read raises [`StoreFailure`].
pub trait LedgerRead {
    fn meta(&self) -> LedgerMeta;
    fn account(&self, id: AccountId) -> Option<Account>;
    fn transfer(&self, id: TransferId) -> Option<TransferRecord>;
    fn hold(&self, pending_id: TransferId) -> Option<Hold>;
    fn idempotency(&self, key: &IdempotencyKey) -> Option<IdempotencyRecord>;
    /// Keys of idempotency records whose `expires_at_ns` is at or before `up_to_ns`, earliest
    /// first (ties by key), at most `limit`.
    fn idempotency_expiring(&self, up_to_ns: u64, limit: usize) -> Vec<IdempotencyKey>;
    /// Every idempotency record in key order (audits; never on the apply path).
    fn scan_idempotency(&self, visit: &mut dyn FnMut(&IdempotencyRecord));
    /// Every `(expires_at_ns, key)` of the idempotency expiry index, in order (audits).
    fn scan_idempotency_expiry(&self, visit: &mut dyn FnMut(u64, &IdempotencyKey));
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

    /// Every payment in checkout-id order (audits; never on the apply path).
    fn scan_payments(&self, visit: &mut dyn FnMut(&Payment));

    fn merchant(&self, id: &MerchantId) -> Option<Merchant>;
    /// The merchant an API key id belongs to (revoked keys included: the record says so).
    fn api_key_merchant(&self, key_id: &ApiKeyId) -> Option<MerchantId>;
    fn buyer(&self, id: &BuyerId) -> Option<Buyer>;
    fn payment(&self, id: &CheckoutId) -> Option<Payment>;
    /// The checkout an order belongs to.
    fn order_checkout(&self, id: &OrderId) -> Option<CheckoutId>;
    /// Orders whose hold period ended at or before `up_to_ns`, earliest first, at most `limit`.
    fn releases_due(&self, up_to_ns: u64, limit: usize) -> Vec<OrderId>;
    /// Orders an executor or the sweeper should look at by `up_to_ns` (not started, lease run
    /// out, retry due, pending check due), earliest first, at most `limit`. Queries only.
    fn orders_due(&self, up_to_ns: u64, limit: usize) -> Vec<(u64, OrderId)>;
    /// A merchant's payments, newest first, created strictly before `before` (`(created_at_ns,
    /// checkout)`; `None` starts at the newest), at most `limit`. Queries only.
    fn merchant_payments(
        &self,
        merchant: &MerchantId,
        before: Option<(u64, CheckoutId)>,
        limit: usize,
    ) -> Vec<(u64, CheckoutId)>;

    fn payout(&self, id: &PayoutId) -> Option<Payout>;
    /// A webhook delivery by `<event id>/<endpoint id>`.
    fn delivery(&self, id: &str) -> Option<Delivery>;
    /// Every delivery in id order (audits; never on the apply path).
    fn scan_deliveries(&self, visit: &mut dyn FnMut(&Delivery));
    /// Every payout in id order (audits; never on the apply path).
    fn scan_payouts(&self, visit: &mut dyn FnMut(&Payout));
    /// Entries of `index` for `owner` with `at_ns <= up_to_ns`, in `(at_ns, id)` order, strictly
    /// after `after` when given, at most `limit`.
    fn index_scan(
        &self,
        index: TimedIndex,
        owner: &str,
        after: Option<(u64, String)>,
        up_to_ns: u64,
        limit: usize,
    ) -> Vec<(u64, String)>;
    /// Entries of `index` for `owner`, newest first, strictly before `before` when given, at
    /// most `limit`. Queries only.
    fn index_scan_desc(
        &self,
        index: TimedIndex,
        owner: &str,
        before: Option<(u64, String)>,
        limit: usize,
    ) -> Vec<(u64, String)>;
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
    /// Orders by state name (`OrderState::name`), kept from the payments each batch writes so
    /// operators can read them without a scan; an audit recounts them.
    pub orders_by_state: BTreeMap<String, u64>,
    /// Payouts by `PayoutState::name`, kept like `orders_by_state`.
    pub payouts_by_state: BTreeMap<String, u64>,
    /// Dead letters by work kind (`WorkRef::kind`), kept from the dead-letter index changes.
    pub dead_letters: BTreeMap<String, u64>,
    /// Webhook events issued so far: the next event id is `evt_<this + 1>`.
    pub webhook_events_issued: u64,
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
    /// Idempotency records forgotten (their retention ended), by key.
    pub idempotency_removes: Vec<IdempotencyKey>,
    /// `(expires_at_ns, key)` pairs to add to / remove from the idempotency expiry index.
    pub idempotency_expiry_inserts: Vec<(u64, IdempotencyKey)>,
    pub idempotency_expiry_removes: Vec<(u64, IdempotencyKey)>,
    /// New or changed merchants, buyers and payments, by id.
    pub merchants: Vec<Merchant>,
    pub buyers: Vec<Buyer>,
    pub payments: Vec<Payment>,
    /// API keys added in this batch, by key id.
    pub api_key_index: Vec<(ApiKeyId, MerchantId)>,
    /// Orders of newly created payments, by order id.
    pub order_index: Vec<(OrderId, CheckoutId)>,
    /// `(merchant, created_at_ns, checkout)` of newly created payments.
    pub merchant_payments: Vec<(MerchantId, u64, CheckoutId)>,
    /// `(due_ns, order)` pairs to add to / remove from the executor's work index.
    pub due_inserts: Vec<(u64, OrderId)>,
    pub due_removes: Vec<(u64, OrderId)>,
    /// `(release_at_ns, order)` pairs to add to / remove from the hold-release index.
    pub release_inserts: Vec<(u64, OrderId)>,
    pub release_removes: Vec<(u64, OrderId)>,
    /// New or changed payouts, by id.
    pub payouts: Vec<Payout>,
    /// New or changed webhook deliveries, by id.
    pub deliveries: Vec<Delivery>,
    /// Entries to add to / remove from the timed indexes, sorted.
    pub index_inserts: Vec<IndexEntry>,
    pub index_removes: Vec<IndexEntry>,
    pub meta: LedgerMeta,
}
