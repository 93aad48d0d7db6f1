//! Who is calling: a merchant's API key (optionally with a request signature) or the operator
//! token. Abuse is refused before it costs a ledger read: each key id has a rate limit checked
//! before its record is looked up, a key id the ledger does not know is remembered as unknown
//! for `api_key_cache_ms`, and each client address may make at most
//! [`KEY_LOOKUPS_PER_ADDRESS_PER_S`] lookups of keys this copy has not cached.

use super::error::{ApiError, ErrorKind};
use super::service::{PaymentsApi, API_KEYS_CACHED_MAX};
use crate::api_key::{self, ApiKeyHash, StoredApiKey};
use crate::rate_limit::{RateLimitConfig, RateLimited, RateLimiter};
use crate::signing;
use std::net::IpAddr;
use subtle::ConstantTimeEq;
use tally_ledger::payment::{
    ApiKeyId, MerchantId, PaymentQuery, PaymentQueryResult, SigningSecret,
};

/// Ledger lookups of uncached API keys one client address may make at once, then per second.
/// A client with a few keys makes one per key per `api_key_cache_ms`; one guessing key ids is
/// held to this many reads of the ledger per second, whatever ids it makes up.
pub const KEY_LOOKUPS_PER_ADDRESS_BURST: u32 = 200;
pub const KEY_LOOKUPS_PER_ADDRESS_PER_S: u32 = 100;
/// Client addresses whose lookup budgets are tracked (the idlest is forgotten first).
pub const KEY_LOOKUP_ADDRESSES_MAX: usize = 100_000;

/// The budget of [`KEY_LOOKUPS_PER_ADDRESS_PER_S`].
pub(super) fn key_lookup_limiter() -> RateLimiter {
    RateLimiter::new(RateLimitConfig {
        burst_requests_max: KEY_LOOKUPS_PER_ADDRESS_BURST,
        refill_requests_per_s: KEY_LOOKUPS_PER_ADDRESS_PER_S,
        merchants_max: KEY_LOOKUP_ADDRESSES_MAX.min(API_KEYS_CACHED_MAX),
    })
    .expect("the key lookup limits are within the rate limiter's bounds")
}

/// What a request presents to be authenticated: its `authorization` header and the address
/// it came from (`None` where the transport has none, as in simulation). No `Debug`: it holds
/// the bearer key.
#[derive(Clone, Default)]
pub struct Presented {
    pub authorization: Option<String>,
    pub client: Option<IpAddr>,
}

impl Presented {
    pub fn authorization(&self) -> Option<&str> {
        self.authorization.as_deref()
    }
}

/// A key lookup reused for `api_key_cache_ms`: the key's record, or `None` for a key id the
/// ledger does not know (so a stream of requests with it costs one read, not one each).
#[derive(Clone)]
pub(super) struct CachedKey {
    found: Option<FoundKey>,
    fetched_at_ms: u64,
}

#[derive(Clone)]
struct FoundKey {
    merchant_id: MerchantId,
    stored: StoredApiKey,
    signing_secrets: Vec<SigningSecret>,
}

/// A caller whose API key checked out.
pub(super) struct KeyHolder {
    pub(super) merchant_id: MerchantId,
    pub(super) key_id: ApiKeyId,
    pub(super) signing_secrets: Vec<SigningSecret>,
}

/// Key ids and merchant ids share the rate limiter; `~` is in neither, so the two never mix.
fn key_bucket(key_id: &ApiKeyId) -> String {
    format!("~key/{key_id}")
}

fn rate_limited(limited: RateLimited) -> ApiError {
    let mut error = ApiError::new(
        ErrorKind::ResourceExhausted,
        limited.code(),
        limited.to_string(),
    );
    error.retry_after_ms = Some(limited.retry_after_ms);
    error
}

pub(super) fn bearer(authorization: Option<&str>) -> Result<&str, ApiError> {
    authorization
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .ok_or_else(|| {
            ApiError::unauthenticated("credentials_missing", "send `authorization: Bearer <key>`")
        })
}

impl PaymentsApi {
    /// The merchant a `Bearer tk_…` key belongs to, after its rate limits.
    pub async fn authenticate(&self, presented: &Presented) -> Result<MerchantId, ApiError> {
        Ok(self.authenticate_key(presented).await?.merchant_id)
    }

    pub(super) async fn authenticate_key(
        &self,
        presented: &Presented,
    ) -> Result<KeyHolder, ApiError> {
        let key = api_key::parse(bearer(presented.authorization())?)
            .map_err(|error| ApiError::unauthenticated(error.code(), error.to_string()))?;
        let key_id = ApiKeyId::new(key.key_id().as_str())
            .map_err(|error| ApiError::unauthenticated("api_key_malformed", error.to_string()))?;
        // Before anything is read: the key id's own budget (the merchant's limits, again below).
        self.limit(&key_bucket(&key_id))?;
        let found = match self.cached_key(&key_id) {
            Some(cached) => cached.found,
            None => {
                self.limit_lookup(presented.client)?;
                self.fetch_key(&key_id).await?
            }
        };
        api_key::verify(&key, found.as_ref().map(|found| &found.stored))
            .map_err(|error| ApiError::unauthenticated(error.code(), error.to_string()))?;
        let found = found.ok_or_else(|| {
            ApiError::unauthenticated("api_key_unknown", "the API key is not known")
        })?;
        self.limit(found.merchant_id.as_str())?;
        Ok(KeyHolder {
            merchant_id: found.merchant_id,
            key_id,
            signing_secrets: found.signing_secrets,
        })
    }

