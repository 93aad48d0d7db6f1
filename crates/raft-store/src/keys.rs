//! Key layout. Integers are big-endian so that byte order is numeric order and range scans walk
//! history by time and the expiry index by deadline.

use tally_ledger::payment::{
    ApiKeyId, BuyerId, CheckoutId, IndexEntry, MerchantId, OrderId, PayoutId, TimedIndex,
};
use tally_ledger::{AccountId, IdempotencyKey, StoreFailure, TransferId};

// `Cf::State`: the ledger.
const ACCOUNT: u8 = b'a';
const TRANSFER: u8 = b't';
const HOLD: u8 = b'h';
const EXPIRY: u8 = b'x';
const HISTORY: u8 = b'y';
const IDEMPOTENCY: u8 = b'i';
const IDEMPOTENCY_EXPIRY: u8 = b'j';
// Payments. String ids never contain 0x00 (their alphabet is ASCII letters, digits and `_-.:`),
// so a prefix scan of one id never runs into a longer one's keys where a length byte is used.
const MERCHANT: u8 = b'M';
const BUYER: u8 = b'B';
const PAYMENT: u8 = b'P';
const ORDER: u8 = b'O';
const ORDER_DUE: u8 = b'D';
const ORDER_RELEASE: u8 = b'R';
const MERCHANT_PAYMENTS: u8 = b'L';
const API_KEY: u8 = b'K';
const PAYOUT: u8 = b'Q';
const DELIVERY: u8 = b'V';
/// The timed indexes (`TimedIndex`): tag, index, owner length, owner, time, id.
const TIMED: u8 = b'T';
pub const LEDGER_META: &[u8] = b"m/ledger";
pub const LAST_APPLIED: &[u8] = b"m/applied";
pub const MEMBERSHIP: &[u8] = b"m/membership";

// `Cf::Raft`.
pub const VOTE: &[u8] = b"vote";
pub const COMMITTED: &[u8] = b"committed";
pub const LAST_PURGED: &[u8] = b"purged";
pub const CURRENT_SNAPSHOT: &[u8] = b"snapshot";
/// Present while a snapshot install replaces the state (`snapshot::record`).
pub const SNAPSHOT_INSTALLING: &[u8] = b"installing";
/// The data directory's format stamp (`store_format`).
pub const STORE_FORMAT: &[u8] = b"format";

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
    decoded(key, || {
        Some(TransferId(u128::from_be_bytes(
            key.get(9..25)?.try_into().ok()?,
        )))
    })
}

/// Decodes a stored key, or stops the replica: a corrupt key is a store failure, never a
/// command's bug (apply contains the panics of those, and must not contain this one).
fn decoded<T>(key: &[u8], decode: impl FnOnce() -> Option<T>) -> T {
    decode().unwrap_or_else(|| StoreFailure::raise(format!("ledger state key corrupt: {key:?}")))
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

pub fn idempotency_prefix() -> Vec<u8> {
    vec![IDEMPOTENCY]
}

/// The idempotency expiry index: tag, expiry (big-endian), then the key itself.
pub fn idempotency_expiry(expires_at_ns: u64, key: &IdempotencyKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + key.as_str().len());
    out.push(IDEMPOTENCY_EXPIRY);
    out.extend_from_slice(&expires_at_ns.to_be_bytes());
    out.extend_from_slice(key.as_str().as_bytes());
    out
}

pub fn idempotency_expiry_prefix() -> Vec<u8> {
    vec![IDEMPOTENCY_EXPIRY]
}

/// The first key of the expiry index past `up_to_ns`.
pub fn idempotency_expiry_end(up_to_ns: u64) -> Vec<u8> {
    match up_to_ns.checked_add(1) {
        Some(next) => {
            let mut out = vec![IDEMPOTENCY_EXPIRY];
            out.extend_from_slice(&next.to_be_bytes());
            out
        }
        None => vec![IDEMPOTENCY_EXPIRY + 1],
    }
}

pub fn idempotency_expiry_of(key: &[u8]) -> (u64, IdempotencyKey) {
    decoded(key, || {
        let at_ns = u64::from_be_bytes(key.get(1..9)?.try_into().ok()?);
        let text = std::str::from_utf8(key.get(9..)?).ok()?;
        Some((at_ns, IdempotencyKey::new(text).ok()?))
    })
}

fn with_str(tag: u8, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + id.len());
    key.push(tag);
    key.extend_from_slice(id.as_bytes());
    key
}

pub fn merchant(id: &MerchantId) -> Vec<u8> {
    with_str(MERCHANT, id.as_str())
}

pub fn api_key(id: &ApiKeyId) -> Vec<u8> {
    with_str(API_KEY, id.as_str())
}

pub fn buyer(id: &BuyerId) -> Vec<u8> {
    with_str(BUYER, id.as_str())
}

pub fn payment(id: &CheckoutId) -> Vec<u8> {
    with_str(PAYMENT, id.as_str())
}

pub fn payment_prefix() -> Vec<u8> {
    vec![PAYMENT]
}

pub fn order(id: &OrderId) -> Vec<u8> {
    with_str(ORDER, id.as_str())
}

