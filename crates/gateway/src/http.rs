//! The gateway's HTTP side (axum): PSP webhooks in, health, readiness and metrics. The JSON
//! facade of the payments API is added to the same router by `facade`.
//!
//! Webhooks in fail closed: the raw body's HMAC is checked (constant time, timestamp tolerance)
//! before anything is parsed, and an event only ever moves an order forward, so a duplicate or
//! out-of-order delivery is a no-op that still answers 200 (the PSP stops resending).

use crate::executor::{outcome_of, Clock};
use crate::metrics::Metrics;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;
use tally_ledger::limits::NANOS_PER_SECOND;
use tally_ledger::payment::{OrderId, PaymentCommand, PaymentQuery, PaymentQueryResult};
use tally_proto::client::LedgerClient;
use tally_psp::Psp;

/// The header the PSP signs its webhooks in.
pub const WEBHOOK_SIGNATURE_HEADER: &str = "tally-psp-signature";
/// Webhook bodies above this are refused before verification.
pub const WEBHOOK_BODY_BYTES_MAX: usize = 64 * 1024;

#[derive(Clone)]
pub struct HttpState {
    pub ledger: LedgerClient,
    pub psp: Arc<dyn Psp>,
    /// The PSP's name in `/webhooks/{psp}`.
    pub psp_name: String,
    pub metrics: Arc<Metrics>,
    pub clock: Clock,
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/v1/webhooks/psp", post(psp_webhook))
        .route("/webhooks/{psp}", post(named_psp_webhook))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .layer(axum::extract::DefaultBodyLimit::max(WEBHOOK_BODY_BYTES_MAX))
        .with_state(state)
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (status, body.into()).into_response()
}

/// `POST /webhooks/{psp}`: the same, for the PSP this gateway drives, by name.
async fn named_psp_webhook(
    State(state): State<HttpState>,
    Path(psp): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if psp != state.psp_name {
        state.metrics.count_webhook("unknown_psp");
        return text(
            StatusCode::NOT_FOUND,
            format!(
                "no PSP {psp:?} here; this gateway takes webhooks for {:?}\n",
                state.psp_name
            ),
        );
    }
    psp_webhook(State(state), headers, body).await
}

async fn psp_webhook(State(state): State<HttpState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(signature) = headers
        .get(WEBHOOK_SIGNATURE_HEADER)
        .and_then(|value| value.to_str().ok())
    else {
        state.metrics.count_webhook("unsigned");
        return text(
            StatusCode::BAD_REQUEST,
            format!("missing {WEBHOOK_SIGNATURE_HEADER} header\n"),
        );
    };
    let now_s = (state.clock)() / NANOS_PER_SECOND;
    let event = match state.psp.verify_webhook(&body, signature, now_s) {
        Ok(event) => event,
        Err(error) => {
            state.metrics.count_webhook("rejected");
            tracing::warn!(%error, "webhook refused");
            return text(
                StatusCode::BAD_REQUEST,
                format!("webhook refused: {error}\n"),
            );
        }
    };
    let Ok(order_id) = OrderId::new(event.idempotency_key.clone()) else {
        state.metrics.count_webhook("unknown_order");
        return text(StatusCode::OK, "ignored: not an order of this platform\n");
    };
    // The event id makes a duplicate delivery a no-op even where a repeated state would not
    // be (a second "still pending" would push the next status check out).
    let command = PaymentCommand::RecordChargeOutcome {
        order_id,
        outcome: outcome_of(&event.charge),
        event_id: Some(event.event_id.clone()),
    };
    match state.ledger.execute_payments(&[command]).await {
        Ok(results) => {
            let result = match results.first() {
                Some(Ok(outcome)) => outcome.code(),
                Some(Err(error)) => error.code(),
                None => "no_result",
            };
            state.metrics.count_webhook(result);
            // A refusal (unknown order, a stale event) is final for this event: answer 200 so
            // the PSP does not resend it forever; the log and metric tell the operator.
            text(StatusCode::OK, format!("{result}\n"))
        }
        Err(error) => {
            state.metrics.count_webhook("ledger_unavailable");
            // 503: the PSP retries later, and the event is applied exactly once by state.
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("ledger unavailable, retry later: {error}\n"),
            )
        }
    }
}

/// Ready when the ledger answers a linearizable read, i.e. a leader is reachable.
async fn ready(State(state): State<HttpState>) -> Response {
    let probe = PaymentQuery::OrdersDue {
        up_to_ns: 0,
        limit: 1,
    };
    match state.ledger.query_payments(&probe).await {
        Ok(_) => text(StatusCode::OK, "ready\n"),
        Err(error) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {error}\n"),
        ),
    }
}

async fn metrics(State(state): State<HttpState>) -> Response {
    // Counts come from the ledger's meta (no scan); without a leader the last values stay.
    if let Ok(PaymentQueryResult::OrderStateCounts(counts)) = state
        .ledger
        .query_payments(&PaymentQuery::OrderStateCounts)
        .await
    {
        state.metrics.set_orders_by_state(&counts);
    }
    if let Ok(PaymentQueryResult::WorkCounts {
        payouts_by_state,
        dead_letters,
    }) = state.ledger.query_payments(&PaymentQuery::WorkCounts).await
    {
        state
            .metrics
            .set_work_counts(&payouts_by_state, &dead_letters);
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
