//! The ledger's state in the `State` column family: `LedgerRead` over any `KvRead`, and the
//! translation of a `ChangeSet` into writes.
//!
//! Reads panic on I/O errors and corrupt values, as `LedgerRead` requires: a replica that cannot
//! read its own state must stop rather than apply the log differently from its peers.

use crate::codec::{decode, encode};
use crate::keys;
use crate::kv::{Cf, Kv, KvRead, Order, WriteBatch};
use serde::de::DeserializeOwned;
use tally_ledger::payment::{
    ApiKeyId, Buyer, BuyerId, CheckoutId, Delivery, Merchant, MerchantId, OrderId, Payment, Payout,
    PayoutId, TimedIndex,
};
use tally_ledger::{
    Account, AccountId, ChangeSet, HistoryEntry, Hold, IdempotencyKey, IdempotencyRecord,
    LedgerMeta, LedgerRead, StoreFailure, TransferId, TransferRecord,
};

/// Rows read per round trip by the full scans (audits, snapshots), so a scan never holds the
/// whole ledger in memory at once.
const SCAN_PAGE_ROWS_MAX: usize = 1_024;

pub struct KvLedger<'a> {
    view: View<'a>,
}

enum View<'a> {
    Borrowed(&'a dyn KvRead),
    Snapshot(Box<dyn KvRead + 'a>),
}

impl<'a> KvLedger<'a> {
    /// The ledger over `kv` as it is: each read sees the store at the moment of that read (the
    /// state machine's own reads, between its writes).
    pub fn new(kv: &'a dyn KvRead) -> Self {
        KvLedger {
            view: View::Borrowed(kv),
        }
    }

    /// The ledger over one point-in-time snapshot of `kv`: every read through it sees the same
    /// state while applies go on. One per client read request, so a read of many keys never
    /// mixes two batches.
    pub fn snapshot<K: Kv>(kv: &'a K) -> Self {
        KvLedger {
            view: View::Snapshot(kv.snapshot_view()),
        }
    }

    fn kv(&self) -> &dyn KvRead {
        match &self.view {
            View::Borrowed(kv) => *kv,
            View::Snapshot(kv) => kv.as_ref(),
        }
    }

    fn get<T: DeserializeOwned>(&self, key: &[u8]) -> Option<T> {
        let bytes = self.kv().get(Cf::State, key).unwrap_or_else(|e| {
            store_failure(format!("ledger state unreadable at {key:?}: {e}"))
        })?;
        Some(decode_or_die(key, &bytes))
    }

    fn range(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        order: Order,
        limit: usize,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.kv()
            .range(Cf::State, start, end, order, limit)
            .unwrap_or_else(|e| {
                store_failure(format!("ledger state unreadable from {start:?}: {e}"))
            })
    }

    fn scan<T: DeserializeOwned>(&self, prefix: &[u8], visit: &mut dyn FnMut(&T)) {
        self.scan_rows(prefix, &mut |key, value| {
            visit(&decode_or_die::<T>(key, value))
        });
    }

    /// Every row under `prefix` in key order, a page at a time.
    fn scan_rows(&self, prefix: &[u8], visit: &mut dyn FnMut(&[u8], &[u8])) {
        let end = keys::prefix_end(prefix);
        let mut start = prefix.to_vec();
        loop {
            let page = self.range(&start, end.as_deref(), Order::Ascending, SCAN_PAGE_ROWS_MAX);
            for (key, value) in &page {
                visit(key, value);
            }
            match page.last() {
                Some((last, _)) if page.len() == SCAN_PAGE_ROWS_MAX => {
                    start = last.clone();
                    start.push(0);
                }
                _ => return,
            }
        }
    }
}

fn decode_or_die<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> T {
    decode(bytes).unwrap_or_else(|e| store_failure(format!("ledger state corrupt at {key:?}: {e}")))
}

/// Stops the apply: `apply` contains the panics of buggy commands, but not this one.
fn store_failure(message: String) -> ! {
    tracing::error!(%message, "the node cannot read its own ledger state; stopping");
    StoreFailure::raise(message)
}

impl LedgerRead for KvLedger<'_> {
    fn meta(&self) -> LedgerMeta {
        self.get(keys::LEDGER_META).unwrap_or_default()
    }

    fn account(&self, id: AccountId) -> Option<Account> {
        self.get(&keys::account(id))
    }

    fn transfer(&self, id: TransferId) -> Option<TransferRecord> {
        self.get(&keys::transfer(id))
    }

    fn hold(&self, pending_id: TransferId) -> Option<Hold> {
        self.get(&keys::hold(pending_id))
    }

    fn idempotency(&self, key: &IdempotencyKey) -> Option<IdempotencyRecord> {
        self.get(&keys::idempotency(key))
    }

    fn idempotency_expiring(&self, up_to_ns: u64, limit: usize) -> Vec<IdempotencyKey> {
        let end = keys::idempotency_expiry_end(up_to_ns);
        self.range(
            &keys::idempotency_expiry_prefix(),
            Some(&end),
            Order::Ascending,
            limit,
        )
        .iter()
        .map(|(key, _)| keys::idempotency_expiry_of(key).1)
        .collect()
    }

    fn scan_idempotency(&self, visit: &mut dyn FnMut(&IdempotencyRecord)) {
        self.scan(&keys::idempotency_prefix(), visit);
    }

    fn scan_idempotency_expiry(&self, visit: &mut dyn FnMut(u64, &IdempotencyKey)) {
        self.scan_rows(&keys::idempotency_expiry_prefix(), &mut |key, _| {
            let (at_ns, idempotency_key) = keys::idempotency_expiry_of(key);
            visit(at_ns, &idempotency_key);
        });
    }

    fn holds_expiring(&self, up_to_ns: u64, limit: usize) -> Vec<TransferId> {
        // Deadlines are at most TIMESTAMP_NS_MAX plus a u32 of seconds, so `+ 1` cannot wrap.
        let end = keys::expiry(up_to_ns + 1, TransferId(0));
        self.range(&keys::expiry_prefix(), Some(&end), Order::Ascending, limit)
            .iter()
            .map(|(key, _)| keys::expiry_id(key))
            .collect()
    }

    fn history(&self, account_id: AccountId, from_ns: u64, limit: usize) -> Vec<HistoryEntry> {
        let end = keys::prefix_end(&keys::history_prefix(account_id));
        self.range(
            &keys::history(account_id, from_ns),
            end.as_deref(),
            Order::Ascending,
            limit,
        )
        .iter()
        .map(|(key, value)| decode_or_die(key, value))
        .collect()
    }

    fn history_at_or_before(&self, account_id: AccountId, at_ns: u64) -> Option<HistoryEntry> {
        let start = keys::history_prefix(account_id);
        let end = match at_ns.checked_add(1) {
            Some(next) => keys::history(account_id, next),
            None => keys::prefix_end(&start).expect("history prefix has an end"),
        };
        self.range(&start, Some(&end), Order::Descending, 1)
            .first()
            .map(|(key, value)| decode_or_die(key, value))
    }

    fn scan_accounts(&self, visit: &mut dyn FnMut(&Account)) {
        self.scan(&keys::account_prefix(), visit);
    }

    fn scan_holds(&self, visit: &mut dyn FnMut(&Hold)) {
        self.scan(&keys::hold_prefix(), visit);
    }

    fn scan_payments(&self, visit: &mut dyn FnMut(&Payment)) {
        self.scan(&keys::payment_prefix(), visit);
    }

    fn merchant(&self, id: &MerchantId) -> Option<Merchant> {
        self.get(&keys::merchant(id))
    }

    fn api_key_merchant(&self, key_id: &ApiKeyId) -> Option<MerchantId> {
        self.get(&keys::api_key(key_id))
    }

    fn buyer(&self, id: &BuyerId) -> Option<Buyer> {
        self.get(&keys::buyer(id))
    }

    fn payment(&self, id: &CheckoutId) -> Option<Payment> {
        self.get(&keys::payment(id))
    }

    fn order_checkout(&self, id: &OrderId) -> Option<CheckoutId> {
        self.get(&keys::order(id))
    }

    fn releases_due(&self, up_to_ns: u64, limit: usize) -> Vec<OrderId> {
        let end = keys::order_release_end(up_to_ns);
        self.range(
            &keys::order_release_prefix(),
            Some(&end),
            Order::Ascending,
            limit,
        )
        .iter()
        .map(|(key, _)| keys::timed_order_of(key).1)
        .collect()
    }

    fn orders_due(&self, up_to_ns: u64, limit: usize) -> Vec<(u64, OrderId)> {
        let end = keys::order_due_end(up_to_ns);
        self.range(
            &keys::order_due_prefix(),
            Some(&end),
            Order::Ascending,
            limit,
        )
        .iter()
        .map(|(key, _)| keys::timed_order_of(key))
        .collect()
    }

    fn merchant_payments(
        &self,
        merchant: &MerchantId,
        before: Option<(u64, CheckoutId)>,
        limit: usize,
    ) -> Vec<(u64, CheckoutId)> {
        let prefix = keys::merchant_payments_prefix(merchant);
        let end = match &before {
            Some((created_at_ns, checkout)) => {
                Some(keys::merchant_payment(merchant, *created_at_ns, checkout))
            }
            None => keys::prefix_end(&prefix),
        };
        self.range(&prefix, end.as_deref(), Order::Descending, limit)
            .iter()
            .map(|(key, _)| keys::merchant_payment_of(key, prefix.len()))
            .collect()
    }

    fn payout(&self, id: &PayoutId) -> Option<Payout> {
        self.get(&keys::payout(id))
    }

    fn scan_payouts(&self, visit: &mut dyn FnMut(&Payout)) {
        self.scan(&keys::payout_prefix(), visit);
    }

    fn delivery(&self, id: &str) -> Option<Delivery> {
        self.get(&keys::delivery(id))
    }

    fn scan_deliveries(&self, visit: &mut dyn FnMut(&Delivery)) {
        self.scan(&keys::delivery_prefix(), visit);
    }

    fn index_scan(
        &self,
        index: TimedIndex,
        owner: &str,
        after: Option<(u64, String)>,
        up_to_ns: u64,
        limit: usize,
    ) -> Vec<(u64, String)> {
        let prefix = keys::timed_prefix(index, owner);
        let start = match &after {
            // Ids never contain 0x00, so this is the first key after the cursor's.
            Some((at_ns, id)) => {
                let mut key = keys::timed(index, owner, *at_ns, id);
                key.push(0);
                key
            }
            None => prefix.clone(),
        };
        let end = keys::timed_end(&prefix, up_to_ns);
        self.range(&start, end.as_deref(), Order::Ascending, limit)
            .iter()
            .map(|(key, _)| keys::timed_of(key, prefix.len()))
            .collect()
    }

    fn index_scan_desc(
        &self,
        index: TimedIndex,
        owner: &str,
        before: Option<(u64, String)>,
        limit: usize,
    ) -> Vec<(u64, String)> {
        let prefix = keys::timed_prefix(index, owner);
        let end = match &before {
            Some((at_ns, id)) => Some(keys::timed(index, owner, *at_ns, id)),
            None => keys::prefix_end(&prefix),
        };
        self.range(&prefix, end.as_deref(), Order::Descending, limit)
            .iter()
            .map(|(key, _)| keys::timed_of(key, prefix.len()))
            .collect()
    }
}

