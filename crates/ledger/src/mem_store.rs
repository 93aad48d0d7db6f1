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
}
