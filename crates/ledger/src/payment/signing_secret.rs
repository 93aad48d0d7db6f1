//! The secret a merchant signs requests with: separate from the bearer API key (which travels in
//! every request, so a MAC keyed by it proves nothing an eavesdropper could not forge), stored in
//! the replicated state so every gateway copy can check it. Never printed: `Debug` is masked.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Bounds of a signing secret's length in bytes.
pub const SIGNING_SECRET_BYTES_MIN: usize = 32;
pub const SIGNING_SECRET_BYTES_MAX: usize = 128;
/// Signing secrets an API key keeps: the current one and, during a rotation, the previous one.
pub const SIGNING_SECRETS_PER_KEY_MAX: usize = 2;

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<u8>", into = "Vec<u8>")]
pub struct SigningSecret(Vec<u8>);

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a signing secret is {SIGNING_SECRET_BYTES_MIN} to {SIGNING_SECRET_BYTES_MAX} bytes ({bytes} given)")]
pub struct SigningSecretLength {
    pub bytes: usize,
}

impl SigningSecret {
    pub fn new(bytes: Vec<u8>) -> Result<SigningSecret, SigningSecretLength> {
        if !(SIGNING_SECRET_BYTES_MIN..=SIGNING_SECRET_BYTES_MAX).contains(&bytes.len()) {
            return Err(SigningSecretLength { bytes: bytes.len() });
        }
        Ok(SigningSecret(bytes))
    }

    /// The key bytes. Read them only to compute or check a MAC, or to show a new secret to its
    /// owner once.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl TryFrom<Vec<u8>> for SigningSecret {
    type Error = SigningSecretLength;
    fn try_from(bytes: Vec<u8>) -> Result<Self, Self::Error> {
        SigningSecret::new(bytes)
    }
}

impl From<SigningSecret> for Vec<u8> {
    fn from(secret: SigningSecret) -> Vec<u8> {
        secret.0
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_bounded_and_never_shown_by_debug() {
        assert!(SigningSecret::new(vec![7; 31]).is_err());
        assert!(SigningSecret::new(vec![7; 129]).is_err());
        let secret = SigningSecret::new(b"sss_0123456789abcdef0123456789abcdef".to_vec()).unwrap();
        let shown = format!("{secret:?}");
        assert!(!shown.contains("0123"), "{shown}");
        let bytes = postcard::to_allocvec(&secret).unwrap();
        let back: SigningSecret = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, secret);
        assert!(postcard::from_bytes::<SigningSecret>(
            &postcard::to_allocvec(&vec![1u8; 3]).unwrap()
        )
        .is_err());
    }
}
