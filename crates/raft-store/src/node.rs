//! A Tally node: one Raft member with its store, group-commit batcher, read gate and the gRPC
//! servers for Raft traffic and for clients. `Node::open` builds it; `Node::serve` takes listeners
//! and a shutdown future, so the binary and the tests start it the same way.

use crate::batcher::{Batcher, Clock};
use crate::kv::{off_workers, Kv};
use crate::log_store::{DiskLatency, LogFault, LogStore};
use crate::network::{Network, RaftRpcServer};
use crate::reads::ReadGate;
use crate::service::access::{self, Allow};
use crate::service::{AdminService, LedgerService, PaymentsService};
use crate::snapshot::recover_interrupted_install;
use crate::state_machine::StateMachine;
use crate::store_format::{check_or_stamp, StoreFormatError};
use crate::supervisor::Supervisor;
use crate::timekeeper::Timekeeper;
use crate::types::{NodeId, NodeInfo, Raft};
use openraft::{Config, SnapshotPolicy};
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use tally_ledger::PlantedBugs;
use tally_net::{serve, Protocols, ServerSecurity};
use tally_proto::dial::Dialer;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::{Stream, StreamExt};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Routes;

/// Timing and retention of one node. Defaults suit a LAN or loopback cluster.
#[derive(Clone, Debug)]
pub struct RaftTuning {
    /// Also the deadline of each append-entries call: a follower's fsync plus the round trip must
    /// fit in it.
    pub heartbeat_ms: u64,
    pub election_timeout_ms_min: u64,
    pub election_timeout_ms_max: u64,
    /// Build a snapshot after this many entries since the last one.
    pub snapshot_after_entries: u64,
    /// Entries kept behind the snapshot, so a briefly lagging follower catches up from the log.
    pub entries_kept_after_snapshot: u64,
    /// Deadline of each snapshot chunk sent to a peer. The last chunk is answered only once the
    /// peer has verified, audited and installed the whole snapshot, so this must exceed the
    /// install time of the largest state (about 30 s per GiB on a small machine).
    pub install_snapshot_timeout_ms: u64,
}

