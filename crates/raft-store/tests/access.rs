//! Who may call what on a `tally-node` running mutual TLS, checked from outside the process: the
//! handshake refuses callers without a certificate of the cluster CA, and each service admits
//! only the roles it is for (Raft: node; ledger: client, gateway, operator; payments door:
//! gateway; admin: operator). `Backup` writes only under `--backup-dir`.

mod processes;

use processes::{initialize, leader, usd_account, Launch, Nodes, Pki};
use tally_net::tls::Role;
use tally_net::Dialer;
use tally_proto::admin::admin_client::AdminClient;
use tally_proto::admin::{BackupRequest, StatusRequest};
use tally_proto::ledger::ledger_client::LedgerClient as LedgerRpc;
use tally_proto::ledger::CreateAccountsRequest;
use tally_proto::node::payments_ledger_client::PaymentsLedgerClient;
use tally_proto::node::EncodedQuery;
use tally_proto::raft::raft_client::RaftClient;
use tally_proto::raft::RaftMessage;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

fn channel(dialer: &Dialer, addr: &str) -> Channel {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(5));
    tally_proto::dial::channel(dialer, endpoint)
}

/// The gRPC code of a ledger call (`Ok` when it was served).
async fn ledger_call(dialer: &Dialer, addr: &str) -> Result<(), Status> {
    let request = CreateAccountsRequest {
        accounts: vec![usd_account(u128::from(rand_id()))],
    };
    match LedgerRpc::new(channel(dialer, addr))
        .create_accounts(request)
        .await
    {
        Ok(_) => Ok(()),
        Err(status) => Err(status),
    }
}

fn rand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1_000);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

async fn admin_call(dialer: &Dialer, addr: &str) -> Result<(), Status> {
    match AdminClient::new(channel(dialer, addr))
        .status(StatusRequest {})
        .await
    {
        Ok(_) => Ok(()),
        Err(status) => Err(status),
    }
}

/// A payments-door query. Its body is not a valid query, so a caller that gets past the
/// authorization is answered INVALID_ARGUMENT, never PERMISSION_DENIED.
async fn door_call(dialer: &Dialer, addr: &str) -> Result<(), Status> {
    let query = EncodedQuery {
        encoding: 0,
        query: vec![0xff; 3],
    };
    match PaymentsLedgerClient::new(channel(dialer, addr))
        .query(query)
        .await
    {
        Ok(_) => Ok(()),
        Err(status) => Err(status),
    }
}

async fn raft_call(dialer: &Dialer, addr: &str) -> Result<(), Status> {
    let message = RaftMessage {
        payload: vec![0xff; 3],
    };
    match RaftClient::new(channel(dialer, addr)).vote(message).await {
        Ok(_) => Ok(()),
        Err(status) => Err(status),
    }
}

fn code(outcome: Result<(), Status>) -> Code {
    outcome.map_or_else(|status| status.code(), |()| Code::Ok)
}

/// A call that never reached a service: the client's own transport failed (the server closed
/// the connection at the TLS handshake), so no service answered, not even with a refusal.
fn assert_refused_at_connection(outcome: Result<(), Status>) {
    let status = outcome.expect_err("a stranger was served");
    let transport = std::error::Error::source(&status)
        .is_some_and(|source| source.is::<tonic::transport::Error>());
    assert!(transport, "expected a failed connection, got {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_is_refused_where_it_does_not_belong_and_strangers_at_the_handshake() {
    let dir = tempfile::tempdir().expect("tempdir");
    let backups = dir.path().join("backups");
    std::fs::create_dir_all(&backups).expect("backup dir");
    let pki = Pki::new(dir.path(), "cluster");
    let mut nodes = Nodes::with_pki(dir.path(), 1, pki);
    nodes.start_with(
        1,
        &Launch {
            args: vec!["--backup-dir".to_owned(), backups.display().to_string()],
            ..Launch::default()
        },
    );
    let operator = processes::client(&nodes).await;
    initialize(&operator, &nodes, nodes.members()).await;
    leader(&operator, &nodes).await;
    let api = nodes.api[&1].clone();
    let raft = nodes.raft[&1].clone();

    let as_operator = nodes.dialer(Role::Operator);
    let as_gateway = nodes.dialer(Role::Gateway);
    let as_client = nodes.dialer(Role::Client);
    let as_node = nodes.dialer(Role::Node);

    // The ledger API: clients, gateways and operators; not another node.
    assert_eq!(code(ledger_call(&as_client, &api).await), Code::Ok);
    assert_eq!(code(ledger_call(&as_gateway, &api).await), Code::Ok);
    assert_eq!(code(ledger_call(&as_operator, &api).await), Code::Ok);
    assert_eq!(
        code(ledger_call(&as_node, &api).await),
        Code::PermissionDenied
    );

    // The admin API: operators only.
    assert_eq!(code(admin_call(&as_operator, &api).await), Code::Ok);
    assert_eq!(
        code(admin_call(&as_gateway, &api).await),
        Code::PermissionDenied
    );
    assert_eq!(
        code(admin_call(&as_client, &api).await),
        Code::PermissionDenied
    );
    assert_eq!(
        code(admin_call(&as_node, &api).await),
        Code::PermissionDenied
    );

    // The payments door: gateways only (past the check, the garbage query is refused).
    assert_eq!(
        code(door_call(&as_gateway, &api).await),
        Code::InvalidArgument
    );
    assert_eq!(
        code(door_call(&as_client, &api).await),
        Code::PermissionDenied
    );
    assert_eq!(
        code(door_call(&as_operator, &api).await),
        Code::PermissionDenied
    );

    // The Raft service: nodes only (past the check, the garbage message is refused).
    assert_ne!(
        code(raft_call(&as_node, &raft).await),
        Code::PermissionDenied
    );
    assert_ne!(code(raft_call(&as_node, &raft).await), Code::Unavailable);
    assert_eq!(
        code(raft_call(&as_operator, &raft).await),
        Code::PermissionDenied
    );
    assert_eq!(
        code(raft_call(&as_gateway, &raft).await),
        Code::PermissionDenied
    );

    // Strangers never get to a service: plaintext, and a certificate of another CA, fail at
    // the connection.
    let plaintext = Dialer::tcp();
    assert_refused_at_connection(ledger_call(&plaintext, &api).await);
    assert_refused_at_connection(admin_call(&plaintext, &api).await);
    let other_ca = Pki::new(dir.path(), "other").dialer(Role::Operator, "mallory");
    assert_refused_at_connection(admin_call(&other_ca, &api).await);
    assert_refused_at_connection(ledger_call(&other_ca, &api).await);

    // Backups: only under --backup-dir.
    let mut admin = AdminClient::new(channel(&as_operator, &api));
    let inside = admin
        .backup(BackupRequest {
            dir: "nightly".to_owned(),
        })
        .await
        .expect("a backup under --backup-dir");
    assert_eq!(
        inside.get_ref().dir,
        backups.join("nightly").display().to_string()
    );
    assert!(backups.join("nightly").is_dir());
    for outside in [
        dir.path().join("elsewhere").display().to_string(),
        "../escape".to_owned(),
    ] {
        let refusal = admin
            .backup(BackupRequest {
                dir: outside.clone(),
            })
            .await
            .expect_err("a backup outside --backup-dir");
        assert_eq!(refusal.code(), Code::PermissionDenied, "{outside}");
    }
    assert!(!dir.path().join("elsewhere").exists());
    assert!(!dir.path().join("escape").exists());
}
