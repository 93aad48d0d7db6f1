//! The classic JSON API over axum, for clients that do not speak gRPC:
//!
//! - `POST /v1/payments` with `checkout_id`, `buyer_info.buyer_id`, `payment_method`
//!   (`{"type":"card","token":"tok_visa"}`, `{"type":"wallet"}`, `{"type":"qr"}`, or absent for an
//!   intent), `capture_method` (`automatic`/`manual`), `payment_orders[{payment_order_id,
//!   seller_account, amount, currency}]` and optional `metadata`;
//! - `GET /v1/payments/{payment_order_id}`: the order's real-time status.
//!
//! Authentication: `Authorization: Bearer <API key>`, optionally signed (`Tally-Signature`, an
//! HMAC keyed by the API key's signing secret over `t.nonce.METHOD.path.body`; required when the gateway runs
//! with `--require-signatures`).
//!
//! Requests are translated into the gRPC messages and run by the same [`PaymentsApi`], so both
//! doors share one behaviour, one idempotency hash and one set of error codes. Every string in
//! the JSON body, at any depth, is scanned for card numbers first.

use super::auth::Presented;
use super::error::{ApiError, ErrorKind};
use super::service::PaymentsApi;
use crate::card_number::find_card_number;
use crate::metrics::Metrics;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use tally_net::serve::RemoteAddr;
use tally_proto::payments as pb;
use tokio::time::Instant;

/// JSON bodies above this are refused before parsing.
pub const JSON_BODY_BYTES_MAX: usize = 256 * 1024;
/// Nesting depth scanned for card numbers; deeper bodies are refused.
pub const JSON_DEPTH_MAX: usize = 16;

#[derive(Clone)]
pub struct FacadeState {
    pub api: Arc<PaymentsApi>,
    pub metrics: Arc<Metrics>,
}

