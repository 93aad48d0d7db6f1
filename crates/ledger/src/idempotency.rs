//! Generic idempotency records: the gateway's at-most-once guard for any mutating request.
//!
//! A gateway begins a key with the hash of its request; the first begin takes a lease and runs
//! the request, concurrent or later begins with the same request see it in progress or get the
//! stored response, and a different request under the same key is refused. A lease that runs
//! out lets another gateway take over (with a higher attempt), and the stale attempt can no
//! longer complete the key.
//!
//! A record is kept for the retention its begin asked for (the gateway's
//! `--idempotency-retention-ms`, Stripe's 24 hours by default), counted from its first begin.
//! The first batch stamped past that forgets it on every replica (`apply::idempotency`), so
//! storage stays bounded under sustained traffic; a key reused after that is a new request.

use crate::limits::IDEMPOTENCY_KEY_BYTES_MAX;
use serde::{Deserialize, Serialize};

/// A client's idempotency key, already scoped by its caller (e.g. prefixed by the merchant).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String")]
pub struct IdempotencyKey(String);

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("idempotency key is empty or longer than {IDEMPOTENCY_KEY_BYTES_MAX} bytes ({bytes} bytes given)")]
pub struct IdempotencyKeyLength {
    pub bytes: usize,
}

impl IdempotencyKey {
    pub fn new(key: impl Into<String>) -> Result<Self, IdempotencyKeyLength> {
        let key = key.into();
        if key.is_empty() || key.len() > IDEMPOTENCY_KEY_BYTES_MAX {
            return Err(IdempotencyKeyLength { bytes: key.len() });
        }
        Ok(IdempotencyKey(key))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for IdempotencyKey {
    type Error = IdempotencyKeyLength;
    fn try_from(key: String) -> Result<Self, Self::Error> {
        IdempotencyKey::new(key)
    }
}

/// A 32-byte digest of the request body (the caller picks the hash; BLAKE3 or SHA-256).
pub type RequestHash = [u8; 32];

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BeginIdempotent {
    pub key: IdempotencyKey,
    pub request_hash: RequestHash,
    pub lease_ms: u64,
    /// How long the record is kept after the key's first begin, 1 ms to
    /// `IDEMPOTENCY_RETAIN_MS_MAX`. Later begins of the same key do not extend it.
    pub retain_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompleteIdempotent {
    pub key: IdempotencyKey,
    pub request_hash: RequestHash,
    /// The attempt `BeginIdempotent` handed out; a stale attempt cannot complete.
    pub attempt: u64,
    pub response: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IdempotencyState {
    InProgress { attempt: u64, lease_until_ns: u64 },
    Completed { attempt: u64, response: Vec<u8> },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    pub key: IdempotencyKey,
    pub request_hash: RequestHash,
    pub state: IdempotencyState,
    pub created_at_ns: u64,
    pub updated_at_ns: u64,
    /// When the record is forgotten: `created_at_ns` plus the retention, or the end of a lease
    /// still running then.
    pub expires_at_ns: u64,
}
