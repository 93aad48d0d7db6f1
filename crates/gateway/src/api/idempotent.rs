//! Client idempotency keys on mutating calls (`idempotency-key` gRPC metadata, `Idempotency-Key`
//! HTTP header), kept in the replicated ledger so every gateway sees them:
//!
//! - first use: the key is begun with the request's hash and a lease, the call runs, and its
//!   answer (success or a final refusal) is stored under the key;
//! - same key, same request: the stored answer, without running anything again;
//! - same key, different request: refused (`idempotency_request_mismatch`);
//! - same key while the first call still runs: ABORTED (`idempotency_in_progress`), retry later.
//!
//! Keys are kept for `--idempotency-retention-ms` (24 hours by default) from their first use and
//! then forgotten by the replicated state machine; a key reused after that is a new request.
//!
//! An answer that may change on a retry (the cluster or the PSP unavailable) is not stored: the
//! key stays begun until its lease ends, then the next retry runs the call again. Every call
//! under a key is itself idempotent by its ids (checkout, order, refund), so a rerun is safe.

use super::error::{ApiError, ErrorKind};
use super::service::PaymentsApi;
use serde::{Deserialize, Serialize};
use std::future::Future;
use tally_ledger::limits::IDEMPOTENCY_KEY_BYTES_MAX;
use tally_ledger::payment::MerchantId;
use tally_ledger::{
    BeginIdempotent, CompleteIdempotent, IdempotencyBegun, IdempotencyError, IdempotencyKey,
};
use tally_proto::payments_node_codec::{IdempotencyAnswer, IdempotencyCommand};

/// Longest client key, leaving room in the ledger's key for the merchant scope.
pub const CLIENT_IDEMPOTENCY_KEY_BYTES_MAX: usize = 128;

/// The format of a stored answer: its first byte, then postcard. Gateways of another release may
/// read what this one stored, so an unknown version is refused by name, never misread.
const STORED_ANSWER_VERSION: u8 = 1;

/// What is stored under a key: the protobuf answer, or the refusal.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum StoredAnswer {
    Ok(Vec<u8>),
    Refused {
        kind: ErrorKind,
        code: String,
        message: String,
    },
}

/// A client's idempotency key as sent (`Idempotency-Key` header or gRPC metadata): 1 to
/// [`CLIENT_IDEMPOTENCY_KEY_BYTES_MAX`] printable ASCII characters.
pub fn check_client_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty()
        || key.len() > CLIENT_IDEMPOTENCY_KEY_BYTES_MAX
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(ApiError::invalid(
            "idempotency_key_invalid",
            format!("an idempotency key is 1 to {CLIENT_IDEMPOTENCY_KEY_BYTES_MAX} printable ASCII characters"),
        ));
    }
    Ok(())
}

fn is_final(error: &ApiError) -> bool {
    !matches!(
        error.kind,
        ErrorKind::Unavailable | ErrorKind::Aborted | ErrorKind::ResourceExhausted
    )
}

impl PaymentsApi {
    /// Runs `call` at most once per (`merchant`, `key`); `route` and `request` identify what was
    /// asked, so the same key cannot be reused for something else.
    pub async fn idempotent<T, F>(
        &self,
        merchant: &MerchantId,
        key: Option<&str>,
        route: &str,
        request: &[u8],
        call: F,
    ) -> Result<T, ApiError>
    where
        T: prost::Message + Default,
        F: Future<Output = Result<T, ApiError>>,
    {
        let Some(key) = key else {
            return call.await;
        };
        check_client_key(key)?;
        let scoped = format!("{merchant}/{key}");
        debug_assert!(scoped.len() <= IDEMPOTENCY_KEY_BYTES_MAX);
        let scoped = IdempotencyKey::new(scoped)
            .map_err(|error| ApiError::invalid("idempotency_key_invalid", error.to_string()))?;
        let request_hash = crate::idempotency_hash::request_hash("POST", route, request);
        let begun = self
            .idempotency(IdempotencyCommand::Begin(BeginIdempotent {
                key: scoped.clone(),
                request_hash,
                lease_ms: self.idempotency_lease_ms(),
                retain_ms: self.idempotency_retention_ms(),
            }))
            .await?;
        let attempt = match begun {
            IdempotencyAnswer::Begun(IdempotencyBegun::Started { attempt, .. }) => attempt,
            IdempotencyAnswer::Begun(IdempotencyBegun::Completed { response }) => {
                return replay(&response)
            }
            IdempotencyAnswer::Completed(_) => return Err(ledger_confused()),
        };
        let result = call.await;
        let stored = match &result {
            Ok(answer) => StoredAnswer::Ok(answer.encode_to_vec()),
            Err(error) if is_final(error) => StoredAnswer::Refused {
                kind: error.kind,
                code: error.code.clone(),
                message: error.message.clone(),
            },
            Err(_) => return result,
        };
        let response = encode_answer(&stored)?;
        let completed = self
            .idempotency(IdempotencyCommand::Complete(CompleteIdempotent {
                key: scoped,
                request_hash,
                attempt,
                response,
            }))
            .await;
        if let Err(error) = completed {
            // The call's effect stands (and is idempotent by its ids); only the stored answer
            // is missing, so a retry reruns it once the lease ends.
            tracing::warn!(code = %error.code, "idempotency key not completed");
        }
        result
    }

