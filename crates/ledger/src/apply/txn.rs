//! The batch overlay: `apply`'s reads see its own earlier writes, linked chains roll back, and
//! nothing reaches the store until the caller commits the finished `ChangeSet`.
//!
//! The maps here are FxHash maps for speed; their iteration order never leaks, because `finish`
//! sorts every output by key. FxHash is not collision-resistant and ids are client-chosen, but the
//! overlay holds at most one batch (`BATCH_COMMANDS_MAX` commands), which bounds what crafted
//! collisions can cost; durable backends index by ordered keys, not by this hash.

use crate::account::{Account, Balances};
use crate::idempotency::{IdempotencyKey, IdempotencyRecord};
use crate::ids::{AccountId, TransferId};
use crate::money::Currency;
use crate::payment::{
    ApiKeyId, Buyer, BuyerId, CheckoutId, Delivery, IndexEntry, Merchant, MerchantId, Order,
    OrderId, OrderState, Payment, Payout, PayoutId, Refund, TimedIndex, WorkRef,
};
use crate::store::{ChangeSet, HistoryEntry, LedgerMeta, LedgerRead};
use crate::transfer::{Hold, HoldStatus, TransferRecord};
use rustc_hash::FxHashMap;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

/// An account touched by the batch, with its balances as they were before the batch.
struct AccountSlot {
    balances_before: Balances,
    account: Account,
}

/// Overlay values as they were when the open chain first wrote them, to restore on failure.
#[derive(Default)]
struct ChainUndo {
    accounts: Vec<(AccountId, Option<Account>)>,
    transfers: Vec<TransferId>,
    holds: Vec<(TransferId, Option<Hold>)>,
    idempotency: Vec<(IdempotencyKey, Option<Option<IdempotencyRecord>>)>,
    merchants: Vec<(MerchantId, Option<Merchant>)>,
    buyers: Vec<(BuyerId, Option<Buyer>)>,
    payments: Vec<(CheckoutId, Option<Payment>)>,
    payouts: Vec<(PayoutId, Option<Payout>)>,
    deliveries: Vec<(String, Option<Delivery>)>,
    batch_orders: Vec<(OrderId, Option<CheckoutId>)>,
    history_len: usize,
}

pub(crate) struct Txn<'s, S: LedgerRead> {
    store: &'s S,
    /// Planted bugs (tests of the simulation's checkers only).
    pub(crate) bugs: super::PlantedBugs,
    accounts: FxHashMap<AccountId, AccountSlot>,
    /// Accounts as the store holds them (the store does not change during a batch), so repeated
    /// reads and `put_account`'s balances-before cost one store lookup per account per batch.
    store_accounts: RefCell<FxHashMap<AccountId, Option<Account>>>,
    transfers: FxHashMap<TransferId, TransferRecord>,
    holds: FxHashMap<TransferId, Hold>,
    /// `None`: forgotten in this batch.
    idempotency: FxHashMap<IdempotencyKey, Option<IdempotencyRecord>>,
    // Payments records are few per batch next to transfers: ordered maps, no sort at the end.
    merchants: BTreeMap<MerchantId, Merchant>,
    buyers: BTreeMap<BuyerId, Buyer>,
    payments: BTreeMap<CheckoutId, Payment>,
    payouts: BTreeMap<PayoutId, Payout>,
    deliveries: BTreeMap<String, Delivery>,
    /// Webhook events issued, counting this batch's (read from the meta at the first event).
    events_issued: Option<u64>,
    /// Orders of payments written in this batch. May name a payment a rolled-back chain
    /// removed again; lookups check the payment still has the order.
    batch_orders: BTreeMap<OrderId, CheckoutId>,
    history: Vec<HistoryEntry>,
    chain: Option<ChainUndo>,
    /// The next event timestamp for transfers a payment command posts. A payment command posts
    /// several transfers, each of which needs its own timestamp (history is keyed by account
    /// and timestamp); `apply` lends its event clock here for the command's duration.
    posting_clock_ns: Option<u64>,
}

