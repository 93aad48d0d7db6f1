//! An in-process cluster of real nodes: RocksDB on disk, gRPC over loopback sockets.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tally_ledger::PlantedBugs;
use tally_proto::admin::admin_client::AdminClient;
use tally_proto::ledger::ledger_client::LedgerClient;
use tally_proto::ledger::{self as pb};
use tally_raft_store::kv::RocksKv;
use tally_raft_store::{ledger_view, Node, NodeEnv, NodeError, NodeInfo, Raft, RaftTuning};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// Every wait in these tests is bounded by this.
pub const WAIT_MS_MAX: u64 = 15_000;

pub struct RunningNode {
    pub raft: Raft,
    pub kv: Arc<RocksKv>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), NodeError>>,
}

/// Under plain `cargo test` the tests of one binary share a process: one cluster at a time.
static ONE_CLUSTER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub struct Cluster {
    _exclusive: tokio::sync::MutexGuard<'static, ()>,
    pub root: tempfile::TempDir,
    pub infos: BTreeMap<u64, NodeInfo>,
    pub nodes: BTreeMap<u64, RunningNode>,
    pub tuning: RaftTuning,
    /// Ledger bugs planted in every node (tests of the containment).
    pub ledger_bugs: PlantedBugs,
}

async fn bind(addr: &str) -> TcpListener {
    let deadline = Instant::now() + Duration::from_millis(WAIT_MS_MAX);
    loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => return listener,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("cannot bind {addr}: {e}"),
        }
    }
}

impl Cluster {
    /// Starts `size` nodes and initializes them as one cluster.
    pub async fn start(size: u64, tuning: RaftTuning) -> Cluster {
        Cluster::start_with_bugs(size, tuning, PlantedBugs::NONE).await
    }

    /// [`Cluster::start`] with `ledger_bugs` planted in every node.
    pub async fn start_with_bugs(
        size: u64,
        tuning: RaftTuning,
        ledger_bugs: PlantedBugs,
    ) -> Cluster {
        let exclusive = ONE_CLUSTER_AT_A_TIME.lock().await;
        let mut cluster = Cluster {
            _exclusive: exclusive,
            root: tempfile::tempdir().expect("temp dir"),
            infos: BTreeMap::new(),
            nodes: BTreeMap::new(),
            tuning,
            ledger_bugs,
        };
        for id in 1..=size {
            cluster.add_node(id).await;
        }
        let first = &cluster.nodes[&1];
        first
            .raft
            .initialize(cluster.infos.clone())
            .await
            .expect("initialize");
        cluster.wait_for_leader(None).await;
        cluster
    }

    /// Starts a fresh node (not yet a member) on new loopback ports.
    pub async fn add_node(&mut self, id: u64) {
        let raft_listener = bind("127.0.0.1:0").await;
        let api_listener = bind("127.0.0.1:0").await;
        let info = NodeInfo {
            raft_addr: raft_listener.local_addr().unwrap().to_string(),
            api_addr: api_listener.local_addr().unwrap().to_string(),
        };
        self.infos.insert(id, info);
        self.launch(id, raft_listener, api_listener).await;
    }

    async fn launch(&mut self, id: u64, raft_listener: TcpListener, api_listener: TcpListener) {
        let dir = self.root.path().join(format!("node-{id}"));
        let deadline = Instant::now() + Duration::from_millis(WAIT_MS_MAX);
        // The previous incarnation's RocksDB lock goes when its last task lets go of the store.
        let kv = loop {
            match RocksKv::open(&dir) {
                Ok(kv) => break Arc::new(kv),
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("cannot open node {id}'s store: {e}"),
            }
        };
        let info = self.infos[&id].clone();
        let env = NodeEnv {
            ledger_bugs: self.ledger_bugs,
            ..NodeEnv::new(tally_raft_store::system_clock())
        };
        let node = Node::open_in(id, info, kv.clone(), &self.tuning, env)
            .await
            .expect("open node");
        let raft = node.raft.clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(node.serve(raft_listener, api_listener, async move {
            let _ = stopped.await;
        }));
        self.nodes.insert(
            id,
            RunningNode {
                raft,
                kv,
                stop,
                task,
            },
        );
    }