    async fn idempotency(
        &self,
        command: IdempotencyCommand,
    ) -> Result<IdempotencyAnswer, ApiError> {
        let results = self.ledger().execute_idempotency(&[command]).await?;
        match results.into_iter().next() {
            Some(Ok(answer)) => Ok(answer),
            Some(Err(error)) => Err(idempotency_error(&error)),
            None => Err(ledger_confused()),
        }
    }
}

fn encode_answer(answer: &StoredAnswer) -> Result<Vec<u8>, ApiError> {
    postcard::to_extend(answer, vec![STORED_ANSWER_VERSION]).map_err(|_| ledger_confused())
}

fn decode_answer(response: &[u8]) -> Result<StoredAnswer, ApiError> {
    match response.split_first() {
        Some((&STORED_ANSWER_VERSION, body)) => {
            postcard::from_bytes(body).map_err(|_| ledger_confused())
        }
        Some((&found, _)) => Err(ApiError::new(
            ErrorKind::Unavailable,
            "format_unsupported",
            format!(
                "the answer stored under this idempotency key is in format version {found}; this \
                 gateway reads version {STORED_ANSWER_VERSION}: run one gateway release, then retry"
            ),
        )),
        None => Err(ledger_confused()),
    }
}

fn replay<T: prost::Message + Default>(response: &[u8]) -> Result<T, ApiError> {
    match decode_answer(response)? {
        StoredAnswer::Ok(bytes) => T::decode(bytes.as_slice()).map_err(|_| ledger_confused()),
        StoredAnswer::Refused {
            kind,
            code,
            message,
        } => Err(ApiError::new(kind, &code, message)),
    }
}

fn idempotency_error(error: &IdempotencyError) -> ApiError {
    let kind = match error {
        IdempotencyError::RequestMismatch => ErrorKind::InvalidArgument,
        IdempotencyError::InProgress { .. } | IdempotencyError::LeaseLost { .. } => {
            ErrorKind::Aborted
        }
        _ => ErrorKind::Unavailable,
    };
    let message = match error {
        IdempotencyError::RequestMismatch => {
            "this idempotency key was used for a different request; a new request needs a new key"
                .to_string()
        }
        IdempotencyError::InProgress { .. } => {
            "a request with this idempotency key is still running; retry it later".to_string()
        }
        other => other.to_string(),
    };
    ApiError::new(kind, error.code(), message)
}

fn ledger_confused() -> ApiError {
    ApiError::new(
        ErrorKind::Unavailable,
        "unexpected_answer",
        "the ledger's idempotency record could not be read (mixed versions?); retry later",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_answers_round_trip_and_a_future_format_is_refused_by_name() {
        let answer = StoredAnswer::Refused {
            kind: ErrorKind::InvalidArgument,
            code: "amount_invalid".to_string(),
            message: "amount must be positive".to_string(),
        };
        let bytes = encode_answer(&answer).unwrap();
        assert_eq!(bytes[0], STORED_ANSWER_VERSION);
        assert_eq!(decode_answer(&bytes).unwrap(), answer);
        let mut future = bytes;
        future[0] = STORED_ANSWER_VERSION + 1;
        let error = decode_answer(&future).unwrap_err();
        assert_eq!(error.code, "format_unsupported");
        assert!(error.message.contains(&format!(
            "format version {}; this gateway reads version {STORED_ANSWER_VERSION}",
            STORED_ANSWER_VERSION + 1
        )));
    }
}
