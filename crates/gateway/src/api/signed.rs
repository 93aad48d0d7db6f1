//! Request signing that proves more than possession of the bearer key: each API key has its own
//! signing secret (shown once, rotatable), and the nonce of every accepted signature is
//! remembered in the replicated state for the replay window, so a signed request is accepted
//! once across every gateway copy, not once per copy.

use super::convert::id;
use super::error::ApiError;
use super::service::unexpected_answer;
use super::service::PaymentsApi;
use crate::secret::Secret;
use crate::signing::{Checked, SignatureError, SIGNATURE_TOLERANCE_MS};
use tally_ledger::payment::{ApiKeyId, MerchantId, PaymentCommand, SigningSecret};
use tally_ledger::{BeginIdempotent, CompleteIdempotent, IdempotencyBegun, IdempotencyKey};
use tally_proto::payments as pb;
use tally_proto::payments_node_codec::{IdempotencyAnswer, IdempotencyCommand};

/// Prefix of the replicated nonce records. A merchant id cannot contain `~`, so these never meet
/// a client's idempotency key (`<merchant>/<key>`).
const NONCE_KEY_PREFIX: &str = "~nonce/";
/// How long a nonce is remembered. A signature is accepted while its timestamp is within the
/// tolerance either side of the clock, so for at most twice the tolerance after its first use;
/// after that a replay fails the timestamp check.
pub const NONCE_RETAIN_MS: u64 = 2 * SIGNATURE_TOLERANCE_MS;
/// Random bytes in a new signing secret, hex-encoded after `tss_`.
const SIGNING_SECRET_RANDOM_BYTES: usize = 32;

impl PaymentsApi {
    /// A fresh `tss_<64 hex>` signing secret: the text to show once, and its stored form.
    pub(super) fn new_signing_secret(&self) -> (Secret<String>, SigningSecret) {
        let mut random = [0u8; SIGNING_SECRET_RANDOM_BYTES];
        self.fill_random(&mut random);
        let text = format!("tss_{}", hex::encode(random));
        let stored = SigningSecret::new(text.clone().into_bytes())
            .expect("tss_ and 64 hex digits are within the signing secret bounds");
        (Secret::new(text), stored)
    }

    /// Remembers `checked`'s nonce for `key_id` in the replicated state, in one command batch
    /// (begin then complete an idempotency record), and refuses it if any gateway copy claimed
    /// it within the window.
    pub(super) async fn claim_nonce(
        &self,
        key_id: &ApiKeyId,
        checked: &Checked,
    ) -> Result<(), ApiError> {
        let key = IdempotencyKey::new(format!(
            "{NONCE_KEY_PREFIX}{key_id}/{}",
            hex::encode(&checked.nonce)
        ))
        .map_err(|error| ApiError::invalid("signature_malformed", error.to_string()))?;
        let request_hash = [0u8; 32];
        let commands = [
            IdempotencyCommand::Begin(BeginIdempotent {
                key: key.clone(),
                request_hash,
                lease_ms: 1,
                retain_ms: NONCE_RETAIN_MS,
            }),
            IdempotencyCommand::Complete(CompleteIdempotent {
                key,
                request_hash,
                attempt: 1,
                response: Vec::new(),
            }),
        ];
        let answers = self.ledger().execute_idempotency(&commands).await?;
        match answers.first() {
            Some(Ok(IdempotencyAnswer::Begun(IdempotencyBegun::Started {
                attempt: 1, ..
            }))) => Ok(()),
            Some(_) => {
                let replayed = SignatureError::NonceReplayed;
                Err(ApiError::unauthenticated(
                    replayed.code(),
                    replayed.to_string(),
                ))
            }
            None => Err(unexpected_answer()),
        }
    }

    /// Gives an API key a new signing secret, answered once.
    pub async fn rotate_signing_secret(
        &self,
        request: &pb::RotateSigningSecretRequest,
    ) -> Result<pb::RotateSigningSecretResponse, ApiError> {
        let merchant_id: MerchantId = id("merchant_id", &request.merchant_id)?;
        let key_id: ApiKeyId = id("key_id", &request.key_id)?;
        let (shown, stored) = self.new_signing_secret();
        self.execute(PaymentCommand::RotateSigningSecret {
            merchant_id: merchant_id.clone(),
            key_id: key_id.clone(),
            signing_secret: stored,
            keep_previous: request.keep_previous,
        })
        .await?;
        Ok(pb::RotateSigningSecretResponse {
            merchant_id: merchant_id.to_string(),
            key_id: key_id.to_string(),
            signing_secret: shown.expose().clone(),
        })
    }
}
