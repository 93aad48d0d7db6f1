//! An in-memory store that keeps durable and not-yet-durable writes apart, so that a simulated
//! crash loses exactly what a real one could: every write since the last synced one.

use super::{
    Cf, Durability, Kv, KvError, KvRead, Order, Pairs, RowSource, StagedState, WriteBatch, WriteOp,
    STATE_END,
};
use std::sync::{Arc, Mutex};

/// A persistent ordered map: a clone is O(1) and shares structure, so views, snapshots and a
/// crash's "back to the durable state" cost no copy.
type Map = imbl::OrdMap<(Cf, Vec<u8>), Vec<u8>>;

#[derive(Default)]
struct Inner {
    /// What a crash keeps.
    durable: Map,
    /// What readers see: `durable` plus the unsynced writes since.
    current: Map,
    unsynced: Vec<WriteBatch>,
    /// Counts the writes to the `State` family and the crashes: what a reader of the state
    /// compares to know nothing changed since it last looked.
    state_generation: u64,
}

/// Cheap to clone; clones share the same store (one "disk").
#[derive(Clone, Default)]
pub struct MemKv {
    // A std Mutex: every critical section is short and never awaits.
    inner: Arc<Mutex<Inner>>,
}

impl MemKv {
    pub fn new() -> Self {
        MemKv::default()
    }

    /// Simulates power loss: every write since the last synced one is gone.
    pub fn crash(&self) {
        let mut inner = self.lock();
        inner.current = inner.durable.clone();
        inner.unsynced.clear();
        inner.state_generation += 1;
    }

    /// Changes whenever what the `State` family holds may have changed (a write to it, a
    /// crash); equal generations mean equal state.
    pub fn state_generation(&self) -> u64 {
        self.lock().state_generation
    }

    /// Writes not yet durable (a crash now would lose them).
    pub fn unsynced_batches(&self) -> usize {
        self.lock().unsynced.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("MemKv mutex poisoned")
    }
}

fn apply_batch(map: &mut Map, batch: &WriteBatch) {
    for op in &batch.ops {
        match op {
            WriteOp::Put { cf, key, value } => {
                map.insert((*cf, key.clone()), value.clone());
            }
            WriteOp::Delete { cf, key } => {
                map.remove(&(*cf, key.clone()));
            }
            WriteOp::DeleteRange { cf, start, end } => {
                let doomed: Vec<_> = map
                    .range((*cf, start.clone())..(*cf, end.clone()))
                    .map(|(k, _)| k.clone())
                    .collect();
                for key in doomed {
                    map.remove(&key);
                }
            }
        }
    }
}

fn range_of(
    map: &Map,
    cf: Cf,
    start: &[u8],
    end: Option<&[u8]>,
    order: Order,
    limit: usize,
) -> Pairs {
    use std::ops::Bound;
    if end.is_some_and(|end| end < start) {
        return Vec::new();
    }
    // Bound both ends inside the family, so a descending read walks only what it returns.
    let upper = match end {
        Some(end) => Bound::Excluded((cf, end.to_vec())),
        None => match Cf::ALL.iter().find(|next| **next > cf) {
            Some(next) => Bound::Excluded((*next, Vec::new())),
            None => Bound::Unbounded,
        },
    };
    let lower = Bound::Included((cf, start.to_vec()));
    let in_range = map.range((lower, upper));
    let pair = |((_, k), v): (&(Cf, Vec<u8>), &Vec<u8>)| (k.clone(), v.clone());
    match order {
        Order::Ascending => in_range.take(limit).map(pair).collect(),
        Order::Descending => in_range.rev().take(limit).map(pair).collect(),
    }
}

impl KvRead for MemKv {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.lock().current.get(&(cf, key.to_vec())).cloned())
    }

    fn range(
        &self,
        cf: Cf,
        start: &[u8],
        end: Option<&[u8]>,
        order: Order,
        limit: usize,
    ) -> Result<Pairs, KvError> {
        Ok(range_of(&self.lock().current, cf, start, end, order, limit))
    }
}

impl Kv for MemKv {
    fn write(&self, batch: WriteBatch, durability: Durability) -> Result<(), KvError> {
        let mut inner = self.lock();
        apply_batch(&mut inner.current, &batch);
        let touches_state = batch.ops.iter().any(|op| match op {
            WriteOp::Put { cf, .. }
            | WriteOp::Delete { cf, .. }
            | WriteOp::DeleteRange { cf, .. } => *cf == Cf::State,
        });
        if touches_state {
            inner.state_generation += 1;
        }
        inner.unsynced.push(batch);
        if durability == Durability::Synced {
            // One log for the whole store: syncing makes every earlier write durable too.
            let pending = std::mem::take(&mut inner.unsynced);
            for batch in &pending {
                apply_batch(&mut inner.durable, batch);
            }
        }
        Ok(())
    }