    /// Stops a node; its data stays on disk.
    pub async fn stop(&mut self, id: u64) {
        let node = self.nodes.remove(&id).expect("node is running");
        let _ = node.stop.send(());
        node.task
            .await
            .expect("node task")
            .expect("node stopped cleanly");
    }

    /// Restarts a stopped node on its old addresses and data.
    pub async fn restart(&mut self, id: u64) {
        let info = self.infos[&id].clone();
        let raft_listener = bind(&info.raft_addr).await;
        let api_listener = bind(&info.api_addr).await;
        self.launch(id, raft_listener, api_listener).await;
    }

    pub async fn wait_for_leader(&self, except: Option<u64>) -> u64 {
        let deadline = Instant::now() + Duration::from_millis(WAIT_MS_MAX);
        loop {
            for (id, node) in &self.nodes {
                let metrics = node.raft.metrics().borrow().clone();
                if Some(*id) != except
                    && metrics.current_leader == Some(*id)
                    && metrics.state.is_leader()
                {
                    return *id;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no leader within {WAIT_MS_MAX} ms"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until every running node has applied exactly the leader's last log entry. Metrics
    /// are published asynchronously, so everything is re-read on each poll: a stale "last log
    /// index" would let nodes be compared while one of them is still an entry behind.
    pub async fn wait_converged(&self) -> u64 {
        let deadline = Instant::now() + Duration::from_millis(WAIT_MS_MAX);
        loop {
            let leader = self.wait_for_leader(None).await;
            let last_log = self.nodes[&leader].raft.metrics().borrow().last_log_index;
            let all_applied = self.nodes.values().all(|node| {
                node.raft
                    .metrics()
                    .borrow()
                    .last_applied
                    .map(|log_id| log_id.index)
                    == last_log
            });
            if all_applied {
                if let Some(index) = last_log {
                    return index;
                }
            }
            assert!(
                Instant::now() < deadline,
                "nodes did not converge within {WAIT_MS_MAX} ms"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn ledger(&self, id: u64) -> LedgerClient<Channel> {
        LedgerClient::connect(format!("http://{}", self.infos[&id].api_addr))
            .await
            .expect("connect")
    }

    pub async fn admin(&self, id: u64) -> AdminClient<Channel> {
        AdminClient::connect(format!("http://{}", self.infos[&id].api_addr))
            .await
            .expect("connect")
    }

    pub fn hash_chain(&self, id: u64) -> [u8; 32] {
        use tally_ledger::LedgerRead;
        ledger_view(&*self.nodes[&id].kv).meta().hash_chain
    }

    /// Every running replica has the same hash chain and passes the full audit.
    pub fn assert_same_hash_everywhere(&self) {
        let hashes: Vec<[u8; 32]> = self.nodes.keys().map(|id| self.hash_chain(*id)).collect();
        assert!(
            hashes.windows(2).all(|pair| pair[0] == pair[1]),
            "replicas diverged: {hashes:?}"
        );
        for id in self.nodes.keys() {
            self.audit(*id);
        }
    }

    pub fn audit(&self, id: u64) {
        tally_ledger::audit(&ledger_view(&*self.nodes[&id].kv)).expect("ledger invariants hold");
    }

    pub async fn shutdown(mut self) {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            self.stop(id).await;
        }
    }
}

pub fn id(value: u128) -> Option<pb::Uint128> {
    Some(pb::Uint128 {
        hi: (value >> 64) as u64,
        lo: value as u64,
    })
}

pub fn usd_account(account_id: u128, no_overdraft: bool) -> pb::NewAccount {
    pb::NewAccount {
        id: id(account_id),
        currency: "USD".into(),
        code: 1,
        debits_must_not_exceed_credits: no_overdraft,
        credits_must_not_exceed_debits: false,
        metadata: Default::default(),
        linked: false,
    }
}

pub fn usd_transfer(transfer_id: u128, debit: u128, credit: u128, amount: &str) -> pb::NewTransfer {
    pb::NewTransfer {
        id: id(transfer_id),
        kind: Some(pb::new_transfer::Kind::Single(pb::Single {
            debit_account_id: id(debit),
            credit_account_id: id(credit),
            amount: amount.into(),
            currency: "USD".into(),
        })),
        code: 1,
        metadata: Default::default(),
        linked: false,
    }
}

pub fn codes(response: &pb::BatchResponse) -> Vec<String> {
    response.results.iter().map(|r| r.code.clone()).collect()
}
