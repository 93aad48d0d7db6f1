//! Every background task of a node runs under a supervisor. A task that panics (a bug) or a
//! Raft core that stops on its own fails the node: `Node::serve` stops serving and returns the
//! error, and `tally-node` exits non-zero for its service manager to restart it. The alternative
//! — a leader whose batcher died but whose Raft core still heartbeats — keeps its followers from
//! electing anyone else and never writes again.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::watch;

#[derive(Clone)]
pub struct Supervisor {
    failure: Arc<watch::Sender<Option<String>>>,
    /// Set when the node stops on purpose: tasks ending after that are no failure.
    stopping: Arc<AtomicBool>,
}

impl Default for Supervisor {
    fn default() -> Self {
        Supervisor {
            failure: Arc::new(watch::channel(None).0),
            stopping: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl Supervisor {
    /// Runs `task`; if it panics, the node fails with `name` and the panic's message.
    pub fn spawn<F>(&self, name: &'static str, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let handle = tokio::spawn(task);
        let supervisor = self.clone();
        tokio::spawn(async move {
            if let Err(error) = handle.await {
                if error.is_panic() {
                    supervisor.fail(format!("{name} panicked: {}", panic_text(error)));
                }
            }
        });
    }

    /// The node is stopping on purpose: from now on a task that ends is no failure.
    pub fn stopping(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Fails the node (the first reason wins).
    pub fn fail(&self, reason: String) {
        if self.stopping.load(Ordering::SeqCst) {
            return;
        }
        tracing::error!(%reason, "node task failed; the node stops");
        self.failure.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            *current = Some(reason);
            true
        });
    }

    /// Waits until the node has failed, and says why.
    pub async fn failed(&self) -> String {
        let mut receiver = self.failure.subscribe();
        let reason = match receiver.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone(),
            // The sender lives in `self`, so it cannot be gone while this waits.
            Err(_) => None,
        };
        match reason {
            Some(reason) => reason,
            None => std::future::pending().await,
        }
    }
}

fn panic_text(error: tokio::task::JoinError) -> String {
    tally_ledger::panic_text(error.into_panic().as_ref())
}
