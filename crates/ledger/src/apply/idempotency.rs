//! Beginning and completing generic idempotency records.

use super::txn::Txn;
use crate::command::{IdempotencyBegun, IdempotencyCompleted};
use crate::errors::IdempotencyError;
use crate::idempotency::{
    BeginIdempotent, CompleteIdempotent, IdempotencyRecord, IdempotencyState,
};
use crate::limits::{
    IDEMPOTENCY_LEASE_MS_MAX, IDEMPOTENCY_RESPONSE_BYTES_MAX, NANOS_PER_MILLISECOND,
};
use crate::store::LedgerRead;

pub(super) fn begin<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    begin: &BeginIdempotent,
    timestamp_ns: u64,
) -> Result<IdempotencyBegun, IdempotencyError> {
    if begin.lease_ms == 0 || begin.lease_ms > IDEMPOTENCY_LEASE_MS_MAX {
        return Err(IdempotencyError::LeaseOutOfRange);
    }
    // Bounded by TIMESTAMP_NS_MAX plus an hour, far below u64::MAX.
    let lease_until_ns = timestamp_ns + begin.lease_ms * NANOS_PER_MILLISECOND;
    let (attempt, created_at_ns) = match txn.idempotency(&begin.key) {
        None => (1, timestamp_ns),
        Some(record) if record.request_hash != begin.request_hash => {
            return Err(IdempotencyError::RequestMismatch);
        }
        Some(record) => match record.state {
            IdempotencyState::Completed { response, .. } => {
                return Ok(IdempotencyBegun::Completed { response });
            }
            IdempotencyState::InProgress {
                lease_until_ns: held_until_ns,
                ..
            } if held_until_ns > timestamp_ns => {
                return Err(IdempotencyError::InProgress {
                    lease_until_ns: held_until_ns,
                });
            }
            // The holder's lease ran out: take over with the next attempt. A u64 attempt
            // counter cannot saturate at one take-over per millisecond for 500 million years.
            IdempotencyState::InProgress { attempt, .. } => {
                (attempt.saturating_add(1), record.created_at_ns)
            }
        },
    };
    txn.put_idempotency(IdempotencyRecord {
        key: begin.key.clone(),
        request_hash: begin.request_hash,
        state: IdempotencyState::InProgress {
            attempt,
            lease_until_ns,
        },
        created_at_ns,
        updated_at_ns: timestamp_ns,
    });
    Ok(IdempotencyBegun::Started {
        attempt,
        lease_until_ns,
    })
}

pub(super) fn complete<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    complete: &CompleteIdempotent,
    timestamp_ns: u64,
) -> Result<IdempotencyCompleted, IdempotencyError> {
    if complete.response.len() > IDEMPOTENCY_RESPONSE_BYTES_MAX {
        return Err(IdempotencyError::ResponseTooLarge);
    }
    let record = txn
        .idempotency(&complete.key)
        .ok_or(IdempotencyError::NotFound)?;
    if record.request_hash != complete.request_hash {
        return Err(IdempotencyError::RequestMismatch);
    }
    match record.state {
        IdempotencyState::Completed { ref response, .. } if *response == complete.response => {
            Ok(IdempotencyCompleted::AlreadyCompleted)
        }
        IdempotencyState::Completed { .. } => Err(IdempotencyError::CompletedWithDifferentResponse),
        IdempotencyState::InProgress { attempt, .. } if attempt != complete.attempt => {
            Err(IdempotencyError::LeaseLost {
                current_attempt: attempt,
            })
        }
        IdempotencyState::InProgress { attempt, .. } => {
            txn.put_idempotency(IdempotencyRecord {
                state: IdempotencyState::Completed {
                    attempt,
                    response: complete.response.clone(),
                },
                updated_at_ns: timestamp_ns,
                ..record
            });
            Ok(IdempotencyCompleted::Completed)
        }
    }
}
