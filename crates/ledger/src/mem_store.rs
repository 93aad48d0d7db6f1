//! The in-memory ledger store: the reference backend for tests, benchmarks and tools.
//!
//! Point lookups use hash maps, which are never iterated into an output: scans sort their keys
//! or go through ordered maps. Equality compares contents, so two stores that applied the same batches compare
//! equal.

use crate::account::Account;
use crate::apply::{apply, Applied};
use crate::command::Command;
use crate::errors::BatchError;
use crate::idempotency::{IdempotencyKey, IdempotencyRecord};
use crate::ids::{AccountId, TransferId};
use crate::payment::{
    ApiKeyId, Buyer, BuyerId, CheckoutId, Delivery, Merchant, MerchantId, OrderId, Payment, Payout,
    PayoutId, TimedIndex,
};
use crate::store::{ChangeSet, HistoryEntry, LedgerMeta, LedgerRead};
use crate::transfer::{Hold, TransferRecord};
use rustc_hash::FxHashMap;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemStore {
    meta: LedgerMeta,
    accounts: FxHashMap<AccountId, Account>,
    transfers: FxHashMap<TransferId, TransferRecord>,
    holds: BTreeMap<TransferId, Hold>,
    expiry_index: BTreeSet<(u64, TransferId)>,
    /// Each account's entries in timestamp order (appends always carry a later timestamp).
    history: FxHashMap<AccountId, Vec<HistoryEntry>>,
    idempotency: BTreeMap<IdempotencyKey, IdempotencyRecord>,
    idempotency_expiry: BTreeSet<(u64, IdempotencyKey)>,
    merchants: BTreeMap<MerchantId, Merchant>,
    api_key_index: BTreeMap<ApiKeyId, MerchantId>,
    buyers: BTreeMap<BuyerId, Buyer>,
    payments: BTreeMap<CheckoutId, Payment>,
    order_index: BTreeMap<OrderId, CheckoutId>,
    merchant_payments: BTreeSet<(MerchantId, u64, CheckoutId)>,
    due_index: BTreeSet<(u64, OrderId)>,
    release_index: BTreeSet<(u64, OrderId)>,
    payouts: BTreeMap<PayoutId, Payout>,
    deliveries: BTreeMap<String, Delivery>,
    /// `(index, owner, at_ns, id)`, the order the durable backend's keys sort in.
    timed_index: BTreeSet<(TimedIndex, String, u64, String)>,
}

impl MemStore {
    pub fn new() -> Self {
        MemStore::default()
    }

    /// Applies a batch and commits its changes.
    pub fn apply(
        &mut self,
        commands: &[Command],
        batch_timestamp_ns: u64,
    ) -> Result<Applied, BatchError> {
        let applied = apply(self, commands, batch_timestamp_ns)?;
        self.commit(applied.changes.clone());
        Ok(applied)
    }

