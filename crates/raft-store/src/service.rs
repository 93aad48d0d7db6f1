//! The client-facing gRPC services of a node: the ledger API and the operator's admin API.
//!
//! Writes go through the group-commit batcher on the leader; a follower answers
//! `FAILED_PRECONDITION` with the leader's API address in the `tally-leader-api` metadata (or
//! `UNAVAILABLE` during an election), so clients can follow. Reads are linearizable: they wait
//! for a shared leadership round, then read the local state machine.

pub mod access;
mod admin;
mod ledger;
mod payments;

pub use admin::AdminService;
pub use ledger::LedgerService;
pub use payments::PaymentsService;

use crate::write_error::ServeError;
use tally_proto::client::not_leader_status;
use tonic::Status;

/// The status a client sees. Redirects use the client crate's own constructor, so the hint's
/// metadata key is defined once: `FAILED_PRECONDITION` + hint, or `UNAVAILABLE` in an election.
pub(crate) fn status_of(error: ServeError) -> Status {
    let message = error.to_string();
    match error {
        ServeError::NotLeader { leader, .. } => {
            not_leader_status(leader.as_ref().map(|l| l.api_addr.as_str()))
        }
        // Retryable: the client's retry resends the same ids, which the ledger deduplicates.
        ServeError::NoQuorum | ServeError::Overloaded | ServeError::OutcomeUnknown { .. } => {
            Status::unavailable(message)
        }
        ServeError::Refused { .. } => Status::invalid_argument(message),
        ServeError::Stopped(_) => Status::unavailable(message),
    }
}
