//! PSP webhooks in (`POST /psp/webhook`): the signature header and the body, verified and read
//! the way the gateway's HTTP door does, then turned into the outcome the ledger records.

use crate::frame::fields;
use tally_gateway::executor::outcome_of;
use tally_ledger::payment::OrderId;
use tally_psp::webhook;
use tally_psp::WebhookError;

pub(crate) const SECRET: &[u8] = b"whsec_fuzz_0123456789abcdef0123456789";
const NOW_S: u64 = 1_800_000_000;

/// A header and a body as sent; then the same body correctly signed, which must pass the
/// signature check whatever the body holds.
pub fn psp_webhook(data: &[u8]) {
    let Some(([header], body)) = fields(data) else {
        return;
    };
    // The gateway reads the header with `to_str`, so it is text by then.
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };
    let secrets = [
        SECRET.to_vec(),
        b"whsec_previous_secret_0123456789".to_vec(),
    ];
    read(webhook::verify_any(&secrets, body, header, NOW_S));

    let signed = webhook::sign(SECRET, NOW_S, body);
    let verified = webhook::verify_any(&secrets, body, &signed, NOW_S);
    assert!(
        matches!(verified, Ok(_) | Err(WebhookError::MalformedBody(_))),
        "a correctly signed webhook was refused: {verified:?}"
    );
    read(verified);
}

fn read(verified: Result<tally_psp::WebhookEvent, WebhookError>) {
    if let Ok(event) = verified {
        let _ = OrderId::new(event.idempotency_key.clone());
        let _ = outcome_of(&event.charge);
    }
}
