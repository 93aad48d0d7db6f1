//! A string-keyed map with a hard entry bound that evicts the least recently used entry.
//!
//! The gateway keeps per-merchant and per-buyer state in memory (rate-limit buckets, velocity
//! windows). Those keys come from outside, so the map must never grow with them: at the bound,
//! the entry untouched for longest goes. BTreeMaps keep it deterministic and immune to
//! hash flooding by chosen keys.

use std::collections::BTreeMap;

pub(crate) struct LruMap<V> {
    entries: BTreeMap<String, Slot<V>>,
    /// Use stamp -> key; the first entry is the least recently used.
    by_use: BTreeMap<u64, String>,
    /// A counter, not a clock: the order of use is exact even when callers pass equal or
    /// backwards `now_ms` values.
    stamp_next: u64,
    entries_max: usize,
}

struct Slot<V> {
    value: V,
    stamp: u64,
}

impl<V> LruMap<V> {
    pub(crate) fn new(entries_max: usize) -> Self {
        assert!(entries_max > 0, "an LruMap bound must be at least 1");
        LruMap {
            entries: BTreeMap::new(),
            by_use: BTreeMap::new(),
            stamp_next: 0,
            entries_max,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The value under `key` without marking it used.
    #[cfg(test)]
    pub(crate) fn peek(&self, key: &str) -> Option<&V> {
        self.entries.get(key).map(|slot| &slot.value)
    }

    /// The value under `key`, created by `make` if absent (evicting the least recently used entry
    /// when full), and marked most recently used.
    pub(crate) fn get_or_insert_with(&mut self, key: &str, make: impl FnOnce() -> V) -> &mut V {
        let stamp = self.stamp_next;
        self.stamp_next += 1;
        if let Some(slot) = self.entries.get_mut(key) {
            let previous = std::mem::replace(&mut slot.stamp, stamp);
            let owner = self.by_use.remove(&previous);
            debug_assert_eq!(owner.as_deref(), Some(key));
            self.by_use.insert(stamp, key.to_owned());
        } else {
            if self.entries.len() == self.entries_max {
                self.evict_oldest();
            }
            self.entries.insert(
                key.to_owned(),
                Slot {
                    value: make(),
                    stamp,
                },
            );
            self.by_use.insert(stamp, key.to_owned());
        }
        assert!(self.entries.len() <= self.entries_max);
        debug_assert_eq!(self.entries.len(), self.by_use.len());
        &mut self
            .entries
            .get_mut(key)
            .expect("the entry was found or inserted above")
            .value
    }

    fn evict_oldest(&mut self) {
        if let Some((_, key)) = self.by_use.pop_first() {
            let slot = self.entries.remove(&key);
            assert!(slot.is_some(), "the use index and the entries disagree");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_holds_more_than_its_bound() {
        let mut map = LruMap::new(3);
        for i in 0..100 {
            *map.get_or_insert_with(&format!("k{i}"), || 0) += 1;
            assert!(map.len() <= 3);
        }
        assert_eq!(map.len(), 3);
        assert!(map.peek("k99").is_some());
        assert!(map.peek("k96").is_none());
    }

    #[test]
    fn evicts_the_least_recently_used_not_the_oldest_inserted() {
        let mut map = LruMap::new(2);
        map.get_or_insert_with("a", || 1);
        map.get_or_insert_with("b", || 2);
        // Touching "a" makes "b" the least recently used.
        map.get_or_insert_with("a", || unreachable!("a exists"));
        map.get_or_insert_with("c", || 3);
        assert_eq!(map.peek("a"), Some(&1));
        assert_eq!(map.peek("b"), None);
        assert_eq!(map.peek("c"), Some(&3));
    }
}
