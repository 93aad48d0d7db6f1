//! Value encoding for everything Tally persists or sends between nodes: postcard (compact,
//! deterministic for our types, which use no skipped or untagged fields).

use serde::{de::DeserializeOwned, Serialize};

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing our own plain data types into memory cannot fail.
    postcard::to_allocvec(value).expect("value serializes")
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, postcard::Error> {
    postcard::from_bytes(bytes)
}
