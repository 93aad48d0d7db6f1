//! Value encoding for everything Tally persists or sends between nodes: one format-version byte,
//! then postcard (compact, deterministic for our types, which use no skipped or untagged fields).
//!
//! Every stored row (state, log entries, vote, snapshot records), every snapshot payload and every
//! Raft message goes through here, so a value written by a build with another format is refused
//! with both versions named ([`DecodeError::UnknownVersion`]) instead of being misread.
//! ARCHITECTURE.md ("Formats and upgrades") says how a new version is rolled out.

use serde::{de::DeserializeOwned, Serialize};

/// The format this build writes and the only one it reads. Raise it when an encoded type changes
/// shape (a field, a variant, an order), together with a reader for the previous version.
pub const FORMAT_VERSION: u8 = 3;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("empty value: a format-{FORMAT_VERSION} value starts with its version byte")]
    Empty,
    #[error(
        "format version {found} is not known to this build, which reads format version \
         {FORMAT_VERSION}: the value was written by another Tally release; run one release on \
         every node (see \"Formats and upgrades\" in ARCHITECTURE.md)"
    )]
    UnknownVersion { found: u8 },
    #[error("format-{FORMAT_VERSION} value does not decode: {0}")]
    Malformed(#[from] postcard::Error),
}

pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // Serializing our own plain data types into memory cannot fail.
    postcard::to_extend(value, vec![FORMAT_VERSION]).expect("value serializes")
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    match bytes.split_first() {
        None => Err(DecodeError::Empty),
        Some((&FORMAT_VERSION, body)) => Ok(postcard::from_bytes(body)?),
        Some((&found, _)) => Err(DecodeError::UnknownVersion { found }),
    }
}

/// The format version an encoded value claims, without decoding it (`None` when empty).
pub fn version_of(bytes: &[u8]) -> Option<u8> {
    bytes.first().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_behind_their_version_byte() {
        let bytes = encode(&(7u64, "seven".to_string()));
        assert_eq!(version_of(&bytes), Some(FORMAT_VERSION));
        let back: (u64, String) = decode(&bytes).unwrap();
        assert_eq!(back, (7, "seven".to_string()));
    }

    #[test]
    fn a_future_version_is_refused_naming_both_versions() {
        let mut bytes = encode(&42u32);
        bytes[0] = FORMAT_VERSION + 1;
        let error = decode::<u32>(&bytes).unwrap_err();
        assert!(
            matches!(error, DecodeError::UnknownVersion { found } if found == FORMAT_VERSION + 1)
        );
        let text = error.to_string();
        assert!(
            text.contains(&format!("format version {}", FORMAT_VERSION + 1)),
            "{text}"
        );
        assert!(
            text.contains(&format!("reads format version {FORMAT_VERSION}")),
            "{text}"
        );
    }

    #[test]
    fn empty_and_truncated_values_are_errors_not_panics() {
        assert!(matches!(decode::<u32>(&[]), Err(DecodeError::Empty)));
        let bytes = encode(&"a longer string".to_string());
        assert!(matches!(
            decode::<String>(&bytes[..4]),
            Err(DecodeError::Malformed(_))
        ));
    }
}