    /// Writes a batch's change set. Asserts what a change set may never do: rewrite a transfer,
    /// or add history out of timestamp order.
    pub fn commit(&mut self, changes: ChangeSet) {
        for account in changes.accounts {
            self.accounts.insert(account.id, account);
        }
        for (id, record) in changes.transfers {
            let previous = self.transfers.insert(id, record);
            assert!(previous.is_none(), "transfer {id} was rewritten");
        }
        for hold in changes.holds {
            self.holds.insert(hold.pending_id, hold);
        }
        for key in changes.expiry_removes {
            assert!(self.expiry_index.remove(&key), "expiry index lacks {key:?}");
        }
        for key in changes.expiry_inserts {
            assert!(
                self.expiry_index.insert(key),
                "expiry index already has {key:?}"
            );
        }
        for entry in changes.history {
            let entries = self.history.entry(entry.account_id).or_default();
            assert!(
                entries
                    .last()
                    .is_none_or(|last| last.timestamp_ns < entry.timestamp_ns),
                "history of account {} out of order",
                entry.account_id
            );
            entries.push(entry);
        }
        for record in changes.idempotency {
            self.idempotency.insert(record.key.clone(), record);
        }
        for key in changes.idempotency_removes {
            assert!(
                self.idempotency.remove(&key).is_some(),
                "forgot unknown idempotency key {key:?}"
            );
        }
        for entry in changes.idempotency_expiry_removes {
            assert!(
                self.idempotency_expiry.remove(&entry),
                "idempotency expiry index lacks {entry:?}"
            );
        }
        for entry in changes.idempotency_expiry_inserts {
            assert!(
                self.idempotency_expiry.insert(entry.clone()),
                "idempotency expiry index already has {entry:?}"
            );
        }
        for merchant in changes.merchants {
            self.merchants.insert(merchant.id.clone(), merchant);
        }
        for (key_id, merchant) in changes.api_key_index {
            let previous = self.api_key_index.insert(key_id.clone(), merchant);
            assert!(previous.is_none(), "api key {key_id} indexed twice");
        }
        for buyer in changes.buyers {
            self.buyers.insert(buyer.id.clone(), buyer);
        }
        for payment in changes.payments {
            self.payments.insert(payment.checkout_id.clone(), payment);
        }
        for (order, checkout) in changes.order_index {
            let previous = self.order_index.insert(order.clone(), checkout);
            assert!(previous.is_none(), "order {order} indexed twice");
        }
        for key in changes.merchant_payments {
            assert!(self.merchant_payments.insert(key), "payment listed twice");
        }
        for key in changes.due_removes {
            assert!(self.due_index.remove(&key), "due index lacks {key:?}");
        }
        for key in changes.due_inserts {
            assert!(self.due_index.insert(key), "due index has it already");
        }
        for key in changes.release_removes {
            assert!(
                self.release_index.remove(&key),
                "release index lacks {key:?}"
            );
        }
        for key in changes.release_inserts {
            assert!(
                self.release_index.insert(key),
                "release index has it already"
            );
        }
        for payout in changes.payouts {
            self.payouts.insert(payout.payout_id.clone(), payout);
        }
        for delivery in changes.deliveries {
            self.deliveries.insert(delivery.id(), delivery);
        }
        for entry in changes.index_removes {
            let key = (entry.index, entry.owner, entry.at_ns, entry.id);
            assert!(self.timed_index.remove(&key), "timed index lacks {key:?}");
        }
        for entry in changes.index_inserts {
            let key = (entry.index, entry.owner, entry.at_ns, entry.id);
            assert!(
                self.timed_index.insert(key.clone()),
                "timed index has {key:?} already"
            );
        }
        self.meta = changes.meta;
    }

    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }

    pub fn transfer_count(&self) -> usize {
        self.transfers.len()
    }
}

impl LedgerRead for MemStore {
    fn meta(&self) -> LedgerMeta {
        self.meta.clone()
    }

    fn account(&self, id: AccountId) -> Option<Account> {
        self.accounts.get(&id).cloned()
    }

    fn transfer(&self, id: TransferId) -> Option<TransferRecord> {
        self.transfers.get(&id).cloned()
    }

    fn hold(&self, pending_id: TransferId) -> Option<Hold> {
        self.holds.get(&pending_id).cloned()
    }

    fn idempotency(&self, key: &IdempotencyKey) -> Option<IdempotencyRecord> {
        self.idempotency.get(key).cloned()
    }

    fn idempotency_expiring(&self, up_to_ns: u64, limit: usize) -> Vec<IdempotencyKey> {
        self.idempotency_expiry
            .iter()
            .take_while(|(at_ns, _)| *at_ns <= up_to_ns)
            .take(limit)
            .map(|(_, key)| key.clone())
            .collect()
    }

    fn scan_idempotency(&self, visit: &mut dyn FnMut(&IdempotencyRecord)) {
        self.idempotency.values().for_each(visit);
    }

    fn scan_idempotency_expiry(&self, visit: &mut dyn FnMut(u64, &IdempotencyKey)) {
        for (at_ns, key) in &self.idempotency_expiry {
            visit(*at_ns, key);
        }
    }

    fn holds_expiring(&self, up_to_ns: u64, limit: usize) -> Vec<TransferId> {
        self.expiry_index
            .range(..=(up_to_ns, TransferId(u128::MAX)))
            .take(limit)
            .map(|&(_, id)| id)
            .collect()
    }

    fn history(&self, account_id: AccountId, from_ns: u64, limit: usize) -> Vec<HistoryEntry> {
        let Some(entries) = self.history.get(&account_id) else {
            return Vec::new();
        };
        let start = entries.partition_point(|entry| entry.timestamp_ns < from_ns);
        entries[start..].iter().take(limit).cloned().collect()
    }

    fn history_at_or_before(&self, account_id: AccountId, at_ns: u64) -> Option<HistoryEntry> {
        let entries = self.history.get(&account_id)?;
        let end = entries.partition_point(|entry| entry.timestamp_ns <= at_ns);
        end.checked_sub(1).map(|last| entries[last].clone())
    }

