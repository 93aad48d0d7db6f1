//! Expiring holds whose timeout has passed, at the start of each batch.

use super::guard::{contained, ApplyFault};
use super::transfer::{existing_account, push_history_pair, release};
use super::txn::Txn;
use super::EventClock;
use crate::ids::TransferId;
use crate::limits::EXPIRIES_PER_BATCH_MAX;
use crate::store::{HistoryEvent, LedgerRead};
use crate::transfer::HoldStatus;

/// Voids up to `EXPIRIES_PER_BATCH_MAX` holds due at `batch_timestamp_ns`, oldest deadline first,
/// and returns their ids. Expiry releases the reservation just as a void does.
pub(super) fn expire_holds<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    batch_timestamp_ns: u64,
    clock: &mut EventClock,
    faults: &mut Vec<ApplyFault>,
) -> Vec<TransferId> {
    let due = txn
        .store()
        .holds_expiring(batch_timestamp_ns, EXPIRIES_PER_BATCH_MAX);
    assert!(
        due.len() <= EXPIRIES_PER_BATCH_MAX,
        "expiry index returned more than asked"
    );
    let mut expired = Vec::with_capacity(due.len());
    for pending_id in due {
        let timestamp_ns = clock.tick();
        // A hold that cannot expire is a bug: contained, so it costs this expiry only (the hold
        // stays in the index and is tried again next batch).
        let name = || format!("expiry of hold {pending_id}");
        let done = contained(txn, clock, faults, name, |txn, _| {
            txn.begin_chain();
            expire(txn, pending_id, batch_timestamp_ns, timestamp_ns);
            txn.commit_chain();
        });
        if done.is_some() {
            expired.push(pending_id);
        }
    }
    expired
}

fn expire<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    pending_id: TransferId,
    batch_timestamp_ns: u64,
    timestamp_ns: u64,
) {
    let mut hold = txn
        .hold(pending_id)
        .unwrap_or_else(|| panic!("expiry index names unknown hold {pending_id}"));
    assert!(
        hold.status == HoldStatus::Pending && hold.is_expired_at(batch_timestamp_ns),
        "expiry index names hold {pending_id} that is not due: {hold:?}"
    );
    let mut debit = existing_account(txn, hold.debit_account_id);
    let mut credit = existing_account(txn, hold.credit_account_id);
    release(&mut debit, &mut credit, u128::from(hold.amount_minor));
    hold.finish(HoldStatus::Expired {
        at_ns: timestamp_ns,
    });
    push_history_pair(
        txn,
        pending_id,
        timestamp_ns,
        HistoryEvent::Expired,
        hold.amount_minor,
        &debit,
        &credit,
    );
    txn.put_hold(hold);
    txn.put_account(debit);
    txn.put_account(credit);
}
