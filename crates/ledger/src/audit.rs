//! A full check of the ledger invariants, recomputed from scratch. `apply` checks the same
//! invariants incrementally after every batch; this second, independent path runs in tests, after
//! a snapshot is loaded, and on an operator's request.

use crate::account::Balances;
use crate::ids::AccountId;
use crate::money::Currency;
use crate::payment::{chart, FundsSource, OrderState, PayoutState, RefundState, WorkState};
use crate::store::LedgerRead;
use crate::transfer::HoldStatus;
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvariantViolation {
    #[error("{currency}: posted debits {debits} != posted credits {credits}")]
    PostedNotBalanced {
        currency: Currency,
        debits: u128,
        credits: u128,
    },
    #[error("{currency}: pending debits {debits} != pending credits {credits}")]
    PendingNotBalanced {
        currency: Currency,
        debits: u128,
        credits: u128,
    },
    #[error(
        "{currency}: recorded totals {recorded:?} differ from the accounts' sum {recomputed:?}"
    )]
    TotalsDrifted {
        currency: Currency,
        recorded: Balances,
        recomputed: Balances,
    },
    #[error("account {0} violates its balance flags")]
    FlagsViolated(AccountId),
    #[error("account {account_id}: pending balances {balances:?} differ from its pending holds (debits {held_debits}, credits {held_credits})")]
    HoldsDrifted {
        account_id: AccountId,
        balances: Balances,
        held_debits: u128,
        held_credits: u128,
    },
    /// A stored payment, payout or delivery that breaks a rule of its own record (a state that
    /// no command writes: a damaged or forged row).
    #[error("{0}")]
    RecordInconsistent(String),
    #[error("orders by state: the ledger meta says {recorded:?}, the payments say {recounted:?}")]
    OrderCountsDrifted {
        recorded: BTreeMap<String, u64>,
        recounted: BTreeMap<String, u64>,
    },
    #[error("payouts: the ledger meta says {recorded:?} by state and {recorded_dead:?} dead letters, the records say {recounted:?} and {recounted_dead:?}")]
    PayoutCountsDrifted {
        recorded: BTreeMap<String, u64>,
        recounted: BTreeMap<String, u64>,
        recorded_dead: BTreeMap<String, u64>,
        recounted_dead: BTreeMap<String, u64>,
    },
    #[error("payout in transit account {account_id}: ledger has net {ledger_net} and pending {ledger_pending}, its payouts say pending {payouts_pending}")]
    PayoutsDrifted {
        account_id: AccountId,
        ledger_net: i128,
        ledger_pending: u128,
        payouts_pending: u128,
    },
    #[error("seller held account {account_id}: ledger has net {ledger_net} and pending {ledger_pending}, its orders say net {orders_net} and pending {orders_pending}")]
    PaymentsDrifted {
        account_id: AccountId,
        ledger_net: i128,
        ledger_pending: u128,
        orders_net: i128,
        orders_pending: u128,
    },
    #[error("idempotency expiry index: {records} records but {entries} index entries; first mismatch {first:?}")]
    IdempotencyIndexDrifted {
        records: u64,
        entries: u64,
        first: Option<(u64, String)>,
    },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditReport {
    pub accounts: u64,
    pub holds_pending: u64,
    pub totals: BTreeMap<Currency, Balances>,
}