    fn scan_accounts(&self, visit: &mut dyn FnMut(&Account)) {
        let mut ids: Vec<AccountId> = self.accounts.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            visit(&self.accounts[&id]);
        }
    }

    fn scan_holds(&self, visit: &mut dyn FnMut(&Hold)) {
        self.holds.values().for_each(visit);
    }

    fn scan_payments(&self, visit: &mut dyn FnMut(&Payment)) {
        self.payments.values().for_each(visit);
    }

    fn merchant(&self, id: &MerchantId) -> Option<Merchant> {
        self.merchants.get(id).cloned()
    }

    fn api_key_merchant(&self, key_id: &ApiKeyId) -> Option<MerchantId> {
        self.api_key_index.get(key_id).cloned()
    }

    fn buyer(&self, id: &BuyerId) -> Option<Buyer> {
        self.buyers.get(id).cloned()
    }

    fn payment(&self, id: &CheckoutId) -> Option<Payment> {
        self.payments.get(id).cloned()
    }

    fn order_checkout(&self, id: &OrderId) -> Option<CheckoutId> {
        self.order_index.get(id).cloned()
    }

    fn releases_due(&self, up_to_ns: u64, limit: usize) -> Vec<OrderId> {
        self.release_index
            .iter()
            .take_while(|(at_ns, _)| *at_ns <= up_to_ns)
            .take(limit)
            .map(|(_, order)| order.clone())
            .collect()
    }

    fn orders_due(&self, up_to_ns: u64, limit: usize) -> Vec<(u64, OrderId)> {
        self.due_index
            .iter()
            .take_while(|(due_ns, _)| *due_ns <= up_to_ns)
            .take(limit)
            .cloned()
            .collect()
    }

    fn merchant_payments(
        &self,
        merchant: &MerchantId,
        before: Option<(u64, CheckoutId)>,
        limit: usize,
    ) -> Vec<(u64, CheckoutId)> {
        self.merchant_payments
            .iter()
            .rev()
            .filter(|(m, created, checkout)| {
                m == merchant
                    && before.as_ref().is_none_or(|(b_created, b_checkout)| {
                        (created, checkout) < (b_created, b_checkout)
                    })
            })
            .take(limit)
            .map(|(_, created, checkout)| (*created, checkout.clone()))
            .collect()
    }

    fn payout(&self, id: &PayoutId) -> Option<Payout> {
        self.payouts.get(id).cloned()
    }

    fn scan_payouts(&self, visit: &mut dyn FnMut(&Payout)) {
        self.payouts.values().for_each(visit);
    }

    fn delivery(&self, id: &str) -> Option<Delivery> {
        self.deliveries.get(id).cloned()
    }

    fn scan_deliveries(&self, visit: &mut dyn FnMut(&Delivery)) {
        self.deliveries.values().for_each(visit);
    }

    fn index_scan(
        &self,
        index: TimedIndex,
        owner: &str,
        after: Option<(u64, String)>,
        up_to_ns: u64,
        limit: usize,
    ) -> Vec<(u64, String)> {
        let start = (index, owner.to_string(), 0, String::new());
        self.timed_index
            .range(start..)
            .take_while(|(i, o, at_ns, _)| *i == index && o == owner && *at_ns <= up_to_ns)
            .filter(|(_, _, at_ns, id)| {
                after
                    .as_ref()
                    .is_none_or(|(a_ns, a_id)| (at_ns, id) > (a_ns, a_id))
            })
            .take(limit)
            .map(|(_, _, at_ns, id)| (*at_ns, id.clone()))
            .collect()
    }

    fn index_scan_desc(
        &self,
        index: TimedIndex,
        owner: &str,
        before: Option<(u64, String)>,
        limit: usize,
    ) -> Vec<(u64, String)> {
        let start = (index, owner.to_string(), 0, String::new());
        self.timed_index
            .range(start..)
            .take_while(|(i, o, _, _)| *i == index && o == owner)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .filter(|(_, _, at_ns, id)| {
                before
                    .as_ref()
                    .is_none_or(|(b_ns, b_id)| (at_ns, id) < (b_ns, b_id))
            })
            .take(limit)
            .map(|(_, _, at_ns, id)| (*at_ns, id.clone()))
            .collect()
    }
}
