//! Merchant API keys: `tk_<key_id>_<secret>`.
//!
//! The key id is public (it names the key in logs and lookups); the secret is 32 random bytes
//! shown to the merchant once. Only the SHA-256 of the secret is stored. A fast unsalted hash is
//! enough because the secret has 256 bits of entropy: there is nothing to brute-force, unlike a
//! password, so a slow KDF would only slow every request down.

use crate::secret::Secret;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

/// Every key starts with this, so leaked keys are easy to recognise (secret scanners, logs).
pub const API_KEY_PREFIX: &str = "tk_";
/// Random bytes in a key id (16 hex characters). Uniqueness is still the key store's job.
pub const API_KEY_ID_BYTES: usize = 8;
/// Random bytes in a key secret (64 hex characters).
pub const API_KEY_SECRET_BYTES: usize = 32;
/// Length of a whole key as presented: prefix, id, `_`, secret.
pub const API_KEY_LEN: usize =
    API_KEY_PREFIX.len() + 2 * API_KEY_ID_BYTES + 1 + 2 * API_KEY_SECRET_BYTES;

/// Why a presented key was refused. A wrong secret is reported as `Unknown`, exactly like a key
/// id that does not exist, so the answer never confirms which key ids are real.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyError {
    #[error("the API key is malformed: expected `tk_` followed by 16 hex characters, `_` and 64 hex characters, as issued")]
    Malformed,
    #[error("the API key is not recognised: check that it was copied whole, or create a new one")]
    Unknown,
    #[error("the API key has been revoked: use another active key or create a new one")]
    Revoked,
}

impl ApiKeyError {
    /// The stable, machine-readable code of this refusal.
    pub fn code(&self) -> &'static str {
        match self {
            ApiKeyError::Malformed => "api_key_malformed",
            ApiKeyError::Unknown => "api_key_unknown",
            ApiKeyError::Revoked => "api_key_revoked",
        }
    }
}

/// The public half of a key: 16 lowercase hex characters.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiKeyId(String);

impl ApiKeyId {
    /// Checks an id read back from storage or an admin request.
    pub fn parse(text: &str) -> Result<Self, ApiKeyError> {
        if is_lower_hex(text, 2 * API_KEY_ID_BYTES) {
            Ok(ApiKeyId(text.to_owned()))
        } else {
            Err(ApiKeyError::Malformed)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ApiKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// SHA-256 of a key's secret: what the key store keeps. Deliberately not `PartialEq`: compare
/// through `verify`, which is constant-time.
#[derive(Clone, Copy)]
pub struct ApiKeyHash(pub [u8; 32]);

impl ApiKeyHash {
    fn of_secret(secret: &[u8; API_KEY_SECRET_BYTES]) -> Self {
        ApiKeyHash(Sha256::digest(secret).into())
    }
}

impl fmt::Debug for ApiKeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeyHash({})", hex::encode(self.0))
    }
}

/// What the key store holds for one key id.
#[derive(Clone, Copy, Debug)]
pub struct StoredApiKey {
    pub hash: ApiKeyHash,
    pub revoked: bool,
}

/// A freshly generated key. Store `key_id` and `hash`; show `presented` to the merchant once and
/// then drop it: it cannot be recovered from the store.
#[derive(Debug)]
pub struct GeneratedApiKey {
    pub key_id: ApiKeyId,
    pub hash: ApiKeyHash,
    pub presented: Secret<String>,
}

/// Generates a key from `rng`. Production passes a cryptographically secure generator seeded by
/// the OS (`rand::rng()`); tests pass a seeded one.
pub fn generate(rng: &mut impl RngCore) -> GeneratedApiKey {
    let mut id = [0u8; API_KEY_ID_BYTES];
    let mut secret = [0u8; API_KEY_SECRET_BYTES];
    rng.fill_bytes(&mut id);
    rng.fill_bytes(&mut secret);
    let key_id = ApiKeyId(hex::encode(id));
    let presented = format!("{API_KEY_PREFIX}{key_id}_{}", hex::encode(secret));
    debug_assert_eq!(presented.len(), API_KEY_LEN);
    GeneratedApiKey {
        key_id,
        hash: ApiKeyHash::of_secret(&secret),
        presented: Secret::new(presented),
    }
}

/// A key as presented by a client, parsed but not yet verified.
#[derive(Debug)]
pub struct PresentedApiKey {
    key_id: ApiKeyId,
    secret: Secret<[u8; API_KEY_SECRET_BYTES]>,
}

impl PresentedApiKey {
    /// The id to look the stored key up by.
    pub fn key_id(&self) -> &ApiKeyId {
        &self.key_id
    }
}

/// Parses `tk_<16 hex>_<64 hex>` strictly (lowercase hex, exact lengths, nothing around it).
pub fn parse(presented: &str) -> Result<PresentedApiKey, ApiKeyError> {
    let rest = presented
        .strip_prefix(API_KEY_PREFIX)
        .ok_or(ApiKeyError::Malformed)?;
    let (id, secret_hex) = rest.split_once('_').ok_or(ApiKeyError::Malformed)?;
    let key_id = ApiKeyId::parse(id)?;
    if !is_lower_hex(secret_hex, 2 * API_KEY_SECRET_BYTES) {
        return Err(ApiKeyError::Malformed);
    }
    let mut secret = [0u8; API_KEY_SECRET_BYTES];
    hex::decode_to_slice(secret_hex, &mut secret).map_err(|_| ApiKeyError::Malformed)?;
    Ok(PresentedApiKey {
        key_id,
        secret: Secret::new(secret),
    })
}

/// Checks a presented key against what the store holds for its id (`None`: no such id).
///
/// The hash is computed and compared in constant time even for an unknown id, so timing does
/// not tell real ids from made-up ones. Revocation is reported only to a caller holding the
/// right secret; anyone else just gets `Unknown`.
pub fn verify(
    presented: &PresentedApiKey,
    stored: Option<&StoredApiKey>,
) -> Result<(), ApiKeyError> {
    let presented_hash = ApiKeyHash::of_secret(presented.secret.expose());
    // Compared against when the id is unknown; no secret hashes to all zeroes in practice.
    let absent = ApiKeyHash([0u8; 32]);
    let expected = stored.map_or(&absent, |stored| &stored.hash);
    let matches: bool = presented_hash.0.ct_eq(&expected.0).into();
    match stored {
        Some(stored) if matches => {
            if stored.revoked {
                Err(ApiKeyError::Revoked)
            } else {
                Ok(())
            }
        }
        _ => Err(ApiKeyError::Unknown),
    }
}

fn is_lower_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn new_key(seed: u64) -> GeneratedApiKey {
        generate(&mut StdRng::seed_from_u64(seed))
    }