fn timed_order(tag: u8, at_ns: u64, order: Option<&OrderId>) -> Vec<u8> {
    let mut key = Vec::with_capacity(9 + order.map_or(0, |o| o.as_str().len()));
    key.push(tag);
    key.extend_from_slice(&at_ns.to_be_bytes());
    if let Some(order) = order {
        key.extend_from_slice(order.as_str().as_bytes());
    }
    key
}

pub fn order_due(due_ns: u64, order: &OrderId) -> Vec<u8> {
    timed_order(ORDER_DUE, due_ns, Some(order))
}

/// The first due key after every order due at or before `up_to_ns`.
pub fn order_due_end(up_to_ns: u64) -> Vec<u8> {
    match up_to_ns.checked_add(1) {
        Some(next) => timed_order(ORDER_DUE, next, None),
        None => vec![ORDER_DUE + 1],
    }
}

pub fn order_due_prefix() -> Vec<u8> {
    vec![ORDER_DUE]
}

pub fn order_release(at_ns: u64, order: &OrderId) -> Vec<u8> {
    timed_order(ORDER_RELEASE, at_ns, Some(order))
}

pub fn order_release_end(up_to_ns: u64) -> Vec<u8> {
    match up_to_ns.checked_add(1) {
        Some(next) => timed_order(ORDER_RELEASE, next, None),
        None => vec![ORDER_RELEASE + 1],
    }
}

pub fn order_release_prefix() -> Vec<u8> {
    vec![ORDER_RELEASE]
}

/// `(time, order)` of a due or release key.
pub fn timed_order_of(key: &[u8]) -> (u64, OrderId) {
    decoded(key, || {
        let at_ns = u64::from_be_bytes(key.get(1..9)?.try_into().ok()?);
        let id = std::str::from_utf8(key.get(9..)?).ok()?;
        Some((at_ns, OrderId::new(id).ok()?))
    })
}

pub fn merchant_payments_prefix(merchant: &MerchantId) -> Vec<u8> {
    let id = merchant.as_str().as_bytes();
    let mut key = Vec::with_capacity(2 + id.len());
    key.push(MERCHANT_PAYMENTS);
    // Merchant ids are at most 64 bytes, so the length fits a byte.
    key.push(id.len() as u8);
    key.extend_from_slice(id);
    key
}

pub fn merchant_payment(
    merchant: &MerchantId,
    created_at_ns: u64,
    checkout: &CheckoutId,
) -> Vec<u8> {
    let mut key = merchant_payments_prefix(merchant);
    key.extend_from_slice(&created_at_ns.to_be_bytes());
    key.extend_from_slice(checkout.as_str().as_bytes());
    key
}

/// `(created_at_ns, checkout)` of a merchant-payments key with prefix length `prefix_len`.
pub fn merchant_payment_of(key: &[u8], prefix_len: usize) -> (u64, CheckoutId) {
    decoded(key, || {
        let created = key.get(prefix_len..prefix_len + 8)?;
        let created_at_ns = u64::from_be_bytes(created.try_into().ok()?);
        let id = std::str::from_utf8(key.get(prefix_len + 8..)?).ok()?;
        Some((created_at_ns, CheckoutId::new(id).ok()?))
    })
}

pub fn payout(id: &PayoutId) -> Vec<u8> {
    with_str(PAYOUT, id.as_str())
}

pub fn payout_prefix() -> Vec<u8> {
    vec![PAYOUT]
}

pub fn delivery(id: &str) -> Vec<u8> {
    with_str(DELIVERY, id)
}

pub fn delivery_prefix() -> Vec<u8> {
    vec![DELIVERY]
}

/// The keys of one index and owner. Owners are ids (at most 64 bytes) or empty.
pub fn timed_prefix(index: TimedIndex, owner: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(3 + owner.len() + 8 + 64);
    key.push(TIMED);
    key.push(index.tag());
    key.push(
        u8::try_from(owner.len()).expect("index owners are ids or id pairs, well under 256 bytes"),
    );
    key.extend_from_slice(owner.as_bytes());
    key
}

pub fn timed(index: TimedIndex, owner: &str, at_ns: u64, id: &str) -> Vec<u8> {
    let mut key = timed_prefix(index, owner);
    key.extend_from_slice(&at_ns.to_be_bytes());
    key.extend_from_slice(id.as_bytes());
    key
}

pub fn timed_entry(entry: &IndexEntry) -> Vec<u8> {
    timed(entry.index, &entry.owner, entry.at_ns, &entry.id)
}

/// The first key after every entry of `prefix` at or before `up_to_ns`.
pub fn timed_end(prefix: &[u8], up_to_ns: u64) -> Option<Vec<u8>> {
    match up_to_ns.checked_add(1) {
        Some(next) => {
            let mut key = prefix.to_vec();
            key.extend_from_slice(&next.to_be_bytes());
            Some(key)
        }
        None => prefix_end(prefix),
    }
}

/// `(at_ns, id)` of a timed key with prefix length `prefix_len`.
pub fn timed_of(key: &[u8], prefix_len: usize) -> (u64, String) {
    decoded(key, || {
        let at = key.get(prefix_len..prefix_len + 8)?;
        let at_ns = u64::from_be_bytes(at.try_into().ok()?);
        let id = std::str::from_utf8(key.get(prefix_len + 8..)?).ok()?;
        Some((at_ns, id.to_string()))
    })
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