impl<'s, S: LedgerRead> Txn<'s, S> {
    /// Sized for a batch of `commands`, so the overlay never rehashes or reallocates mid-batch.
    pub(crate) fn with_capacity(store: &'s S, commands: usize) -> Self {
        Txn {
            store,
            bugs: super::PlantedBugs::NONE,
            accounts: FxHashMap::with_capacity_and_hasher(2 * commands, Default::default()),
            store_accounts: RefCell::new(FxHashMap::with_capacity_and_hasher(
                2 * commands,
                Default::default(),
            )),
            transfers: FxHashMap::with_capacity_and_hasher(commands, Default::default()),
            holds: FxHashMap::default(),
            idempotency: FxHashMap::default(),
            merchants: BTreeMap::new(),
            buyers: BTreeMap::new(),
            payments: BTreeMap::new(),
            payouts: BTreeMap::new(),
            deliveries: BTreeMap::new(),
            events_issued: None,
            batch_orders: BTreeMap::new(),
            history: Vec::with_capacity(2 * commands),
            chain: None,
            posting_clock_ns: None,
        }
    }

    pub(crate) fn store(&self) -> &'s S {
        self.store
    }

    pub(crate) fn account(&self, id: AccountId) -> Option<Account> {
        match self.accounts.get(&id) {
            Some(slot) => Some(slot.account.clone()),
            None => self.stored_account(id),
        }
    }

    fn stored_account(&self, id: AccountId) -> Option<Account> {
        self.store_accounts
            .borrow_mut()
            .entry(id)
            .or_insert_with(|| self.store.account(id))
            .clone()
    }

    pub(crate) fn put_account(&mut self, account: Account) {
        let id = account.id;
        match self.accounts.get_mut(&id) {
            Some(slot) => {
                let previous = std::mem::replace(&mut slot.account, account);
                if let Some(chain) = &mut self.chain {
                    chain.accounts.push((id, Some(previous)));
                }
            }
            None => {
                let balances_before = self
                    .stored_account(id)
                    .map_or(Balances::ZERO, |stored| stored.balances);
                if let Some(chain) = &mut self.chain {
                    chain.accounts.push((id, None));
                }
                self.accounts.insert(
                    id,
                    AccountSlot {
                        balances_before,
                        account,
                    },
                );
            }
        }
    }

    pub(crate) fn transfer(&self, id: TransferId) -> Option<TransferRecord> {
        match self.transfers.get(&id) {
            Some(record) => Some(record.clone()),
            None => self.store.transfer(id),
        }
    }

    pub(crate) fn contains_transfer(&self, id: TransferId) -> bool {
        self.transfers.contains_key(&id) || self.store.transfer(id).is_some()
    }

    /// Records a transfer id for good. Entries are immutable: an id is written once, ever.
    pub(crate) fn insert_transfer(&mut self, id: TransferId, record: TransferRecord) {
        // The planted double-apply bug silences this check, as a real bug in the id check would
        // go unchecked in a release build: the simulation's checkers must find it on their own.
        debug_assert!(
            self.bugs.transfer_applies_twice || !self.contains_transfer(id),
            "transfer {id} written twice"
        );
        self.transfers.insert(id, record);
        if let Some(chain) = &mut self.chain {
            chain.transfers.push(id);
        }
    }

    pub(crate) fn hold(&self, pending_id: TransferId) -> Option<Hold> {
        match self.holds.get(&pending_id) {
            Some(hold) => Some(hold.clone()),
            None => self.store.hold(pending_id),
        }
    }

    pub(crate) fn put_hold(&mut self, hold: Hold) {
        let previous = self.holds.insert(hold.pending_id, hold.clone());
        if let Some(chain) = &mut self.chain {
            chain.holds.push((hold.pending_id, previous));
        }
    }

    pub(crate) fn idempotency(&self, key: &IdempotencyKey) -> Option<IdempotencyRecord> {
        match self.idempotency.get(key) {
            Some(record) => record.clone(),
            None => self.store.idempotency(key),
        }
    }

    pub(crate) fn put_idempotency(&mut self, record: IdempotencyRecord) {
        let previous = self
            .idempotency
            .insert(record.key.clone(), Some(record.clone()));
        if let Some(chain) = &mut self.chain {
            chain.idempotency.push((record.key, previous));
        }
    }

    pub(crate) fn forget_idempotency(&mut self, key: &IdempotencyKey) {
        let previous = self.idempotency.insert(key.clone(), None);
        if let Some(chain) = &mut self.chain {
            chain.idempotency.push((key.clone(), previous));
        }
    }

    pub(crate) fn merchant(&self, id: &MerchantId) -> Option<Merchant> {
        match self.merchants.get(id) {
            Some(merchant) => Some(merchant.clone()),
            None => self.store.merchant(id),
        }
    }

    pub(crate) fn put_merchant(&mut self, merchant: Merchant) {
        let previous = self.merchants.insert(merchant.id.clone(), merchant.clone());
        if let Some(chain) = &mut self.chain {
            chain.merchants.push((merchant.id, previous));
        }
    }

    /// The owner of an API key id, counting keys added earlier in this batch.
    pub(crate) fn api_key_merchant(&self, key_id: &ApiKeyId) -> Option<MerchantId> {
        self.merchants
            .values()
            .find(|merchant| merchant.api_keys.iter().any(|key| &key.key_id == key_id))
            .map(|merchant| merchant.id.clone())
            .or_else(|| self.store.api_key_merchant(key_id))
    }

    pub(crate) fn buyer(&self, id: &BuyerId) -> Option<Buyer> {
        match self.buyers.get(id) {
            Some(buyer) => Some(buyer.clone()),
            None => self.store.buyer(id),
        }
    }

    pub(crate) fn put_buyer(&mut self, buyer: Buyer) {
        let previous = self.buyers.insert(buyer.id.clone(), buyer.clone());
        if let Some(chain) = &mut self.chain {
            chain.buyers.push((buyer.id, previous));
        }
    }

    pub(crate) fn payment(&self, id: &CheckoutId) -> Option<Payment> {
        match self.payments.get(id) {
            Some(payment) => Some(payment.clone()),
            None => self.store.payment(id),
        }
    }

    /// The payment an order belongs to, from this batch's writes or the store.
    pub(crate) fn payment_of_order(&self, order: &OrderId) -> Option<Payment> {
        if let Some(payment) = self
            .batch_orders
            .get(order)
            .and_then(|checkout| self.payments.get(checkout))
            .filter(|payment| payment.order(order).is_some())
        {
            return Some(payment.clone());
        }
        let checkout = self.store.order_checkout(order)?;
        self.payment(&checkout)
    }

    pub(crate) fn put_payment(&mut self, payment: Payment) {
        for order in &payment.orders {
            order.assert_consistent();
            let previous = self
                .batch_orders
                .insert(order.order_id.clone(), payment.checkout_id.clone());
            if let Some(chain) = &mut self.chain {
                chain.batch_orders.push((order.order_id.clone(), previous));
            }
        }
        let previous = self
            .payments
            .insert(payment.checkout_id.clone(), payment.clone());
        if let Some(chain) = &mut self.chain {
            chain.payments.push((payment.checkout_id, previous));
        }
    }

    pub(crate) fn payout(&self, id: &PayoutId) -> Option<Payout> {
        match self.payouts.get(id) {
            Some(payout) => Some(payout.clone()),
            None => self.store.payout(id),
        }
    }

    pub(crate) fn put_payout(&mut self, payout: Payout) {
        payout.assert_consistent();
        let previous = self
            .payouts
            .insert(payout.payout_id.clone(), payout.clone());
        if let Some(chain) = &mut self.chain {
            chain.payouts.push((payout.payout_id, previous));
        }
    }

    pub(crate) fn delivery(&self, id: &str) -> Option<Delivery> {
        match self.deliveries.get(id) {
            Some(delivery) => Some(delivery.clone()),
            None => self.store.delivery(id),
        }
    }

    pub(crate) fn put_delivery(&mut self, delivery: Delivery) {
        delivery.assert_consistent();
        let id = delivery.id();
        let previous = self.deliveries.insert(id.clone(), delivery);
        if let Some(chain) = &mut self.chain {
            chain.deliveries.push((id, previous));
        }
    }

    /// The next webhook event's sequence number. Numbers stay used if the command rolls back:
    /// event ids only need to be unique and increasing.
    pub(crate) fn next_event_seq(&mut self) -> u64 {
        let store = self.store;
        let issued = self
            .events_issued
            .get_or_insert_with(|| store.meta().webhook_events_issued);
        *issued += 1;
        *issued
    }

    /// Runs `step` with `clock` lent for the transfers it posts (`tick_posting_clock`), then
    /// moves `clock` past them. Timestamps stay used even if the step rolls back: they only
    /// need to be unique. A step that panics leaves the clock to `abandon_step`.
    pub(crate) fn with_posting_clock<T>(
        &mut self,
        clock: &mut super::EventClock,
        step: impl FnOnce(&mut Self) -> T,
    ) -> T {
        assert!(self.posting_clock_ns.is_none(), "posting clock lent twice");
        self.posting_clock_ns = Some(clock.next_ns);
        let result = step(self);
        clock.next_ns = self
            .posting_clock_ns
            .take()
            .expect("posting clock was lent");
        result
    }

    pub(crate) fn tick_posting_clock(&mut self) -> u64 {
        let next_ns = self
            .posting_clock_ns
            .as_mut()
            .expect("payments post only while apply lends its clock");
        let now = *next_ns;
        *next_ns += 1;
        now
    }

    pub(crate) fn push_history(&mut self, entry: HistoryEntry) {
        self.history.push(entry);
    }

    pub(crate) fn begin_chain(&mut self) {
        assert!(self.chain.is_none(), "linked chains do not nest");
        self.chain = Some(ChainUndo {
            history_len: self.history.len(),
            ..ChainUndo::default()
        });
    }

    pub(crate) fn commit_chain(&mut self) {
        assert!(self.chain.take().is_some(), "no chain to commit");
    }

    /// Undoes a step that panicked (see `guard`): rolls back its open chain and takes back the
    /// posting clock if it was lent, returning the clock's next timestamp.
    pub(crate) fn abandon_step(&mut self) -> Option<u64> {
        if self.chain.is_some() {
            self.rollback_chain();
        }
        self.posting_clock_ns.take()
    }

    /// Restores the overlay to what it was at `begin_chain`, newest change first.
    pub(crate) fn rollback_chain(&mut self) {
        let undo = self.chain.take().expect("no chain to roll back");
        for (id, previous) in undo.accounts.into_iter().rev() {
            match previous {
                Some(account) => {
                    self.accounts
                        .get_mut(&id)
                        .expect("undo of a known account")
                        .account = account
                }
                None => {
                    self.accounts.remove(&id);
                }
            }
        }
        for id in undo.transfers {
            self.transfers.remove(&id);
        }
        for (id, previous) in undo.holds.into_iter().rev() {
            match previous {
                Some(hold) => self.holds.insert(id, hold),
                None => self.holds.remove(&id),
            };
        }
        for (key, previous) in undo.idempotency.into_iter().rev() {
            match previous {
                Some(record) => self.idempotency.insert(key, record),
                None => self.idempotency.remove(&key),
            };
        }
        for (id, previous) in undo.merchants.into_iter().rev() {
            match previous {
                Some(merchant) => self.merchants.insert(id, merchant),
                None => self.merchants.remove(&id),
            };
        }
        for (id, previous) in undo.buyers.into_iter().rev() {
            match previous {
                Some(buyer) => self.buyers.insert(id, buyer),
                None => self.buyers.remove(&id),
            };
        }
        for (id, previous) in undo.payments.into_iter().rev() {
            match previous {
                Some(payment) => self.payments.insert(id, payment),
                None => self.payments.remove(&id),
            };
        }
        for (id, previous) in undo.payouts.into_iter().rev() {
            match previous {
                Some(payout) => self.payouts.insert(id, payout),
                None => self.payouts.remove(&id),
            };
        }
        for (id, previous) in undo.deliveries.into_iter().rev() {
            match previous {
                Some(delivery) => self.deliveries.insert(id, delivery),
                None => self.deliveries.remove(&id),
            };
        }
        for (order, previous) in undo.batch_orders.into_iter().rev() {
            match previous {
                Some(checkout) => self.batch_orders.insert(order, checkout),
                None => self.batch_orders.remove(&order),
            };
        }
        self.history.truncate(undo.history_len);
    }

    /// Turns the overlay into the batch's change set, checking the balance invariants of every
    /// account it changed and carrying the per-currency totals forward.
    pub(crate) fn finish(self, mut meta: LedgerMeta) -> ChangeSet {
        assert!(self.chain.is_none(), "batch finished inside a chain");
        let mut touched: BTreeSet<Currency> = BTreeSet::new();
        let mut accounts: Vec<AccountSlot> = self.accounts.into_values().collect();
        accounts.sort_unstable_by_key(|slot| slot.account.id);
        for slot in &accounts {
            let account = &slot.account;
            assert!(
                account.balances.obey(account.flags),
                "account {} violates its flags: {:?}",
                account.id,
                account.balances
            );
            let total = meta.totals.entry(account.currency).or_default();
            *total = carry(*total, slot.balances_before, account.balances);
            touched.insert(account.currency);
        }
        for currency in &touched {
            let total = meta.totals[currency];
            assert_eq!(
                total.debits_posted, total.credits_posted,
                "{currency}: posted debits differ from posted credits"
            );
            assert_eq!(
                total.debits_pending, total.credits_pending,
                "{currency}: pending debits differ from pending credits"
            );
        }

        let mut transfers: Vec<(TransferId, TransferRecord)> = self.transfers.into_iter().collect();
        transfers.sort_unstable_by_key(|(id, _)| *id);

        let mut holds: Vec<Hold> = self.holds.into_values().collect();
        holds.sort_unstable_by_key(|hold| hold.pending_id);
        let mut expiry_inserts = Vec::new();
        let mut expiry_removes = Vec::new();
        for hold in &holds {
            let Some(expires_at_ns) = hold.expires_at_ns else {
                continue;
            };
            let was_pending = self
                .store
                .hold(hold.pending_id)
                .is_some_and(|stored| stored.status == HoldStatus::Pending);
            let is_pending = hold.status == HoldStatus::Pending;
            if is_pending && !was_pending {
                expiry_inserts.push((expires_at_ns, hold.pending_id));
            } else if was_pending && !is_pending {
                expiry_removes.push((expires_at_ns, hold.pending_id));
            }
        }

        let idempotency = idempotency_changes(self.store, self.idempotency);

        let mut indexes = payment_indexes(self.store, &self.payments);
        for (state, delta) in &indexes.state_deltas {
            let count = meta
                .orders_by_state
                .entry((*state).to_string())
                .or_default();
            *count = count
                .checked_add_signed(*delta)
                .expect("an order state count went below zero");
            if *count == 0 {
                meta.orders_by_state.remove(*state);
            }
        }
        // Orders and refunds added theirs while `payment_indexes` had the stored payment.
        let mut timed = std::mem::take(&mut indexes.timed);
        for payout in self.payouts.values() {
            let stored = self.store.payout(&payout.payout_id);
            let id = payout.payout_id.as_str();
            let before_due = stored.as_ref().and_then(|p| p.work.due_ns());
            timed.change(
                TimedIndex::PayoutDue,
                "",
                id,
                before_due,
                payout.work.due_ns(),
            );
            let before_dead = stored.as_ref().and_then(|p| p.work.dead_ns());
            let work = WorkRef::Payout(payout.payout_id.clone()).to_string();
            timed.change(
                TimedIndex::DeadLetter,
                "",
                &work,
                before_dead,
                payout.work.dead_ns(),
            );
            timed.change(
                TimedIndex::MerchantPayouts,
                payout.merchant_id.as_str(),
                id,
                stored.as_ref().map(|p| p.created_at_ns),
                Some(payout.created_at_ns),
            );
            let state_before = stored.as_ref().map(|p| p.state.name());
            if state_before != Some(payout.state.name()) {
                if let Some(name) = state_before {
                    count_down(&mut meta.payouts_by_state, name);
                }
                *meta
                    .payouts_by_state
                    .entry(payout.state.name().to_string())
                    .or_default() += 1;
            }
        }
        for delivery in self.deliveries.values() {
            let stored = self.store.delivery(&delivery.id());
            let id = delivery.id();
            let before_due = stored.as_ref().and_then(|d| d.work.due_ns());
            timed.change(
                TimedIndex::DeliveryDue,
                "",
                &id,
                before_due,
                delivery.work.due_ns(),
            );
            let queued = |d: &Delivery| d.queued().then_some(0);
            timed.change(
                TimedIndex::DeliveryQueue,
                &delivery.queue(),
                &id,
                stored.as_ref().and_then(queued),
                queued(delivery),
            );
            timed.change(
                TimedIndex::MerchantDeliveries,
                delivery.merchant_id.as_str(),
                &id,
                stored.as_ref().map(|d| d.event.created_at_ns),
                Some(delivery.event.created_at_ns),
            );
            let work = WorkRef::Delivery(id.clone()).to_string();
            timed.change(
                TimedIndex::DeadLetter,
                "",
                &work,
                stored.as_ref().and_then(|d| d.work.dead_ns()),
                delivery.work.dead_ns(),
            );
        }
        if let Some(issued) = self.events_issued {
            meta.webhook_events_issued = issued;
        }
        for merchant in self.merchants.values() {
            let stored = self.store.merchant(&merchant.id);
            let runs = |m: &Merchant| -> BTreeMap<String, u64> {
                m.payout_schedules
                    .iter()
                    .map(|s| (format!("{}/{}", m.id, s.currency.code()), s.next_run_at_ns))
                    .collect()
            };
            let before = stored.as_ref().map(runs).unwrap_or_default();
            let after = runs(merchant);
            let ids: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
            for id in ids {
                timed.change(
                    TimedIndex::PayoutScheduleDue,
                    "",
                    id,
                    before.get(id).copied(),
                    after.get(id).copied(),
                );
            }
        }
        for entry in &timed.removes {
            if entry.index == TimedIndex::DeadLetter {
                count_down(&mut meta.dead_letters, dead_kind(&entry.id));
            }
        }
        for entry in &timed.inserts {
            if entry.index == TimedIndex::DeadLetter {
                *meta
                    .dead_letters
                    .entry(dead_kind(&entry.id).to_string())
                    .or_default() += 1;
            }
        }
        timed.inserts.sort_unstable();
        timed.removes.sort_unstable();

        let mut api_key_index = Vec::new();
        for merchant in self.merchants.values() {
            let stored = self.store.merchant(&merchant.id);
            for key in &merchant.api_keys {
                let known = stored
                    .as_ref()
                    .is_some_and(|s| s.api_keys.iter().any(|k| k.key_id == key.key_id));
                if !known {
                    api_key_index.push((key.key_id.clone(), merchant.id.clone()));
                }
            }
        }
        api_key_index.sort_unstable();

        ChangeSet {
            accounts: accounts.into_iter().map(|slot| slot.account).collect(),
            transfers,
            holds,
            expiry_inserts,
            expiry_removes,
            history: self.history,
            idempotency: idempotency.puts,
            idempotency_removes: idempotency.removes,
            idempotency_expiry_inserts: idempotency.expiry_inserts,
            idempotency_expiry_removes: idempotency.expiry_removes,
            merchants: self.merchants.into_values().collect(),
            buyers: self.buyers.into_values().collect(),
            payments: self.payments.into_values().collect(),
            api_key_index,
            order_index: indexes.order_index,
            merchant_payments: indexes.merchant_payments,
            due_inserts: indexes.due_inserts,
            due_removes: indexes.due_removes,
            release_inserts: indexes.release_inserts,
            release_removes: indexes.release_removes,
            payouts: self.payouts.into_values().collect(),
            deliveries: self.deliveries.into_values().collect(),
            index_inserts: timed.inserts,
            index_removes: timed.removes,
            meta,
        }
    }
}

