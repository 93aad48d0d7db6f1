//! Read-only questions about payments, answered from any `LedgerRead`. The node answers them
//! after a linearizable read barrier; the gateway asks them over gRPC.

use super::ids::{ApiKeyId, BuyerId, CheckoutId, MerchantId, OrderId, PayoutId};
use super::model::{Buyer, Merchant, OrderState, Payment};
use super::outbox::{Delivery, WebhookEndpoint};
use super::payout::{Payout, WorkState};
use super::work::{AttemptRecord, DeadLetter, TimedIndex, WorkRef};
use crate::money::Currency;
use crate::store::LedgerRead;
use serde::{Deserialize, Serialize};

/// Orders one `OrdersDue` page returns at most.
pub const ORDERS_DUE_PAGE_MAX: usize = 1_000;
/// Payments one `MerchantPayments` page returns at most.
pub const PAYMENTS_PAGE_MAX: usize = 100;
/// Payouts, schedules or dead letters one page returns at most.
pub const WORK_PAGE_MAX: usize = 1_000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentQuery {
    Payment {
        checkout_id: CheckoutId,
    },
    /// The payment an order belongs to.
    PaymentOfOrder {
        order_id: OrderId,
    },
    Merchant {
        merchant_id: MerchantId,
    },
    /// The merchant holding an API key id (the gateway authenticates with it).
    MerchantByApiKey {
        key_id: ApiKeyId,
    },
    Buyer {
        buyer_id: BuyerId,
    },
    /// Orders due for work at `up_to_ns`, earliest first.
    OrdersDue {
        up_to_ns: u64,
        limit: u32,
    },
    /// How many orders are in each state, cluster-wide (from the replicated meta, no scan).
    OrderStateCounts,
    /// A merchant's payments, newest first, before the cursor.
    MerchantPayments {
        merchant_id: MerchantId,
        before: Option<(u64, CheckoutId)>,
        limit: u32,
    },
    Payout {
        payout_id: PayoutId,
    },
    /// A merchant's payouts, newest first, before the cursor `(created_at_ns, payout id)`.
    MerchantPayouts {
        merchant_id: MerchantId,
        before: Option<(u64, String)>,
        limit: u32,
    },
    /// Payouts due for the payout worker at `up_to_ns`, earliest first.
    PayoutsDue {
        up_to_ns: u64,
        limit: u32,
    },
    /// Payout schedules due to run at `up_to_ns`, earliest first.
    PayoutSchedulesDue {
        up_to_ns: u64,
        limit: u32,
    },
    /// The dead-letter queue, oldest first, after the cursor `(dead_at_ns, work text)`.
    DeadLetters {
        after: Option<(u64, String)>,
        limit: u32,
    },
    DeadLetter {
        work: WorkRef,
    },
    /// Payouts by state and dead letters by kind, cluster-wide (from the replicated meta).
    WorkCounts,
    Delivery {
        delivery_id: String,
    },
    /// Pending refunds the refund worker should take at `up_to_ns`, earliest first.
    RefundsDue {
        up_to_ns: u64,
        limit: u32,
    },
    /// Deliveries due at `up_to_ns` that are next in their payment's queue, with their
    /// endpoint (`None`: removed since).
    DeliveriesDue {
        up_to_ns: u64,
        limit: u32,
    },
    /// A merchant's deliveries, newest first, before the cursor `(event time, delivery id)`.
    MerchantDeliveries {
        merchant_id: MerchantId,
        before: Option<(u64, String)>,
        limit: u32,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentQueryResult {
    Payment(Option<Payment>),
    Merchant(Option<Merchant>),
    Buyer(Option<Buyer>),
    OrdersDue(Vec<(u64, OrderId)>),
    /// Orders by `OrderState::name`; states with no orders are absent.
    OrderStateCounts(std::collections::BTreeMap<String, u64>),
    /// The page, and the cursor of its last payment when more may follow.
    MerchantPayments {
        payments: Vec<Payment>,
        next: Option<(u64, CheckoutId)>,
    },
    Payout(Option<Payout>),
    /// The page, and the cursor of its last payout when more may follow.
    Payouts {
        payouts: Vec<Payout>,
        next: Option<(u64, String)>,
    },
    PayoutsDue(Vec<(u64, PayoutId)>),
    PayoutSchedulesDue(Vec<(u64, MerchantId, Currency)>),
    DeadLetters {
        letters: Vec<DeadLetter>,
        next: Option<(u64, String)>,
    },
    DeadLetter(Option<DeadLetter>),
    WorkCounts {
        payouts_by_state: std::collections::BTreeMap<String, u64>,
        dead_letters: std::collections::BTreeMap<String, u64>,
    },
    Delivery(Option<Delivery>),
    RefundsDue(Vec<(u64, OrderId, super::ids::RefundId)>),
    DeliveriesDue(Vec<(Delivery, Option<WebhookEndpoint>)>),
    Deliveries {
        deliveries: Vec<Delivery>,
        next: Option<(u64, String)>,
    },
}

/// The dead letter for `work`, if it is dead-lettered now.
pub fn dead_letter<S: LedgerRead>(store: &S, work: &WorkRef) -> Option<DeadLetter> {
    match work {
        WorkRef::Charge(order_id) => {
            let payment = store
                .order_checkout(order_id)
                .and_then(|checkout| store.payment(&checkout))?;
            let order = payment.order(order_id)?;
            let OrderState::DeadLettered { dead_at_ns } = order.state else {
                return None;
            };
            Some(DeadLetter {
                work: work.clone(),
                dead_at_ns,
                attempt: order.attempt,
                last_error: order.last_error.clone(),
                history: order.attempts.clone(),
                merchant_id: order.seller_id.to_string(),
                amount_minor: order.amount_minor,
                currency: order.currency.code().to_string(),
            })
        }
        WorkRef::Delivery(id) => delivery_dead_letter(store, work, id),
        WorkRef::Refund(order_id, refund_id) => {
            let payment = store
                .order_checkout(order_id)
                .and_then(|checkout| store.payment(&checkout))?;
            let order = payment.order(order_id)?;
            let refund = order.refunds.iter().find(|r| &r.refund_id == refund_id)?;
            Some(DeadLetter {
                work: work.clone(),
                dead_at_ns: refund.dead_at_ns?,
                attempt: refund.attempt,
                last_error: refund.attempts.last().map(|a| super::model::OrderError {
                    code: a.code.clone(),
                    message: a.message.clone(),
                }),
                history: refund.attempts.clone(),
                merchant_id: order.seller_id.to_string(),
                amount_minor: refund.amount_minor,
                currency: order.currency.code().to_string(),
            })
        }
        WorkRef::Payout(payout_id) => {
            let payout = store.payout(payout_id)?;
            let WorkState::Dead { at_ns } = payout.work else {
                return None;
            };
            Some(DeadLetter {
                work: work.clone(),
                dead_at_ns: at_ns,
                attempt: payout.attempt,
                last_error: payout.last_error.clone(),
                history: payout.attempts.clone(),
                merchant_id: payout.merchant_id.to_string(),
                amount_minor: payout.amount_minor,
                currency: payout.currency.code().to_string(),
            })
        }
    }
}

fn delivery_dead_letter<S: LedgerRead>(store: &S, work: &WorkRef, id: &str) -> Option<DeadLetter> {
    let delivery = store.delivery(id)?;
    let WorkState::Dead { at_ns } = delivery.work else {
        return None;
    };
    Some(DeadLetter {
        work: work.clone(),
        dead_at_ns: at_ns,
        attempt: delivery.attempt,
        last_error: delivery.attempts.last().map(|a| super::model::OrderError {
            code: format!("http_{}", a.status),
            message: a.excerpt.clone(),
        }),
        history: delivery
            .attempts
            .iter()
            .map(|a| AttemptRecord {
                attempt: a.attempt,
                at_ns: a.at_ns,
                code: format!("http_{}", a.status),
                message: a.excerpt.clone(),
            })
            .collect(),
        merchant_id: delivery.merchant_id.to_string(),
        amount_minor: delivery.event.amount_minor,
        currency: delivery.event.currency.code().to_string(),
    })
}

/// Due entries a `DeliveriesDue` query reads at most, as a multiple of its limit: later events
/// of payments whose first event waits out a backoff are due but not sendable, and must not
/// hide the sendable ones behind them (one merchant's outage stalling everyone's webhooks).
const DELIVERIES_DUE_SCAN_FACTOR: usize = 16;

/// Due deliveries that head their payment's queue, so one payment's events go out in order.
fn deliveries_due<S: LedgerRead>(
    store: &S,
    up_to_ns: u64,
    limit: usize,
) -> Vec<(Delivery, Option<WebhookEndpoint>)> {
    let mut out = Vec::new();
    let mut due = Vec::new();
    let mut after = None;
    let mut scanned = 0;
    while out.len() < limit && scanned < limit * DELIVERIES_DUE_SCAN_FACTOR {
        if due.is_empty() {
            due = store.index_scan(TimedIndex::DeliveryDue, "", after.clone(), up_to_ns, limit);
            due.reverse();
            if due.is_empty() {
                break;
            }
        }
        let Some((at_ns, id)) = due.pop() else {
            break;
        };
        scanned += 1;
        after = Some((at_ns, id.clone()));
        let Some(delivery) = store.delivery(&id) else {
            continue;
        };
        let head = store.index_scan(
            TimedIndex::DeliveryQueue,
            &delivery.queue(),
            None,
            u64::MAX,
            1,
        );
        if head.first().map(|(_, head_id)| head_id.as_str()) != Some(id.as_str()) {
            continue;
        }
        let endpoint = store.merchant(&delivery.merchant_id).and_then(|merchant| {
            merchant
                .webhook_endpoints
                .into_iter()
                .find(|e| e.endpoint_id == delivery.endpoint_id)
        });
        out.push((delivery, endpoint));
    }
    out
}

fn page_next<T: Clone>(page: &[T], limit: usize) -> Option<T> {
    (page.len() == limit)
        .then(|| page.last().cloned())
        .flatten()
}

pub fn query_payments<S: LedgerRead>(store: &S, query: &PaymentQuery) -> PaymentQueryResult {
    match query {
        PaymentQuery::Payment { checkout_id } => {
            PaymentQueryResult::Payment(store.payment(checkout_id))
        }
        PaymentQuery::PaymentOfOrder { order_id } => PaymentQueryResult::Payment(
            store
                .order_checkout(order_id)
                .and_then(|checkout| store.payment(&checkout)),
        ),
        PaymentQuery::Merchant { merchant_id } => {
            PaymentQueryResult::Merchant(store.merchant(merchant_id))
        }
        PaymentQuery::MerchantByApiKey { key_id } => PaymentQueryResult::Merchant(
            store
                .api_key_merchant(key_id)
                .and_then(|merchant| store.merchant(&merchant)),
        ),
        PaymentQuery::Buyer { buyer_id } => PaymentQueryResult::Buyer(store.buyer(buyer_id)),
        PaymentQuery::OrderStateCounts => {
            PaymentQueryResult::OrderStateCounts(store.meta().orders_by_state)
        }
        PaymentQuery::OrdersDue { up_to_ns, limit } => {
            let limit = (*limit as usize).clamp(1, ORDERS_DUE_PAGE_MAX);
            PaymentQueryResult::OrdersDue(store.orders_due(*up_to_ns, limit))
        }
        PaymentQuery::MerchantPayments {
            merchant_id,
            before,
            limit,
        } => {
            let limit = (*limit as usize).clamp(1, PAYMENTS_PAGE_MAX);
            let page = store.merchant_payments(merchant_id, before.clone(), limit);
            let next = (page.len() == limit)
                .then(|| page.last().cloned())
                .flatten();
            let payments = page
                .iter()
                .filter_map(|(_, checkout)| store.payment(checkout))
                .collect();
            PaymentQueryResult::MerchantPayments { payments, next }
        }
        PaymentQuery::Payout { payout_id } => PaymentQueryResult::Payout(store.payout(payout_id)),
        PaymentQuery::MerchantPayouts {
            merchant_id,
            before,
            limit,
        } => {
            let limit = (*limit as usize).clamp(1, WORK_PAGE_MAX);
            let page = store.index_scan_desc(
                TimedIndex::MerchantPayouts,
                merchant_id.as_str(),
                before.clone(),
                limit,
            );
            let next = page_next(&page, limit);
            let payouts = page
                .iter()
                .filter_map(|(_, id)| PayoutId::new(id.as_str()).ok())
                .filter_map(|id| store.payout(&id))
                .collect();
            PaymentQueryResult::Payouts { payouts, next }
        }
        PaymentQuery::PayoutsDue { up_to_ns, limit } => {
            let limit = (*limit as usize).clamp(1, WORK_PAGE_MAX);
            let due = store.index_scan(TimedIndex::PayoutDue, "", None, *up_to_ns, limit);
            PaymentQueryResult::PayoutsDue(
                due.into_iter()
                    .filter_map(|(at_ns, id)| PayoutId::new(id).ok().map(|id| (at_ns, id)))
                    .collect(),
            )
        }
        PaymentQuery::PayoutSchedulesDue { up_to_ns, limit } => {
            let limit = (*limit as usize).clamp(1, WORK_PAGE_MAX);
            let due = store.index_scan(TimedIndex::PayoutScheduleDue, "", None, *up_to_ns, limit);
            PaymentQueryResult::PayoutSchedulesDue(
                due.into_iter()
                    .filter_map(|(at_ns, id)| {
                        let (merchant, currency) = id.split_once('/')?;
                        Some((
                            at_ns,
                            MerchantId::new(merchant).ok()?,
                            currency.parse::<Currency>().ok()?,
                        ))
                    })
                    .collect(),
            )
        }
        PaymentQuery::DeadLetters { after, limit } => {
            let limit = (*limit as usize).clamp(1, WORK_PAGE_MAX);
            let page = store.index_scan(TimedIndex::DeadLetter, "", after.clone(), u64::MAX, limit);
            let next = page_next(&page, limit);
            let letters = page
                .iter()
                .filter_map(|(_, id)| WorkRef::parse(id))
                .filter_map(|work| dead_letter(store, &work))
                .collect();
            PaymentQueryResult::DeadLetters { letters, next }
        }
        PaymentQuery::DeadLetter { work } => {
            PaymentQueryResult::DeadLetter(dead_letter(store, work))
        }
        PaymentQuery::RefundsDue { up_to_ns, limit } => {
            let limit = (*limit as usize).clamp(1, WORK_PAGE_MAX);
            let due = store.index_scan(TimedIndex::RefundDue, "", None, *up_to_ns, limit);
            PaymentQueryResult::RefundsDue(
                due.into_iter()
                    .filter_map(|(at_ns, id)| {
                        let (order, refund) = id.split_once('/')?;
                        Some((
                            at_ns,
                            OrderId::new(order).ok()?,
                            super::ids::RefundId::new(refund).ok()?,
                        ))
                    })
                    .collect(),
            )
        }
        PaymentQuery::Delivery { delivery_id } => {
            PaymentQueryResult::Delivery(store.delivery(delivery_id))
        }
        PaymentQuery::DeliveriesDue { up_to_ns, limit } => {
            let limit = (*limit as usize).clamp(1, WORK_PAGE_MAX);
            PaymentQueryResult::DeliveriesDue(deliveries_due(store, *up_to_ns, limit))
        }
        PaymentQuery::MerchantDeliveries {
            merchant_id,
            before,
            limit,
        } => {
            let limit = (*limit as usize).clamp(1, WORK_PAGE_MAX);
            let page = store.index_scan_desc(
                TimedIndex::MerchantDeliveries,
                merchant_id.as_str(),
                before.clone(),
                limit,
            );
            let next = page_next(&page, limit);
            let deliveries = page
                .iter()
                .filter_map(|(_, id)| store.delivery(id))
                .collect();
            PaymentQueryResult::Deliveries { deliveries, next }
        }
        PaymentQuery::WorkCounts => {
            let meta = store.meta();
            PaymentQueryResult::WorkCounts {
                payouts_by_state: meta.payouts_by_state,
                dead_letters: meta.dead_letters,
            }
        }
    }
}
