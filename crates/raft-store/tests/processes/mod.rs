//! Tally nodes as separate `tally-node` processes on loopback: start (optionally under a
//! memory cap), signal, kill, stop; and a client that follows the leader. Plaintext
//! (`--insecure-dev`) unless made with [`Nodes::with_pki`], which runs them on mutual TLS.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tally_net::tls::{CertAuthority, ClientTls, ClientTlsPem, Identity, PemSource, Role};
use tally_net::Dialer;
use tally_proto::admin::{InitializeRequest, Member, StatusRequest};
use tally_proto::client::{ClientConfig, LedgerClient};
use tally_proto::ledger as pb;

/// Every wait of these tests is bounded by this.
pub const WAIT_MS_MAX: u64 = 30_000;

pub fn id(value: u128) -> Option<pb::Uint128> {
    Some(pb::Uint128 {
        hi: (value >> 64) as u64,
        lo: value as u64,
    })
}

/// A plain USD account (no balance constraints) with id `account`.
pub fn usd_account(account: u128) -> pb::NewAccount {
    pb::NewAccount {
        id: id(account),
        currency: "USD".into(),
        code: 1,
        debits_must_not_exceed_credits: false,
        credits_must_not_exceed_debits: false,
        metadata: Default::default(),
        linked: false,
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

/// A CA and certificates issued by it, written under a directory.
pub struct Pki {
    pub dir: PathBuf,
    pub ca: CertAuthority,
}

impl Pki {
    pub fn new(dir: &Path, name: &str) -> Pki {
        let dir = dir.join(format!("pki-{name}"));
        std::fs::create_dir_all(&dir).expect("pki dir");
        let ca = CertAuthority::generate(name, 2).expect("CA");
        std::fs::write(dir.join("ca.pem"), ca.cert_pem()).expect("write CA");
        Pki { dir, ca }
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// Issues a certificate for `role`-`name` valid on 127.0.0.1 and writes it; returns the
    /// certificate and key paths.
    pub fn issue(&self, role: Role, name: &str) -> (PathBuf, PathBuf) {
        let identity = Identity::new(role, name).expect("identity");
        let issued = self
            .ca
            .issue(Some(&identity), &["127.0.0.1".to_owned()], 2)
            .expect("issue");
        let cert = self.dir.join(format!("{identity}.pem"));
        let key = self.dir.join(format!("{identity}.key"));
        std::fs::write(&cert, &issued.cert_pem).expect("write cert");
        std::fs::write(&key, issued.key_pem.expose()).expect("write key");
        (cert, key)
    }

    /// A dialer that trusts this CA and shows a fresh `role`-`name` certificate.
    pub fn dialer(&self, role: Role, name: &str) -> Dialer {
        let (cert, key) = self.issue(role, name);
        let tls = ClientTls::from_pem(&ClientTlsPem {
            ca: PemSource::read(&self.ca_path()).expect("CA"),
            identity: Some((
                PemSource::read(&cert).expect("cert"),
                PemSource::read(&key).expect("key"),
            )),
        })
        .expect("client TLS");
        Dialer::tcp().with_tls(tls)
    }
}

pub struct Nodes {
    dir: PathBuf,
    /// `None`: plaintext (`--insecure-dev`).
    pub pki: Option<Pki>,
    pub raft: BTreeMap<u64, String>,
    pub api: BTreeMap<u64, String>,
    pub running: BTreeMap<u64, Child>,
    count: u64,
}

/// How to start one node beyond its id, directory and addresses.
#[derive(Clone, Debug, Default)]
pub struct Launch {
    /// More `tally-node` flags.
    pub args: Vec<String>,
    /// A cap on the process's data memory (`prlimit --data`): heap and private writable
    /// mappings. A node that needs more fails to allocate and dies.
    pub data_limit_bytes: Option<u64>,
}

impl Nodes {
    pub fn new(dir: &Path, count: u64) -> Nodes {
        let mut raft = BTreeMap::new();
        let mut api = BTreeMap::new();
        for node in 1..=count {
            raft.insert(node, format!("127.0.0.1:{}", free_port()));
            api.insert(node, format!("127.0.0.1:{}", free_port()));
        }
        Nodes {
            dir: dir.to_path_buf(),
            pki: None,
            raft,
            api,
            running: BTreeMap::new(),
            count,
        }
    }

    /// Nodes on mutual TLS with certificates from `pki`.
    pub fn with_pki(dir: &Path, count: u64, pki: Pki) -> Nodes {
        let mut nodes = Nodes::new(dir, count);
        nodes.pki = Some(pki);
        nodes
    }

    /// The flags that secure a node's listeners.
    fn security_args(&self, node: u64) -> Vec<String> {
        match &self.pki {
            None => vec!["--insecure-dev".to_owned()],
            Some(pki) => {
                let (cert, key) = pki.issue(Role::Node, &node.to_string());
                vec![
                    "--ca".to_owned(),
                    pki.ca_path().display().to_string(),
                    "--cert".to_owned(),
                    cert.display().to_string(),
                    "--key".to_owned(),
                    key.display().to_string(),
                ]
            }
        }
    }

    /// How a caller holding `role` reaches the nodes.
    pub fn dialer(&self, role: Role) -> Dialer {
        match &self.pki {
            None => Dialer::tcp(),
            Some(pki) => pki.dialer(role, "test"),
        }
    }

    pub fn start(&mut self, node: u64) {
        self.start_with(node, &Launch::default());
    }

    pub fn data_dir(&self, node: u64) -> PathBuf {
        self.dir.join(format!("node-{node}"))
    }

    pub fn start_with(&mut self, node: u64, launch: &Launch) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("node-{node}.log")))
            .expect("node log");
        let binary = env!("CARGO_BIN_EXE_tally-node");
        let mut command = match launch.data_limit_bytes {
            Some(bytes) => {
                let mut prlimit = Command::new("prlimit");
                prlimit.arg(format!("--data={bytes}")).arg("--").arg(binary);
                prlimit
            }
            None => Command::new(binary),
        };
        let child = command
            .arg("--id")
            .arg(node.to_string())
            .arg("--data-dir")
            .arg(self.data_dir(node))
            .arg("--raft-addr")
            .arg(&self.raft[&node])
            .arg("--api-addr")
            .arg(&self.api[&node])
            .args(self.security_args(node))
            .args(&launch.args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("tally-node starts");
        self.running.insert(node, child);
    }

    pub fn signal(&self, node: u64, signal: &str) {
        let pid = self.running[&node].id();
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// `kill -9`: the process dies at once, without closing anything.
    pub fn kill(&mut self, node: u64) {
        let mut child = self.running.remove(&node).expect("node runs");
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
    }

    /// SIGTERM, and wait (bounded) for the node to stop by itself.
    pub fn stop(&mut self, node: u64) {
        self.signal(node, "TERM");
        let mut child = self.running.remove(&node).expect("node runs");
        let deadline = Instant::now() + Duration::from_millis(WAIT_MS_MAX);
        loop {
            if child.try_wait().expect("wait").is_some() {
                return;
            }
            if Instant::now() > deadline {
                child.kill().expect("SIGKILL after a stuck stop");
                child.wait().expect("reaped");
                panic!("node {node} did not stop within {WAIT_MS_MAX} ms of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.api.values().cloned().collect()
    }

    pub fn members(&self) -> Vec<Member> {
        (1..=self.count)
            .map(|node| Member {
                node_id: node,
                raft_addr: self.raft[&node].clone(),
                api_addr: self.api[&node].clone(),
                voter: true,
            })
            .collect()
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in self.running.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A client with the operator's role (admin and ledger API).
pub async fn client(nodes: &Nodes) -> LedgerClient {
    client_as(nodes, Role::Operator)
}

/// A client holding `role` (plaintext clusters ignore it).
pub fn client_as(nodes: &Nodes, role: Role) -> LedgerClient {
    let config = ClientConfig {
        rpc_timeout_ms: 2_000,
        request_timeout_ms: 8_000,
        ..ClientConfig::default()
    };
    LedgerClient::connect_lazy_with_dialer(nodes.endpoints(), config, nodes.dialer(role))
        .expect("client")
}

pub async fn leader(client: &LedgerClient, nodes: &Nodes) -> u64 {
    let deadline = Instant::now() + Duration::from_millis(WAIT_MS_MAX);
    loop {
        for node in nodes.running.keys() {
            let endpoint = nodes.api[node].clone();
            if let Ok(mut admin) = client.node_admin(&endpoint).await {
                if let Ok(status) = admin.status(StatusRequest {}).await {
                    if status.get_ref().state == "leader" {
                        return *node;
                    }
                }
            }
        }
        assert!(Instant::now() < deadline, "no leader");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Nodes {
    /// The node's peak resident memory so far (`VmHWM`), in bytes.
    pub fn peak_rss_bytes(&self, node: u64) -> u64 {
        let pid = self.running[&node].id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/<pid>/status");
        kib * 1024
    }

    /// Whether the node's process is still running.
    pub fn alive(&mut self, node: u64) -> bool {
        self.running
            .get_mut(&node)
            .is_some_and(|child| child.try_wait().expect("wait").is_none())
    }
}

impl Nodes {
    /// The last `lines` lines of the node's log, for failure messages.
    pub fn log_tail(&self, node: u64, lines: usize) -> String {
        let log =
            std::fs::read_to_string(self.dir.join(format!("node-{node}.log"))).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// Initializes the cluster through node 1 with `members`, retrying (bounded) until node 1
/// answers.
pub async fn initialize(client: &LedgerClient, nodes: &Nodes, members: Vec<Member>) {
    let deadline = Instant::now() + Duration::from_millis(WAIT_MS_MAX);
    loop {
        if let Ok(mut first) = client.node_admin(&nodes.api[&1]).await {
            let members = members.clone();
            if first
                .initialize(InitializeRequest { members })
                .await
                .is_ok()
            {
                return;
            }
        }
        assert!(Instant::now() < deadline, "cluster never initialized");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
