//! Webhooks out: delivers the ledger's outbox to merchants' endpoints.
//!
//! At least once, with a stable event id: a delivery is claimed with a lease in the replicated
//! state, POSTed with `tally-signature: t=<unix s>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`
//! (one `v1` per active secret while a secret rotates), and every attempt is recorded with its
//! time, HTTP status, latency and the start of the answer. Non-2xx answers and network errors
//! retry with exponential backoff and full jitter over hours, then dead-letter. The ledger hands
//! out only the oldest open delivery of each payment per endpoint, so a payment's events arrive
//! in event-id order.

use crate::backoff::Backoff;
use crate::executor::Clock;
use crate::metrics::Metrics;
use crate::worker::{run_sweeps, RetrySchedule};
use bytes::Bytes;
use futures::StreamExt;
use std::sync::Arc;
use tally_ledger::format_amount;
use tally_ledger::limits::{DELIVERY_EXCERPT_BYTES_MAX, NANOS_PER_SECOND};
use tally_ledger::payment::{
    Delivery, DeliveryAttempt, DeliveryOutcome, PaymentCommand, PaymentOutcome, PaymentQuery,
    PaymentQueryResult, WebhookEndpoint,
};
use tally_net::{Dialer, HttpClient};
use tally_proto::client::{ClientError, LedgerClient};
use tokio::time::Instant;

/// The header merchants verify.
pub const SIGNATURE_HEADER: &str = "tally-signature";

#[derive(Clone, Debug)]
pub struct DispatcherConfig {
    pub lease_ms: u64,
    pub idle_poll_ms: u64,
    pub deliveries_per_sweep_max: u32,
    pub deliveries_in_flight_max: usize,
    /// Deadline of one POST; slower endpoints count as failed attempts.
    pub request_timeout_ms: u64,
    pub retry: Backoff,
}

impl DispatcherConfig {
    pub fn new(retry: Backoff) -> Self {
        DispatcherConfig {
            lease_ms: 30_000,
            idle_poll_ms: 200,
            deliveries_per_sweep_max: 256,
            deliveries_in_flight_max: 32,
            request_timeout_ms: 10_000,
            retry,
        }
    }

