//! Read-only questions about payments, answered from any `LedgerRead`. The node answers them
//! after a linearizable read barrier; the gateway asks them over gRPC.

use super::ids::{ApiKeyId, BuyerId, CheckoutId, MerchantId, OrderId};
use super::model::{Buyer, Merchant, Payment};
use crate::store::LedgerRead;
use serde::{Deserialize, Serialize};

/// Orders one `OrdersDue` page returns at most.
pub const ORDERS_DUE_PAGE_MAX: usize = 1_000;
/// Payments one `MerchantPayments` page returns at most.
pub const PAYMENTS_PAGE_MAX: usize = 100;

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
    }
}