/// Recomputes every balance invariant from the accounts and holds.
pub fn audit<S: LedgerRead>(store: &S) -> Result<AuditReport, Box<InvariantViolation>> {
    let mut held: BTreeMap<AccountId, (u128, u128)> = BTreeMap::new();
    let mut holds_pending = 0u64;
    store.scan_holds(&mut |hold| {
        if hold.status == HoldStatus::Pending {
            holds_pending += 1;
            held.entry(hold.debit_account_id).or_default().0 += u128::from(hold.amount_minor);
            held.entry(hold.credit_account_id).or_default().1 += u128::from(hold.amount_minor);
        }
    });

    let mut totals: BTreeMap<Currency, Balances> = BTreeMap::new();
    let mut accounts = 0u64;
    let mut violation = None;
    store.scan_accounts(&mut |account| {
        accounts += 1;
        let b = account.balances;
        let total = totals.entry(account.currency).or_default();
        total.debits_pending += b.debits_pending;
        total.debits_posted += b.debits_posted;
        total.credits_pending += b.credits_pending;
        total.credits_posted += b.credits_posted;
        if violation.is_some() {
            return;
        }
        if !b.obey(account.flags) {
            violation = Some(InvariantViolation::FlagsViolated(account.id));
        }
        let (held_debits, held_credits) = held.get(&account.id).copied().unwrap_or_default();
        if (held_debits, held_credits) != (b.debits_pending, b.credits_pending) {
            violation = Some(InvariantViolation::HoldsDrifted {
                account_id: account.id,
                balances: b,
                held_debits,
                held_credits,
            });
        }
    });
    if let Some(violation) = violation {
        return Err(Box::new(violation));
    }

    for (&currency, total) in &totals {
        if total.debits_posted != total.credits_posted {
            return Err(Box::new(InvariantViolation::PostedNotBalanced {
                currency,
                debits: total.debits_posted,
                credits: total.credits_posted,
            }));
        }
        if total.debits_pending != total.credits_pending {
            return Err(Box::new(InvariantViolation::PendingNotBalanced {
                currency,
                debits: total.debits_pending,
                credits: total.credits_pending,
            }));
        }
    }
    audit_payments(store)?;
    audit_payouts(store)?;
    audit_idempotency(store)?;
    let recorded = store.meta().totals;
    for currency in recorded.keys().chain(totals.keys()) {
        let recorded_total = recorded.get(currency).copied().unwrap_or_default();
        let recomputed = totals.get(currency).copied().unwrap_or_default();
        if recorded_total != recomputed {
            return Err(Box::new(InvariantViolation::TotalsDrifted {
                currency: *currency,
                recorded: recorded_total,
                recomputed,
            }));
        }
    }
    Ok(AuditReport {
        accounts,
        holds_pending,
        totals,
    })
}

/// Every idempotency record has exactly one expiry index entry, at its `expires_at_ns`, and the
/// index names nothing else: otherwise a record would be kept forever, or forgotten early.
fn audit_idempotency<S: LedgerRead>(store: &S) -> Result<(), Box<InvariantViolation>> {
    let mut expected = std::collections::BTreeSet::new();
    store.scan_idempotency(&mut |record| {
        expected.insert((record.expires_at_ns, record.key.as_str().to_string()));
    });
    let records = expected.len() as u64;
    let mut entries = 0u64;
    let mut first = None;
    store.scan_idempotency_expiry(&mut |at_ns, key| {
        entries += 1;
        let entry = (at_ns, key.as_str().to_string());
        if !expected.remove(&entry) && first.is_none() {
            first = Some(entry);
        }
    });
    if first.is_none() {
        first = expected.into_iter().next();
    }
    if first.is_some() {
        return Err(Box::new(InvariantViolation::IdempotencyIndexDrifted {
            records,
            entries,
            first,
        }));
    }
    Ok(())
}

