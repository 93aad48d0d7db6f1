//! openraft's async runtime for Tally: tokio for everything, with one change — the random numbers
//! openraft draws (its election timeout, once per `Raft::new`) come from a generator a simulation
//! can seed, so a simulated cluster elects the same leader at the same instant on every run.
//!
//! Outside a simulation nothing is seeded and each draw uses fresh entropy, exactly like
//! `openraft::TokioRuntime`.

use openraft::async_runtime::TokioOneShotSender;
use openraft::{AsyncRuntime, OptionalSend, TokioInstant};
use rand08::rngs::StdRng;
use rand08::{RngCore, SeedableRng};
use std::cell::RefCell;
use std::future::Future;
use std::time::Duration;

thread_local! {
    /// The seeded source of this thread's draws, when a simulation set one. A turmoil simulation
    /// runs every host on the test's thread, so this is one deterministic sequence per run.
    static SEEDED: RefCell<Option<StdRng>> = const { RefCell::new(None) };
}

/// Makes every later draw on this thread come from `seed` (simulations), or from entropy again
/// (`None`). Draws happen in a deterministic order inside a simulation, so each run of a seed
/// gets the same numbers.
pub fn seed_thread_rng(seed: Option<u64>) {
    SEEDED.with(|seeded| *seeded.borrow_mut() = seed.map(StdRng::seed_from_u64));
}

/// A generator for one caller: derived from the thread's seeded source when there is one.
fn next_rng() -> StdRng {
    SEEDED.with(|seeded| match seeded.borrow_mut().as_mut() {
        Some(source) => StdRng::seed_from_u64(source.next_u64()),
        None => StdRng::from_entropy(),
    })
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct TallyRuntime;

impl AsyncRuntime for TallyRuntime {
    type JoinError = tokio::task::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = tokio::task::JoinHandle<T>;
    type Sleep = tokio::time::Sleep;
    type Instant = TokioInstant;
    type TimeoutError = tokio::time::error::Elapsed;
    type Timeout<R, T: Future<Output = R> + OptionalSend> = tokio::time::Timeout<T>;
    type ThreadLocalRng = StdRng;
    type OneshotSender<T: OptionalSend> = TokioOneShotSender<T>;
    type OneshotReceiver<T: OptionalSend> = tokio::sync::oneshot::Receiver<T>;
    type OneshotReceiverError = tokio::sync::oneshot::error::RecvError;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        tokio::task::spawn(future)
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        tokio::time::sleep(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        tokio::time::sleep_until(deadline)
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(
        duration: Duration,
        future: F,
    ) -> Self::Timeout<R, F> {
        tokio::time::timeout(duration, future)
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(
        deadline: Self::Instant,
        future: F,
    ) -> Self::Timeout<R, F> {
        tokio::time::timeout_at(deadline, future)
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        join_error.is_panic()
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        next_rng()
    }

    fn oneshot<T>() -> (Self::OneshotSender<T>, Self::OneshotReceiver<T>)
    where
        T: OptionalSend,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (TokioOneShotSender(tx), rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand08::Rng;

    fn draws() -> Vec<u64> {
        (0..4)
            .map(|_| TallyRuntime::thread_rng().gen_range(400..800))
            .collect()
    }

    #[test]
    fn a_seeded_thread_draws_the_same_numbers_every_time() {
        seed_thread_rng(Some(7));
        let first = draws();
        seed_thread_rng(Some(7));
        let second = draws();
        seed_thread_rng(Some(8));
        let other = draws();
        seed_thread_rng(None);
        assert_eq!(first, second);
        assert_ne!(first, other, "another seed, other election timeouts");
        assert!(first.iter().all(|ms| (400..800).contains(ms)));
    }
}
