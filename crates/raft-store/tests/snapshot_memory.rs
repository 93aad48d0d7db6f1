//! A learner joins a cluster whose log is purged and catches up by snapshot (after a `kill -9`
//! in the middle of its first install), while both nodes
//! run under a memory cap (`prlimit --data`) far below the state's size when the state is made
//! large: the snapshot is built from a checkpoint into a file, sent in chunks and installed by
//! staging sorted tables, never whole in memory.
//!
//! CI runs it on a small state. The measured run (ARCHITECTURE.md, "Snapshots") is
//! `TALLY_SNAPSHOT_TEST_STATE_MIB=2200 cargo test --release -p tally-raft-store --test snapshot_memory -- --nocapture`.

mod processes;

use processes::{client, id, initialize, leader, usd_account, Launch, Nodes, WAIT_MS_MAX};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tally_proto::admin::{AddLearnerRequest, Empty, Member, StatusRequest};
use tally_proto::client::LedgerClient;
use tally_proto::ledger as pb;

const STATE_MIB_DEFAULT: u64 = 48;
const CAP_MIB_DEFAULT: u64 = 512;
/// Transfers per request, and requests in flight.
const TRANSFERS_PER_REQUEST: usize = 128;
const WRITERS: u128 = 4;
/// Catch-up time allowed per GiB of state, on top of `WAIT_MS_MAX`.
const CATCH_UP_MS_PER_GIB: u64 = 240_000;

fn env_mib(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// A transfer carrying the most metadata a client may attach (16 values of 256 bytes), so
/// that the state grows by about 4 KiB per transfer. The values are pseudo-random hex, which
/// LZ4 does not shrink.
fn heavy_transfer(transfer_id: u128) -> pb::NewTransfer {
    let mut seed = transfer_id as u64 ^ 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let metadata: BTreeMap<String, String> = (0..16)
        .map(|k| {
            let value: String = (0..16).map(|_| format!("{:016x}", next())).collect();
            (format!("k{k:02}"), value)
        })
        .collect();
    pb::NewTransfer {
        id: id(transfer_id),
        kind: Some(pb::new_transfer::Kind::Single(pb::Single {
            debit_account_id: id(1),
            credit_account_id: id(2),
            amount: "0.01".into(),
            currency: "USD".into(),
        })),
        code: 1,
        metadata,
        linked: false,
    }
}

async fn fill(client: &LedgerClient, state_bytes: u64) -> u128 {
    const TRANSFER_BYTES: u64 = 16 * (3 + 256) + 64;
    let transfers = u128::from(state_bytes / TRANSFER_BYTES + 1);
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut next = 1 + writer * TRANSFERS_PER_REQUEST as u128;
            while next <= transfers {
                let batch: Vec<pb::NewTransfer> = (next..next + TRANSFERS_PER_REQUEST as u128)
                    .map(heavy_transfer)
                    .collect();
                let response = client.create_transfers(batch).await.expect("fill write");
                assert!(
                    response
                        .results
                        .iter()
                        .all(|r| r.code == "ok" || r.code == "exists"),
                    "fill refused: {:?}",
                    response.results.first()
                );
                next += WRITERS * TRANSFERS_PER_REQUEST as u128;
            }
        }));
    }
    for task in tasks {
        task.await.expect("writer");
    }
    transfers
}

async fn status(client: &LedgerClient, nodes: &Nodes, node: u64) -> Option<(u64, String)> {
    let mut admin = client.node_admin(&nodes.api[&node]).await.ok()?;
    let status = admin.status(StatusRequest {}).await.ok()?.into_inner();
    Some((status.last_applied_index?, status.hash_chain_hex))
}

fn has_file(dir: &std::path::Path, prefix: &str) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .any(|entry| entry.file_name().to_string_lossy().starts_with(prefix))
    })
}

