//! Linearizable reads: one leadership check (a heartbeat round to a quorum) serves every read
//! that arrived before it started, instead of one round per read. Each round runs under a
//! deadline in its own task, and a few rounds may be open at once, so a round stuck on a leader
//! that lost its quorum answers `NoQuorum` in bounded time and never blocks the reads after it.

use crate::supervisor::Supervisor;
use crate::types::Raft;
use crate::write_error::ServeError;
use openraft::metrics::WaitError;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Semaphore};

/// Reads waiting for the next round; beyond this, callers get `Overloaded`.
pub const READS_QUEUED_MAX: usize = 16_384;
/// How long a read waits for the leader's log to be applied before it is refused (retryable).
pub const READ_APPLY_WAIT_MS: u64 = 5_000;
/// The whole round (leadership check and apply wait) ends within this, else `NoQuorum`.
/// openraft's `ensure_linearizable` waits for its read index with no deadline of its own.
pub const READ_ROUND_MS_MAX: u64 = READ_APPLY_WAIT_MS + 1_000;
/// Rounds open at once. A new round starts while older ones wait, up to this many.
pub const READ_ROUNDS_IN_FLIGHT_MAX: usize = 4;

/// One leadership round, then waits until this node has applied every write it could have
/// acknowledged. `ensure_linearizable` alone waits only up to its read index, the larger of
/// the commit index and the leader's first entry of its term; a leader that crashes and
/// restarts in the same term (openraft restores it as leader) knows no commit index beyond
/// what it had applied, so that read index can be older than writes it acknowledged just
/// before the crash (the simulation's seeds 312, 448, 834, 1366, 1461 read "not found" or an
/// older state that way). Every acknowledged write is in the leader's log, so the log's end as
/// it stood when the reads arrived is a read index that is never too old.
async fn linearize(raft: &Raft) -> Result<(), ServeError> {
    let last_log_index = raft.metrics().borrow().last_log_index;
    let read_log_id = raft.ensure_linearizable().await?;
    if last_log_index > read_log_id.map(|log_id| log_id.index) {
        raft.wait(Some(Duration::from_millis(READ_APPLY_WAIT_MS)))
            .applied_index_at_least(last_log_index, "linearizable read")
            .await
            .map_err(|error| match error {
                WaitError::Timeout(..) => ServeError::NoQuorum,
                WaitError::ShuttingDown => ServeError::Stopped("raft is shutting down".into()),
            })?;
    }
    Ok(())
}

#[derive(Clone)]
pub struct ReadGate {
    tx: mpsc::Sender<oneshot::Sender<Result<(), ServeError>>>,
}

impl ReadGate {
    pub fn spawn(raft: Raft, supervisor: &Supervisor) -> Self {
        let (tx, mut rx) =
            mpsc::channel::<oneshot::Sender<Result<(), ServeError>>>(READS_QUEUED_MAX);
        let rounds = Arc::new(Semaphore::new(READ_ROUNDS_IN_FLIGHT_MAX));
        let round_supervisor = supervisor.clone();
        supervisor.spawn("read gate", async move {
            while let Some(first) = rx.recv().await {
                // Rounds end within their deadline, so this wait is bounded too.
                let Ok(permit) = rounds.clone().acquire_owned().await else {
                    return;
                };
                let mut waiters = vec![first];
                while let Ok(next) = rx.try_recv() {
                    waiters.push(next);
                }
                let raft = raft.clone();
                round_supervisor.spawn("read round", async move {
                    let _permit = permit;
                    let deadline = Duration::from_millis(READ_ROUND_MS_MAX);
                    let outcome = tokio::time::timeout(deadline, linearize(&raft))
                        .await
                        .unwrap_or(Err(ServeError::NoQuorum));
                    for waiter in waiters {
                        let _ = waiter.send(outcome.clone());
                    }
                });
            }
        });
        ReadGate { tx }
    }

    /// Returns once a read of the local state machine is linearizable.
    pub async fn linearize(&self) -> Result<(), ServeError> {
        let (reply, answer) = oneshot::channel();
        self.tx.try_send(reply).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => ServeError::Overloaded,
            mpsc::error::TrySendError::Closed(_) => ServeError::Stopped("read gate stopped".into()),
        })?;
        answer
            .await
            .map_err(|_| ServeError::Stopped("read gate dropped the request".into()))?
    }
}
