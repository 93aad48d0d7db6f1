//! The payments checkers.
//!
//! After every step (cheap): whenever a replica applies past every batch seen so far, each
//! order's state there must rank at least as high as at any earlier batch — payment states never
//! move backwards along the log (the hash-chain checker makes every replica equal at equal
//! batches, so the most advanced replica stands for all).
//!
//! At the end, on every replica, against the PSP simulator's own records:
//! - liveness: every order of every checkout final, every refund settled, every payout paid or
//!   failed;
//! - every PSP charge appears in the ledger exactly once and vice versa: a captured charge is a
//!   succeeded order with the same charge id and amount and exactly one charge transfer out of
//!   the PSP receivable for it; an order the ledger holds succeeded was captured at the PSP;
//!   authorizations, declines and cancellations agree;
//! - refunds: what the ledger refunded per order is what the PSP refunded;
//! - payouts: every payout the ledger has paid or in transit went out at the PSP for the same
//!   amount, and none other did.

use crate::cluster::{node_name, Cluster};
use crate::gateways::PSP_NAME;
use std::collections::BTreeMap;
use tally_ledger::payment::chart::{self, transfer_code};
use tally_ledger::payment::{
    CheckoutId, OrderState, Payment, PaymentMethod, PayoutId, PayoutState, PspName, RefundState,
};
use tally_ledger::{account_history, Currency, LedgerRead, Side, TransferRecord};
use tally_psp::{Charge, ChargeStatus, SimLedgerRow};
use tally_raft_store::kv::MemKv;
use tally_raft_store::ledger_view;

/// History entries read per page of the receivable's history.
const HISTORY_PAGE: usize = 1_000;