impl Default for RaftTuning {
    fn default() -> Self {
        RaftTuning {
            heartbeat_ms: 100,
            election_timeout_ms_min: 400,
            election_timeout_ms_max: 800,
            snapshot_after_entries: 10_000,
            entries_kept_after_snapshot: 1_000,
            install_snapshot_timeout_ms: 600_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("invalid raft configuration: {0}")]
    Config(String),
    #[error("raft failed: {0}")]
    Raft(String),
    #[error("gRPC server failed: {0}")]
    Serve(String),
    #[error("node failed: {0}")]
    Failed(String),
    #[error("cannot open the data directory: {0}")]
    StoreFormat(#[from] StoreFormatError),
}

pub struct Node<K: Kv> {
    pub id: NodeId,
    pub info: NodeInfo,
    pub raft: Raft,
    pub kv: Arc<K>,
    pub batcher: Batcher,
    pub reads: ReadGate,
    /// Commands whose apply panicked (a bug), contained to the command (admin status).
    pub apply_faults: Arc<AtomicU64>,
    /// Fails the node when one of its background tasks panics or Raft stops on its own.
    pub supervisor: Supervisor,
    /// Expires holds and ends hold periods on time on the leader.
    pub timekeeper: Timekeeper<K>,
    /// How the listeners secure connections (from `NodeEnv`).
    pub security: ServerSecurity,
    /// Where `Backup` may write (from `NodeEnv`).
    pub backup_root: Option<PathBuf>,
}

/// Fails the node when its Raft core stops without being asked to (a storage error or a panic
/// inside openraft): the process must exit and be restarted, not serve without a Raft.
fn watch_raft_core(raft: Raft, supervisor: &Supervisor) {
    let on_stop = supervisor.clone();
    supervisor.spawn("raft core watch", async move {
        let mut metrics = raft.metrics();
        while metrics.changed().await.is_ok() {}
        on_stop.fail("the Raft core stopped".to_string());
    });
}

/// What a node takes from its surroundings. Production uses the system clock and OS sockets; a
/// simulation supplies its own clock and sockets, and tests may plant a durability bug.
#[derive(Clone)]
pub struct NodeEnv {
    /// The leader's source of entry stamps (Unix ns).
    pub clock: Clock,
    /// How Raft connections to peers are made; `None` is OS TCP.
    pub dialer: Option<Dialer>,
    /// A planted log-store bug, for tests that prove the checkers find it.
    pub log_fault: LogFault,
    /// Planted ledger bugs, likewise.
    pub ledger_bugs: PlantedBugs,
    /// Extra latency of every synced write (a simulated slow disk); `None` in production.
    pub disk_latency: Option<DiskLatency>,
    /// How both listeners secure connections. Production: mutual TLS with the cluster CA, so
    /// every call carries the caller's role; `InsecureDev` only for dev stacks and simulations.
    pub security: ServerSecurity,
    /// The only directory `Backup` may write under; `None` refuses every backup.
    pub backup_root: Option<PathBuf>,
}

impl NodeEnv {
    pub fn new(clock: Clock) -> Self {
        NodeEnv {
            clock,
            dialer: None,
            log_fault: LogFault::None,
            ledger_bugs: PlantedBugs::NONE,
            disk_latency: None,
            security: ServerSecurity::InsecureDev,
            backup_root: None,
        }
    }
}

impl<K: Kv> Node<K> {
    pub async fn open(
        id: NodeId,
        info: NodeInfo,
        kv: Arc<K>,
        tuning: &RaftTuning,
        clock: Clock,
    ) -> Result<Self, NodeError> {
        Self::open_in(id, info, kv, tuning, NodeEnv::new(clock)).await
    }

    /// [`Node::open`] in the surroundings `env` (simulations and fault tests).
    pub async fn open_in(
        id: NodeId,
        info: NodeInfo,
        kv: Arc<K>,
        tuning: &RaftTuning,
        env: NodeEnv,
    ) -> Result<Self, NodeError> {
        check_or_stamp(&*kv)?;
        let recovering = kv.clone();
        off_workers(&*kv, move || recover_interrupted_install(&*recovering))
            .await
            .map_err(|e| {
                NodeError::Failed(format!(
                    "cannot finish an interrupted snapshot install: {e}"
                ))
            })?;
        let config = Config {
            cluster_name: "tally".to_owned(),
            heartbeat_interval: tuning.heartbeat_ms,
            election_timeout_min: tuning.election_timeout_ms_min,
            election_timeout_max: tuning.election_timeout_ms_max,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(tuning.snapshot_after_entries),
            max_in_snapshot_log_to_keep: tuning.entries_kept_after_snapshot,
            // Entries are whole ledger batches (up to 8,190 commands): send few per message.
            max_payload_entries: 16,
            install_snapshot_timeout: tuning.install_snapshot_timeout_ms,
            ..Config::default()
        }
        .validate()
        .map_err(|e| NodeError::Config(e.to_string()))?;
        let state_machine = StateMachine::with_bugs(kv.clone(), env.ledger_bugs);
        let apply_faults = state_machine.fault_counter();
        let installs = state_machine.install_watch();
        let raft = Raft::new(
            id,
            Arc::new(config),
            Network::new(id, env.dialer.clone()),
            LogStore::with_fault(kv.clone(), env.log_fault)
                .with_disk_latency(env.disk_latency)
                .with_snapshot_installs(installs, tuning.install_snapshot_timeout_ms),
            state_machine,
        )
        .await
        .map_err(|e| NodeError::Raft(e.to_string()))?;
        let supervisor = Supervisor::default();
        let batcher = Batcher::spawn(raft.clone(), kv.clone(), env.clock.clone(), &supervisor);
        let timekeeper = Timekeeper::spawn(
            raft.clone(),
            kv.clone(),
            batcher.clone(),
            env.clock,
            &supervisor,
        );
        let reads = ReadGate::spawn(raft.clone(), &supervisor);
        watch_raft_core(raft.clone(), &supervisor);
        Ok(Node {
            id,
            info,
            raft,
            kv,
            batcher,
            reads,
            apply_faults,
            supervisor,
            timekeeper,
            security: env.security,
            backup_root: env.backup_root,
        })
    }

    /// Serves Raft peers on `raft_listener` and clients on `api_listener` until `shutdown`
    /// resolves, then stops Raft.
    pub async fn serve(
        self,
        raft_listener: TcpListener,
        api_listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), NodeError> {
        // Small Raft and client messages must not wait for Nagle's algorithm.
        let nodelay = |stream: std::io::Result<tokio::net::TcpStream>| {
            stream.inspect(|stream| {
                let _ = stream.set_nodelay(true);
            })
        };
        self.serve_incoming(
            TcpListenerStream::new(raft_listener).map(nodelay),
            TcpListenerStream::new(api_listener).map(nodelay),
            shutdown,
        )
        .await
    }

    /// [`Node::serve`] on any stream of accepted connections (a simulation's sockets).
    pub async fn serve_incoming<R, RIo, A, AIo, E>(
        self,
        raft_incoming: R,
        api_incoming: A,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), NodeError>
    where
        R: Stream<Item = Result<RIo, E>>,
        RIo: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        A: Stream<Item = Result<AIo, E>>,
        AIo: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        E: std::fmt::Display,
    {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let raft_routes = Routes::new(InterceptedService::new(
            RaftRpcServer::new(self.raft.clone()).into_service(),
            Allow {
                service: "the Raft service",
                roles: access::RAFT,
            },
        ));
        let ledger = LedgerService::new(
            self.kv.clone(),
            self.batcher.clone(),
            self.reads.clone(),
            self.timekeeper.clone(),
        );
        let payments =
            PaymentsService::new(self.kv.clone(), self.batcher.clone(), self.reads.clone());
        let admin = AdminService::new(
            self.id,
            self.raft.clone(),
            self.kv.clone(),
            self.apply_faults.clone(),
            self.backup_root.clone(),
        );
        let api_routes = Routes::new(InterceptedService::new(
            ledger.into_service(),
            Allow {
                service: "the ledger API",
                roles: access::LEDGER,
            },
        ))
        .add_service(InterceptedService::new(
            payments.into_service(),
            Allow {
                service: "the payments door",
                roles: access::PAYMENTS_DOOR,
            },
        ))
        .add_service(InterceptedService::new(
            admin.into_service(),
            Allow {
                service: "the admin API",
                roles: access::ADMIN,
            },
        ));
        // The routes go through `tally_net::serve` rather than tonic's server: no wall-clock
        // `Date` header, so a simulated run of one seed sends the same bytes every time.
        let raft_server = serve(
            raft_routes,
            Protocols::Http2Only,
            self.security.clone(),
            raft_incoming,
            stop_rx.clone(),
        );
        let api_server = serve(
            api_routes,
            Protocols::Http2Only,
            self.security.clone(),
            api_incoming,
            stop_rx,
        );
        let raft = self.raft.clone();
        let supervisor = self.supervisor.clone();
        let stopper = async move {
            let failure = tokio::select! {
                () = shutdown => None,
                reason = supervisor.failed() => Some(reason),
            };
            let _ = stop_tx.send(true);
            failure
        };
        let ((), (), failure) = tokio::join!(raft_server, api_server, stopper);
        self.supervisor.stopping();
        // A failed node stops serving first, so clients move to the other replicas; its Raft
        // may be gone already, which makes this shutdown's error moot.
        let stopped = raft.shutdown().await;
        if let Some(reason) = failure {
            return Err(NodeError::Failed(reason));
        }
        stopped.map_err(|e| NodeError::Raft(e.to_string()))
    }
}
