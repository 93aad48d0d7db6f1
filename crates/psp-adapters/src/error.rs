//! PSP errors as the gateway classifies them. A decline is not an error: it is a charge status.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// Try again later with the same idempotency key (timeouts, 5xx, 429, a request in flight).
    Retryable,
    /// Retrying cannot help (invalid request, idempotency key reused with another body).
    Terminal,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct PspError {
    pub kind: ErrorKind,
    /// Stable: `timeout`, `psp_unavailable`, `request_in_progress`, `idempotency_key_reused`,
    /// `invalid_request`, `not_found`, `refund_exceeds_captured`, ...
    pub code: String,
    pub message: String,
}

impl PspError {
    pub fn retryable(code: &str, message: impl Into<String>) -> Self {
        PspError {
            kind: ErrorKind::Retryable,
            code: code.to_string(),
            message: message.into(),
        }
    }

    pub fn terminal(code: &str, message: impl Into<String>) -> Self {
        PspError {
            kind: ErrorKind::Terminal,
            code: code.to_string(),
            message: message.into(),
        }
    }

    /// A terminal error about the request itself rather than a refusal of the money (malformed,
    /// unsupported, a key reused with another body): no retry fixes it, and failing the work
    /// would hide a bug, so the work goes to the dead-letter queue for an operator.
    pub fn is_poison(&self) -> bool {
        self.kind == ErrorKind::Terminal
            && matches!(
                self.code.as_str(),
                "invalid_request" | "idempotency_key_reused"
            )
    }

    /// The kind an HTTP status implies: 5xx, 429 and 409 `request_in_progress` retry.
    pub fn from_http(status: u16, code: &str, message: impl Into<String>) -> Self {
        let retryable = status >= 500 || status == 429 || code == "request_in_progress";
        PspError {
            kind: if retryable {
                ErrorKind::Retryable
            } else {
                ErrorKind::Terminal
            },
            code: code.to_string(),
            message: message.into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("signature header is malformed: expected t=<unix seconds>,v1=<hex HMAC-SHA256>")]
    MalformedSignature,
    #[error("webhook timestamp {timestamp_s} is outside the {tolerance_s} s tolerance around now ({now_s})")]
    StaleTimestamp {
        timestamp_s: u64,
        now_s: u64,
        tolerance_s: u64,
    },
    #[error("webhook signature does not match its body")]
    BadSignature,
    #[error("webhook body is not a valid event: {0}")]
    MalformedBody(String),
}

impl WebhookError {
    pub fn code(&self) -> &'static str {
        match self {
            WebhookError::MalformedSignature => "webhook_signature_malformed",
            WebhookError::StaleTimestamp { .. } => "webhook_timestamp_stale",
            WebhookError::BadSignature => "webhook_signature_mismatch",
            WebhookError::MalformedBody(_) => "webhook_body_malformed",
        }
    }
}