    fn frozen_view(&self) -> Result<Box<dyn KvRead>, KvError> {
        Ok(Box::new(FrozenMap(self.lock().current.clone())))
    }

    fn snapshot_view(&self) -> Box<dyn KvRead + '_> {
        Box::new(FrozenMap(self.lock().current.clone()))
    }

    fn backup(&self, _target: &std::path::Path) -> Result<Box<dyn KvRead>, KvError> {
        Err(KvError::Io(
            "the in-memory store has nothing on disk to back up: run the node on RocksDB".into(),
        ))
    }

    fn stage_state(&self, rows: &mut RowSource<'_>) -> Result<Box<dyn StagedState + '_>, KvError> {
        let mut staged = Map::new();
        while let Some((key, value)) = rows()? {
            staged.insert((Cf::State, key), value);
        }
        Ok(Box::new(MemStaged {
            kv: self,
            rows: FrozenMap(staged),
        }))
    }
}

struct MemStaged<'a> {
    kv: &'a MemKv,
    rows: FrozenMap,
}

impl StagedState for MemStaged<'_> {
    fn view(&self) -> &dyn KvRead {
        &self.rows
    }

    /// In memory the replacement is one atomic write: `before`, the new state and `after`.
    fn commit(self: Box<Self>, before: WriteBatch, after: WriteBatch) -> Result<(), KvError> {
        let mut batch = before;
        batch.delete_range(Cf::State, Vec::new(), STATE_END.to_vec());
        for ((_, key), value) in self.rows.0.iter() {
            batch.put(Cf::State, key.clone(), value.clone());
        }
        batch.ops.extend(after.ops);
        self.kv.write(batch, Durability::Synced)
    }
}

struct FrozenMap(Map);

impl KvRead for FrozenMap {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self.0.get(&(cf, key.to_vec())).cloned())
    }

    fn range(
        &self,
        cf: Cf,
        start: &[u8],
        end: Option<&[u8]>,
        order: Order,
        limit: usize,
    ) -> Result<Pairs, KvError> {
        Ok(range_of(&self.0, cf, start, end, order, limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_loses_exactly_the_unsynced_writes() {
        let kv = MemKv::new();
        let mut a = WriteBatch::default();
        a.put(Cf::Log, b"a".to_vec(), b"1".to_vec());
        kv.write(a, Durability::Unsynced).unwrap();
        let mut b = WriteBatch::default();
        b.put(Cf::Log, b"b".to_vec(), b"2".to_vec());
        kv.write(b, Durability::Synced).unwrap();
        let mut c = WriteBatch::default();
        c.put(Cf::Log, b"c".to_vec(), b"3".to_vec());
        kv.write(c, Durability::Unsynced).unwrap();
        assert_eq!(kv.unsynced_batches(), 1);
        kv.crash();
        assert!(
            kv.get(Cf::Log, b"a").unwrap().is_some(),
            "synced by the later synced write"
        );
        assert!(kv.get(Cf::Log, b"b").unwrap().is_some());
        assert!(
            kv.get(Cf::Log, b"c").unwrap().is_none(),
            "unsynced write survived a crash"
        );
    }

    #[test]
    fn frozen_view_ignores_later_writes_and_ranges_stay_in_their_family() {
        let kv = MemKv::new();
        let mut batch = WriteBatch::default();
        for k in [1u8, 2, 3] {
            batch.put(Cf::State, vec![k], vec![k]);
        }
        batch.put(Cf::Raft, vec![0], vec![0]);
        kv.write(batch, Durability::Synced).unwrap();
        let view = kv.frozen_view().unwrap();
        let mut later = WriteBatch::default();
        later.delete_range(Cf::State, vec![0], vec![9]);
        kv.write(later, Durability::Synced).unwrap();
        assert!(kv
            .range(Cf::State, &[], None, Order::Ascending, 10)
            .unwrap()
            .is_empty());
        let all = view
            .range(Cf::State, &[], None, Order::Ascending, 10)
            .unwrap();
        assert_eq!(all.len(), 3);
        let last = view
            .range(Cf::State, &[], Some(&[3]), Order::Descending, 1)
            .unwrap();
        assert_eq!(last[0].0, vec![2]);
    }
}
