//! Key layout. Integers are big-endian so that byte order is numeric order and range scans walk
//! history by time and the expiry index by deadline.

use tally_ledger::{AccountId, IdempotencyKey, TransferId};

// `Cf::State`: the ledger.
const ACCOUNT: u8 = b'a';
const TRANSFER: u8 = b't';
const HOLD: u8 = b'h';
const EXPIRY: u8 = b'x';
const HISTORY: u8 = b'y';
const IDEMPOTENCY: u8 = b'i';
pub const LEDGER_META: &[u8] = b"m/ledger";
pub const LAST_APPLIED: &[u8] = b"m/applied";
pub const MEMBERSHIP: &[u8] = b"m/membership";

// `Cf::Raft`.
pub const VOTE: &[u8] = b"vote";
pub const COMMITTED: &[u8] = b"committed";
pub const LAST_PURGED: &[u8] = b"purged";
pub const CURRENT_SNAPSHOT: &[u8] = b"snapshot";

fn with_u128(tag: u8, id: u128) -> Vec<u8> {
    let mut key = Vec::with_capacity(17);
    key.push(tag);
    key.extend_from_slice(&id.to_be_bytes());
    key
}

pub fn account(id: AccountId) -> Vec<u8> {
    with_u128(ACCOUNT, id.0)
}

pub fn account_prefix() -> Vec<u8> {
    vec![ACCOUNT]
}

pub fn transfer(id: TransferId) -> Vec<u8> {
    with_u128(TRANSFER, id.0)
}

pub fn hold(id: TransferId) -> Vec<u8> {
    with_u128(HOLD, id.0)
}

pub fn hold_prefix() -> Vec<u8> {
    vec![HOLD]
}

pub fn expiry(expires_at_ns: u64, id: TransferId) -> Vec<u8> {
    let mut key = Vec::with_capacity(25);
    key.push(EXPIRY);
    key.extend_from_slice(&expires_at_ns.to_be_bytes());
    key.extend_from_slice(&id.0.to_be_bytes());
    key
}

pub fn expiry_prefix() -> Vec<u8> {
    vec![EXPIRY]
}

pub fn expiry_id(key: &[u8]) -> TransferId {
    let bytes: [u8; 16] = key[9..25].try_into().expect("expiry keys are 25 bytes");
    TransferId(u128::from_be_bytes(bytes))
}

pub fn history(account_id: AccountId, timestamp_ns: u64) -> Vec<u8> {
    let mut key = with_u128(HISTORY, account_id.0);
    key.extend_from_slice(&timestamp_ns.to_be_bytes());
    key
}

pub fn history_prefix(account_id: AccountId) -> Vec<u8> {
    with_u128(HISTORY, account_id.0)
}

pub fn idempotency(key: &IdempotencyKey) -> Vec<u8> {
    let mut out = vec![IDEMPOTENCY];
    out.extend_from_slice(key.as_str().as_bytes());
    out
}

pub fn log_index(index: u64) -> Vec<u8> {
    index.to_be_bytes().to_vec()
}

pub fn log_index_of(key: &[u8]) -> u64 {
    u64::from_be_bytes(key.try_into().expect("log keys are 8 bytes"))
}

/// The smallest key greater than every key starting with `prefix` (`None`: no such key).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_endian_keys_sort_numerically() {
        assert!(history(AccountId(1), 255) < history(AccountId(1), 256));
        assert!(history(AccountId(1), u64::MAX) < history(AccountId(2), 0));
        assert!(expiry(9, TransferId(u128::MAX)) < expiry(10, TransferId(0)));
        assert_eq!(expiry_id(&expiry(7, TransferId(42))), TransferId(42));
        assert!(log_index(255) < log_index(256));
    }

    #[test]
    fn prefix_end_bounds_the_prefix() {
        assert_eq!(prefix_end(b"a"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
    }
}