/// Adds every write of `changes` to `batch`, so they commit with the rest of the entry.
pub fn write_changes(changes: &ChangeSet, batch: &mut WriteBatch) {
    for account in &changes.accounts {
        batch.put(Cf::State, keys::account(account.id), encode(account));
    }
    for (id, record) in &changes.transfers {
        batch.put(Cf::State, keys::transfer(*id), encode(record));
    }
    for hold in &changes.holds {
        batch.put(Cf::State, keys::hold(hold.pending_id), encode(hold));
    }
    for (expires_at_ns, id) in &changes.expiry_removes {
        batch.delete(Cf::State, keys::expiry(*expires_at_ns, *id));
    }
    for (expires_at_ns, id) in &changes.expiry_inserts {
        batch.put(Cf::State, keys::expiry(*expires_at_ns, *id), Vec::new());
    }
    // In key order (by account, then time) rather than event order: RocksDB's memtable inserts
    // keys that follow the previous insert much faster than scattered ones.
    let mut history: Vec<&tally_ledger::HistoryEntry> = changes.history.iter().collect();
    history.sort_unstable_by_key(|entry| (entry.account_id, entry.timestamp_ns));
    for entry in history {
        batch.put(
            Cf::State,
            keys::history(entry.account_id, entry.timestamp_ns),
            encode(entry),
        );
    }
    for record in &changes.idempotency {
        batch.put(Cf::State, keys::idempotency(&record.key), encode(record));
    }
    for key in &changes.idempotency_removes {
        batch.delete(Cf::State, keys::idempotency(key));
    }
    for (expires_at_ns, key) in &changes.idempotency_expiry_removes {
        batch.delete(Cf::State, keys::idempotency_expiry(*expires_at_ns, key));
    }
    for (expires_at_ns, key) in &changes.idempotency_expiry_inserts {
        batch.put(
            Cf::State,
            keys::idempotency_expiry(*expires_at_ns, key),
            Vec::new(),
        );
    }
    for merchant in &changes.merchants {
        batch.put(Cf::State, keys::merchant(&merchant.id), encode(merchant));
    }
    for (key_id, merchant) in &changes.api_key_index {
        batch.put(Cf::State, keys::api_key(key_id), encode(merchant));
    }
    for buyer in &changes.buyers {
        batch.put(Cf::State, keys::buyer(&buyer.id), encode(buyer));
    }
    for payment in &changes.payments {
        batch.put(
            Cf::State,
            keys::payment(&payment.checkout_id),
            encode(payment),
        );
    }
    for (order, checkout) in &changes.order_index {
        batch.put(Cf::State, keys::order(order), encode(checkout));
    }
    for (merchant, created_at_ns, checkout) in &changes.merchant_payments {
        batch.put(
            Cf::State,
            keys::merchant_payment(merchant, *created_at_ns, checkout),
            Vec::new(),
        );
    }
    for (due_ns, order) in &changes.due_removes {
        batch.delete(Cf::State, keys::order_due(*due_ns, order));
    }
    for (due_ns, order) in &changes.due_inserts {
        batch.put(Cf::State, keys::order_due(*due_ns, order), Vec::new());
    }
    for (at_ns, order) in &changes.release_removes {
        batch.delete(Cf::State, keys::order_release(*at_ns, order));
    }
    for (at_ns, order) in &changes.release_inserts {
        batch.put(Cf::State, keys::order_release(*at_ns, order), Vec::new());
    }
    for payout in &changes.payouts {
        batch.put(Cf::State, keys::payout(&payout.payout_id), encode(payout));
    }
    for delivery in &changes.deliveries {
        batch.put(Cf::State, keys::delivery(&delivery.id()), encode(delivery));
    }
    for entry in &changes.index_removes {
        batch.delete(Cf::State, keys::timed_entry(entry));
    }
    for entry in &changes.index_inserts {
        batch.put(Cf::State, keys::timed_entry(entry), Vec::new());
    }
    batch.put(Cf::State, keys::LEDGER_META, encode(&changes.meta));
}