    fn limit(&self, bucket: &str) -> Result<(), ApiError> {
        self.rate_limiter
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .check(bucket, self.now_ms())
            .map_err(rate_limited)
    }

    /// One ledger lookup of an uncached key for `client`. Without an address (simulation) all
    /// such callers share one budget.
    fn limit_lookup(&self, client: Option<IpAddr>) -> Result<(), ApiError> {
        let bucket = client.map_or_else(|| "-".to_string(), |ip| ip.to_string());
        self.key_lookups
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .check(&bucket, self.now_ms())
            .map_err(|limited| {
                let mut error = rate_limited(limited);
                error.code = "key_lookups_limited".to_string();
                error.message = format!(
                    "too many lookups of API keys from this address (at most \
                     {KEY_LOOKUPS_PER_ADDRESS_PER_S}/s); retry after {} ms",
                    limited.retry_after_ms
                );
                error
            })
    }

    /// A lookup of `key_id` made within `api_key_cache_ms`, found or not.
    fn cached_key(&self, key_id: &ApiKeyId) -> Option<CachedKey> {
        let ttl_ms = self.config.api_key_cache_ms;
        if ttl_ms == 0 {
            return None;
        }
        let now_ms = self.now_ms();
        let mut cache = self
            .key_cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        cache
            .get_or_insert_with(key_id.as_str(), || None)
            .as_ref()
            .filter(|cached| now_ms.saturating_sub(cached.fetched_at_ms) < ttl_ms)
            .cloned()
    }

    /// The merchant holding `key_id` and the key's record, from the ledger; the answer, found
    /// or not, is cached.
    async fn fetch_key(&self, key_id: &ApiKeyId) -> Result<Option<FoundKey>, ApiError> {
        let merchant = match self
            .ledger()
            .query_payments(&PaymentQuery::MerchantByApiKey {
                key_id: key_id.clone(),
            })
            .await?
        {
            PaymentQueryResult::Merchant(merchant) => merchant,
            _ => return Err(super::service::unexpected_answer()),
        };
        let found = merchant.and_then(|merchant| {
            let record = merchant
                .api_keys
                .iter()
                .find(|record| record.key_id == *key_id)?;
            Some(FoundKey {
                merchant_id: merchant.id.clone(),
                stored: StoredApiKey {
                    hash: ApiKeyHash(record.secret_hash),
                    revoked: record.revoked_at_ns.is_some(),
                },
                signing_secrets: record.signing_secrets.clone(),
            })
        });
        if self.config.api_key_cache_ms > 0 {
            let fetched_at_ms = self.now_ms();
            let mut cache = self
                .key_cache
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            *cache.get_or_insert_with(key_id.as_str(), || None) = Some(CachedKey {
                found: found.clone(),
                fetched_at_ms,
            });
        }
        Ok(found)
    }

    /// `authenticate`, then the request's signature if it has one (or if this gateway requires
    /// one). The signature is an HMAC keyed by the API key's signing secret (never the bearer
    /// key, which travels in the request) over `t.nonce.METHOD.path.body` (see `signing`); gRPC
    /// calls sign the method path with `.` written `%2E` and the protobuf-encoded request as the
    /// body. Checked after the key, so only a merchant's own requests reach the nonce stores:
    /// this copy's cache first, then the replicated record every copy checks.
    pub async fn authenticate_signed(
        &self,
        presented: &Presented,
        signature: Option<&str>,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<MerchantId, ApiError> {
        let holder = self.authenticate_key(presented).await?;
        let Some(header) = signature else {
            if self.config.require_signatures {
                return Err(ApiError::unauthenticated(
                    "signature_missing",
                    "this gateway requires signed requests: send tally-signature: t=<unix_ms>,nonce=<hex>,v1=<HMAC-SHA256(signing secret, t.nonce.METHOD.path.body)>",
                ));
            }
            return Ok(holder.merchant_id);
        };
        let refused = |error: signing::SignatureError| {
            ApiError::unauthenticated(error.code(), error.to_string())
        };
        let now_ms = self.now_ms();
        let secrets: Vec<&[u8]> = holder
            .signing_secrets
            .iter()
            .map(SigningSecret::expose)
            .collect();
        if secrets.is_empty() {
            return Err(refused(signing::SignatureError::Mismatch));
        }
        let checked =
            signing::check(&secrets, header, method, path, body, now_ms).map_err(refused)?;
        self.nonces
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remember(&checked, now_ms)
            .map_err(refused)?;
        self.claim_nonce(&holder.key_id, &checked).await?;
        Ok(holder.merchant_id)
    }

    /// Checks the operator token of the `Merchants` API, in constant time.
    pub fn authenticate_admin(&self, authorization: Option<&str>) -> Result<(), ApiError> {
        let Some(expected) = &self.config.admin_token else {
            return Err(ApiError::new(
                ErrorKind::PermissionDenied,
                "admin_api_disabled",
                "the merchants API is disabled: start the gateway with --admin-token",
            ));
        };
        let presented = bearer(authorization)?;
        let equal: bool = presented
            .as_bytes()
            .ct_eq(expected.expose().as_bytes())
            .into();
        if equal {
            Ok(())
        } else {
            Err(ApiError::unauthenticated(
                "admin_token_invalid",
                "the admin token is not valid",
            ))
        }
    }
}
