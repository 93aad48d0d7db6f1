//! Versioned formats: a node meeting data or messages of a format version it does not read
//! refuses them, naming both versions, at start-up or on that RPC, and never misreads them.

mod support;

use support::{codes, usd_account, usd_transfer, Cluster, WAIT_MS_MAX};
use tally_proto::convert::ERROR_CODE_METADATA_KEY;
use tally_proto::ledger as pb;
use tally_proto::raft::raft_client::RaftClient;
use tally_proto::raft::RaftMessage;
use tally_raft_store::kv::{Cf, Durability, Kv, KvRead, RocksKv, WriteBatch};
use tally_raft_store::{store_format, Node, NodeError, RaftTuning, FORMAT_VERSION};

const FUTURE: u8 = FORMAT_VERSION + 1;

fn names_both_versions(text: &str) {
    assert!(
        text.contains(&format!("format version {FUTURE}")),
        "the future version is not named: {text}"
    );
    assert!(
        text.contains(&format!("reads format version {FORMAT_VERSION}")),
        "this build's version is not named: {text}"
    );
}

/// Creates accounts 1 and 2 (once) and moves 1.00 USD between them under `transfer_id`.
async fn write_one_transfer(cluster: &Cluster, leader: u64, transfer_id: u128) {
    let mut ledger = cluster.ledger(leader).await;
    let accounts = ledger
        .create_accounts(pb::CreateAccountsRequest {
            accounts: vec![usd_account(1, false), usd_account(2, false)],
        })
        .await
        .expect("create accounts")
        .into_inner();
    for code in codes(&accounts) {
        assert!(code == "ok" || code == "exists", "{code}");
    }
    let transfers = ledger
        .create_transfers(pb::CreateTransfersRequest {
            transfers: vec![usd_transfer(transfer_id, 1, 2, "1.00")],
        })
        .await
        .expect("create transfer")
        .into_inner();
    assert_eq!(codes(&transfers), vec!["ok"]);
}

/// Opens node 1's stopped store, lets `damage` change it, and tries to start the node on it.
async fn start_on_changed_store(
    cluster: &Cluster,
    damage: impl FnOnce(&RocksKv),
) -> Result<(), NodeError> {
    let dir = cluster.root.path().join("node-1");
    // The stopped node's last task may still hold RocksDB's lock for a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(WAIT_MS_MAX);
    let kv = loop {
        match RocksKv::open(&dir) {
            Ok(kv) => break std::sync::Arc::new(kv),
            Err(e) => {
                assert!(std::time::Instant::now() < deadline, "cannot reopen: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    };
    damage(&kv);
    let info = cluster.infos[&1].clone();
    let clock = tally_raft_store::system_clock();
    Node::open(1, info, kv, &cluster.tuning, clock)
        .await
        .map(|_node| ())
}

#[tokio::test]
async fn a_data_directory_stamped_with_a_future_format_is_refused_at_start_up() {
    let mut cluster = Cluster::start(1, RaftTuning::default()).await;
    write_one_transfer(&cluster, 1, 10).await;
    cluster.stop(1).await;
    let refused = start_on_changed_store(&cluster, |kv| {
        store_format::stamp_for_tests(kv, FUTURE).expect("restamp")
    })
    .await;
    let error = refused.expect_err("a store of a future format must not open");
    assert!(matches!(error, NodeError::StoreFormat(_)), "{error}");
    names_both_versions(&error.to_string());
}

#[tokio::test]
async fn a_row_of_a_future_format_is_refused_at_start_up_not_misread() {
    let mut cluster = Cluster::start(1, RaftTuning::default()).await;
    write_one_transfer(&cluster, 1, 10).await;
    cluster.stop(1).await;
    // The last-applied row is read when Raft starts; written by a newer release, it must stop
    // the start with both versions named (a row of the ledger's state read later raises the
    // same error as a store failure, which stops the replica).
    let refused = start_on_changed_store(&cluster, |kv| {
        let mut row = kv
            .get(Cf::State, b"m/applied")
            .expect("read")
            .expect("a used store has a last-applied row");
        assert_eq!(row[0], FORMAT_VERSION);
        row[0] = FUTURE;
        let mut batch = WriteBatch::default();
        batch.put(Cf::State, b"m/applied".to_vec(), row);
        kv.write(batch, Durability::Synced).expect("write");
    })
    .await;
    let error = refused.expect_err("a row of a future format must not be read");
    names_both_versions(&error.to_string());
}

#[tokio::test]
async fn a_raft_message_of_a_future_format_is_refused_on_that_rpc_and_the_node_goes_on() {
    let cluster = Cluster::start(1, RaftTuning::default()).await;
    let raft_addr = cluster.infos[&1].raft_addr.clone();
    let mut peer = tokio::time::timeout(
        std::time::Duration::from_millis(WAIT_MS_MAX),
        RaftClient::connect(format!("http://{raft_addr}")),
    )
    .await
    .expect("connect in time")
    .expect("connect");
    for payload in [vec![FUTURE, 0, 0, 0], vec![FUTURE]] {
        let status = peer
            .append_entries(RaftMessage { payload })
            .await
            .expect_err("a future-format message must be refused");
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(
            status
                .metadata()
                .get(ERROR_CODE_METADATA_KEY)
                .and_then(|v| v.to_str().ok()),
            Some("format_unsupported")
        );
        names_both_versions(status.message());
    }
    // Nothing of it reached Raft: the node still applies.
    write_one_transfer(&cluster, 1, 11).await;
    cluster.assert_same_hash_everywhere();
    cluster.shutdown().await;
}
