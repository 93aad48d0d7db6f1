//! Three `tally-node` processes (RocksDB on disk, gRPC over loopback) under `kill -9` of a
//! majority, `SIGSTOP` of the leader and rolling restarts, while clients write transfers and
//! read every account at once throughout. Checked: every read's balances sum to zero, no
//! acknowledged transfer is lost, writes are acknowledged again within 5 s of the majority
//! returning, and afterwards every replica has the same hash chain.

mod processes;

use processes::{client, id, initialize, leader, usd_account, Nodes, WAIT_MS_MAX};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tally_proto::admin::StatusRequest;
use tally_proto::client::LedgerClient;
use tally_proto::ledger as pb;

const NODES: u64 = 3;
const ACCOUNTS: u128 = 12;
/// Writes must be acknowledged again this soon after a lost majority returns.
const RECOVERY_MS_MAX: u128 = 5_000;

/// Net posted balance in minor units of a "12.34"-style decimal (two decimals, USD).
fn minor(decimal: &str) -> i128 {
    let negative = decimal.starts_with('-');
    let digits: String = decimal.chars().filter(char::is_ascii_digit).collect();
    let value: i128 = digits.parse().expect("a decimal amount");
    if negative {
        -value
    } else {
        value
    }
}

#[derive(Default)]
struct Outcomes {
    /// Transfer ids a client was told `ok` or `exists` for, with their amount in minor units.
    acknowledged: BTreeMap<u128, i128>,
    reads: u64,
    /// When the last write was acknowledged (ms since the test started).
    last_ack_ms: u128,
}

async fn write_loop(
    client: LedgerClient,
    writer: u128,
    stop: Arc<AtomicBool>,
    outcomes: Arc<Mutex<Outcomes>>,
    started: Instant,
) {
    let mut next = 0u128;
    while !stop.load(Ordering::Relaxed) {
        let ids: Vec<u128> = (0..4).map(|k| (writer << 64) | (next + k)).collect();
        next += 4;
        let transfers: Vec<pb::NewTransfer> = ids
            .iter()
            .map(|transfer_id| {
                let debit = 1 + transfer_id % ACCOUNTS;
                let credit = 1 + (debit + transfer_id % (ACCOUNTS - 1)) % ACCOUNTS;
                pb::NewTransfer {
                    id: id(*transfer_id),
                    kind: Some(pb::new_transfer::Kind::Single(pb::Single {
                        debit_account_id: id(debit),
                        credit_account_id: id(credit),
                        amount: "1.07".into(),
                        currency: "USD".into(),
                    })),
                    code: 1,
                    metadata: Default::default(),
                    linked: false,
                }
            })
            .collect();
        // A failed call's outcome is unknown: those ids are neither counted nor required.
        if let Ok(response) = client.create_transfers(transfers).await {
            let mut outcomes = outcomes.lock().unwrap();
            for (result, transfer_id) in response.results.iter().zip(&ids) {
                assert!(
                    result.code == "ok" || result.code == "exists",
                    "transfer {transfer_id}: {}",
                    result.code
                );
                outcomes.acknowledged.insert(*transfer_id, 107);
            }
            outcomes.last_ack_ms = started.elapsed().as_millis();
        }
    }
}