fn count_down(counts: &mut BTreeMap<String, u64>, name: &str) {
    let count = counts
        .get_mut(name)
        .expect("a counted state or kind is in the meta");
    *count = count.checked_sub(1).expect("a count went below zero");
    if *count == 0 {
        counts.remove(name);
    }
}

/// The kind of a dead-letter index id (`<kind>:<id>`).
fn dead_kind(id: &str) -> &str {
    id.split_once(':').map_or(id, |(kind, _)| kind)
}

/// Timed-index changes of one batch, from each record's time before and after.
#[derive(Default)]
struct TimedChanges {
    inserts: Vec<IndexEntry>,
    removes: Vec<IndexEntry>,
}

impl TimedChanges {
    fn change(
        &mut self,
        index: TimedIndex,
        owner: &str,
        id: &str,
        before_ns: Option<u64>,
        after_ns: Option<u64>,
    ) {
        if before_ns == after_ns {
            return;
        }
        let entry = |at_ns| IndexEntry {
            index,
            owner: owner.to_string(),
            at_ns,
            id: id.to_string(),
        };
        if let Some(at_ns) = before_ns {
            self.removes.push(entry(at_ns));
        }
        if let Some(at_ns) = after_ns {
            self.inserts.push(entry(at_ns));
        }
    }
}

