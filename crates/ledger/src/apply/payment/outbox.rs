//! Webhooks out in the state machine: merchants' endpoints, the events a payment change emits
//! (written by the same command as the change), and the deliveries' lifecycle (claim with a
//! lease, record each attempt, retry, dead letter, redeliver).

use super::super::txn::Txn;
use super::check_text;
use super::parties::{merchant, updated};
use crate::limits::{
    DELIVERY_EXCERPT_BYTES_MAX, NANOS_PER_MILLISECOND, ORDER_LEASE_MS_MAX,
    WEBHOOK_ENDPOINTS_PER_MERCHANT_MAX, WEBHOOK_EVENT_TYPES_MAX, WEBHOOK_SECRET_BYTES_MAX,
    WEBHOOK_URL_BYTES_MAX,
};
use crate::payment::outbox::{
    event_id, Delivery, DeliveryAttempt, DeliveryOutcome, DeliveryState, OrderEvent,
    WebhookEndpoint,
};
use crate::payment::work::log_attempt;
use crate::payment::{MerchantId, Payment, PaymentError, PaymentOutcome, RefundState, WorkState};
use crate::store::LedgerRead;

fn delivery_of<S: LedgerRead>(txn: &Txn<'_, S>, id: &str) -> Result<Delivery, PaymentError> {
    txn.delivery(id)
        .ok_or_else(|| PaymentError::DeliveryNotFound {
            delivery: id.to_string(),
        })
}

fn changed<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    delivery: Delivery,
) -> Result<PaymentOutcome, PaymentError> {
    txn.put_delivery(delivery.clone());
    Ok(PaymentOutcome::Delivery {
        delivery,
        changed: true,
    })
}

pub(super) fn add_endpoint<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    merchant_id: &MerchantId,
    endpoint: &WebhookEndpoint,
    now_ns: u64,
) -> Result<PaymentOutcome, PaymentError> {
    check_text("endpoint_id", &endpoint.endpoint_id, 64)?;
    if endpoint.endpoint_id.is_empty()
        || !endpoint
            .endpoint_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
    {
        return Err(PaymentError::EndpointInvalid {
            reason: "endpoint_id: use 1 to 64 of A-Z a-z 0-9 _ -".to_string(),
        });
    }
    check_text("url", &endpoint.url, WEBHOOK_URL_BYTES_MAX)?;
    if !(endpoint.url.starts_with("https://") || endpoint.url.starts_with("http://")) {
        return Err(PaymentError::EndpointInvalid {
            reason: "url must be an absolute http:// or https:// URL".to_string(),
        });
    }
    if endpoint.event_types.len() > WEBHOOK_EVENT_TYPES_MAX
        || endpoint.secrets.len() != 1
        || endpoint.secrets[0].is_empty()
        || endpoint.secrets[0].len() > WEBHOOK_SECRET_BYTES_MAX
    {
        return Err(PaymentError::EndpointInvalid {
            reason: format!(
                "give one secret of 1 to {WEBHOOK_SECRET_BYTES_MAX} bytes and at most {WEBHOOK_EVENT_TYPES_MAX} event types"
            ),
        });
    }
    let mut owner = merchant(txn, merchant_id)?;
    if let Some(existing) = owner
        .webhook_endpoints
        .iter()
        .find(|e| e.endpoint_id == endpoint.endpoint_id)
    {
        if existing.url == endpoint.url && existing.event_types == endpoint.event_types {
            return Ok(PaymentOutcome::Merchant {
                merchant: owner,
                created: false,
            });
        }
        return Err(PaymentError::EndpointInvalid {
            reason: format!(
                "endpoint {} exists with another URL or event types; remove it first",
                endpoint.endpoint_id
            ),
        });
    }
    if owner.webhook_endpoints.len() >= WEBHOOK_ENDPOINTS_PER_MERCHANT_MAX {
        return Err(PaymentError::EndpointInvalid {
            reason: format!("at most {WEBHOOK_ENDPOINTS_PER_MERCHANT_MAX} endpoints per merchant"),
        });
    }
    let mut endpoint = endpoint.clone();
    endpoint.created_at_ns = now_ns;
    owner.webhook_endpoints.push(endpoint);
    updated(txn, owner, now_ns)
}