pub fn router(state: FacadeState) -> Router {
    Router::new()
        .route("/v1/payments", post(create_payment))
        .route("/v1/payments/{payment_order_id}", get(get_order))
        .layer(axum::extract::DefaultBodyLimit::max(JSON_BODY_BYTES_MAX))
        .with_state(state)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    checkout_id: String,
    buyer_info: BuyerInfo,
    #[serde(default)]
    payment_method: Option<MethodBody>,
    #[serde(default)]
    capture_method: Option<String>,
    payment_orders: Vec<OrderBody>,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BuyerInfo {
    buyer_id: String,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum MethodBody {
    Card { token: String },
    Wallet,
    Qr,
    Hosted { return_url: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderBody {
    payment_order_id: String,
    seller_account: String,
    amount: String,
    currency: String,
}

fn signature(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("tally-signature")
        .map(|value| value.to_str().unwrap_or("\u{fffd}"))
}

/// The bearer credential of a request and the address it came from.
fn presented(headers: &HeaderMap, extensions: &Extensions) -> Presented {
    Presented {
        authorization: headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string),
        client: extensions.get::<RemoteAddr>().map(|remote| remote.0.ip()),
    }
}

async fn create_payment(
    State(state): State<FacadeState>,
    headers: HeaderMap,
    extensions: Extensions,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let result = async {
        let merchant = state
            .api
            .authenticate_signed(
                &presented(&headers, &extensions),
                signature(&headers),
                "POST",
                "/v1/payments",
                &body,
            )
            .await?;
        let request = parse_create_body(&body)?;
        let key = headers
            .get("idempotency-key")
            .map(|value| value.to_str().unwrap_or("\u{fffd}"));
        // The same route and encoding as gRPC: one key works across both doors.
        let encoded = prost::Message::encode_to_vec(&request);
        let call = state.api.create_payment(&merchant, &request);
        state
            .api
            .idempotent(
                &merchant,
                key,
                "/tally.payments.v1.Payments/CreatePayment",
                &encoded,
                call,
            )
            .await
    }
    .await;
    respond(
        &state,
        "http_create_payment",
        started,
        result.map(|p| payment_json(&p)),
    )
}

async fn get_order(
    State(state): State<FacadeState>,
    Path(payment_order_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    extensions: Extensions,
) -> Response {
    let started = Instant::now();
    let result = async {
        // The path as sent (percent-encoded), which is what a client signs.
        let merchant = state
            .api
            .authenticate_signed(
                &presented(&headers, &extensions),
                signature(&headers),
                "GET",
                uri.path(),
                b"",
            )
            .await?;
        state.api.get_order(&merchant, &payment_order_id).await
    }
    .await;
    respond(
        &state,
        "http_get_payment_order",
        started,
        result.map(|o| order_json(&o)),
    )
}

/// Parses and translates a create body; a card number anywhere in it is refused before the
/// body is interpreted.
pub fn parse_create_body(body: &[u8]) -> Result<pb::CreatePaymentRequest, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|error| {
        ApiError::invalid(
            "json_malformed",
            format!("the body is not valid JSON: {error}"),
        )
    })?;
    refuse_cards_in_json(&value, "$", 0)?;
    let body: CreateBody = serde_json::from_value(value).map_err(|error| {
        ApiError::invalid(
            "json_invalid",
            format!("the body does not match the payment schema: {error}"),
        )
    })?;
    let capture_method = match body.capture_method.as_deref() {
        None | Some("automatic") => pb::CaptureMethod::Automatic,
        Some("manual") => pb::CaptureMethod::Manual,
        Some(other) => {
            return Err(ApiError::invalid(
                "enum_unknown",
                format!("capture_method {other:?} is unknown: use \"automatic\" or \"manual\""),
            ))
        }
    };
    use pb::payment_method::Method;
    Ok(pb::CreatePaymentRequest {
        checkout_id: body.checkout_id,
        buyer_id: body.buyer_info.buyer_id,
        orders: body
            .payment_orders
            .into_iter()
            .map(|order| pb::NewOrder {
                order_id: order.payment_order_id,
                seller_id: order.seller_account,
                amount: order.amount,
                currency: order.currency,
            })
            .collect(),
        payment_method: body.payment_method.map(|method| pb::PaymentMethod {
            method: Some(match method {
                MethodBody::Card { token } => Method::CardToken(token),
                MethodBody::Wallet => Method::Wallet(pb::WalletMethod {}),
                MethodBody::Qr => Method::Qr(pb::QrMethod {}),
                MethodBody::Hosted { return_url } => {
                    Method::Hosted(pb::HostedMethod { return_url })
                }
            }),
        }),
        capture_method: capture_method as i32,
        metadata: body.metadata,
    })
}

fn refuse_cards_in_json(value: &Value, path: &str, depth: usize) -> Result<(), ApiError> {
    if depth > JSON_DEPTH_MAX {
        return Err(ApiError::invalid(
            "json_too_deep",
            format!("the body nests deeper than {JSON_DEPTH_MAX} levels"),
        ));
    }
    let refuse = |field: String| {
        ApiError::invalid(
            "card_number_refused",
            format!("{field} looks like a card number; send cards as PSP tokens only, never their numbers"),
        )
    };
    match value {
        Value::String(text) if find_card_number(text).is_some() => Err(refuse(path.to_string())),
        Value::Number(number) if find_card_number(&number.to_string()).is_some() => {
            Err(refuse(path.to_string()))
        }
        Value::Array(items) => items.iter().enumerate().try_for_each(|(index, item)| {
            refuse_cards_in_json(item, &format!("{path}[{index}]"), depth + 1)
        }),
        Value::Object(fields) => fields.iter().try_for_each(|(key, item)| {
            if find_card_number(key).is_some() {
                return Err(refuse(format!("a key under {path}")));
            }
            refuse_cards_in_json(item, &format!("{path}.{key}"), depth + 1)
        }),
        _ => Ok(()),
    }
}

fn respond(
    state: &FacadeState,
    route: &str,
    started: Instant,
    result: Result<Value, ApiError>,
) -> Response {
    let code = match &result {
        Ok(_) => "ok".to_string(),
        Err(error) => error.code.clone(),
    };
    state
        .metrics
        .observe_request(route, &code, started.elapsed().as_secs_f64());
    match result {
        Ok(body) => (StatusCode::OK, axum::Json(body)).into_response(),
        Err(error) => error_response(&error),
    }
}

pub fn error_response(error: &ApiError) -> Response {
    let status =
        StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (
        status,
        axum::Json(json!({"error": {"code": error.code, "message": error.message}})),
    )
        .into_response();
    if error.kind == ErrorKind::ResourceExhausted {
        if let Some(retry_after_ms) = error.retry_after_ms {
            let seconds = retry_after_ms.div_ceil(1_000).max(1);
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert("retry-after", value);
            }
        }
    }
    response
}

pub fn payment_json(payment: &pb::Payment) -> Value {
    let capture_method = match pb::CaptureMethod::try_from(payment.capture_method) {
        Ok(pb::CaptureMethod::Manual) => "manual",
        _ => "automatic",
    };
    json!({
        "checkout_id": payment.checkout_id,
        "merchant_id": payment.merchant_id,
        "buyer_info": {"buyer_id": payment.buyer_id},
        "status": payment.status,
        "payment_method": payment.payment_method,
        "capture_method": capture_method,
        "risk": payment.risk.as_ref().map(|risk| json!({
            "outcome": risk.outcome,
            "flagged": risk.flagged,
            "reasons": risk.reasons,
        })),
        "payment_orders": payment.orders.iter().map(order_json).collect::<Vec<_>>(),
        "created_at_unix_ns": payment.created_at_unix_ns,
        "updated_at_unix_ns": payment.updated_at_unix_ns,
    })
}

pub fn order_json(order: &pb::PaymentOrder) -> Value {
    json!({
        "payment_order_id": order.order_id,
        "checkout_id": order.checkout_id,
        "seller_account": order.seller_id,
        "amount": order.amount,
        "currency": order.currency,
        "state": order.state,
        "attempt": order.attempt,
        "psp_charge_id": order.psp_charge_id,
        "authorized": order.authorized,
        "captured": order.captured,
        "fee": order.fee,
        "refunded": order.refunded,
        "held": order.held,
        "refunds": order.refunds.iter().map(|r| json!({
            "refund_id": r.refund_id, "amount": r.amount, "state": r.state,
        })).collect::<Vec<_>>(),
        "last_error": if order.last_error_code.is_empty() {
            Value::Null
        } else {
            json!({"code": order.last_error_code, "message": order.last_error_message})
        },
        "next_action": if !order.next_action_url.is_empty() {
            json!({"type": "redirect_to_url", "url": order.next_action_url})
        } else if !order.qr_payload.is_empty() {
            json!({"type": "show_qr", "payload": order.qr_payload})
        } else {
            Value::Null
        },
        "updated_at_unix_ns": order.updated_at_unix_ns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_card_number_anywhere_in_the_body_is_refused_with_its_path() {
        let body = br#"{"checkout_id":"c1","buyer_info":{"buyer_id":"b1"},
            "payment_orders":[{"payment_order_id":"o1","seller_account":"s1","amount":"1.00","currency":"USD"}],
            "metadata":{"note":"card 4242 4242 4242 4242"}}"#;
        let error = parse_create_body(body).unwrap_err();
        assert_eq!(error.code, "card_number_refused");
        assert!(
            error.message.contains("$.metadata.note"),
            "{}",
            error.message
        );
        assert!(!error.message.contains("4242"), "{}", error.message);
    }

    #[test]
    fn the_classic_body_translates_into_the_grpc_request() {
        let body = br#"{"checkout_id":"c1","buyer_info":{"buyer_id":"b1"},
            "payment_method":{"type":"card","token":"tok_visa"},"capture_method":"manual",
            "payment_orders":[{"payment_order_id":"o1","seller_account":"s1","amount":"1.00","currency":"USD"}]}"#;
        let request = parse_create_body(body).unwrap();
        assert_eq!(request.checkout_id, "c1");
        assert_eq!(request.orders[0].seller_id, "s1");
        assert_eq!(request.capture_method, pb::CaptureMethod::Manual as i32);
        assert_eq!(
            request.payment_method.unwrap().method,
            Some(pb::payment_method::Method::CardToken(
                "tok_visa".to_string()
            ))
        );
    }

    #[test]
    fn malformed_and_unknown_fields_get_their_own_codes() {
        assert_eq!(parse_create_body(b"{").unwrap_err().code, "json_malformed");
        let extra = br#"{"checkout_id":"c1","buyer_info":{"buyer_id":"b1"},"payment_orders":[],"surprise":1}"#;
        assert_eq!(parse_create_body(extra).unwrap_err().code, "json_invalid");
    }
}