#[derive(Default)]
struct PaymentIndexes {
    order_index: Vec<(OrderId, CheckoutId)>,
    merchant_payments: Vec<(MerchantId, u64, CheckoutId)>,
    due_inserts: Vec<(u64, OrderId)>,
    due_removes: Vec<(u64, OrderId)>,
    release_inserts: Vec<(u64, OrderId)>,
    release_removes: Vec<(u64, OrderId)>,
    /// Orders entering (+1) and leaving (-1) each state in this batch.
    state_deltas: BTreeMap<&'static str, i64>,
    /// Dead letters of orders and refunds, and the refund worker's due index.
    timed: TimedChanges,
}

/// The work indexes of one order against its stored version: its dead letter, and each
/// refund's due time and dead letter.
fn order_work_changes(timed: &mut TimedChanges, before: Option<&Order>, order: &Order) {
    let dead = |o: &Order| match o.state {
        OrderState::DeadLettered { dead_at_ns } => Some(dead_at_ns),
        _ => None,
    };
    let charge = WorkRef::Charge(order.order_id.clone()).to_string();
    timed.change(
        TimedIndex::DeadLetter,
        "",
        &charge,
        before.and_then(dead),
        dead(order),
    );
    let due = |r: &Refund| r.check_at_ns.filter(|_| r.dead_at_ns.is_none());
    for refund in &order.refunds {
        let old = before.and_then(|o| o.refunds.iter().find(|r| r.refund_id == refund.refund_id));
        let work = WorkRef::Refund(order.order_id.clone(), refund.refund_id.clone());
        let id = work.id();
        timed.change(
            TimedIndex::RefundDue,
            "",
            &id,
            old.and_then(due),
            due(refund),
        );
        let dead_before = old.and_then(|r| r.dead_at_ns);
        timed.change(
            TimedIndex::DeadLetter,
            "",
            &work.to_string(),
            dead_before,
            refund.dead_at_ns,
        );
    }
}

