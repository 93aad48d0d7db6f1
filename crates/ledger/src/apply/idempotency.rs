//! Beginning, completing and forgetting generic idempotency records.

use super::guard::{contained, ApplyFault};
use super::txn::Txn;
use super::EventClock;
use crate::command::{IdempotencyBegun, IdempotencyCompleted};
use crate::errors::IdempotencyError;
use crate::idempotency::{
    BeginIdempotent, CompleteIdempotent, IdempotencyKey, IdempotencyRecord, IdempotencyState,
};
use crate::limits::{
    IDEMPOTENCY_EXPIRIES_PER_BATCH_MAX, IDEMPOTENCY_LEASE_MS_MAX, IDEMPOTENCY_RESPONSE_BYTES_MAX,
    IDEMPOTENCY_RETAIN_MS_MAX, NANOS_PER_MILLISECOND,
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
    if begin.retain_ms == 0 || begin.retain_ms > IDEMPOTENCY_RETAIN_MS_MAX {
        return Err(IdempotencyError::RetentionOutOfRange);
    }
    // Both bounded by TIMESTAMP_NS_MAX plus 30 days, far below u64::MAX.
    let lease_until_ns = timestamp_ns + begin.lease_ms * NANOS_PER_MILLISECOND;
    let retained_until_ns = timestamp_ns + begin.retain_ms * NANOS_PER_MILLISECOND;
    let (attempt, created_at_ns, expires_at_ns) = match txn.idempotency(&begin.key) {
        None => (1, timestamp_ns, retained_until_ns),
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
            IdempotencyState::InProgress { attempt, .. } => (
                attempt.saturating_add(1),
                record.created_at_ns,
                record.expires_at_ns,
            ),
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
        expires_at_ns,
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

/// Forgets up to `IDEMPOTENCY_EXPIRIES_PER_BATCH_MAX` records whose retention ended by
/// `batch_timestamp_ns`, earliest first, and returns their keys. A record whose lease still runs
/// is kept until the lease ends, so a running request's key is never reused under it.
pub(super) fn forget_expired<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    batch_timestamp_ns: u64,
    clock: &mut EventClock,
    faults: &mut Vec<ApplyFault>,
) -> Vec<IdempotencyKey> {
    let due = txn
        .store()
        .idempotency_expiring(batch_timestamp_ns, IDEMPOTENCY_EXPIRIES_PER_BATCH_MAX);
    assert!(
        due.len() <= IDEMPOTENCY_EXPIRIES_PER_BATCH_MAX,
        "idempotency expiry index returned more than asked"
    );
    let mut forgotten = Vec::with_capacity(due.len());
    for key in due {
        let name = || format!("expiry of idempotency key {}", key.as_str());
        let done = contained(txn, clock, faults, name, |txn, _| {
            txn.begin_chain();
            let gone = forget(txn, &key, batch_timestamp_ns);
            txn.commit_chain();
            gone
        });
        if done == Some(true) {
            forgotten.push(key);
        }
    }
    forgotten
}

/// Forgets one due record (true), or moves its expiry to the end of a lease still running.
fn forget<S: LedgerRead>(
    txn: &mut Txn<'_, S>,
    key: &IdempotencyKey,
    batch_timestamp_ns: u64,
) -> bool {
    let record = txn
        .idempotency(key)
        .unwrap_or_else(|| panic!("idempotency expiry index names unknown key {key:?}"));
    assert!(
        record.expires_at_ns <= batch_timestamp_ns,
        "idempotency expiry index names key {key:?} that is not due: {record:?}"
    );
    match record.state {
        IdempotencyState::InProgress { lease_until_ns, .. }
            if lease_until_ns > batch_timestamp_ns =>
        {
            txn.put_idempotency(IdempotencyRecord {
                expires_at_ns: lease_until_ns,
                ..record
            });
            false
        }
        _ => {
            txn.forget_idempotency(key);
            true
        }
    }
}
