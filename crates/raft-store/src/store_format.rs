//! The data directory's format stamp: checked when a node opens its store, before Raft reads a
//! single row, so a directory written by another Tally release is refused at start-up with both
//! versions named rather than half-read. Each row also carries its own version byte
//! (`codec`); the stamp makes the refusal happen at once instead of at the first unlucky read.

use crate::codec::{encode, version_of, FORMAT_VERSION};
use crate::keys;
use crate::kv::{Cf, Durability, Kv, KvError, Order, WriteBatch};

#[derive(Debug, thiserror::Error)]
pub enum StoreFormatError {
    #[error(
        "the data directory is in format version {found}; this build reads format version \
         {FORMAT_VERSION}. Start the Tally release that wrote it (or a newer one that reads \
         version {found}), or restore a backup taken by this release"
    )]
    Unknown { found: u8 },
    #[error(
        "the data directory holds Tally data without a format stamp (written before format \
         versions, format 0); this build reads format version {FORMAT_VERSION}. Rebuild this \
         node from the cluster (empty data directory, join as a learner) or restore a backup \
         taken by this release"
    )]
    Unstamped,
    #[error(transparent)]
    Kv(#[from] KvError),
}

/// Stamps an empty store with this build's format, or checks the stamp of a used one.
pub fn check_or_stamp<K: Kv>(kv: &K) -> Result<(), StoreFormatError> {
    match kv.get(Cf::Raft, keys::STORE_FORMAT)? {
        Some(stamp) => match version_of(&stamp) {
            Some(FORMAT_VERSION) => Ok(()),
            found => Err(StoreFormatError::Unknown {
                found: found.unwrap_or(0),
            }),
        },
        None if is_empty(kv)? => {
            let mut batch = WriteBatch::default();
            batch.put(Cf::Raft, keys::STORE_FORMAT, encode(&()));
            kv.write(batch, Durability::Synced)?;
            Ok(())
        }
        None => Err(StoreFormatError::Unstamped),
    }
}

fn is_empty<K: Kv>(kv: &K) -> Result<bool, KvError> {
    for cf in Cf::ALL {
        if !kv.range(cf, &[], None, Order::Ascending, 1)?.is_empty() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Overwrites the stamp: for tests that show what a store of another format meets.
#[doc(hidden)]
pub fn stamp_for_tests<K: Kv>(kv: &K, version: u8) -> Result<(), KvError> {
    let mut batch = WriteBatch::default();
    batch.put(Cf::Raft, keys::STORE_FORMAT, vec![version]);
    kv.write(batch, Durability::Synced)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::{KvRead, MemKv};

    #[test]
    fn an_empty_store_is_stamped_and_then_accepted() {
        let kv = MemKv::default();
        check_or_stamp(&kv).unwrap();
        assert_eq!(
            kv.get(Cf::Raft, keys::STORE_FORMAT).unwrap(),
            Some(vec![FORMAT_VERSION])
        );
        check_or_stamp(&kv).unwrap();
    }

    #[test]
    fn a_store_of_a_future_format_is_refused_naming_both_versions() {
        let kv = MemKv::default();
        check_or_stamp(&kv).unwrap();
        stamp_for_tests(&kv, FORMAT_VERSION + 1).unwrap();
        let error = check_or_stamp(&kv).unwrap_err();
        let text = error.to_string();
        assert!(
            matches!(error, StoreFormatError::Unknown { found } if found == FORMAT_VERSION + 1)
        );
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
    fn a_used_store_without_a_stamp_is_refused() {
        let kv = MemKv::default();
        let mut batch = WriteBatch::default();
        batch.put(Cf::State, b"m/applied".to_vec(), vec![1, 0]);
        kv.write(batch, Durability::Synced).unwrap();
        assert!(matches!(
            check_or_stamp(&kv),
            Err(StoreFormatError::Unstamped)
        ));
    }
}
