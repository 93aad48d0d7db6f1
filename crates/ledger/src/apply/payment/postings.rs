//! The ledger transfers payments post: charges and fees at capture, wallet charges, and the
//! release of held funds to the seller's available balance (on fulfilment or after the hold
//! period). Every one goes through the ledger's own transfer path, with its checks.

use super::super::guard::{contained, ApplyFault};
use super::super::txn::Txn;
use super::super::{account, transfer, EventClock};
use super::{changed, invalid_transition, payment_of};
use crate::account::NewAccount;
use crate::ids::{AccountId, TransferId};
use crate::limits::{NANOS_PER_SECOND, RELEASES_PER_BATCH_MAX};
use crate::metadata::Metadata;
use crate::money::Currency;
use crate::payment::chart::{self, transfer_code, Role};
use crate::payment::{
    Merchant, Order, OrderId, OrderState, Payment, PaymentError, PaymentOutcome, PspName,
};
use crate::store::LedgerRead;
use crate::transfer::{NewTransfer, TransferKind};
use std::collections::BTreeMap;

/// Creates the payments account `id` unless it exists.
pub(super) fn ensure_account<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    id: AccountId,
    role: Role,
    currency: Currency,
    now_ns: u64,
) -> Result<(), PaymentError> {
    let new = NewAccount {
        id,
        currency,
        code: role.code(),
        flags: role.flags(),
        metadata: Metadata::default(),
        linked: false,
    };
    account::create(txn, &new, now_ns)
        .map(|_| ())
        .map_err(|error| PaymentError::TransferRefused {
            code: error.code().to_string(),
        })
}

fn order_metadata(order_id: &OrderId) -> Metadata {
    // An order id is at most PAYMENT_ID_BYTES_MAX bytes, well inside the metadata bounds.
    Metadata::new(BTreeMap::from([(
        "order_id".to_string(),
        order_id.to_string(),
    )]))
    .expect("an order id fits in metadata")
}

pub(super) struct Movement {
    pub id: TransferId,
    pub kind: TransferKind,
    pub code: u16,
}

/// Posts one transfer of a payment, at its own event timestamp from the lent clock.
pub(super) fn post<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    order_id: &OrderId,
    movement: Movement,
) -> Result<(), PaymentError> {
    post_with(txn, order_metadata(order_id), movement)
}

/// Posts one transfer tagged with `metadata` (which record it belongs to).
pub(super) fn post_with<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    metadata: Metadata,
    movement: Movement,
) -> Result<(), PaymentError> {
    let now_ns = txn.tick_posting_clock();
    let new = NewTransfer {
        id: movement.id,
        kind: movement.kind,
        code: movement.code,
        metadata,
        linked: false,
    };
    transfer::create(txn, &new, now_ns)
        .map(|_| ())
        .map_err(PaymentError::transfer_refused)
}

pub(super) fn single(
    id: TransferId,
    debit: AccountId,
    credit: AccountId,
    amount_minor: u64,
    currency: Currency,
    code: u16,
) -> Movement {
    Movement {
        id,
        kind: TransferKind::Single {
            debit_account_id: debit,
            credit_account_id: credit,
            amount_minor,
            currency,
        },
        code,
    }
}

fn seller<S: LedgerRead>(txn: &Txn<'_, S>, order: &Order) -> Result<Merchant, PaymentError> {
    txn.merchant(&order.seller_id)
        .ok_or_else(|| PaymentError::SellerNotFound {
            seller: order.seller_id.to_string(),
        })
}

/// Marks `order` captured for `captured_minor` and posts the money: the source (the PSP
/// receivable, or the buyer's wallet) to the seller's held account, then the platform fee out of
/// it. Starts the hold period.
pub(super) fn capture<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    order: &mut Order,
    source: CaptureSource<'_>,
    captured_minor: u64,
    now_ns: u64,
) -> Result<(), PaymentError> {
    debug_assert!(captured_minor > 0 && captured_minor <= order.amount_minor);
    let seller = seller(txn, order)?;
    let currency = order.currency;
    let held = chart::merchant_held(&seller.id, currency);
    let fees = chart::platform_fees(currency);
    ensure_account(txn, held, Role::MerchantHeld, currency, now_ns)?;
    ensure_account(txn, fees, Role::PlatformFees, currency, now_ns)?;
    let (source_account, code) = match source {
        CaptureSource::Psp(psp) => {
            let receivable = chart::psp_receivable(psp, currency);
            ensure_account(txn, receivable, Role::PspReceivable, currency, now_ns)?;
            (receivable, transfer_code::CHARGE)
        }
        CaptureSource::Wallet(wallet) => (wallet, transfer_code::WALLET_CHARGE),
    };
    let fee_minor = seller.fees.fee_minor(captured_minor, currency);
    let charge_id = chart::order_transfer("charge", &order.order_id);
    let charge = single(
        charge_id,
        source_account,
        held,
        captured_minor,
        currency,
        code,
    );
    post(txn, &order.order_id, charge)?;
    if fee_minor > 0 {
        let fee_id = chart::order_transfer("fee", &order.order_id);
        let fee = single(fee_id, held, fees, fee_minor, currency, transfer_code::FEE);
        post(txn, &order.order_id, fee)?;
    }
    order.state = OrderState::Succeeded;
    order.captured_minor = captured_minor;
    order.fee_minor = fee_minor;
    order.held_minor = captured_minor - fee_minor;
    order.release_at_ns = (seller.hold_period_s > 0)
        .then(|| now_ns.saturating_add(u64::from(seller.hold_period_s) * NANOS_PER_SECOND));
    order.updated_at_ns = now_ns;
    Ok(())
}

