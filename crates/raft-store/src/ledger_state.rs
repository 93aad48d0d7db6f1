//! The ledger's state in the `State` column family: `LedgerRead` over any `KvRead`, and the
//! translation of a `ChangeSet` into writes.
//!
//! Reads panic on I/O errors and corrupt values, as `LedgerRead` requires: a replica that cannot
//! read its own state must stop rather than apply the log differently from its peers.

use crate::codec::{decode, encode};
use crate::keys;
use crate::kv::{Cf, KvRead, Order, WriteBatch};
use serde::de::DeserializeOwned;
use tally_ledger::{
    Account, AccountId, ChangeSet, HistoryEntry, Hold, IdempotencyKey, IdempotencyRecord,
    LedgerMeta, LedgerRead, TransferId, TransferRecord,
};

/// Rows read per round trip by the full scans (audits, snapshots), so a scan never holds the
/// whole ledger in memory at once.
const SCAN_PAGE_ROWS_MAX: usize = 1_024;

pub struct KvLedger<'a> {
    kv: &'a dyn KvRead,
}

impl<'a> KvLedger<'a> {
    pub fn new(kv: &'a dyn KvRead) -> Self {
        KvLedger { kv }
    }

    fn get<T: DeserializeOwned>(&self, key: &[u8]) -> Option<T> {
        let bytes = self
            .kv
            .get(Cf::State, key)
            .unwrap_or_else(|e| panic!("ledger state unreadable at {key:?}: {e}"))?;
        Some(decode_or_die(key, &bytes))
    }

    fn range(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        order: Order,
        limit: usize,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.kv
            .range(Cf::State, start, end, order, limit)
            .unwrap_or_else(|e| panic!("ledger state unreadable from {start:?}: {e}"))
    }

    fn scan<T: DeserializeOwned>(&self, prefix: &[u8], visit: &mut dyn FnMut(&T)) {
        let end = keys::prefix_end(prefix);
        let mut start = prefix.to_vec();
        loop {
            let page = self.range(&start, end.as_deref(), Order::Ascending, SCAN_PAGE_ROWS_MAX);
            for (key, value) in &page {
                visit(&decode_or_die::<T>(key, value));
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
    decode(bytes).unwrap_or_else(|e| panic!("ledger state corrupt at {key:?}: {e}"))
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
    for entry in &changes.history {
        batch.put(
            Cf::State,
            keys::history(entry.account_id, entry.timestamp_ns),
            encode(entry),
        );
    }
    for record in &changes.idempotency {
        batch.put(Cf::State, keys::idempotency(&record.key), encode(record));
    }
    batch.put(Cf::State, keys::LEDGER_META, encode(&changes.meta));
}