/// Signs with `secret` from now on; `keep_previous` keeps the newest old secret signing too,
/// so receivers can switch over without missing a delivery.
pub(super) fn rotate_secret<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    merchant_id: &MerchantId,
    endpoint_id: &str,
    secret: &str,
    keep_previous: bool,
    now_ns: u64,
) -> Result<PaymentOutcome, PaymentError> {
    if secret.is_empty() || secret.len() > WEBHOOK_SECRET_BYTES_MAX {
        return Err(PaymentError::EndpointInvalid {
            reason: format!("a secret has 1 to {WEBHOOK_SECRET_BYTES_MAX} bytes"),
        });
    }
    let mut owner = merchant(txn, merchant_id)?;
    let endpoint = owner
        .webhook_endpoints
        .iter_mut()
        .find(|e| e.endpoint_id == endpoint_id)
        .ok_or_else(|| PaymentError::EndpointNotFound {
            endpoint: endpoint_id.to_string(),
        })?;
    let previous = endpoint.secrets.first().cloned();
    endpoint.secrets = std::iter::once(secret.to_string())
        .chain(previous.filter(|_| keep_previous))
        .collect();
    updated(txn, owner, now_ns)
}

pub(super) fn remove_endpoint<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    merchant_id: &MerchantId,
    endpoint_id: &str,
    now_ns: u64,
) -> Result<PaymentOutcome, PaymentError> {
    let mut owner = merchant(txn, merchant_id)?;
    let before = owner.webhook_endpoints.len();
    owner
        .webhook_endpoints
        .retain(|e| e.endpoint_id != endpoint_id);
    if owner.webhook_endpoints.len() == before {
        return Err(PaymentError::EndpointNotFound {
            endpoint: endpoint_id.to_string(),
        });
    }
    updated(txn, owner, now_ns)
}

/// Writes one delivery per interested endpoint for every order or refund whose state `payment`
/// changes against what the state holds now. Called by every command that writes a payment.
pub(super) fn emit_events<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    payment: &Payment,
    now_ns: u64,
) -> Result<(), PaymentError> {
    let Some(owner) = txn.merchant(&payment.merchant_id) else {
        return Ok(());
    };
    if owner.webhook_endpoints.is_empty() {
        return Ok(());
    }
    let before = txn.payment(&payment.checkout_id);
    for order in &payment.orders {
        let old = before.as_ref().and_then(|p| p.order(&order.order_id));
        let mut kinds = Vec::new();
        if old.map(|o| o.state.name()) != Some(order.state.name())
            && order.state.name() != "executing"
            && order.state.name() != "retry_scheduled"
            && order.state.name() != "not_started"
        {
            kinds.push(format!("payment_order.{}", order.state.name()));
        }
        for refund in &order.refunds {
            let old_state = old
                .and_then(|o| o.refunds.iter().find(|r| r.refund_id == refund.refund_id))
                .map(|r| r.state);
            if old_state != Some(refund.state) && refund.state != RefundState::Pending {
                kinds.push(match refund.state {
                    RefundState::Succeeded => "refund.succeeded".to_string(),
                    _ => "refund.failed".to_string(),
                });
            }
        }
        for kind in kinds {
            let event = OrderEvent {
                event_id: event_id(txn.next_event_seq()),
                kind: kind.clone(),
                checkout_id: payment.checkout_id.clone(),
                order_id: order.order_id.clone(),
                seller_id: order.seller_id.clone(),
                state: order.state.name().to_string(),
                amount_minor: order.amount_minor,
                captured_minor: order.captured_minor,
                refunded_minor: order.refunded_minor(),
                currency: order.currency,
                created_at_ns: now_ns,
            };
            for endpoint in owner.webhook_endpoints.iter().filter(|e| e.wants(&kind)) {
                txn.put_delivery(Delivery {
                    event: event.clone(),
                    merchant_id: owner.id.clone(),
                    endpoint_id: endpoint.endpoint_id.clone(),
                    state: DeliveryState::Pending,
                    work: WorkState::Due { at_ns: now_ns },
                    attempt: 0,
                    attempts: Vec::new(),
                    retry_base: 0,
                });
            }
        }
    }
    Ok(())
}