pub(super) enum CaptureSource<'a> {
    Psp(&'a PspName),
    Wallet(AccountId),
}

/// Moves what the order still holds to the seller's available balance.
fn release<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    order: &mut Order,
    now_ns: u64,
) -> Result<(), PaymentError> {
    debug_assert!(order.state == OrderState::Succeeded && !order.released);
    if order.held_minor > 0 {
        let currency = order.currency;
        let held = chart::merchant_held(&order.seller_id, currency);
        let available = chart::merchant_available(&order.seller_id, currency);
        ensure_account(txn, available, Role::MerchantAvailable, currency, now_ns)?;
        let id = chart::order_transfer("release", &order.order_id);
        let movement = single(
            id,
            held,
            available,
            order.held_minor,
            currency,
            transfer_code::RELEASE,
        );
        post(txn, &order.order_id, movement)?;
    }
    order.held_minor = 0;
    order.released = true;
    order.updated_at_ns = now_ns;
    Ok(())
}

pub(super) fn fulfill<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    order_id: &OrderId,
    now_ns: u64,
) -> Result<PaymentOutcome, PaymentError> {
    let mut payment = payment_of(txn, order_id)?;
    let order = payment
        .order_mut(order_id)
        .expect("payment_of found the order");
    if order.state != OrderState::Succeeded {
        return Err(invalid_transition(order_id, order.state.name(), "fulfil"));
    }
    if order.released {
        return super::unchanged(payment);
    }
    release(txn, order, now_ns)?;
    changed(txn, payment, now_ns)
}

/// Releases the held funds of orders whose hold period ended by `batch_timestamp_ns` (at most
/// `RELEASES_PER_BATCH_MAX`, earliest first) and returns their ids. A release cannot fail: held
/// funds for the order are reserved by construction (clients cannot touch the held account), so
/// a refusal is a bug. It is contained: that release is rolled back and the order parked (its
/// release time cleared, so it no longer blocks the index; fulfilment can still release it).
pub(in crate::apply) fn release_due_holds<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    batch_timestamp_ns: u64,
    clock: &mut EventClock,
    faults: &mut Vec<ApplyFault>,
) -> Vec<OrderId> {
    let due = txn
        .store()
        .releases_due(batch_timestamp_ns, RELEASES_PER_BATCH_MAX);
    assert!(
        due.len() <= RELEASES_PER_BATCH_MAX,
        "release index returned more than asked"
    );
    let mut released = Vec::with_capacity(due.len());
    for order_id in due {
        let timestamp_ns = clock.tick();
        let name = || format!("release of order {order_id}");
        let done = contained(txn, clock, faults, name, |txn, clock| {
            txn.begin_chain();
            txn.with_posting_clock(clock, |txn| {
                release_due(txn, &order_id, batch_timestamp_ns, timestamp_ns)
            });
            txn.commit_chain();
        });
        if done.is_some() {
            released.push(order_id);
            continue;
        }
        let name = || format!("parking the release of order {order_id}");
        let _ = contained(txn, clock, faults, name, |txn, _| {
            txn.begin_chain();
            park_release(txn, &order_id, timestamp_ns);
            txn.commit_chain();
        });
    }
    released
}

fn release_due<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    order_id: &OrderId,
    batch_timestamp_ns: u64,
    timestamp_ns: u64,
) {
    let mut payment: Payment = txn
        .payment_of_order(order_id)
        .unwrap_or_else(|| panic!("release index names unknown order {order_id}"));
    let order = payment.order_mut(order_id).expect("payment has its order");
    assert!(
        order.state == OrderState::Succeeded
            && !order.released
            && order
                .release_at_ns
                .is_some_and(|at| at <= batch_timestamp_ns),
        "release index names order {order_id} that is not due: {order:?}"
    );
    release(txn, order, timestamp_ns)
        .unwrap_or_else(|error| panic!("releasing order {order_id} failed: {error}"));
    payment.updated_at_ns = timestamp_ns;
    txn.put_payment(payment);
}

fn park_release<S: LedgerRead>(txn: &mut Txn<'_, S>, order_id: &OrderId, timestamp_ns: u64) {
    let mut payment: Payment = txn
        .payment_of_order(order_id)
        .unwrap_or_else(|| panic!("release index names unknown order {order_id}"));
    let order = payment.order_mut(order_id).expect("payment has its order");
    order.release_at_ns = None;
    order.updated_at_ns = timestamp_ns;
    payment.updated_at_ns = timestamp_ns;
    txn.put_payment(payment);
}
