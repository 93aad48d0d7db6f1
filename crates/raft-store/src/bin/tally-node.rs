//! `tally-node`: one member of a Tally cluster.
//!
//! Settings come from flags, then `TALLY_*` environment variables, then a TOML file (`--config`),
//! then defaults. `--dev` runs a single node on loopback that initializes itself.
//!
//! Both listeners speak mutual TLS by default (`--ca`, `--cert`, `--key`): a caller without a
//! certificate chained to the cluster CA is refused at the handshake, and each service admits
//! only the roles its certificate names (`node` for Raft, `operator` for admin, `gateway` for
//! the payments door). `--insecure-dev` is plaintext for a development stack.

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use tally_net::tls::{reload_on_hangup, TlsArgs};
use tally_raft_store::kv::RocksKv;
use tally_raft_store::{Node, NodeEnv, NodeInfo, RaftTuning};

const DEV_RAFT_ADDR: &str = "127.0.0.1:7101";
const DEV_API_ADDR: &str = "127.0.0.1:7100";
const DEV_DATA_DIR: &str = "tally-data/dev";
const DEV_BACKUP_DIR: &str = "tally-data/backups";

#[derive(Parser, Debug)]
#[command(
    name = "tally-node",
    version,
    about = "A member of a Tally ledger cluster"
)]
struct Args {
    /// TOML file with any of the settings below (flags and environment win over it).
    #[arg(long, env = "TALLY_CONFIG")]
    config: Option<PathBuf>,
    /// This node's id: unique in the cluster, never reused with an empty data dir.
    #[arg(long, env = "TALLY_NODE_ID")]
    id: Option<u64>,
    /// Where RocksDB keeps this node's log and state.
    #[arg(long, env = "TALLY_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Address peers reach this node's Raft service at (host:port); also where it listens.
    #[arg(long, env = "TALLY_RAFT_ADDR")]
    raft_addr: Option<String>,
    /// Address clients reach the ledger and admin API at (host:port); also where it listens.
    #[arg(long, env = "TALLY_API_ADDR")]
    api_addr: Option<String>,
    #[arg(long, env = "TALLY_HEARTBEAT_MS")]
    heartbeat_ms: Option<u64>,
    #[arg(long, env = "TALLY_ELECTION_TIMEOUT_MS_MIN")]
    election_timeout_ms_min: Option<u64>,
    #[arg(long, env = "TALLY_ELECTION_TIMEOUT_MS_MAX")]
    election_timeout_ms_max: Option<u64>,
    /// Build a snapshot (and purge the log behind it) after this many entries [default: 10000].
    #[arg(long, env = "TALLY_SNAPSHOT_AFTER_ENTRIES")]
    snapshot_after_entries: Option<u64>,
    /// Entries kept in the log behind a snapshot, for lagging followers [default: 1000].
    #[arg(long, env = "TALLY_ENTRIES_KEPT_AFTER_SNAPSHOT")]
    entries_kept_after_snapshot: Option<u64>,
    /// Deadline of each snapshot chunk sent to a peer; the last waits for the peer's whole
    /// install, so allow about 30 s per GiB of state [default: 600000].
    #[arg(long, env = "TALLY_INSTALL_SNAPSHOT_TIMEOUT_MS")]
    install_snapshot_timeout_ms: Option<u64>,
    /// Log format: `text` or `json`.
    #[arg(long, env = "TALLY_LOG_FORMAT", default_value = "text")]
    log_format: String,
    /// The only directory `tally backup` may write into on this machine (backups are refused
    /// without one).
    #[arg(long, env = "TALLY_BACKUP_DIR")]
    backup_dir: Option<PathBuf>,
    /// Single-node development cluster on loopback that initializes itself.
    #[arg(long)]
    dev: bool,
    #[command(flatten)]
    tls: TlsArgs,
}

#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    id: Option<u64>,
    data_dir: Option<PathBuf>,
    raft_addr: Option<String>,
    api_addr: Option<String>,
    heartbeat_ms: Option<u64>,
    election_timeout_ms_min: Option<u64>,
    election_timeout_ms_max: Option<u64>,
    snapshot_after_entries: Option<u64>,
    entries_kept_after_snapshot: Option<u64>,
    install_snapshot_timeout_ms: Option<u64>,
    backup_dir: Option<PathBuf>,
}

struct Settings {
    id: u64,
    data_dir: PathBuf,
    info: NodeInfo,
    tuning: RaftTuning,
    dev: bool,
    backup_dir: Option<PathBuf>,
    tls: TlsArgs,
}