async fn read_loop(client: LedgerClient, stop: Arc<AtomicBool>, outcomes: Arc<Mutex<Outcomes>>) {
    let ids: Vec<pb::Uint128> = (1..=ACCOUNTS).map(|i| id(i).unwrap()).collect();
    while !stop.load(Ordering::Relaxed) {
        if let Ok(accounts) = client.lookup_accounts(ids.clone()).await {
            assert_eq!(accounts.len() as u128, ACCOUNTS);
            let sum: i128 = accounts
                .iter()
                .map(|account| {
                    let balances = account.balances.as_ref().expect("balances");
                    minor(&balances.credits_posted) - minor(&balances.debits_posted)
                })
                .sum();
            assert_eq!(sum, 0, "a read saw balances that never existed together");
            outcomes.lock().unwrap().reads += 1;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until a write is acknowledged after `since_ms`, and answers how long that took.
async fn acknowledged_after(outcomes: &Mutex<Outcomes>, since_ms: u128) -> u128 {
    let deadline = Instant::now() + Duration::from_millis(WAIT_MS_MAX);
    loop {
        let last = outcomes.lock().unwrap().last_ack_ms;
        if last > since_ms {
            return last - since_ms;
        }
        assert!(Instant::now() < deadline, "no write acknowledged again");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_of_processes_survives_kills_pauses_and_rolling_restarts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut nodes = Nodes::new(dir.path(), NODES);
    for node in 1..=NODES {
        nodes.start(node);
    }
    let setup = client(&nodes).await;
    initialize(&setup, &nodes, nodes.members()).await;
    let accounts: Vec<pb::NewAccount> = (1..=ACCOUNTS).map(usd_account).collect();
    let created = setup.create_accounts(accounts).await.expect("accounts");
    assert!(created.results.iter().all(|r| r.code == "ok"));

    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(Mutex::new(Outcomes::default()));
    let mut tasks = Vec::new();
    for writer in 1..=2u128 {
        tasks.push(tokio::spawn(write_loop(
            client(&nodes).await,
            writer,
            stop.clone(),
            outcomes.clone(),
            started,
        )));
    }
    tasks.push(tokio::spawn(read_loop(
        client(&nodes).await,
        stop.clone(),
        outcomes.clone(),
    )));
    let pause = |ms: u64| tokio::time::sleep(Duration::from_millis(ms));

    // 1. kill -9 a majority (the leader and one follower), bring them back, time the recovery.
    pause(2_000).await;
    let old_leader = leader(&setup, &nodes).await;
    let other = (1..=NODES).find(|n| *n != old_leader).unwrap();
    nodes.kill(old_leader);
    nodes.kill(other);
    pause(2_000).await;
    let back_ms = started.elapsed().as_millis();
    nodes.start(old_leader);
    nodes.start(other);
    let recovery_ms = acknowledged_after(&outcomes, back_ms).await;
    assert!(
        recovery_ms <= RECOVERY_MS_MAX,
        "writes acknowledged again {recovery_ms} ms after the majority returned"
    );

    // 2. SIGSTOP the leader for longer than an election timeout, then let it go on.
    pause(1_500).await;
    let paused = leader(&setup, &nodes).await;
    nodes.signal(paused, "STOP");
    pause(3_000).await;
    nodes.signal(paused, "CONT");

    // 3. Rolling restarts: one node at a time, the others keep the quorum.
    for node in 1..=NODES {
        pause(1_500).await;
        nodes.stop(node);
        pause(500).await;
        nodes.start(node);
    }
    pause(2_000).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        tokio::time::timeout(Duration::from_millis(WAIT_MS_MAX), task)
            .await
            .expect("clients stop")
            .expect("no client saw a broken invariant");
    }

    // No acknowledged transfer lost.
    let acknowledged: Vec<u128> = outcomes
        .lock()
        .unwrap()
        .acknowledged
        .keys()
        .copied()
        .collect();
    assert!(
        acknowledged.len() > 100,
        "only {} acknowledged",
        acknowledged.len()
    );
    for chunk in acknowledged.chunks(500) {
        let found = setup
            .lookup_transfers(chunk.iter().map(|t| id(*t).unwrap()))
            .await
            .expect("lookup transfers");
        assert_eq!(found.len(), chunk.len(), "acknowledged transfers missing");
    }
    // Every replica ends with the same hash chain at the same applied index.
    let deadline = Instant::now() + Duration::from_millis(WAIT_MS_MAX);
    loop {
        let mut states = Vec::new();
        for node in 1..=NODES {
            if let Ok(mut admin) = setup.node_admin(&nodes.api[&node]).await {
                if let Ok(status) = admin.status(StatusRequest {}).await {
                    let status = status.into_inner();
                    states.push((status.last_applied_index, status.hash_chain_hex));
                }
            }
        }
        if states.len() == NODES as usize && states.windows(2).all(|w| w[0] == w[1]) {
            break;
        }
        assert!(Instant::now() < deadline, "replicas differ: {states:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reads = outcomes.lock().unwrap().reads;
    assert!(reads > 20, "only {reads} reads");
    eprintln!(
        "chaos: {} transfers acknowledged, {reads} reads summing to zero, recovery after the majority returned {recovery_ms} ms",
        acknowledged.len()
    );
}
