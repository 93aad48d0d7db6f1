//! The checkers. After every step (cheap): no two replicas ever hold different hash chains for
//! the same number of applied batches. Every simulated second: the full ledger audit on every
//! replica. At the end, once the faults are healed and the replicas caught up: equal hash chains
//! everywhere, the audit, every acknowledged transfer present (and every refused one absent) on
//! every replica, every balance equal to what the applied transfers add up to, and every client
//! operation answered within the liveness bound.

use crate::cluster::{node_name, Cluster};
use crate::workload::History;
use std::collections::BTreeMap;
use tally_ledger::{
    audit, AccountId, Balances, EntryPhase, HoldStatus, LedgerRead, TransferRecord,
};
use tally_raft_store::kv::MemKv;
use tally_raft_store::ledger_view;

/// Replica hash chains seen so far, by batches applied.
#[derive(Default)]
pub struct StepChecker {
    chains: BTreeMap<u64, ([u8; 32], usize)>,
    /// Batches applied per replica at the last step, to notice progress.
    applied: Vec<u64>,
    /// Each replica's state generation when it was last read: an unchanged replica is not
    /// read again (reading every replica's meta every step was 8 % of a run).
    generations: Vec<Option<u64>>,
}

fn short(hash: &[u8; 32]) -> String {
    hash[..6].iter().map(|b| format!("{b:02x}")).collect()
}

impl StepChecker {
    /// Reads each replica's ledger meta; a replica whose chain differs from another's at the
    /// same number of batches has diverged.
    /// Returns the replicas whose applied batch count changed, with the new count.
    pub fn after_step(&mut self, cluster: &Cluster) -> Result<Vec<(usize, u64)>, String> {
        self.applied.resize(cluster.size, 0);
        self.generations.resize(cluster.size, None);
        let mut changed = Vec::new();
        for (node, store) in cluster.stores.iter().enumerate() {
            let generation = Some(store.state_generation());
            if self.generations[node] == generation {
                continue;
            }
            self.generations[node] = generation;
            let meta = ledger_view(store).meta();
            if meta.batches_applied == self.applied[node] {
                continue;
            }
            self.applied[node] = meta.batches_applied;
            changed.push((node, meta.batches_applied));
            match self.chains.get(&meta.batches_applied) {
                Some((chain, first)) if *chain != meta.hash_chain => {
                    return Err(format!(
                        "replicas diverged at batch {}: {} has chain {}, {} had {}",
                        meta.batches_applied,
                        node_name(node),
                        short(&meta.hash_chain),
                        node_name(*first),
                        short(chain)
                    ));
                }
                Some(_) => {}
                None => {
                    self.chains
                        .insert(meta.batches_applied, (meta.hash_chain, node));
                }
            }
        }
        Ok(changed)
    }
}

/// The full invariant audit on every replica.
pub fn audit_all(cluster: &Cluster) -> Result<(), String> {
    for (node, store) in cluster.stores.iter().enumerate() {
        audit(&ledger_view(store))
            .map_err(|violation| format!("{}: audit failed: {violation}", node_name(node)))?;
    }
    Ok(())
}

/// Whether every replica has applied the same batches (same count, same chain).
pub fn converged(cluster: &Cluster) -> bool {
    let metas: Vec<_> = cluster
        .stores
        .iter()
        .map(|store| {
            let meta = ledger_view(store).meta();
            (meta.batches_applied, meta.hash_chain)
        })
        .collect();
    metas.windows(2).all(|pair| pair[0] == pair[1])
}

/// The end-of-run checks on one replica against what the clients saw.
pub fn check_replica(node: usize, store: &MemKv, history: &History) -> Vec<String> {
    let ledger = ledger_view(store);
    let name = node_name(node);
    let mut failures = Vec::new();
    // Every transfer id any client sent, once.
    let mut expected: BTreeMap<AccountId, Balances> = history
        .accounts
        .iter()
        .map(|id| (*id, Balances::ZERO))
        .collect();
    for op in &history.ops {
        for (i, item) in op.items.iter().enumerate() {
            let record = ledger.transfer(item.id);
            let applied = match &record {
                Some(TransferRecord::Applied(transfer)) => {
                    if !transfer.request.same_body(item) {
                        failures.push(format!(
                            "{name}: transfer {} holds another body than client{} sent",
                            item.id,
                            op.client + 1
                        ));
                    }
                    add_effect(&ledger, transfer, &mut expected);
                    true
                }
                _ => false,
            };
            match op.applied(i) {
                Some(true) if !applied => failures.push(format!(
                    "{name}: acknowledged transfer {} (client{} op {}) is missing",
                    item.id,
                    op.client + 1,
                    op.index
                )),
                Some(false) if applied => failures.push(format!(
                    "{name}: transfer {} (client{} op {}) was refused ({}) but is applied",
                    item.id,
                    op.client + 1,
                    op.index,
                    op.codes.as_ref().map(|c| c[i].as_str()).unwrap_or("?")
                )),
                _ => {}
            }
        }
    }
    for (account_id, want) in &expected {
        match ledger.account(*account_id) {
            None => failures.push(format!("{name}: account {account_id} is missing")),
            Some(account) if account.balances != *want => failures.push(format!(
                "{name}: account {account_id} has balances {:?}, its transfers add up to {want:?}",
                account.balances
            )),
            Some(_) => {}
        }
    }
    failures
}

/// Adds what one applied transfer does to the balances: a single or a post moves posted
/// amounts; a pending transfer counts as pending while its hold is open; a void does nothing.
fn add_effect(
    ledger: &impl LedgerRead,
    transfer: &tally_ledger::Transfer,
    balances: &mut BTreeMap<AccountId, Balances>,
) {
    let amount = u128::from(transfer.amount_minor);
    let (posted, pending) = match transfer.phase {
        EntryPhase::Single | EntryPhase::PostPending => (amount, 0),
        EntryPhase::Pending => match ledger.hold(transfer.request.id).map(|h| h.status) {
            Some(HoldStatus::Pending) => (0, amount),
            _ => (0, 0),
        },
        EntryPhase::VoidPending => (0, 0),
    };
    if let Some(debit) = balances.get_mut(&transfer.debit_account_id) {
        debit.debits_posted += posted;
        debit.debits_pending += pending;
    }
    if let Some(credit) = balances.get_mut(&transfer.credit_account_id) {
        credit.credits_posted += posted;
        credit.credits_pending += pending;
    }
}
