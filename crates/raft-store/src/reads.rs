//! Linearizable reads: one leadership check (a heartbeat round to a quorum) serves every read
//! that arrived before it started, instead of one round per read.

use crate::types::Raft;
use crate::write_error::ServeError;
use tokio::sync::{mpsc, oneshot};

/// Reads waiting for the next round; beyond this, callers get `Overloaded`.
pub const READS_QUEUED_MAX: usize = 16_384;

#[derive(Clone)]
pub struct ReadGate {
    tx: mpsc::Sender<oneshot::Sender<Result<(), ServeError>>>,
}

impl ReadGate {
    pub fn spawn(raft: Raft) -> Self {
        let (tx, mut rx) =
            mpsc::channel::<oneshot::Sender<Result<(), ServeError>>>(READS_QUEUED_MAX);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut waiters = vec![first];
                while let Ok(next) = rx.try_recv() {
                    waiters.push(next);
                }
                // `ensure_linearizable` also waits until this node has applied up to the read
                // index, so the state machine read that follows sees every acknowledged write.
                let outcome = raft
                    .ensure_linearizable()
                    .await
                    .map(|_| ())
                    .map_err(ServeError::from);
                for waiter in waiters {
                    let _ = waiter.send(outcome.clone());
                }
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