pub(super) fn claim<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    delivery_id: &str,
    lease_ms: u64,
    now_ns: u64,
) -> Result<PaymentOutcome, PaymentError> {
    if lease_ms == 0 || lease_ms > ORDER_LEASE_MS_MAX {
        return Err(PaymentError::LeaseOutOfRange { lease_ms });
    }
    let mut delivery = delivery_of(txn, delivery_id)?;
    match delivery.work {
        WorkState::Due { at_ns } | WorkState::Leased { until_ns: at_ns } if at_ns <= now_ns => {}
        WorkState::Due { at_ns } | WorkState::Leased { until_ns: at_ns } => {
            return Err(PaymentError::DeliveryNotClaimable {
                delivery: delivery_id.to_string(),
                until_ns: at_ns,
            })
        }
        WorkState::Idle | WorkState::Dead { .. } => {
            return Err(PaymentError::DeliveryNotClaimable {
                delivery: delivery_id.to_string(),
                until_ns: u64::MAX,
            })
        }
    }
    // Only the oldest open event of a payment goes to an endpoint, whatever a gateway read.
    let head = txn.store().index_scan(
        crate::payment::TimedIndex::DeliveryQueue,
        &delivery.queue(),
        None,
        u64::MAX,
        1,
    );
    if head
        .first()
        .is_some_and(|(_, head_id)| head_id != delivery_id)
    {
        return Err(PaymentError::DeliveryNotClaimable {
            delivery: delivery_id.to_string(),
            until_ns: u64::MAX,
        });
    }
    let lease_until_ns = now_ns + lease_ms * NANOS_PER_MILLISECOND;
    delivery.attempt += 1;
    delivery.work = WorkState::Leased {
        until_ns: lease_until_ns,
    };
    let attempt = delivery.attempt;
    txn.put_delivery(delivery.clone());
    Ok(PaymentOutcome::DeliveryClaimed { attempt, delivery })
}

pub(super) fn record<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    delivery_id: &str,
    attempt: &DeliveryAttempt,
    outcome: &DeliveryOutcome,
    now_ns: u64,
) -> Result<PaymentOutcome, PaymentError> {
    let mut delivery = delivery_of(txn, delivery_id)?;
    let current =
        matches!(delivery.work, WorkState::Leased { .. }) && delivery.attempt == attempt.attempt;
    if !current {
        return Ok(PaymentOutcome::Delivery {
            delivery,
            changed: false,
        });
    }
    let mut attempt = attempt.clone();
    attempt.at_ns = now_ns;
    if attempt.excerpt.len() > DELIVERY_EXCERPT_BYTES_MAX {
        let mut end = DELIVERY_EXCERPT_BYTES_MAX;
        while !attempt.excerpt.is_char_boundary(end) {
            end -= 1;
        }
        attempt.excerpt.truncate(end);
    }
    log_attempt(&mut delivery.attempts, attempt);
    match outcome {
        DeliveryOutcome::Delivered => {
            delivery.state = DeliveryState::Delivered;
            delivery.work = WorkState::Idle;
        }
        DeliveryOutcome::Retry { retry_at_ns } => {
            delivery.work = WorkState::Due {
                at_ns: (*retry_at_ns).max(now_ns),
            };
        }
        DeliveryOutcome::Exhausted => {
            delivery.work = WorkState::Dead { at_ns: now_ns };
        }
    }
    changed(txn, delivery)
}

/// Sends an event again: a delivered one once more, a dead-lettered one back to its queue.
pub(super) fn redeliver<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    delivery_id: &str,
    now_ns: u64,
) -> Result<PaymentOutcome, PaymentError> {
    let mut delivery = delivery_of(txn, delivery_id)?;
    if let WorkState::Leased { until_ns } = delivery.work {
        return Err(PaymentError::DeliveryNotClaimable {
            delivery: delivery_id.to_string(),
            until_ns,
        });
    }
    delivery.state = DeliveryState::Pending;
    delivery.work = WorkState::Due { at_ns: now_ns };
    delivery.retry_base = delivery.attempt;
    changed(txn, delivery)
}

/// Gives up on a dead-lettered delivery.
pub(super) fn discard<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    delivery_id: &str,
) -> Result<PaymentOutcome, PaymentError> {
    let mut delivery = delivery_of(txn, delivery_id)?;
    if !matches!(delivery.work, WorkState::Dead { .. }) {
        return Err(PaymentError::NotDeadLettered {
            work: format!("delivery:{delivery_id}"),
        });
    }
    delivery.state = DeliveryState::Discarded;
    delivery.work = WorkState::Idle;
    changed(txn, delivery)
}