/// The index changes that follow from the payments a batch wrote, by comparing each order's
/// due time and release time with the stored payment's.
fn payment_indexes<S: LedgerRead>(
    store: &S,
    payments: &BTreeMap<CheckoutId, Payment>,
) -> PaymentIndexes {
    let mut indexes = PaymentIndexes::default();
    for (checkout, payment) in payments {
        let stored = store.payment(checkout);
        if stored.is_none() {
            indexes.merchant_payments.push((
                payment.merchant_id.clone(),
                payment.created_at_ns,
                checkout.clone(),
            ));
        }
        for order in &payment.orders {
            let before = stored.as_ref().and_then(|p| p.order(&order.order_id));
            if before.is_none() {
                indexes
                    .order_index
                    .push((order.order_id.clone(), checkout.clone()));
            }
            if let Some(before) = before {
                *indexes.state_deltas.entry(before.state.name()).or_default() -= 1;
            }
            *indexes.state_deltas.entry(order.state.name()).or_default() += 1;
            let due_before = before.and_then(|o| o.state.due_ns(o.created_at_ns));
            let due_after = order.state.due_ns(order.created_at_ns);
            if due_before != due_after {
                if let Some(due_ns) = due_before {
                    indexes.due_removes.push((due_ns, order.order_id.clone()));
                }
                if let Some(due_ns) = due_after {
                    indexes.due_inserts.push((due_ns, order.order_id.clone()));
                }
            }
            order_work_changes(&mut indexes.timed, before, order);
            let release = |o: &crate::payment::Order| o.release_at_ns.filter(|_| !o.released);
            let release_before = before.and_then(release);
            let release_after = release(order);
            if release_before != release_after {
                if let Some(at_ns) = release_before {
                    indexes
                        .release_removes
                        .push((at_ns, order.order_id.clone()));
                }
                if let Some(at_ns) = release_after {
                    indexes
                        .release_inserts
                        .push((at_ns, order.order_id.clone()));
                }
            }
        }
    }
    indexes.order_index.sort_unstable();
    indexes
}

