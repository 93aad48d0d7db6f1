//! Per-merchant request rate limits: one token bucket per merchant.
//!
//! Buckets count milli-tokens in integers: a refill of `r` requests per second adds exactly `r`
//! milli-tokens per millisecond, so there is no rounding drift and `retry_after_ms` is exact —
//! a client that waits that long is admitted, one millisecond less is not.

use crate::config::{check_range, ConfigError};
use crate::lru::LruMap;

/// The largest burst a configuration may allow, in requests.
pub const RATE_LIMIT_BURST_REQUESTS_MAX: u32 = 1_000_000;
/// The fastest refill a configuration may allow, in requests per second.
pub const RATE_LIMIT_REFILL_PER_S_MAX: u32 = 1_000_000;
/// The most merchants whose buckets a configuration may keep in memory at once.
pub const RATE_LIMIT_MERCHANTS_MAX: usize = 10_000_000;

const MILLI_TOKENS_PER_REQUEST: u64 = 1_000;

/// How fast each merchant may call, and how many merchants are tracked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Bucket capacity: requests a merchant may send at once after being idle.
    pub burst_requests_max: u32,
    /// Sustained rate: requests per second added back to the bucket.
    pub refill_requests_per_s: u32,
    /// Buckets kept in memory. At the bound the merchant idle longest is forgotten, which only
    /// hands it a full bucket again: harmless for one that was idle long enough to refill, so
    /// set this above the number of merchants active within a burst's refill time.
    pub merchants_max: usize,
}

/// The merchant has used its budget. `retry_after_ms` is exact: a request sent that many
/// milliseconds later is admitted (if nothing else was admitted meanwhile).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("too many requests for this merchant; retry after {retry_after_ms} ms")]
pub struct RateLimited {
    pub retry_after_ms: u64,
}

impl RateLimited {
    /// The stable, machine-readable code of this refusal.
    pub fn code(&self) -> &'static str {
        "rate_limited"
    }
}

/// Token buckets for every tracked merchant. Not synchronised: the server wraps it in a mutex
/// (or shards it), which keeps this a plain, deterministic state machine.
pub struct RateLimiter {
    config: RateLimitConfig,
    buckets: LruMap<Bucket>,
}

struct Bucket {
    milli_tokens: u64,
    refilled_at_ms: u64,
}

impl RateLimiter {
    pub fn new(config: RateLimitConfig) -> Result<Self, ConfigError> {
        check_range(
            "rate_limit.burst_requests_max",
            u64::from(config.burst_requests_max),
            1,
            u64::from(RATE_LIMIT_BURST_REQUESTS_MAX),
        )?;
        check_range(
            "rate_limit.refill_requests_per_s",
            u64::from(config.refill_requests_per_s),
            1,
            u64::from(RATE_LIMIT_REFILL_PER_S_MAX),
        )?;
        check_range(
            "rate_limit.merchants_max",
            config.merchants_max as u64,
            1,
            RATE_LIMIT_MERCHANTS_MAX as u64,
        )?;
        Ok(RateLimiter {
            config,
            buckets: LruMap::new(config.merchants_max),
        })
    }

    /// Admits one request of `merchant_id` at `now_ms` (taking a token), or says how long to
    /// wait. A clock that steps backwards refills nothing; it never drains a bucket.
    pub fn check(&mut self, merchant_id: &str, now_ms: u64) -> Result<(), RateLimited> {
        let capacity = u64::from(self.config.burst_requests_max) * MILLI_TOKENS_PER_REQUEST;
        let refill_per_ms = u64::from(self.config.refill_requests_per_s);
        let bucket = self.buckets.get_or_insert_with(merchant_id, || Bucket {
            milli_tokens: capacity,
            refilled_at_ms: now_ms,
        });

        let elapsed_ms = now_ms.saturating_sub(bucket.refilled_at_ms);
        bucket.milli_tokens = bucket
            .milli_tokens
            .saturating_add(elapsed_ms.saturating_mul(refill_per_ms))
            .min(capacity);
        bucket.refilled_at_ms = bucket.refilled_at_ms.max(now_ms);

        if bucket.milli_tokens >= MILLI_TOKENS_PER_REQUEST {
            bucket.milli_tokens -= MILLI_TOKENS_PER_REQUEST;
            return Ok(());
        }
        let missing = MILLI_TOKENS_PER_REQUEST - bucket.milli_tokens;
        Err(RateLimited {
            retry_after_ms: missing.div_ceil(refill_per_ms),
        })
    }

