//! Defense in depth: a bug that panics inside one command's apply costs that command, not the
//! cluster. The command's overlay changes are rolled back, it answers `internal_error`, and the
//! batch goes on. `apply` is deterministic, so every replica panics at the same command and
//! rolls back the same changes: their hash chains stay equal.
//!
//! A store that cannot be read is not a bug of the command: `StoreFailure` panics pass through,
//! since a replica that cannot read its own state must stop rather than answer differently from
//! its peers.

use super::txn::Txn;
use super::EventClock;
use crate::store::{LedgerRead, StoreFailure};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

/// A bug caught while applying a batch: the step that hit it and the panic's message. The
/// caller logs each one loudly and counts it; the step's result is `internal_error`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplyFault {
    /// What was running: `command 3 (create_transfer)`, `release of order o1`, ...
    pub step: String,
    pub message: String,
}

/// Runs `step` with its overlay changes contained: `None` (and a fault in `faults`) if it
/// panicked, in which case everything it wrote to the overlay is undone. `step` must open the
/// overlay's chain before its first write (every caller does), so the undo log covers it.
pub(super) fn contained<'s, S: LedgerRead, T>(
    txn: &mut Txn<'s, S>,
    clock: &mut EventClock,
    faults: &mut Vec<ApplyFault>,
    name: impl FnOnce() -> String,
    step: impl FnOnce(&mut Txn<'s, S>, &mut EventClock) -> T,
) -> Option<T> {
    match catch_unwind(AssertUnwindSafe(|| step(txn, clock))) {
        Ok(value) => Some(value),
        Err(payload) => {
            if payload.is::<StoreFailure>() {
                resume_unwind(payload);
            }
            // Timestamps the step took stay used: they only need to be unique and increasing.
            if let Some(next_ns) = txn.abandon_step() {
                clock.next_ns = clock.next_ns.max(next_ns);
            }
            faults.push(ApplyFault {
                step: name(),
                message: panic_text(payload.as_ref()),
            });
            None
        }
    }
}

/// The message a panic carried (`panic!` gives a `&str` or a `String`), for logs.
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_string()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic without a message".to_string()
    }
}
