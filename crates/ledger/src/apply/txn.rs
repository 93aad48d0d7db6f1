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
use crate::store::{ChangeSet, HistoryEntry, LedgerMeta, LedgerRead};
use crate::transfer::{Hold, HoldStatus, TransferRecord};
use rustc_hash::FxHashMap;
use std::collections::BTreeSet;

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
    idempotency: Vec<(IdempotencyKey, Option<IdempotencyRecord>)>,
    history_len: usize,
}

pub(crate) struct Txn<'s, S: LedgerRead> {
    store: &'s S,
    accounts: FxHashMap<AccountId, AccountSlot>,
    transfers: FxHashMap<TransferId, TransferRecord>,
    holds: FxHashMap<TransferId, Hold>,
    idempotency: FxHashMap<IdempotencyKey, IdempotencyRecord>,
    history: Vec<HistoryEntry>,
    chain: Option<ChainUndo>,
}

impl<'s, S: LedgerRead> Txn<'s, S> {
    /// Sized for a batch of `commands`, so the overlay never rehashes or reallocates mid-batch.
    pub(crate) fn with_capacity(store: &'s S, commands: usize) -> Self {
        Txn {
            store,
            accounts: FxHashMap::with_capacity_and_hasher(2 * commands, Default::default()),
            transfers: FxHashMap::with_capacity_and_hasher(commands, Default::default()),
            holds: FxHashMap::default(),
            idempotency: FxHashMap::default(),
            history: Vec::with_capacity(2 * commands),
            chain: None,
        }
    }

    pub(crate) fn store(&self) -> &'s S {
        self.store
    }

    pub(crate) fn account(&self, id: AccountId) -> Option<Account> {
        match self.accounts.get(&id) {
            Some(slot) => Some(slot.account.clone()),
            None => self.store.account(id),
        }
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
                    .store
                    .account(id)
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
        debug_assert!(!self.contains_transfer(id), "transfer {id} written twice");
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
            Some(record) => Some(record.clone()),
            None => self.store.idempotency(key),
        }
    }

    pub(crate) fn put_idempotency(&mut self, record: IdempotencyRecord) {
        let previous = self.idempotency.insert(record.key.clone(), record.clone());
        if let Some(chain) = &mut self.chain {
            chain.idempotency.push((record.key, previous));
        }
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

        let mut idempotency: Vec<IdempotencyRecord> = self.idempotency.into_values().collect();
        idempotency.sort_unstable_by(|a, b| a.key.cmp(&b.key));

        ChangeSet {
            accounts: accounts.into_iter().map(|slot| slot.account).collect(),
            transfers,
            holds,
            expiry_inserts,
            expiry_removes,
            history: self.history,
            idempotency,
            meta,
        }
    }
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