fn settings(args: Args) -> Result<Settings> {
    let file: FileConfig = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("parsing config {}", path.display()))?
        }
        None => FileConfig::default(),
    };
    let dev = args.dev;
    let id = match args.id.or(file.id) {
        Some(0) => bail!("node id 0 is reserved: use 1 or more"),
        Some(id) => id,
        None if dev => 1,
        None => bail!("no node id: pass --id, set TALLY_NODE_ID or `id` in the config file"),
    };
    let pick = |flag: Option<String>,
                file: Option<String>,
                dev_default: &str,
                what: &str|
     -> Result<String> {
        match flag.or(file) {
            Some(addr) => Ok(addr),
            None if dev => Ok(dev_default.to_owned()),
            None => bail!("no {what}: pass --{what} (host:port)"),
        }
    };
    let raft_addr = pick(args.raft_addr, file.raft_addr, DEV_RAFT_ADDR, "raft-addr")?;
    let api_addr = pick(args.api_addr, file.api_addr, DEV_API_ADDR, "api-addr")?;
    let data_dir = match args.data_dir.or(file.data_dir) {
        Some(dir) => dir,
        None if dev => PathBuf::from(DEV_DATA_DIR),
        None => bail!("no data dir: pass --data-dir"),
    };
    let defaults = RaftTuning::default();
    let tuning = RaftTuning {
        heartbeat_ms: args
            .heartbeat_ms
            .or(file.heartbeat_ms)
            .unwrap_or(defaults.heartbeat_ms),
        election_timeout_ms_min: args
            .election_timeout_ms_min
            .or(file.election_timeout_ms_min)
            .unwrap_or(defaults.election_timeout_ms_min),
        election_timeout_ms_max: args
            .election_timeout_ms_max
            .or(file.election_timeout_ms_max)
            .unwrap_or(defaults.election_timeout_ms_max),
        snapshot_after_entries: args
            .snapshot_after_entries
            .or(file.snapshot_after_entries)
            .unwrap_or(defaults.snapshot_after_entries),
        entries_kept_after_snapshot: args
            .entries_kept_after_snapshot
            .or(file.entries_kept_after_snapshot)
            .unwrap_or(defaults.entries_kept_after_snapshot),
        install_snapshot_timeout_ms: args
            .install_snapshot_timeout_ms
            .or(file.install_snapshot_timeout_ms)
            .unwrap_or(defaults.install_snapshot_timeout_ms),
    };
    Ok(Settings {
        id,
        data_dir,
        info: NodeInfo {
            raft_addr,
            api_addr,
        },
        tuning,
        dev,
        backup_dir: args
            .backup_dir
            .or(file.backup_dir)
            .or_else(|| dev.then(|| PathBuf::from(DEV_BACKUP_DIR))),
        tls: args.tls,
    })
}

fn init_logging(format: &str) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        "text" => builder.init(),
        "json" => builder.json().init(),
        other => bail!("unknown log format {other:?}: use text or json"),
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    init_logging(&args.log_format)?;
    let settings = settings(args)?;
    let kv = Arc::new(
        RocksKv::open(&settings.data_dir)
            .with_context(|| format!("opening data dir {}", settings.data_dir.display()))?,
    );
    let raft_listener = tokio::net::TcpListener::bind(&settings.info.raft_addr)
        .await
        .with_context(|| format!("binding raft address {}", settings.info.raft_addr))?;
    let api_listener = tokio::net::TcpListener::bind(&settings.info.api_addr)
        .await
        .with_context(|| format!("binding API address {}", settings.info.api_addr))?;
    let security = settings
        .tls
        .server_security(true)
        .context("setting up TLS for the node's listeners")?;
    let dialer = settings
        .tls
        .dialer(tally_net::Dialer::tcp())
        .context("setting up TLS to the other nodes")?;
    reload_on_hangup(&security);
    let env = NodeEnv {
        dialer: Some(dialer),
        security,
        backup_root: settings.backup_dir.clone(),
        ..NodeEnv::new(tally_raft_store::system_clock())
    };
    let node = Node::open_in(
        settings.id,
        settings.info.clone(),
        kv,
        &settings.tuning,
        env,
    )
    .await?;
    tracing::info!(id = settings.id, raft = %settings.info.raft_addr, api = %settings.info.api_addr, data = %settings.data_dir.display(), tls = !settings.tls.insecure_dev, "node started");
    if settings.dev && !node.raft.is_initialized().await? {
        node.raft
            .initialize(BTreeMap::from([(settings.id, settings.info.clone())]))
            .await
            .context("initializing the dev cluster")?;
        tracing::info!("dev cluster initialized");
    }
    node.serve(raft_listener, api_listener, shutdown_signal())
        .await?;
    Ok(())
}
