//! The JSON facade (`POST /v1/payments`, `GET /v1/payments/{id}`): the headers a client sends
//! (API key, signature, idempotency key), the path's order id and the JSON body, parsed and
//! checked the way the handlers do before anything reaches the ledger.

use crate::frame::fields;
use http::HeaderValue;
use tally_gateway::api::facade::parse_create_body;
use tally_gateway::api::{check_client_key, convert, parse_create};
use tally_gateway::{api_key, find_card_number, signing};
use tally_ledger::payment::OrderId;
use tally_proto::payments as pb;

const SIGNING_SECRET: &[u8] = b"tss_fuzz_0123456789abcdef0123456789abcdef";
const NOW_MS: u64 = 1_800_000_000_000;

/// A header value as axum hands it over: bytes that may not be text.
fn header_text(bytes: &[u8]) -> Option<String> {
    let value = HeaderValue::from_bytes(bytes).ok()?;
    Some(value.to_str().unwrap_or("\u{fffd}").to_string())
}

pub fn http_facade(data: &[u8]) {
    let Some(([authorization, signature, idempotency_key, path_id, nonce], body)) = fields(data)
    else {
        return;
    };
    let path_id = String::from_utf8_lossy(path_id);

    if let Some(authorization) = header_text(authorization) {
        if let Some(token) = authorization.strip_prefix("Bearer ") {
            let _ = api_key::parse(token.trim());
        }
    }
    if let Some(signature) = header_text(signature) {
        let _ = signing::check(
            &[SIGNING_SECRET],
            &signature,
            "POST",
            "/v1/payments",
            body,
            NOW_MS,
        );
    }
    if let Some(key) = header_text(idempotency_key) {
        let _ = check_client_key(&key);
    }
    let _ = convert::id::<OrderId>("payment_order_id", &path_id);

    // A correctly signed request is accepted whatever its body, path or nonce.
    let path = format!("/v1/payments/{path_id}");
    for (method, path, body) in [
        ("POST", "/v1/payments", body),
        ("GET", path.as_str(), &[][..]),
    ] {
        if let Ok(signed) = signing::sign(SIGNING_SECRET, NOW_MS, nonce, method, path, body) {
            let checked = signing::check(&[SIGNING_SECRET], &signed, method, path, body, NOW_MS);
            assert!(
                checked.is_ok(),
                "a correctly signed request was refused: {checked:?}"
            );
        }
    }

    if let Ok(request) = parse_create_body(body) {
        if let Ok(input) = parse_create(&request) {
            assert_no_card_number(&request);
            assert!(!input.orders.is_empty());
            assert!(input.orders.iter().all(|o| o.currency == input.currency));
        }
    }
}

/// What the facade accepts never carries a card number in a free-text field.
fn assert_no_card_number(request: &pb::CreatePaymentRequest) {
    let mut fields = vec![request.checkout_id.as_str(), request.buyer_id.as_str()];
    for order in &request.orders {
        fields.extend([order.order_id.as_str(), order.seller_id.as_str()]);
    }
    for (key, value) in &request.metadata {
        fields.extend([key.as_str(), value.as_str()]);
    }
    for field in fields {
        assert!(
            find_card_number(field).is_none(),
            "an accepted request carries a card number in {field:?}"
        );
    }
}