fn has_entries(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some())
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|entry| entry.metadata().ok())
                .filter(|meta| meta.is_file())
                .map(|meta| meta.len())
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_catches_up_by_snapshot_under_a_memory_cap() {
    let state_bytes = env_mib("TALLY_SNAPSHOT_TEST_STATE_MIB", STATE_MIB_DEFAULT) << 20;
    let cap_bytes = env_mib("TALLY_SNAPSHOT_TEST_CAP_MIB", CAP_MIB_DEFAULT) << 20;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut nodes = Nodes::new(dir.path(), 2);
    // No automatic snapshots, and a snapshot purges the whole log behind it: a new learner
    // can only catch up by snapshot.
    let uncapped = Launch {
        args: [
            "--snapshot-after-entries",
            "100000000",
            "--entries-kept-after-snapshot",
            "0",
        ]
        .map(String::from)
        .to_vec(),
        data_limit_bytes: None,
    };
    let capped = Launch {
        data_limit_bytes: Some(cap_bytes),
        ..uncapped.clone()
    };
    nodes.start_with(1, &uncapped);
    let setup = client(&nodes).await;
    let first = Member {
        voter: true,
        ..nodes.members().remove(0)
    };
    initialize(&setup, &nodes, vec![first]).await;
    let accounts: Vec<pb::NewAccount> = [1u128, 2].map(usd_account).to_vec();
    setup.create_accounts(accounts).await.expect("accounts");
    let filling = Instant::now();
    let transfers = fill(&setup, state_bytes).await;
    eprintln!(
        "filled {transfers} transfers in {} ms",
        filling.elapsed().as_millis()
    );

    // From here on both nodes run capped: the leader builds and sends, the learner receives
    // and installs.
    nodes.stop(1);
    nodes.start_with(1, &capped);
    leader(&setup, &nodes).await;
    let building = Instant::now();
    let snapshots = nodes.data_dir(1).join("snapshots");
    let mut admin = setup.node_admin(&nodes.api[&1]).await.expect("admin");
    // The call waits a bounded time; a large build goes on after it answers.
    let _ = admin.trigger_snapshot(Empty {}).await;
    let build_deadline = Instant::now()
        + Duration::from_millis(WAIT_MS_MAX + CATCH_UP_MS_PER_GIB * (state_bytes >> 30));
    let snapshot_bytes = loop {
        let built = std::fs::read_dir(&snapshots)
            .expect("snapshot dir")
            .filter_map(Result::ok)
            .find(|entry| entry.file_name().to_string_lossy().starts_with("built-"));
        if let Some(entry) = built {
            break entry.metadata().expect("snapshot file").len();
        }
        assert!(Instant::now() < build_deadline, "no snapshot built");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let build_ms = building.elapsed().as_millis();
    assert!(
        snapshot_bytes >= state_bytes,
        "the snapshot ({snapshot_bytes} bytes) is smaller than the state written ({state_bytes})"
    );
    let (leader_applied, _) = status(&setup, &nodes, 1).await.expect("leader status");

    nodes.start_with(2, &capped);
    let learner = nodes.members().remove(1);
    let adding = Instant::now();
    let add = {
        let mut admin = setup.node_admin(&nodes.api[&1]).await.expect("admin");
        tokio::spawn(async move {
            admin
                .add_learner(AddLearnerRequest {
                    member: Some(learner),
                })
                .await
        })
    };
    let catch_up_deadline = Instant::now()
        + Duration::from_millis(WAIT_MS_MAX + CATCH_UP_MS_PER_GIB * (state_bytes >> 30));
    // `kill -9` the learner in the middle of its first attempt (staging, or just done), then
    // let it start again: it must finish or redo the install and catch up all the same.
    let phase = loop {
        if has_entries(&nodes.data_dir(2).join("staging")) {
            break "while staging the install";
        }
        if has_file(&nodes.data_dir(2).join("snapshots"), "installed-") {
            break "after placing the installed file";
        }
        assert!(nodes.alive(2), "the capped learner died (see node-2.log)");
        assert!(
            Instant::now() < catch_up_deadline,
            "the learner never began an install"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    nodes.kill(2);
    eprintln!("killed the learner {phase}");
    nodes.start_with(2, &capped);
    loop {
        assert!(
            nodes.alive(1),
            "the capped leader died:\n{}",
            nodes.log_tail(1, 20)
        );
        assert!(
            nodes.alive(2),
            "the capped learner died:\n{}",
            nodes.log_tail(2, 200)
        );
        let learner_now = status(&setup, &nodes, 2).await;
        let leader_now = status(&setup, &nodes, 1).await;
        if let (Some((applied, chain)), Some((leader_now_applied, leader_now_chain))) =
            (learner_now, leader_now)
        {
            if applied >= leader_applied && applied == leader_now_applied {
                assert_eq!(chain, leader_now_chain, "the learner's state differs");
                break;
            }
        }
        assert!(
            Instant::now() < catch_up_deadline,
            "the learner never caught up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let catch_up_ms = adding.elapsed().as_millis();
    add.abort();
    assert!(
        has_file(&nodes.data_dir(2).join("snapshots"), "installed-"),
        "the learner caught up without installing a snapshot"
    );
    let (leader_peak, learner_peak) = (nodes.peak_rss_bytes(1), nodes.peak_rss_bytes(2));
    eprintln!(
        "state {} MiB (snapshot file {snapshot_bytes} bytes, learner RocksDB {} MiB): built in {build_ms} ms, \
         learner caught up in {catch_up_ms} ms; peak RSS leader {} MiB, learner {} MiB; cap {} MiB",
        state_bytes >> 20,
        dir_bytes(&nodes.data_dir(2).join("db")) >> 20,
        leader_peak >> 20,
        learner_peak >> 20,
        cap_bytes >> 20
    );
    assert!(leader_peak < cap_bytes && learner_peak < cap_bytes);
}
