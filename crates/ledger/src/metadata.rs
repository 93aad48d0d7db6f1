//! Bounded key-value metadata carried by accounts and transfers.

use crate::limits::{METADATA_ENTRIES_MAX, METADATA_KEY_BYTES_MAX, METADATA_VALUE_BYTES_MAX};
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;

/// String metadata, at most `METADATA_ENTRIES_MAX` entries of bounded size. Kept in a `BTreeMap`
/// so that its encoding, and so the hash chain, never depends on insertion order.
///
/// The bounds are checked on construction and on deserialization, so a value of this type is
/// always valid: `apply` never has to re-check it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "BTreeMap<String, String>")]
pub struct Metadata(BTreeMap<String, String>);

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("metadata has {entries} entries: at most {METADATA_ENTRIES_MAX} are allowed")]
    TooManyEntries { entries: usize },
    #[error("metadata key {key:?} is empty or longer than {METADATA_KEY_BYTES_MAX} bytes")]
    KeyLength { key: String },
    #[error("metadata value of key {key:?} is longer than {METADATA_VALUE_BYTES_MAX} bytes")]
    ValueTooLong { key: String },
}

impl MetadataError {
    pub fn code(&self) -> &'static str {
        match self {
            MetadataError::TooManyEntries { .. } => "metadata_too_many_entries",
            MetadataError::KeyLength { .. } => "metadata_key_length",
            MetadataError::ValueTooLong { .. } => "metadata_value_too_long",
        }
    }
}

impl Metadata {
    pub fn new(entries: BTreeMap<String, String>) -> Result<Self, MetadataError> {
        if entries.len() > METADATA_ENTRIES_MAX {
            return Err(MetadataError::TooManyEntries {
                entries: entries.len(),
            });
        }
        for (key, value) in &entries {
            if key.is_empty() || key.len() > METADATA_KEY_BYTES_MAX {
                return Err(MetadataError::KeyLength { key: key.clone() });
            }
            if value.len() > METADATA_VALUE_BYTES_MAX {
                return Err(MetadataError::ValueTooLong { key: key.clone() });
            }
        }
        Ok(Metadata(entries))
    }

    /// Builds metadata from pairs; a later pair with the same key wins.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, MetadataError> {
        Metadata::new(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl TryFrom<BTreeMap<String, String>> for Metadata {
    type Error = MetadataError;
    fn try_from(entries: BTreeMap<String, String>) -> Result<Self, Self::Error> {
        Metadata::new(entries)
    }
}

impl Serialize for Metadata {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_bounded_metadata() {
        let m = Metadata::from_pairs([("order_id", "o-1"), ("channel", "web")]).unwrap();
        assert_eq!(m.get("order_id"), Some("o-1"));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn refuses_too_many_entries() {
        let pairs = (0..=METADATA_ENTRIES_MAX).map(|i| (format!("k{i}"), String::new()));
        let err = Metadata::from_pairs(pairs).unwrap_err();
        assert_eq!(err.code(), "metadata_too_many_entries");
    }

    #[test]
    fn refuses_empty_or_long_keys_and_long_values() {
        let long_key = "k".repeat(METADATA_KEY_BYTES_MAX + 1);
        assert_eq!(
            Metadata::from_pairs([(long_key, "v")]).unwrap_err().code(),
            "metadata_key_length"
        );
        assert_eq!(
            Metadata::from_pairs([("", "v")]).unwrap_err().code(),
            "metadata_key_length"
        );
        let long_value = "v".repeat(METADATA_VALUE_BYTES_MAX + 1);
        assert_eq!(
            Metadata::from_pairs([("k", long_value)])
                .unwrap_err()
                .code(),
            "metadata_value_too_long"
        );
    }

    #[test]
    fn deserialization_enforces_the_bounds() {
        let pairs: BTreeMap<String, String> = (0..=METADATA_ENTRIES_MAX)
            .map(|i| (format!("k{i}"), String::new()))
            .collect();
        let bytes = postcard::to_allocvec(&pairs).unwrap();
        assert!(postcard::from_bytes::<Metadata>(&bytes).is_err());
        let ok = Metadata::from_pairs([("a", "b")]).unwrap();
        let bytes = postcard::to_allocvec(&ok).unwrap();
        assert_eq!(postcard::from_bytes::<Metadata>(&bytes).unwrap(), ok);
    }
}