/// `total - before + after`, field by field. Totals bound every balance, so neither step can
/// leave the range; if one did, the ledger's arithmetic is broken and must stop.
fn carry(total: Balances, before: Balances, after: Balances) -> Balances {
    let field = |t: u128, b: u128, a: u128| {
        t.checked_sub(b)
            .and_then(|rest| rest.checked_add(a))
            .expect("per-currency totals out of range")
    };
    Balances {
        debits_pending: field(
            total.debits_pending,
            before.debits_pending,
            after.debits_pending,
        ),
        debits_posted: field(
            total.debits_posted,
            before.debits_posted,
            after.debits_posted,
        ),
        credits_pending: field(
            total.credits_pending,
            before.credits_pending,
            after.credits_pending,
        ),
        credits_posted: field(
            total.credits_posted,
            before.credits_posted,
            after.credits_posted,
        ),
    }
}

/// The idempotency part of a change set: records written or forgotten, and the expiry index
/// moves that keep one index entry per stored record, at its `expires_at_ns`.
#[derive(Default)]
struct IdempotencyChanges {
    puts: Vec<IdempotencyRecord>,
    removes: Vec<IdempotencyKey>,
    expiry_inserts: Vec<(u64, IdempotencyKey)>,
    expiry_removes: Vec<(u64, IdempotencyKey)>,
}

fn idempotency_changes<S: LedgerRead>(
    store: &S,
    overlay: FxHashMap<IdempotencyKey, Option<IdempotencyRecord>>,
) -> IdempotencyChanges {
    let mut overlay: Vec<_> = overlay.into_iter().collect();
    overlay.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut changes = IdempotencyChanges::default();
    for (key, record) in overlay {
        let stored_expiry = store.idempotency(&key).map(|stored| stored.expires_at_ns);
        let new_expiry = record.as_ref().map(|record| record.expires_at_ns);
        if stored_expiry != new_expiry {
            if let Some(at_ns) = stored_expiry {
                changes.expiry_removes.push((at_ns, key.clone()));
            }
            if let Some(at_ns) = new_expiry {
                changes.expiry_inserts.push((at_ns, key.clone()));
            }
        }
        match record {
            Some(record) => changes.puts.push(record),
            // A key begun and forgotten in one batch was never stored.
            None if stored_expiry.is_some() => changes.removes.push(key),
            None => {}
        }
    }
    changes.expiry_inserts.sort_unstable();
    changes.expiry_removes.sort_unstable();
    changes
}