    /// Merchants currently tracked (never more than `merchants_max`).
    pub fn merchants_tracked(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(burst: u32, per_s: u32, merchants_max: usize) -> RateLimiter {
        RateLimiter::new(RateLimitConfig {
            burst_requests_max: burst,
            refill_requests_per_s: per_s,
            merchants_max,
        })
        .unwrap()
    }

    #[test]
    fn admits_a_full_burst_then_refuses() {
        let mut limiter = limiter(5, 1, 10);
        for _ in 0..5 {
            assert_eq!(limiter.check("m1", 1_000), Ok(()));
        }
        assert_eq!(
            limiter.check("m1", 1_000),
            Err(RateLimited {
                retry_after_ms: 1_000
            })
        );
    }

    #[test]
    fn retry_after_is_exact() {
        // 3 requests per second: one token every 333.3 ms.
        let mut limiter = limiter(1, 3, 10);
        assert_eq!(limiter.check("m", 0), Ok(()));
        let retry_after_ms = limiter.check("m", 0).unwrap_err().retry_after_ms;
        assert_eq!(retry_after_ms, 334);
        assert!(limiter.check("m", retry_after_ms - 1).is_err());
        assert_eq!(limiter.check("m", retry_after_ms), Ok(()));
    }

    #[test]
    fn retry_after_counts_partial_refill() {
        let mut limiter = limiter(1, 10, 10);
        assert_eq!(limiter.check("m", 0), Ok(()));
        // 40 ms later the bucket holds 0.4 of a token: 60 ms to go.
        assert_eq!(
            limiter.check("m", 40),
            Err(RateLimited { retry_after_ms: 60 })
        );
        assert_eq!(limiter.check("m", 100), Ok(()));
    }

    #[test]
    fn refill_is_capped_at_the_burst() {
        let mut limiter = limiter(2, 100, 10);
        assert_eq!(limiter.check("m", 0), Ok(()));
        // An hour idle still allows only the burst.
        let later = 3_600_000;
        assert_eq!(limiter.check("m", later), Ok(()));
        assert_eq!(limiter.check("m", later), Ok(()));
        assert!(limiter.check("m", later).is_err());
    }

    #[test]
    fn sustained_rate_matches_the_refill() {
        let mut limiter = limiter(1, 10, 10);
        let admitted = (0..=10_000u64)
            .filter(|&now_ms| limiter.check("m", now_ms).is_ok())
            .count();
        // 10 s at 10/s plus the initial token.
        assert_eq!(admitted, 101);
    }

    #[test]
    fn merchants_have_separate_buckets() {
        let mut limiter = limiter(1, 1, 10);
        assert_eq!(limiter.check("a", 0), Ok(()));
        assert!(limiter.check("a", 0).is_err());
        assert_eq!(limiter.check("b", 0), Ok(()));
    }

    #[test]
    fn a_clock_stepping_back_neither_refills_nor_drains() {
        let mut limiter = limiter(2, 1, 10);
        assert_eq!(limiter.check("m", 10_000), Ok(()));
        assert_eq!(limiter.check("m", 5_000), Ok(()));
        assert!(limiter.check("m", 5_000).is_err());
        // Refill resumes from the latest time seen, not the earlier one.
        assert!(limiter.check("m", 10_999).is_err());
        assert_eq!(limiter.check("m", 11_000), Ok(()));
    }

    #[test]
    fn tracked_merchants_stay_bounded_and_the_idle_one_goes() {
        let mut limiter = limiter(1, 1, 3);
        for (i, merchant) in ["a", "b", "c"].iter().enumerate() {
            assert_eq!(limiter.check(merchant, i as u64), Ok(()));
        }
        assert!(limiter.check("b", 10).is_err());
        assert!(limiter.check("c", 10).is_err());
        // "a" is the idle one; "d" pushes it out, and "b" and "c" keep their empty buckets.
        assert_eq!(limiter.check("d", 10), Ok(()));
        assert_eq!(limiter.merchants_tracked(), 3);
        assert!(limiter.check("b", 10).is_err());
        assert!(limiter.check("c", 10).is_err());
        for i in 0..1_000 {
            let _ = limiter.check(&format!("m{i}"), 20);
        }
        assert_eq!(limiter.merchants_tracked(), 3);
    }

    #[test]
    fn refuses_configurations_without_bounds() {
        let config = RateLimitConfig {
            burst_requests_max: 10,
            refill_requests_per_s: 10,
            merchants_max: 10,
        };
        assert!(RateLimiter::new(config).is_ok());
        for bad in [
            RateLimitConfig {
                burst_requests_max: 0,
                ..config
            },
            RateLimitConfig {
                refill_requests_per_s: 0,
                ..config
            },
            RateLimitConfig {
                merchants_max: 0,
                ..config
            },
            RateLimitConfig {
                merchants_max: RATE_LIMIT_MERCHANTS_MAX + 1,
                ..config
            },
        ] {
            let err = RateLimiter::new(bad).err().expect("refused");
            assert_eq!(err.code(), "config_out_of_range");
        }
    }
}
