//! Webhooks out: merchants' endpoints, and the outbox of payment events to deliver to them.
//!
//! The command that changes an order also writes, in the same state-machine command, one
//! `Delivery` per matching endpoint of the payment's merchant: the event can never be lost or
//! invented apart from the change it reports. Event ids come from a counter in the replicated
//! meta (`evt_<16 digits>`), so they are stable across retries and increase with time; receivers
//! deduplicate by them. The gateways deliver at least once, one payment's events to one
//! endpoint in event-id order, and record every attempt.

use super::ids::{CheckoutId, MerchantId, OrderId};
use super::payout::WorkState;
use crate::limits::ATTEMPTS_KEPT_MAX;
use crate::money::Currency;
use serde::{Deserialize, Serialize};

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEndpoint {
    pub endpoint_id: String,
    pub url: String,
    /// Event kinds delivered (`payment_order.succeeded`, ...); empty: every kind.
    pub event_types: Vec<String>,
    /// Signing secrets, newest first: while a secret is rotated, both sign each delivery.
    pub secrets: Vec<String>,
    pub created_at_ns: u64,
}

/// By hand: the signing secrets must never reach a log, so only their count is shown.
impl std::fmt::Debug for WebhookEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookEndpoint")
            .field("endpoint_id", &self.endpoint_id)
            .field("url", &self.url)
            .field("event_types", &self.event_types)
            .field("secrets", &format_args!("[{} masked]", self.secrets.len()))
            .field("created_at_ns", &self.created_at_ns)
            .finish()
    }
}

/// A webhook signing secret in a command: the same bytes on the wire as a `String` (serde
/// transparent), but `Debug` never shows it, so a logged command leaks nothing.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WebhookSecret(pub String);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebhookSecret([{} bytes masked])", self.0.len())
    }
}

impl WebhookEndpoint {
    pub fn wants(&self, kind: &str) -> bool {
        self.event_types.is_empty() || self.event_types.iter().any(|t| t == kind)
    }
}

/// What an event says happened to an order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderEvent {
    pub event_id: String,
    /// `payment_order.<state>` or `refund.<state>`.
    pub kind: String,
    pub checkout_id: CheckoutId,
    pub order_id: OrderId,
    pub seller_id: MerchantId,
    pub state: String,
    pub amount_minor: u64,
    pub captured_minor: u64,
    pub refunded_minor: u64,
    pub currency: Currency,
    pub created_at_ns: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeliveryState {
    Pending,
    Delivered,
    /// Dead-lettered, then given up by an operator.
    Discarded,
}

impl DeliveryState {
    pub fn name(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Discarded => "discarded",
        }
    }
}

/// What a gateway's attempt came to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeliveryOutcome {
    /// A 2xx answer.
    Delivered,
    /// Anything else; try again at `retry_at_ns`.
    Retry { retry_at_ns: u64 },
    /// Anything else, and the attempts ran out: dead-lettered.
    Exhausted,
}

/// One attempt to deliver, as the API lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryAttempt {
    pub attempt: u64,
    pub at_ns: u64,
    /// The HTTP status, 0 when no response came (connect error, timeout).
    pub status: u16,
    pub latency_ms: u64,
    /// The start of the response body or the error, for the merchant's debugging.
    pub excerpt: String,
}

/// One event for one endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub event: OrderEvent,
    pub merchant_id: MerchantId,
    pub endpoint_id: String,
    pub state: DeliveryState,
    pub work: WorkState,
    pub attempt: u64,
    pub attempts: Vec<DeliveryAttempt>,
    /// The attempt count when it was last redelivered: the retry budget counts from here.
    pub retry_base: u64,
}

impl Delivery {
    /// `<event id>/<endpoint id>`: the record's key and its work id.
    pub fn id(&self) -> String {
        delivery_id(&self.event.event_id, &self.endpoint_id)
    }

    /// The queue one payment's events to one endpoint wait in, in event-id order.
    pub fn queue(&self) -> String {
        format!("{}/{}", self.endpoint_id, self.event.checkout_id)
    }

    /// In its queue: pending and not dead-lettered (a dead letter does not hold back the
    /// payment's later events; they meet the same endpoint and fail or pass on their own).
    pub fn queued(&self) -> bool {
        self.state == DeliveryState::Pending && !matches!(self.work, WorkState::Dead { .. })
    }

    /// The first rule of the delivery's own record it breaks, if any.
    pub fn inconsistency(&self) -> Option<String> {
        let broken = if self.attempts.len() > ATTEMPTS_KEPT_MAX {
            "attempt log over its bound"
        } else if (self.state != DeliveryState::Pending) != (self.work == WorkState::Idle) {
            "not settled exactly when no work is left"
        } else {
            return None;
        };
        Some(format!("delivery {}: {broken}", self.id()))
    }

    /// Called on every delivery a command writes: a broken rule there is a bug in the command.
    pub fn assert_consistent(&self) {
        if let Some(broken) = self.inconsistency() {
            panic!("{broken}");
        }
    }
}

pub fn delivery_id(event_id: &str, endpoint_id: &str) -> String {
    format!("{event_id}/{endpoint_id}")
}

/// The event id for counter value `seq`.
pub fn event_id(seq: u64) -> String {
    format!("evt_{seq:016}")
}

#[cfg(test)]
mod tests {
    use super::{WebhookEndpoint, WebhookSecret};
    use crate::payment::{MerchantId, PaymentCommand};

    #[test]
    fn debug_shows_how_many_secrets_an_endpoint_has_but_not_them() {
        let endpoint = WebhookEndpoint {
            endpoint_id: "ep1".to_string(),
            url: "https://shop.example/hooks".to_string(),
            event_types: Vec::new(),
            secrets: vec!["whsec_new_0123".to_string(), "whsec_old_4567".to_string()],
            created_at_ns: 1,
        };
        let shown = format!("{endpoint:?}");
        assert!(!shown.contains("whsec"), "{shown}");
        assert!(shown.contains("[2 masked]"), "{shown}");
    }

    #[test]
    fn a_rotate_command_logged_shows_no_secret_and_encodes_as_a_plain_string() {
        let secret = WebhookSecret("whsec_rotated_89ab".to_string());
        let command = PaymentCommand::RotateWebhookSecret {
            merchant_id: MerchantId::new("m1").unwrap(),
            endpoint_id: "ep1".to_string(),
            secret: secret.clone(),
            keep_previous: true,
        };
        let shown = format!("{command:?}");
        assert!(!shown.contains("whsec"), "{shown}");
        assert_eq!(
            postcard::to_allocvec(&secret).unwrap(),
            postcard::to_allocvec("whsec_rotated_89ab").unwrap()
        );
    }
}
