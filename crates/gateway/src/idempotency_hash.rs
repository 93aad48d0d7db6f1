//! The fingerprint stored beside an idempotency key. A retry under the same key with the same
//! fingerprint gets the original answer; a different fingerprint is a different request and is
//! refused (`exists_with_different_fields`), never served someone else's result.
//!
//! Hashes are stored in the replicated idempotency records and compared across gateway versions,
//! so the encoding below is fixed: changing it would turn every in-flight retry into a conflict.

use sha2::{Digest, Sha256};

/// Names the encoding, so a future one can never produce the same bytes as this one.
const DOMAIN_TAG: &[u8] = b"tally.idempotency.request.v1";

/// SHA-256 over the method, path and canonical body, each prefixed by its length as a u64
/// big-endian. The prefixes stop parts from sliding into each other (`"/a" + "b{}"` and
/// `"/ab" + "{}"` hash apart). The caller canonicalises the body (e.g. the decoded request
/// re-encoded deterministically), so whitespace or field order alone never makes a conflict.
pub fn request_hash(method: &str, path: &str, canonical_body: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in [
        DOMAIN_TAG,
        method.as_bytes(),
        path.as_bytes(),
        canonical_body,
    ] {
        let len = u64::try_from(part.len()).expect("a request part fits in u64 bytes");
        hasher.update(len.to_be_bytes());
        hasher.update(part);
    }
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_request_same_hash() {
        assert_eq!(
            request_hash("POST", "/v1/payments", br#"{"amount":"10.00"}"#),
            request_hash("POST", "/v1/payments", br#"{"amount":"10.00"}"#)
        );
    }

    #[test]
    fn any_changed_part_changes_the_hash() {
        let base = request_hash("POST", "/v1/payments", b"{}");
        assert_ne!(base, request_hash("PUT", "/v1/payments", b"{}"));
        assert_ne!(base, request_hash("POST", "/v1/refunds", b"{}"));
        assert_ne!(base, request_hash("POST", "/v1/payments", b"{ }"));
    }

    #[test]
    fn moving_bytes_across_part_boundaries_changes_the_hash() {
        assert_ne!(
            request_hash("POST", "/a", b"b{}"),
            request_hash("POST", "/ab", b"{}")
        );
        assert_ne!(
            request_hash("POS", "T/a", b""),
            request_hash("POST", "/a", b"")
        );
        assert_ne!(request_hash("", "", b"x"), request_hash("x", "", b""));
    }

    #[test]
    fn encoding_is_pinned() {
        // Rebuilt by hand from the documented encoding: if this fails, stored hashes no longer
        // match and every retry in flight would be refused as a conflict.
        let mut expected = Sha256::new();
        expected.update(28u64.to_be_bytes());
        expected.update(b"tally.idempotency.request.v1");
        expected.update(4u64.to_be_bytes());
        expected.update(b"POST");
        expected.update(12u64.to_be_bytes());
        expected.update(b"/v1/payments");
        expected.update(2u64.to_be_bytes());
        expected.update(b"{}");
        let expected: [u8; 32] = expected.finalize().into();
        assert_eq!(request_hash("POST", "/v1/payments", b"{}"), expected);
        assert_eq!(
            hex::encode(expected),
            hex::encode(request_hash("POST", "/v1/payments", b"{}"))
        );
    }
}
