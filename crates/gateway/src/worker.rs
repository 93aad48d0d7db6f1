//! What the gateway's background workers (the charge executor, the payout worker, the webhook
//! dispatcher) share: the sweep loop, and retry times drawn from a backoff schedule with a
//! seeded RNG and the injected clock, so a simulation replays them from its seed.

use crate::backoff::Backoff;
use crate::executor::Clock;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::fmt::Display;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;
use tally_ledger::limits::NANOS_PER_MILLISECOND;

/// Sweeps until `shutdown` resolves: again at once after a sweep that found work, after
/// `idle_poll_ms` after an idle one, or after a failed one (logged with `worker`).
pub async fn run_sweeps<E: Display, Fut: Future<Output = Result<bool, E>>>(
    worker: &'static str,
    idle_poll_ms: u64,
    shutdown: impl Future<Output = ()>,
    mut sweep: impl FnMut() -> Fut,
) {
    tokio::pin!(shutdown);
    loop {
        let pause_ms = match sweep().await {
            Ok(true) => 0,
            Ok(false) => idle_poll_ms,
            Err(error) => {
                tracing::warn!(worker, %error, "sweep failed");
                idle_poll_ms
            }
        };
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(Duration::from_millis(pause_ms)) => {}
        }
    }
}

/// When to try again after a failed attempt.
pub struct RetrySchedule {
    backoff: Backoff,
    rng: Mutex<StdRng>,
    clock: Clock,
}

impl RetrySchedule {
    pub fn new(backoff: Backoff, seed: u64, clock: Clock) -> Self {
        RetrySchedule {
            backoff,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            clock,
        }
    }

    /// The time (Unix ns) attempt `attempt + 1` may start after attempt `attempt` (from 1)
    /// failed, or `None` when the attempts are used up and the work goes to the dead-letter
    /// queue.
    pub fn retry_at_ns(&self, attempt: u64) -> Option<u64> {
        let retry_index = u32::try_from(attempt.saturating_sub(1)).unwrap_or(u32::MAX);
        let delay_ms = {
            let mut rng = self
                .rng
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            self.backoff.delay_ms(retry_index, &mut *rng)?
        };
        Some((self.clock)() + delay_ms * NANOS_PER_MILLISECOND)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn retries_wait_within_the_backoff_then_run_out() {
        let clock: Clock = Arc::new(|| 1_000 * NANOS_PER_MILLISECOND);
        let schedule = RetrySchedule::new(Backoff::new(100, 400, 3).unwrap(), 7, clock);
        for (attempt, ceiling_ms) in [(1, 100), (2, 200), (3, 400)] {
            let at_ns = schedule.retry_at_ns(attempt).expect("a retry");
            let delay_ms = at_ns / NANOS_PER_MILLISECOND - 1_000;
            assert!(delay_ms <= ceiling_ms, "attempt {attempt}: {delay_ms} ms");
        }
        assert_eq!(schedule.retry_at_ns(4), None, "attempts used up");
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let clock: Clock = Arc::new(|| 0);
        let backoff = Backoff::new(1_000, 60_000, 10).unwrap();
        let a = RetrySchedule::new(backoff, 42, clock.clone());
        let b = RetrySchedule::new(backoff, 42, clock);
        let draws = |s: &RetrySchedule| (1..=10).map(|n| s.retry_at_ns(n)).collect::<Vec<_>>();
        assert_eq!(draws(&a), draws(&b));
    }
}
