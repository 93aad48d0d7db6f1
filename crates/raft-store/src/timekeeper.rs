//! Holds expire, and sellers' hold periods end, on time, not on the next write. `apply` expires
//! and releases what is due at the start of every batch, at the batch's stamp; on an idle
//! cluster no batch comes. The leader's timekeeper proposes an empty batch when its state has
//! something due, and a balance read that would count an expired hold first has that batch
//! committed (`Timekeeper::settle_due`), so reads never show a hold past its timeout.

use crate::batcher::{Batcher, Clock};
use crate::kv::Kv;
use crate::ledger_state::KvLedger;
use crate::supervisor::Supervisor;
use crate::types::Raft;
use crate::write_error::ServeError;
use std::sync::Arc;
use std::time::Duration;
use tally_ledger::LedgerRead;

/// How often the leader looks for holds and hold periods that fell due.
pub const TICK_MS: u64 = 200;

pub struct Timekeeper<K: Kv> {
    kv: Arc<K>,
    batcher: Batcher,
    clock: Clock,
}

impl<K: Kv> Clone for Timekeeper<K> {
    fn clone(&self) -> Self {
        Timekeeper {
            kv: self.kv.clone(),
            batcher: self.batcher.clone(),
            clock: self.clock.clone(),
        }
    }
}

impl<K: Kv> Timekeeper<K> {
    /// Starts the leader's ticks; the returned handle serves reads.
    pub fn spawn(
        raft: Raft,
        kv: Arc<K>,
        batcher: Batcher,
        clock: Clock,
        supervisor: &Supervisor,
    ) -> Self {
        let keeper = Timekeeper { kv, batcher, clock };
        let ticking = keeper.clone();
        supervisor.spawn("timekeeper", async move {
            let mut ticks = tokio::time::interval(Duration::from_millis(TICK_MS));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let metrics = raft.metrics();
            loop {
                ticks.tick().await;
                // Raft stopped (the node shuts down): let go of the store and the batcher.
                if metrics.has_changed().is_err() {
                    return;
                }
                if !metrics.borrow().state.is_leader() {
                    continue;
                }
                // Refusals (lost leadership, no quorum, outcome unknown) are retried next tick.
                let _ = ticking.settle_due().await;
            }
        });
        keeper
    }

    /// Whether this replica's state has a hold to expire or held funds to release by now.
    fn due(&self) -> bool {
        let now_ns = (self.clock)();
        let ledger = KvLedger::new(&*self.kv);
        !ledger.holds_expiring(now_ns, 1).is_empty() || !ledger.releases_due(now_ns, 1).is_empty()
    }

    /// Commits an empty batch if anything is due, so that what follows reads a state in which
    /// every hold past its timeout is expired. Bounded by the batcher's commit deadline.
    pub async fn settle_due(&self) -> Result<(), ServeError> {
        if self.due() {
            self.batcher.submit(Vec::new()).await?;
        }
        Ok(())
    }
}