/// The wallet and the ledger must agree: each seller's held account holds exactly what its
/// orders say is held, plus the seller shares of refunds drawn on held funds and not yet settled.
fn audit_payments<S: LedgerRead>(store: &S) -> Result<(), Box<InvariantViolation>> {
    // Per held account: (net posted credits expected, pending debits expected).
    let mut expected: BTreeMap<AccountId, (i128, u128)> = BTreeMap::new();
    let mut recounted: BTreeMap<String, u64> = BTreeMap::new();
    let mut inconsistent = None;
    store.scan_payments(&mut |payment| {
        for order in &payment.orders {
            if let Some(broken) = order.inconsistency() {
                inconsistent.get_or_insert(broken);
                continue;
            }
            *recounted.entry(order.state.name().to_string()).or_default() += 1;
            if order.captured_minor == 0 {
                continue;
            }
            let held = chart::merchant_held(&order.seller_id, order.currency);
            let entry = expected.entry(held).or_default();
            entry.0 += i128::from(order.held_minor);
            for refund in &order.refunds {
                if refund.source == FundsSource::Held && refund.state == RefundState::Pending {
                    let share = refund.amount_minor - refund.fee_share_minor;
                    entry.0 += i128::from(share);
                    entry.1 += u128::from(share);
                }
            }
        }
    });
    if let Some(broken) = inconsistent {
        return Err(Box::new(InvariantViolation::RecordInconsistent(broken)));
    }
    let recorded = store.meta().orders_by_state;
    if recorded != recounted {
        return Err(Box::new(InvariantViolation::OrderCountsDrifted {
            recorded,
            recounted,
        }));
    }
    for (account_id, (orders_net, orders_pending)) in expected {
        let balances = store
            .account(account_id)
            .map(|account| account.balances)
            .unwrap_or_default();
        let ledger_net = balances.credits_posted as i128 - balances.debits_posted as i128;
        if (ledger_net, balances.debits_pending) != (orders_net, orders_pending) {
            return Err(Box::new(InvariantViolation::PaymentsDrifted {
                account_id,
                ledger_net,
                ledger_pending: balances.debits_pending,
                orders_net,
                orders_pending,
            }));
        }
    }
    Ok(())
}

/// Every open payout holds exactly its amount in its seller's payout-in-transit account, which
/// nets to zero once payouts settle; the meta's payout and dead-letter counts match the records.
fn audit_payouts<S: LedgerRead>(store: &S) -> Result<(), Box<InvariantViolation>> {
    let mut pending: BTreeMap<AccountId, u128> = BTreeMap::new();
    let mut recounted: BTreeMap<String, u64> = BTreeMap::new();
    let mut recounted_dead: BTreeMap<String, u64> = BTreeMap::new();
    let mut inconsistent = None;
    store.scan_payouts(&mut |payout| {
        if let Some(broken) = payout.inconsistency() {
            inconsistent.get_or_insert(broken);
            return;
        }
        *recounted
            .entry(payout.state.name().to_string())
            .or_default() += 1;
        if matches!(payout.work, WorkState::Dead { .. }) {
            *recounted_dead.entry("payout".to_string()).or_default() += 1;
        }
        let account = chart::merchant_payout_in_transit(&payout.merchant_id, payout.currency);
        let entry = pending.entry(account).or_default();
        if matches!(payout.state, PayoutState::Pending | PayoutState::InTransit) {
            *entry += u128::from(payout.amount_minor);
        }
    });
    store.scan_deliveries(&mut |delivery| {
        if let Some(broken) = delivery.inconsistency() {
            inconsistent.get_or_insert(broken);
            return;
        }
        if matches!(delivery.work, WorkState::Dead { .. }) {
            *recounted_dead.entry("delivery".to_string()).or_default() += 1;
        }
    });
    if let Some(broken) = inconsistent {
        return Err(Box::new(InvariantViolation::RecordInconsistent(broken)));
    }
    store.scan_payments(&mut |payment| {
        for order in &payment.orders {
            if matches!(order.state, OrderState::DeadLettered { .. }) {
                *recounted_dead.entry("charge".to_string()).or_default() += 1;
            }
            for refund in &order.refunds {
                if refund.dead_at_ns.is_some() {
                    *recounted_dead.entry("refund".to_string()).or_default() += 1;
                }
            }
        }
    });
    let meta = store.meta();
    if meta.payouts_by_state != recounted || meta.dead_letters != recounted_dead {
        return Err(Box::new(InvariantViolation::PayoutCountsDrifted {
            recorded: meta.payouts_by_state,
            recounted,
            recorded_dead: meta.dead_letters,
            recounted_dead,
        }));
    }
    for (account_id, payouts_pending) in pending {
        let balances = store
            .account(account_id)
            .map(|account| account.balances)
            .unwrap_or_default();
        let ledger_net = balances.credits_posted as i128 - balances.debits_posted as i128;
        if (ledger_net, balances.credits_pending) != (0, payouts_pending) {
            return Err(Box::new(InvariantViolation::PayoutsDrifted {
                account_id,
                ledger_net,
                ledger_pending: balances.credits_pending,
                payouts_pending,
            }));
        }
    }
    Ok(())
}
