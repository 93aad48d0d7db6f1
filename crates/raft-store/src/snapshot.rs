//! The snapshot payload: every row of the `State` family at one applied log id, with the id, the
//! membership and a checksum, so an install can prove the payload matches its metadata.

use crate::codec::{decode, encode, DecodeError};
use crate::keys;
use crate::kv::{Cf, KvError, KvRead, Order};
use crate::types::{LogId, StoredMembership};
use serde::{Deserialize, Serialize};

/// Rows read per page while building a snapshot.
const SNAPSHOT_PAGE_ROWS_MAX: usize = 4_096;

#[derive(Debug, Serialize, Deserialize)]
pub struct SnapshotPayload {
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
    pub rows: Vec<(Vec<u8>, Vec<u8>)>,
    /// BLAKE3 of the encoded `(last_applied, membership, rows)`.
    pub checksum: [u8; 32],
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot payload does not decode: {0}")]
    Undecodable(String),
    #[error("snapshot checksum mismatch: the payload was damaged")]
    Checksum,
    #[error("snapshot payload is at {payload:?}/{payload_membership:?} but its metadata says {meta:?}/{meta_membership:?}")]
    MetadataMismatch {
        payload: Option<LogId>,
        meta: Option<LogId>,
        payload_membership: Box<StoredMembership>,
        meta_membership: Box<StoredMembership>,
    },
    #[error(transparent)]
    Kv(#[from] KvError),
}

fn checksum(
    last_applied: &Option<LogId>,
    membership: &StoredMembership,
    rows: &[(Vec<u8>, Vec<u8>)],
) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&encode(last_applied));
    hasher.update(&encode(membership));
    hasher.update(&encode(&rows));
    *hasher.finalize().as_bytes()
}

pub fn read_applied(view: &dyn KvRead) -> Result<(Option<LogId>, StoredMembership), KvError> {
    let decode_at = |key: &[u8]| -> Result<Option<Vec<u8>>, KvError> { view.get(Cf::State, key) };
    let corrupt = |key: &[u8], e: DecodeError| KvError::Corrupt {
        key: key.to_vec(),
        reason: e.to_string(),
    };
    let last_applied = match decode_at(keys::LAST_APPLIED)? {
        Some(bytes) => decode(&bytes).map_err(|e| corrupt(keys::LAST_APPLIED, e))?,
        None => None,
    };
    let membership = match decode_at(keys::MEMBERSHIP)? {
        Some(bytes) => decode(&bytes).map_err(|e| corrupt(keys::MEMBERSHIP, e))?,
        None => StoredMembership::default(),
    };
    Ok((last_applied, membership))
}

/// Captures a frozen view into a payload. The applied id and membership come from the same view
/// as the rows, so the snapshot can never be ahead of (or behind) its metadata.
pub fn capture(view: &dyn KvRead) -> Result<SnapshotPayload, KvError> {
    let (last_applied, membership) = read_applied(view)?;
    let mut rows = Vec::new();
    let mut start = Vec::new();
    loop {
        let page = view.range(
            Cf::State,
            &start,
            None,
            Order::Ascending,
            SNAPSHOT_PAGE_ROWS_MAX,
        )?;
        let full = page.len() == SNAPSHOT_PAGE_ROWS_MAX;
        if let Some((last, _)) = page.last() {
            start = last.clone();
            start.push(0);
        }
        rows.extend(page);
        if !full {
            break;
        }
    }
    let checksum = checksum(&last_applied, &membership, &rows);
    Ok(SnapshotPayload {
        last_applied,
        membership,
        rows,
        checksum,
    })
}

/// Decodes a received payload and checks it against the metadata it arrived with.
pub fn verify(
    bytes: &[u8],
    meta_last: Option<LogId>,
    meta_membership: &StoredMembership,
) -> Result<SnapshotPayload, SnapshotError> {
    let payload: SnapshotPayload =
        decode(bytes).map_err(|e| SnapshotError::Undecodable(e.to_string()))?;
    if checksum(&payload.last_applied, &payload.membership, &payload.rows) != payload.checksum {
        return Err(SnapshotError::Checksum);
    }
    if payload.last_applied != meta_last || payload.membership != *meta_membership {
        return Err(SnapshotError::MetadataMismatch {
            payload: payload.last_applied,
            meta: meta_last,
            payload_membership: Box::new(payload.membership),
            meta_membership: Box::new(meta_membership.clone()),
        });
    }
    Ok(payload)
}