    fn active(key: &GeneratedApiKey) -> StoredApiKey {
        StoredApiKey {
            hash: key.hash,
            revoked: false,
        }
    }

    #[test]
    fn a_generated_key_has_the_documented_shape() {
        let key = new_key(1);
        let text = key.presented.expose();
        assert_eq!(text.len(), API_KEY_LEN);
        assert!(text.starts_with("tk_"));
        assert_eq!(&text[3..19], key.key_id.as_str());
        assert_eq!(&text[19..20], "_");
        assert!(is_lower_hex(&text[20..], 64));
    }

    #[test]
    fn generation_is_deterministic_under_a_seed_and_differs_across_seeds() {
        assert_eq!(new_key(1).presented.expose(), new_key(1).presented.expose());
        assert_ne!(new_key(1).presented.expose(), new_key(2).presented.expose());
        assert_ne!(new_key(1).key_id, new_key(2).key_id);
    }

    #[test]
    fn the_store_holds_the_hash_of_the_secret_not_the_secret() {
        let key = new_key(3);
        let secret_hex = &key.presented.expose()[20..];
        let secret = hex::decode(secret_hex).unwrap();
        let expected: [u8; 32] = Sha256::digest(&secret).into();
        assert_eq!(key.hash.0, expected);
        assert!(!format!("{key:?}").contains(secret_hex));
    }

    #[test]
    fn the_issued_key_verifies() {
        let key = new_key(4);
        let presented = parse(key.presented.expose()).unwrap();
        assert_eq!(presented.key_id(), &key.key_id);
        assert_eq!(verify(&presented, Some(&active(&key))), Ok(()));
    }

    #[test]
    fn a_wrong_secret_is_unknown_not_revoked() {
        let key = new_key(5);
        let mut tampered = key.presented.expose().clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == '0' { '1' } else { '0' });
        let presented = parse(&tampered).unwrap();
        assert_eq!(
            verify(&presented, Some(&active(&key))),
            Err(ApiKeyError::Unknown)
        );
        let revoked = StoredApiKey {
            revoked: true,
            ..active(&key)
        };
        assert_eq!(
            verify(&presented, Some(&revoked)),
            Err(ApiKeyError::Unknown)
        );
    }

    #[test]
    fn an_unknown_key_id_is_unknown() {
        let presented = parse(new_key(6).presented.expose()).unwrap();
        assert_eq!(verify(&presented, None), Err(ApiKeyError::Unknown));
    }

    #[test]
    fn a_revoked_key_is_refused_as_revoked() {
        let key = new_key(7);
        let presented = parse(key.presented.expose()).unwrap();
        let stored = StoredApiKey {
            hash: key.hash,
            revoked: true,
        };
        let err = verify(&presented, Some(&stored)).unwrap_err();
        assert_eq!(err, ApiKeyError::Revoked);
        assert_eq!(err.code(), "api_key_revoked");
    }

    #[test]
    fn malformed_keys_are_refused_without_echoing_them() {
        let good = new_key(8).presented.expose().clone();
        let bad = [
            String::new(),
            "tk_".to_string(),
            good.replacen("tk_", "sk_", 1),
            good.to_uppercase(),
            format!("{good}0"),
            good[..good.len() - 1].to_string(),
            format!(" {good}"),
            good.replacen('_', "-", 2),
            format!("tk_{}", &good[20..]),
            good.replace(&good[3..19], "000000000000000g"),
            format!("{}_{}", &good[..19], "zz".repeat(32)),
        ];
        for text in bad {
            let err = parse(&text).expect_err("refused");
            assert_eq!(err, ApiKeyError::Malformed, "{text:?}");
            assert_eq!(err.code(), "api_key_malformed");
            assert!(!err.to_string().contains(&good[20..]));
        }
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let key = new_key(9);
        let secret_hex = key.presented.expose()[20..].to_string();
        let presented = parse(key.presented.expose()).unwrap();
        let shown = format!("{key:?} {presented:?}");
        assert!(!shown.contains(&secret_hex), "{shown}");
        assert!(shown.contains(key.key_id.as_str()));
    }

    #[test]
    fn key_ids_read_from_storage_are_checked() {
        assert!(ApiKeyId::parse("0123456789abcdef").is_ok());
        assert_eq!(
            ApiKeyId::parse("0123456789ABCDEF"),
            Err(ApiKeyError::Malformed)
        );
        assert_eq!(ApiKeyId::parse("0123"), Err(ApiKeyError::Malformed));
    }
}
