//! Webhook signatures: `t=<unix s>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`. Verified on
//! the raw bytes before parsing, compared in constant time, with a timestamp tolerance; anything
//! malformed fails closed.

use crate::error::WebhookError;
use crate::model::WebhookEvent;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// How far a webhook's timestamp may be from the receiver's clock.
pub const WEBHOOK_TOLERANCE_S: u64 = 300;

fn mac(secret: &[u8], timestamp_s: u64, body: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp_s.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

pub fn sign(secret: &[u8], timestamp_s: u64, body: &[u8]) -> String {
    format!(
        "t={timestamp_s},v1={}",
        hex::encode(mac(secret, timestamp_s, body))
    )
}

/// Verifies against each of `secrets` (several are active while one is rotated out); any match
/// is accepted. Each comparison is constant time, and every secret is tried, so the time taken
/// does not tell which one matched.
pub fn verify_any(
    secrets: &[Vec<u8>],
    body: &[u8],
    header: &str,
    now_s: u64,
) -> Result<WebhookEvent, WebhookError> {
    let mut result = Err(WebhookError::BadSignature);
    for secret in secrets {
        match verify(secret, body, header, now_s) {
            Ok(event) if result.is_err() => result = Ok(event),
            Ok(_) => {}
            // Malformed headers and stale timestamps do not depend on the secret; a malformed
            // body is reported only once a secret matched, so it is the answer too (not the
            // other secrets' mismatch).
            Err(
                error @ (WebhookError::MalformedSignature
                | WebhookError::StaleTimestamp { .. }
                | WebhookError::MalformedBody(_)),
            ) => return Err(error),
            Err(_) => {}
        }
    }
    result
}

pub fn verify(
    secret: &[u8],
    body: &[u8],
    header: &str,
    now_s: u64,
) -> Result<WebhookEvent, WebhookError> {
    let mut timestamp_s = None;
    let mut signature = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => {
                timestamp_s = Some(
                    value
                        .parse::<u64>()
                        .map_err(|_| WebhookError::MalformedSignature)?,
                )
            }
            Some(("v1", value)) => {
                signature = Some(hex::decode(value).map_err(|_| WebhookError::MalformedSignature)?)
            }
            _ => return Err(WebhookError::MalformedSignature),
        }
    }
    let (Some(timestamp_s), Some(signature)) = (timestamp_s, signature) else {
        return Err(WebhookError::MalformedSignature);
    };
    if timestamp_s.abs_diff(now_s) > WEBHOOK_TOLERANCE_S {
        return Err(WebhookError::StaleTimestamp {
            timestamp_s,
            now_s,
            tolerance_s: WEBHOOK_TOLERANCE_S,
        });
    }
    let expected = mac(secret, timestamp_s, body);
    if signature.len() != expected.len() || !bool::from(signature.ct_eq(&expected)) {
        return Err(WebhookError::BadSignature);
    }
    serde_json::from_slice(body).map_err(|e| WebhookError::MalformedBody(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Charge, ChargeStatus};

    fn event_body() -> Vec<u8> {
        let event = WebhookEvent {
            event_id: "evt_1".to_string(),
            kind: "charge.succeeded".to_string(),
            created_unix_s: 100,
            idempotency_key: "o1".to_string(),
            charge: Charge {
                charge_id: "ch_1".to_string(),
                idempotency_key: "o1".to_string(),
                amount_minor: 100,
                currency: "USD".to_string(),
                status: ChargeStatus::Captured,
                captured_minor: 100,
                refunded_minor: 0,
            },
        };
        serde_json::to_vec(&event).unwrap()
    }

    #[test]
    fn any_active_secret_verifies_during_a_rotation() {
        let body = event_body();
        let secrets = vec![b"old".to_vec(), b"new".to_vec()];
        for secret in [b"old".as_slice(), b"new".as_slice()] {
            let header = sign(secret, 1_000, &body);
            assert_eq!(
                verify_any(&secrets, &body, &header, 1_000)
                    .unwrap()
                    .event_id,
                "evt_1"
            );
        }
        let retired = sign(b"retired", 1_000, &body);
        assert_eq!(
            verify_any(&secrets, &body, &retired, 1_000).unwrap_err(),
            WebhookError::BadSignature
        );
        assert_eq!(
            verify_any(&[], &body, &sign(b"new", 1_000, &body), 1_000).unwrap_err(),
            WebhookError::BadSignature,
            "no secret configured fails closed"
        );
    }

    /// Found by the `psp_webhook` fuzz target: a correctly signed body that is not an event was
    /// reported as a bad signature when another secret was active too.
    #[test]
    fn a_correctly_signed_body_that_is_not_an_event_is_reported_as_such_during_a_rotation() {
        let secrets = vec![b"new".to_vec(), b"old".to_vec()];
        for secret in [b"new".as_slice(), b"old".as_slice()] {
            let body = b"not json";
            let header = sign(secret, 1_000, body);
            assert!(
                matches!(
                    verify_any(&secrets, body, &header, 1_000),
                    Err(WebhookError::MalformedBody(_))
                ),
                "signed with {secret:?}"
            );
        }
    }

    #[test]
    fn a_signed_body_verifies_and_any_change_fails_closed() {
        let body = event_body();
        let header = sign(b"secret", 1_000, &body);
        assert_eq!(
            verify(b"secret", &body, &header, 1_010).unwrap().event_id,
            "evt_1"
        );
        let mut tampered = body.clone();
        tampered[10] ^= 1;
        assert_eq!(
            verify(b"secret", &tampered, &header, 1_010).unwrap_err(),
            WebhookError::BadSignature
        );
        assert_eq!(
            verify(b"other", &body, &header, 1_010).unwrap_err(),
            WebhookError::BadSignature
        );
        assert!(matches!(
            verify(b"secret", &body, &header, 1_000 + WEBHOOK_TOLERANCE_S + 1),
            Err(WebhookError::StaleTimestamp { .. })
        ));
        for bad in [
            "",
            "t=1",
            "v1=00",
            "t=x,v1=00",
            "t=1,v1=zz",
            "t=1,v1=00,x=1",
        ] {
            assert!(verify(b"secret", &body, bad, 1).is_err(), "{bad:?}");
        }
    }
}