    /// 10 s doubling to an hour, 14 attempts: about seven and a half hours at most (half that
    /// on average with full jitter), enough to ride out a merchant's deploy or outage overnight.
    pub fn default_retry() -> Backoff {
        Backoff::new(10_000, 3_600_000, 14).expect("the default delivery backoff is valid")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DispatcherError {
    #[error("ledger unreachable: {0}")]
    Ledger(#[from] ClientError),
    #[error("the ledger answered a query with the wrong kind of result")]
    UnexpectedAnswer,
}

pub struct Dispatcher {
    ledger: LedgerClient,
    /// Follows no redirects: an endpoint answers for itself.
    http: HttpClient,
    config: DispatcherConfig,
    clock: Clock,
    retries: RetrySchedule,
    metrics: Option<Arc<Metrics>>,
}

/// The JSON a merchant receives.
pub fn event_body(delivery: &Delivery) -> Vec<u8> {
    let event = &delivery.event;
    let money = |minor: u64| format_amount(minor, event.currency);
    let body = serde_json::json!({
        "id": event.event_id,
        "type": event.kind,
        "created_unix_ns": event.created_at_ns,
        "data": {
            "checkout_id": event.checkout_id.as_str(),
            "payment_order_id": event.order_id.as_str(),
            "seller_account": event.seller_id.as_str(),
            "state": event.state,
            "amount": money(event.amount_minor),
            "captured": money(event.captured_minor),
            "refunded": money(event.refunded_minor),
            "currency": event.currency.code(),
        }
    });
    serde_json::to_vec(&body).expect("a JSON value serializes")
}

/// `t=<unix s>,v1=<sig>[,v1=<sig>]`: one signature per active secret.
pub fn signature_header(secrets: &[String], timestamp_s: u64, body: &[u8]) -> String {
    let mut header = format!("t={timestamp_s}");
    for secret in secrets {
        let signed = tally_psp::webhook::sign(secret.as_bytes(), timestamp_s, body);
        if let Some((_, v1)) = signed.split_once(',') {
            header.push(',');
            header.push_str(v1);
        }
    }
    header
}

impl Dispatcher {
    /// `dialer`: how endpoints are reached (OS TCP in production).
    pub fn new(
        ledger: LedgerClient,
        config: DispatcherConfig,
        clock: Clock,
        seed: u64,
        dialer: &Dialer,
    ) -> Self {
        let http = HttpClient::new(dialer, config.request_timeout_ms);
        Dispatcher {
            ledger,
            http,
            retries: RetrySchedule::new(config.retry, seed, clock.clone()),
            config,
            clock,
            metrics: None,
        }
    }

    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) {
        run_sweeps(
            "webhooks_out",
            self.config.idle_poll_ms,
            shutdown,
            || async { self.sweep().await.map(|worked| worked > 0) },
        )
        .await;
    }

    /// Delivers every delivery due now, once. Answers how many it tried.
    pub async fn sweep(&self) -> Result<usize, DispatcherError> {
        let due = match self
            .ledger
            .query_payments(&PaymentQuery::DeliveriesDue {
                up_to_ns: (self.clock)(),
                limit: self.config.deliveries_per_sweep_max,
            })
            .await?
        {
            PaymentQueryResult::DeliveriesDue(due) => due,
            _ => return Err(DispatcherError::UnexpectedAnswer),
        };
        if let Some(metrics) = &self.metrics {
            metrics.set_work_due("delivery", due.len());
        }
        let count = due.len();
        let mut worked = futures::stream::iter(due)
            .map(|(delivery, endpoint)| async move { self.deliver(delivery, endpoint).await })
            .buffer_unordered(self.config.deliveries_in_flight_max.max(1));
        let mut failed = None;
        while let Some(result) = worked.next().await {
            if let Err(error) = result {
                failed = Some(error);
            }
        }
        match failed {
            Some(error) => Err(error),
            None => Ok(count),
        }
    }

    async fn deliver(
        &self,
        delivery: Delivery,
        endpoint: Option<WebhookEndpoint>,
    ) -> Result<(), DispatcherError> {
        let id = delivery.id();
        let claim = self
            .ledger
            .execute_payments(&[PaymentCommand::ClaimDelivery {
                delivery_id: id.clone(),
                lease_ms: self.config.lease_ms,
            }])
            .await?;
        let (attempt, delivery) = match claim.into_iter().next() {
            Some(Ok(PaymentOutcome::DeliveryClaimed { attempt, delivery })) => (attempt, delivery),
            _ => return Ok(()),
        };
        let (status, latency_ms, excerpt) = match &endpoint {
            Some(endpoint) => self.post(endpoint, &delivery).await,
            None => (0, 0, "the endpoint was removed".to_string()),
        };
        let delivered = (200..300).contains(&status);
        let outcome = if delivered {
            DeliveryOutcome::Delivered
        } else if endpoint.is_none() {
            DeliveryOutcome::Exhausted
        } else {
            self.retry_or_give_up(attempt, delivery.retry_base)
        };
        if let Some(metrics) = &self.metrics {
            let kind = match outcome {
                DeliveryOutcome::Delivered => "delivered",
                DeliveryOutcome::Retry { .. } => "retry_scheduled",
                DeliveryOutcome::Exhausted => "exhausted",
            };
            metrics.count_work_outcome("delivery", kind, 1);
            metrics.observe_delivery(&delivery.endpoint_id, delivered, latency_ms);
        }
        let record = PaymentCommand::RecordDelivery {
            delivery_id: id.clone(),
            attempt: DeliveryAttempt {
                attempt,
                at_ns: 0,
                status,
                latency_ms,
                excerpt,
            },
            outcome,
        };
        if let Some(Err(error)) = self.ledger.execute_payments(&[record]).await?.first() {
            tracing::error!(delivery = %id, code = error.code(), %error, "ledger refused a delivery record");
        }
        Ok(())
    }

    /// POSTs the event; answers (HTTP status or 0, latency, excerpt of the answer or error).
    async fn post(&self, endpoint: &WebhookEndpoint, delivery: &Delivery) -> (u16, u64, String) {
        let body = event_body(delivery);
        let timestamp_s = (self.clock)() / NANOS_PER_SECOND;
        let started = Instant::now();
        let signature = signature_header(&endpoint.secrets, timestamp_s, &body);
        let sent = self
            .http
            .request(
                http::Method::POST,
                &endpoint.url,
                &[
                    ("content-type", "application/json"),
                    ("tally-event-id", &delivery.event.event_id),
                    (SIGNATURE_HEADER, &signature),
                ],
                Bytes::from(body),
            )
            .await;
        let (status, excerpt) = match sent {
            Ok(response) => {
                let kept = response.body.len().min(DELIVERY_EXCERPT_BYTES_MAX);
                (
                    response.status.as_u16(),
                    String::from_utf8_lossy(&response.body[..kept]).into_owned(),
                )
            }
            Err(error) => (0, error.to_string()),
        };
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut excerpt = excerpt;
        if excerpt.len() > DELIVERY_EXCERPT_BYTES_MAX {
            let mut end = DELIVERY_EXCERPT_BYTES_MAX;
            while !excerpt.is_char_boundary(end) {
                end -= 1;
            }
            excerpt.truncate(end);
        }
        (status, latency_ms, excerpt)
    }

    /// `retry_base` is the attempt the delivery was redelivered at: retries count afresh.
    fn retry_or_give_up(&self, attempt: u64, retry_base: u64) -> DeliveryOutcome {
        match self.retries.retry_at_ns(attempt.saturating_sub(retry_base)) {
            Some(retry_at_ns) => DeliveryOutcome::Retry { retry_at_ns },
            None => DeliveryOutcome::Exhausted,
        }
    }
}
