//! Retry delays: exponential backoff with full jitter and a hard attempt bound.
//!
//! Full jitter (a uniform delay in `[0, min(max, base·2^attempt)]`) spreads retries of many
//! orders that failed together, so a recovering PSP is not hit by synchronized waves. The RNG is
//! passed in: workers hand it a seeded one in simulation, and the same seed gives the same
//! schedule.

use crate::config::{check_range, ConfigError};
use rand::{Rng, RngCore};

/// The longest delay a configuration may ask for: one day. Longer waits belong to the
/// dead-letter queue and a human, not to an automatic retry.
pub const BACKOFF_DELAY_MS_MAX: u64 = 24 * 60 * 60 * 1000;
/// The most attempts a configuration may allow before giving up to the dead-letter queue.
pub const BACKOFF_ATTEMPTS_MAX: u32 = 100;

/// A validated backoff schedule. Attempts are numbered from 0: attempt `n` waits at most
/// `min(max_ms, base_ms·2^n)`, and attempts `attempts_max` and later get no delay at all
/// (`None`: retries are exhausted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    base_ms: u64,
    max_ms: u64,
    attempts_max: u32,
}

impl Backoff {
    pub fn new(base_ms: u64, max_ms: u64, attempts_max: u32) -> Result<Self, ConfigError> {
        check_range("backoff.base_ms", base_ms, 1, BACKOFF_DELAY_MS_MAX)?;
        check_range("backoff.max_ms", max_ms, base_ms, BACKOFF_DELAY_MS_MAX)?;
        check_range(
            "backoff.attempts_max",
            u64::from(attempts_max),
            1,
            u64::from(BACKOFF_ATTEMPTS_MAX),
        )?;
        Ok(Backoff {
            base_ms,
            max_ms,
            attempts_max,
        })
    }

    pub fn base_ms(&self) -> u64 {
        self.base_ms
    }

    pub fn max_ms(&self) -> u64 {
        self.max_ms
    }

    pub fn attempts_max(&self) -> u32 {
        self.attempts_max
    }

    /// The upper bound of attempt `attempt`'s delay: `min(max_ms, base_ms·2^attempt)`, saturating
    /// instead of overflowing for large attempt numbers.
    pub fn ceiling_ms(&self, attempt: u32) -> u64 {
        let factor = 1u64.checked_shl(attempt).unwrap_or(u64::MAX);
        self.base_ms.saturating_mul(factor).min(self.max_ms)
    }

    /// How long to wait before attempt `attempt` (0-based), or `None` once attempts are
    /// exhausted and the work should go to the dead-letter queue.
    pub fn delay_ms(&self, attempt: u32, rng: &mut impl RngCore) -> Option<u64> {
        if attempt >= self.attempts_max {
            return None;
        }
        let delay_ms = rng.random_range(0..=self.ceiling_ms(attempt));
        debug_assert!(delay_ms <= self.max_ms);
        Some(delay_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn schedule(backoff: &Backoff, seed: u64) -> Vec<Option<u64>> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..=backoff.attempts_max())
            .map(|attempt| backoff.delay_ms(attempt, &mut rng))
            .collect()
    }

    #[test]
    fn ceiling_doubles_from_base_up_to_max() {
        let backoff = Backoff::new(100, 1_000, 10).unwrap();
        let ceilings: Vec<u64> = (0..6).map(|a| backoff.ceiling_ms(a)).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1_000, 1_000]);
        assert_eq!(backoff.ceiling_ms(64), 1_000);
        assert_eq!(backoff.ceiling_ms(u32::MAX), 1_000);
    }

    #[test]
    fn delays_stop_once_attempts_are_exhausted() {
        let backoff = Backoff::new(10, 1_000, 3).unwrap();
        let mut rng = StdRng::seed_from_u64(7);
        assert!(backoff.delay_ms(0, &mut rng).is_some());
        assert!(backoff.delay_ms(2, &mut rng).is_some());
        assert_eq!(backoff.delay_ms(3, &mut rng), None);
        assert_eq!(backoff.delay_ms(u32::MAX, &mut rng), None);
    }

    #[test]
    fn same_seed_same_schedule() {
        let backoff = Backoff::new(50, 60_000, 20).unwrap();
        assert_eq!(schedule(&backoff, 42), schedule(&backoff, 42));
        assert_ne!(schedule(&backoff, 42), schedule(&backoff, 43));
    }

    #[test]
    fn jitter_covers_the_range() {
        // Full jitter, not "equal jitter": over many draws, delays land in both the lowest and
        // the highest tenth of [0, ceiling].
        let backoff = Backoff::new(1_000, 1_000, 1).unwrap();
        let mut rng = StdRng::seed_from_u64(1);
        let delays: Vec<u64> = (0..1_000)
            .map(|_| backoff.delay_ms(0, &mut rng).unwrap())
            .collect();
        assert!(delays.iter().any(|&d| d < 100));
        assert!(delays.iter().any(|&d| d > 900));
    }

    #[test]
    fn refuses_configurations_without_bounds() {
        assert_eq!(
            Backoff::new(0, 10, 3).unwrap_err().code(),
            "config_out_of_range"
        );
        assert!(Backoff::new(100, 99, 3).is_err());
        assert!(Backoff::new(1, BACKOFF_DELAY_MS_MAX + 1, 3).is_err());
        assert!(Backoff::new(1, 10, 0).is_err());
        assert!(Backoff::new(1, 10, BACKOFF_ATTEMPTS_MAX + 1).is_err());
        let err = Backoff::new(1, 10, 0).unwrap_err();
        assert!(err.to_string().contains("backoff.attempts_max"), "{err}");
    }

    proptest! {
        #[test]
        fn delay_stays_within_zero_and_the_ceiling(
            base_ms in 1u64..=10_000,
            extra_ms in 0u64..=1_000_000,
            attempts_max in 1u32..=BACKOFF_ATTEMPTS_MAX,
            attempt in 0u32..=200,
            seed: u64,
        ) {
            let backoff = Backoff::new(base_ms, base_ms + extra_ms, attempts_max).unwrap();
            let mut rng = StdRng::seed_from_u64(seed);
            match backoff.delay_ms(attempt, &mut rng) {
                None => prop_assert!(attempt >= attempts_max),
                Some(delay_ms) => {
                    prop_assert!(attempt < attempts_max);
                    let exponential = u128::from(base_ms) << attempt.min(100);
                    let ceiling = exponential.min(u128::from(base_ms + extra_ms));
                    prop_assert!(u128::from(delay_ms) <= ceiling);
                }
            }
        }
    }
}