/// The forward-only checker, fed after every step.
#[derive(Default)]
pub struct PaymentStepChecker {
    /// The most batches any replica has applied.
    frontier: u64,
    /// Per order: the highest rank seen, its state's name and the batch it was seen at.
    ranks: BTreeMap<String, (u8, &'static str, u64)>,
}

impl PaymentStepChecker {
    /// `changed`: replicas that applied batches this step, with their counts; `checkouts`: every
    /// checkout a shop has sent.
    pub fn after_step(
        &mut self,
        cluster: &Cluster,
        changed: &[(usize, u64)],
        checkouts: &[String],
    ) -> Result<(), String> {
        let Some(&(node, batches)) = changed.iter().max_by_key(|(_, batches)| *batches) else {
            return Ok(());
        };
        if batches <= self.frontier {
            return Ok(());
        }
        self.frontier = batches;
        let ledger = ledger_view(&cluster.stores[node]);
        for checkout in checkouts {
            let Some(payment) = CheckoutId::new(checkout.clone())
                .ok()
                .and_then(|id| ledger.payment(&id))
            else {
                continue;
            };
            for order in &payment.orders {
                let rank = order.state.rank();
                let name = order.state.name();
                match self.ranks.get(order.order_id.as_str()) {
                    Some(&(seen, seen_name, at)) if rank < seen => {
                        return Err(format!(
                            "order {} moved backwards: {seen_name} at batch {at}, then {name} at \
                             batch {batches} on {}",
                            order.order_id,
                            node_name(node)
                        ));
                    }
                    Some(&(seen, _, _)) if rank == seen => {}
                    _ => {
                        self.ranks
                            .insert(order.order_id.to_string(), (rank, name, batches));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Every payment of the shops' checkouts on one replica.
fn payments(ledger: &impl LedgerRead, checkouts: &[String]) -> Vec<Payment> {
    checkouts
        .iter()
        .filter_map(|checkout| {
            CheckoutId::new(checkout.clone())
                .ok()
                .and_then(|id| ledger.payment(&id))
        })
        .collect()
}

/// Charge transfers out of the PSP receivable, by order: how many, and how much in all.
fn charge_postings(ledger: &impl LedgerRead) -> Result<BTreeMap<String, (u32, u64)>, String> {
    let psp = PspName::new(PSP_NAME).map_err(|e| e.to_string())?;
    let receivable = chart::psp_receivable(&psp, Currency::USD);
    let mut postings: BTreeMap<String, (u32, u64)> = BTreeMap::new();
    if ledger.account(receivable).is_none() {
        return Ok(postings);
    }
    let mut cursor = None;
    loop {
        let page = account_history(ledger, receivable, cursor, HISTORY_PAGE)
            .map_err(|e| format!("history of the PSP receivable: {e}"))?;
        for entry in &page.entries {
            if entry.side != Side::Debit {
                continue;
            }
            let Some(TransferRecord::Applied(transfer)) = ledger.transfer(entry.transfer_id) else {
                continue;
            };
            if transfer.request.code != transfer_code::CHARGE {
                continue;
            }
            let order = transfer
                .request
                .metadata
                .get("order_id")
                .unwrap_or("?")
                .to_string();
            let posting = postings.entry(order).or_default();
            posting.0 += 1;
            posting.1 += transfer.amount_minor;
        }
        match page.next_cursor_ns {
            Some(next) => cursor = Some(next),
            None => return Ok(postings),
        }
    }
}

/// The end-of-run payments checks on one replica. `payouts`: every payout id the shops sent,
/// with whether a shop had it acknowledged.
pub fn check_replica(
    node: usize,
    store: &MemKv,
    checkouts: &[String],
    payouts: &[(String, bool)],
    psp_charges: &[Charge],
    psp_money: &[SimLedgerRow],
) -> Vec<String> {
    let ledger = ledger_view(store);
    let name = node_name(node);
    let mut failures = Vec::new();
    let charges: BTreeMap<&str, &Charge> = psp_charges
        .iter()
        .map(|charge| (charge.idempotency_key.as_str(), charge))
        .collect();
    let postings = match charge_postings(&ledger) {
        Ok(postings) => postings,
        Err(failure) => return vec![format!("{name}: {failure}")],
    };
    let mut orders_seen = std::collections::BTreeSet::new();
    for payment in payments(&ledger, checkouts) {
        let through_psp = matches!(
            payment.method,
            Some(PaymentMethod::Card { .. } | PaymentMethod::Qr | PaymentMethod::Hosted { .. })
        );
        for order in &payment.orders {
            let id = order.order_id.as_str();
            orders_seen.insert(id.to_string());
            if !order.state.is_final() {
                failures.push(format!(
                    "{name}: liveness: order {id} still {} after the faults",
                    order.state.name()
                ));
            }
            if let Some(refund) = order
                .refunds
                .iter()
                .find(|r| r.state == RefundState::Pending)
            {
                failures.push(format!(
                    "{name}: liveness: refund {} of order {id} still pending",
                    refund.refund_id
                ));
            }
            let charge = charges.get(id).copied();
            let (count, posted) = postings.get(id).copied().unwrap_or((0, 0));
            match (&order.state, charge) {
                (OrderState::Succeeded, Some(charge)) if through_psp => {
                    if charge.status != ChargeStatus::Captured {
                        failures.push(format!(
                            "{name}: order {id} succeeded but the PSP has its charge {:?}",
                            charge.status
                        ));
                    }
                    if order.psp_charge_id.as_deref() != Some(charge.charge_id.as_str())
                        || order.captured_minor != charge.captured_minor
                    {
                        failures.push(format!(
                            "{name}: order {id} holds charge {:?} for {} but the PSP captured {} \
                             for {}",
                            order.psp_charge_id,
                            order.captured_minor,
                            charge.charge_id,
                            charge.captured_minor
                        ));
                    }
                    if count != 1 || posted != charge.captured_minor {
                        failures.push(format!(
                            "{name}: PSP charge {} of order {id} ({} captured) is in the ledger {count} \
                             times for {posted}",
                            charge.charge_id, charge.captured_minor
                        ));
                    }
                    if order.refunded_minor() != charge.refunded_minor {
                        failures.push(format!(
                            "{name}: order {id} refunded {} in the ledger, {} at the PSP",
                            order.refunded_minor(),
                            charge.refunded_minor
                        ));
                    }
                }
                (OrderState::Succeeded, None) if through_psp => failures.push(format!(
                    "{name}: order {id} succeeded but the PSP never charged it"
                )),
                (state, Some(charge)) => {
                    let agrees = matches!(
                        (state, &charge.status),
                        (OrderState::Failed, ChargeStatus::Declined { .. })
                            | (OrderState::Failed, ChargeStatus::Canceled)
                            | (OrderState::Canceled, ChargeStatus::Canceled)
                            | (OrderState::Authorized, ChargeStatus::Authorized)
                            | (OrderState::Pending { .. }, ChargeStatus::Pending { .. })
                    );
                    if !agrees && state != &OrderState::Succeeded {
                        failures.push(format!(
                            "{name}: order {id} is {} but the PSP has its charge {:?}",
                            state.name(),
                            charge.status
                        ));
                    }
                    if state != &OrderState::Succeeded && count > 0 {
                        failures.push(format!(
                            "{name}: order {id} is {} yet {count} charge transfers were posted for it",
                            state.name()
                        ));
                    }
                }
                (_, None) => {
                    if count > 0 {
                        failures.push(format!(
                            "{name}: order {id} has {count} charge transfers but no PSP charge"
                        ));
                    }
                }
            }
        }
    }
    for charge in psp_charges {
        if !orders_seen.contains(&charge.idempotency_key) {
            failures.push(format!(
                "{name}: the PSP charged {} under key {:?}, which no order of the ledger has",
                charge.charge_id, charge.idempotency_key
            ));
        }
    }
    for order in postings.keys() {
        if !orders_seen.contains(order) {
            failures.push(format!(
                "{name}: charge transfers posted for {order:?}, which is no order of the shops"
            ));
        }
    }
    failures.extend(check_payouts(&name, &ledger, payouts, psp_money));
    failures
}

fn check_payouts(
    name: &str,
    ledger: &impl LedgerRead,
    payouts: &[(String, bool)],
    psp_money: &[SimLedgerRow],
) -> Vec<String> {
    let mut failures = Vec::new();
    let mut sent: BTreeMap<&str, (u32, u64)> = BTreeMap::new();
    for row in psp_money.iter().filter(|row| row.kind == "payout") {
        let entry = sent.entry(row.idempotency_key.as_str()).or_default();
        entry.0 += 1;
        entry.1 += row.amount_minor;
    }
    for (payout_id, acknowledged) in payouts {
        let Some(payout) = PayoutId::new(payout_id.clone())
            .ok()
            .and_then(|id| ledger.payout(&id))
        else {
            if *acknowledged {
                failures.push(format!(
                    "{name}: acknowledged payout {payout_id} is missing"
                ));
            }
            continue;
        };
        let at_psp = sent.remove(payout_id.as_str());
        match payout.state {
            PayoutState::Paid | PayoutState::InTransit => {
                if payout.state == PayoutState::InTransit {
                    failures.push(format!(
                        "{name}: liveness: payout {payout_id} still in transit"
                    ));
                }
                if at_psp != Some((1, payout.amount_minor)) {
                    failures.push(format!(
                        "{name}: payout {payout_id} of {} is {:?} in the ledger, but the PSP sent \
                         (count, amount) {at_psp:?}",
                        payout.amount_minor, payout.state
                    ));
                }
            }
            PayoutState::Pending => failures.push(format!(
                "{name}: liveness: payout {payout_id} still pending"
            )),
            PayoutState::Failed | PayoutState::Canceled => {
                if at_psp.is_some() {
                    failures.push(format!(
                        "{name}: payout {payout_id} is {:?} in the ledger but the PSP sent it",
                        payout.state
                    ));
                }
            }
        }
    }
    for (key, (count, amount)) in sent {
        failures.push(format!(
            "{name}: the PSP paid out {amount} in {count} movements under key {key:?}, which no \
             payout of the shops has"
        ));
    }
    failures
}
