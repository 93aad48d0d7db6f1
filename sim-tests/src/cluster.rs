//! The simulated Tally cluster: one turmoil host per node running the real `tally-raft-store`
//! node (Raft, group commit, ledger and admin gRPC services) on the in-memory store, with a
//! simulated clock and turmoil's sockets. The harness keeps each node's store, so a crash can
//! drop exactly the unsynced writes and the checkers can read every replica between steps.

use crate::config::{PlantedBug, SimConfig};
use crate::net;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tally_ledger::PlantedBugs;
use tally_raft_store::kv::MemKv;
use tally_raft_store::{Clock, DiskLatency, LogFault, Node, NodeEnv, NodeInfo, Raft, RaftTuning};
use turmoil::Sim;

pub const API_PORT: u16 = 7000;
pub const RAFT_PORT: u16 = 7001;

/// Raft timing in simulation: the production defaults, with frequent snapshots so that log
/// purges and snapshot catch-up happen in every run.
fn tuning() -> RaftTuning {
    RaftTuning {
        snapshot_after_entries: 48,
        entries_kept_after_snapshot: 8,
        // In-memory snapshots install at once; a chunk lost to a partition must not stall a
        // follower's catch-up for the production deadline.
        install_snapshot_timeout_ms: 2_000,
        ..RaftTuning::default()
    }
}

pub fn node_name(index: usize) -> String {
    format!("node{}", index + 1)
}

fn node_info(index: usize) -> NodeInfo {
    let name = node_name(index);
    NodeInfo {
        raft_addr: format!("{name}:{RAFT_PORT}"),
        api_addr: format!("{name}:{API_PORT}"),
    }
}

/// The API addresses clients are given.
pub fn api_endpoints(nodes: usize) -> Vec<String> {
    (0..nodes).map(|i| node_info(i).api_addr).collect()
}

/// The simulated wall clock of one node: the simulation's time since its fixed epoch, shifted by
/// the node's skew (leaders with slow clocks must still stamp forward-moving times).
pub fn skewed_clock(skew_ms: i64) -> Clock {
    Arc::new(move || {
        let since_epoch = turmoil::since_epoch().unwrap_or_default();
        let ns = i128::try_from(since_epoch.as_nanos()).unwrap_or(i128::MAX)
            + i128::from(skew_ms) * 1_000_000;
        u64::try_from(ns.max(1)).unwrap_or(u64::MAX)
    })
}

pub struct Cluster {
    pub size: usize,
    /// Each node's "disk": survives the host's crash minus its unsynced writes.
    pub stores: Vec<MemKv>,
    /// Extra latency of each node's synced writes, in ms (a slow-disk fault); 0 normally.
    disk_latency_ms: Vec<Arc<AtomicU64>>,
    /// Each running node's Raft handle (for leader lookups); `None` while crashed.
    rafts: Vec<Rc<RefCell<Option<Raft>>>>,
    running: Vec<bool>,
}

impl Cluster {
    /// Registers one host per node. Node 1 initializes the cluster on its first start.
    pub fn start(sim: &mut Sim<'_>, config: &SimConfig, skews_ms: &[i64]) -> Self {
        let size = config.nodes;
        let members: BTreeMap<u64, NodeInfo> =
            (0..size).map(|i| (i as u64 + 1, node_info(i))).collect();
        let initialized = Rc::new(Cell::new(false));
        let mut stores = Vec::with_capacity(size);
        let mut rafts = Vec::with_capacity(size);
        let mut disk_latency_ms = Vec::with_capacity(size);
        for (index, skew_ms) in skews_ms.iter().copied().enumerate().take(size) {
            let store = MemKv::new();
            let latency_ms = Arc::new(AtomicU64::new(0));
            disk_latency_ms.push(latency_ms.clone());
            let disk_latency: DiskLatency =
                Arc::new(move || Duration::from_millis(latency_ms.load(Ordering::Relaxed)));
            let raft_slot: Rc<RefCell<Option<Raft>>> = Rc::new(RefCell::new(None));
            let env = NodeEnv {
                clock: skewed_clock(skew_ms),
                dialer: Some(net::dialer()),
                log_fault: match config.bug {
                    Some(PlantedBug::AppendAckedBeforeSync) => LogFault::AckBeforeSync,
                    _ => LogFault::None,
                },
                ledger_bugs: PlantedBugs {
                    transfer_applies_twice: config.bug == Some(PlantedBug::TransferAppliedTwice),
                    webhook_applied_without_dedupe: config.bug
                        == Some(PlantedBug::WebhookAppliedWithoutDedupe),
                    lease_ignored: config.bug == Some(PlantedBug::LeaseIgnored),
                    panic_in_apply: false,
                },
                disk_latency: Some(disk_latency),
                // Plaintext: ring's randomness cannot be seeded, so TLS would make two runs of
                // one seed differ. Authorization still runs: every caller is insecure-dev.
                security: tally_net::ServerSecurity::InsecureDev,
                backup_root: None,
            };
            let host_store = store.clone();
            let host_slot = raft_slot.clone();
            let members = members.clone();
            let initialized = initialized.clone();
            sim.host(node_name(index), move || {
                let store = host_store.clone();
                let slot = host_slot.clone();
                let env = env.clone();
                let members = members.clone();
                let initialized = initialized.clone();
                async move {
                    let id = index as u64 + 1;
                    let node = Node::open_in(id, node_info(index), Arc::new(store), &tuning(), env)
                        .await?;
                    if index == 0 && !initialized.get() {
                        initialized.set(true);
                        node.raft.initialize(members).await?;
                    }
                    slot.replace(Some(node.raft.clone()));
                    let raft_incoming = net::incoming(RAFT_PORT).await?;
                    let api_incoming = net::incoming(API_PORT).await?;
                    node.serve_incoming(raft_incoming, api_incoming, std::future::pending())
                        .await?;
                    Ok(())
                }
            });
            stores.push(store);
            rafts.push(raft_slot);
        }
        Cluster {
            size,
            stores,
            disk_latency_ms,
            rafts,
            running: vec![true; size],
        }
    }

    /// Makes every synced write of node `index` take `ms` longer (0: a healthy disk again).
    pub fn set_disk_latency(&mut self, index: usize, ms: u64) {
        self.disk_latency_ms[index].store(ms, Ordering::Relaxed);
    }

    pub fn is_running(&self, index: usize) -> bool {
        self.running[index]
    }

    /// Power loss: the host stops and its store keeps only what was synced.
    pub fn crash(&mut self, sim: &mut Sim<'_>, index: usize) {
        sim.crash(node_name(index));
        self.stores[index].crash();
        self.rafts[index].replace(None);
        self.running[index] = false;
    }

    /// Starts a crashed node again on what its store kept.
    pub fn restart(&mut self, sim: &mut Sim<'_>, index: usize) {
        sim.bounce(node_name(index));
        self.running[index] = true;
    }

    /// The leader a running node believes in, with the newest term; `None` in an election.
    pub fn leader(&self) -> Option<(usize, u64)> {
        self.rafts
            .iter()
            .filter_map(|slot| {
                let slot = slot.borrow();
                let metrics = slot.as_ref()?.metrics().borrow().clone();
                Some((metrics.current_term, metrics.current_leader?))
            })
            .max()
            .map(|(term, leader)| (leader as usize - 1, term))
    }
}
