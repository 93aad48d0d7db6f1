//! `tally-gateway`: the stateless public tier.
//!
//! It serves the public payments API (gRPC `tally.payments.v1` and a JSON facade), authenticates
//! merchants, and runs the PSP executor, the payout worker and the webhook dispatcher;
//! reconciliation comes next. It holds no durable state: every decision is a
//! command replicated by the `tally-node` cluster, reached only over gRPC.
//!
//! - `api`: the payments API ([`api::PaymentsApi`]), its gRPC service, JSON facade and the one
//!   proto/domain conversion.
//! - `server`: one gateway process (gRPC, HTTP, executor) behind one shutdown signal.
//! - `executor`: the PSP executor and sweeper (claims due orders with a lease, charges the PSP with
//!   the order id as idempotency key, records outcomes, retries with backoff).
//! - `payout_worker`: runs due payout schedules and sends due payouts to the PSP (lease, payout
//!   id as idempotency key, status check before any retry, dead letter when retries run out).
//! - `webhook_dispatcher`: webhooks out, the ledger's outbox POSTed to merchants' endpoints
//!   (signed, at least once, in event order per payment, retried over hours, dead-lettered).
//! - `worker`: the sweep loop and seeded retry schedule the three workers share.
//! - `http`: PSP webhooks in, `/healthz`, `/readyz`, `/metrics`; `metrics`: the Prometheus registry.
//!
//! The building blocks below are pure. **Architecture invariant:** none of them does I/O or
//! reads a clock or an OS random source. Time comes in as `now_ms`, randomness as a passed-in
//! RNG, and every in-memory map has a named bound, so each is deterministic under a seed and
//! testable alone.
//!
//! - `api_key`: issue merchant API keys, store only their hash, verify in constant time.
//! - `signing`: optional HMAC request signatures with timestamp tolerance and nonce replay cache.
//! - `rate_limit`: per-merchant token buckets.
//! - `risk`: the pre-charge risk check (limits, velocity, blocklists) and its outage fallback.
//! - `card_number`: refuse request fields that look like card numbers.
//! - `backoff`: retry delays, exponential with full jitter.
//! - `idempotency_hash`: the request fingerprint stored under an idempotency key.
//! - `secret`, `config`: a log-safe secret wrapper and the configuration error.

pub mod api;
pub mod api_key;
pub mod backoff;
pub mod card_number;
pub mod config;
pub mod executor;
pub mod http;
pub mod idempotency_hash;
mod lru;
pub mod metrics;
pub mod payout_worker;
pub mod rate_limit;
pub mod risk;
pub mod secret;
pub mod server;
pub mod signing;
pub mod webhook_dispatcher;
pub mod worker;

pub use api_key::{
    ApiKeyError, ApiKeyHash, ApiKeyId, GeneratedApiKey, PresentedApiKey, StoredApiKey,
};
pub use backoff::Backoff;
pub use card_number::{find_card_number, refuse_card_numbers, CardNumberFound, Span};
pub use config::ConfigError;
pub use idempotency_hash::request_hash;
pub use rate_limit::{RateLimitConfig, RateLimited, RateLimiter};
pub use risk::{
    Fallback, FallbackLimits, RiskDecision, RiskOutcome, RiskPolicy, RiskReason, RiskRequest,
    RiskRules, RiskService, RiskUnavailable, RulesEngine, VelocityRules,
};
pub use secret::Secret;
pub use signing::{NonceCache, SignatureError};
