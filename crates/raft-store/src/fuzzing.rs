//! Entry points for the fuzz targets in `fuzz/`: each runs one decoder of bytes that arrive from
//! a peer or a disk, the way the node runs it, and checks what must hold for any input: no
//! panic, no unbounded allocation, and a value that decodes re-encodes to the bytes it came
//! from (so two replicas never read one entry two ways). Not an API.

use crate::codec::{decode, encode};
use crate::keys;
use crate::kv::Kv;
use crate::kv::MemKv;
use crate::ledger_state::KvLedger;
use crate::snapshot::stream::{SnapshotHeader, SnapshotReader, SnapshotWriter, ROW_KEY_BYTES_MAX};
use crate::snapshot::{install, Built, Received};
use crate::state_machine::StateMachine;
use crate::types::{
    Entry, LedgerRequest, LogId, NodeId, SnapshotMeta, StoredMembership, TypeConfig,
};
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{CommittedLeaderId, EntryPayload, Vote};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// Rows a fuzzed snapshot is read to before giving up; the reader is streaming, so more rows
/// only take longer.
const SNAPSHOT_ROWS_MAX: usize = 4_096;

/// Decodes `bytes` as `T` through the node's codec; a value that decodes must re-encode to the
/// same bytes.
fn decodes_canonically<T: DeserializeOwned + Serialize>(bytes: &[u8]) {
    if let Ok(value) = decode::<T>(bytes) {
        let again = encode(&value);
        // postcard ignores bytes after a value, so the input itself may be longer; what must
        // hold is that the value read is one value: its encoding reads back to itself.
        let value_again: T = decode(&again).expect("a re-encoded value decodes");
        assert_eq!(
            encode(&value_again),
            again,
            "a decoded value re-encodes to one canonical form"
        );
    }
}

/// One Raft message or log row, chosen by `kind`, as `network.rs` and `log_store.rs` decode it.
pub fn raft_message(kind: u8, payload: &[u8]) {
    match kind % 8 {
        0 => decodes_canonically::<AppendEntriesRequest<TypeConfig>>(payload),
        1 => decodes_canonically::<VoteRequest<NodeId>>(payload),
        2 => decodes_canonically::<InstallSnapshotRequest<TypeConfig>>(payload),
        3 => {
            decodes_canonically::<Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>>(payload)
        }
        4 => decodes_canonically::<Result<VoteResponse<NodeId>, RaftError<NodeId>>>(payload),
        5 => decodes_canonically::<
            Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
        >(payload),
        6 => decodes_canonically::<Entry>(payload),
        _ => decodes_canonically::<Option<Vote<NodeId>>>(payload),
    }
}

/// A snapshot stream as a peer sends it: read row by row (bounded), then installed into an
/// empty in-memory store, which stages, verifies the checksum and audits before committing.
pub fn snapshot_bytes(bytes: &[u8]) {
    let mut meta = SnapshotMeta::default();
    if let Ok((mut reader, header)) = SnapshotReader::open(bytes) {
        meta.last_log_id = header.last_applied;
        meta.last_membership = header.membership;
        for _ in 0..SNAPSHOT_ROWS_MAX {
            match reader.next_row() {
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => break,
            }
        }
    }
    let kv = MemKv::new();
    let _ = install(
        &kv,
        &meta,
        Received::Memory(bytes.to_vec()),
        &Mutex::new(()),
    );
}

/// A well-formed, checksummed snapshot of arbitrary rows, the header agreeing with the rows'
/// own applied id and membership where they decode: what reaches the install's audit.
pub fn snapshot_rows(mut rows: Vec<(Vec<u8>, Vec<u8>)>) {
    rows.retain(|(key, _)| key.len() <= ROW_KEY_BYTES_MAX as usize);
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows.dedup_by(|a, b| a.0 == b.0);
    rows.truncate(SNAPSHOT_ROWS_MAX);
    let row_of = |key: &[u8]| {
        rows.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    };
    let last_applied: Option<LogId> = row_of(keys::LAST_APPLIED)
        .and_then(|bytes| decode(bytes).ok())
        .flatten();
    let membership: StoredMembership = row_of(keys::MEMBERSHIP)
        .and_then(|bytes| decode(bytes).ok())
        .unwrap_or_default();
    let header = SnapshotHeader {
        last_applied,
        membership: membership.clone(),
    };
    let Ok(mut writer) = SnapshotWriter::new(Vec::new(), &header) else {
        return;
    };
    for (key, value) in &rows {
        if writer.row(key, value).is_err() {
            return;
        }
    }
    let Ok((bytes, _, _)) = writer.finish() else {
        return;
    };
    let meta = SnapshotMeta {
        last_log_id: last_applied,
        last_membership: membership,
        snapshot_id: "fuzz".to_string(),
    };
    let kv = MemKv::new();
    let _ = install(&kv, &meta, Received::Memory(bytes), &Mutex::new(()));
}

/// Log entries as a follower applies them: each of `requests` is a codec-encoded
/// [`LedgerRequest`] (the payload of a normal entry) applied in order to one in-memory state
/// machine. Whatever the commands and stamps, `apply` answers every command (no command panics
/// and is contained as a fault) and the ledger's invariants hold afterwards.
pub fn apply_requests(requests: &[&[u8]]) {
    let kv = Arc::new(MemKv::new());
    let machine = StateMachine::new(kv.clone());
    let faults = machine.fault_counter();
    for (position, bytes) in requests.iter().enumerate() {
        let Ok(request) = decode::<LedgerRequest>(bytes) else {
            continue;
        };
        let entry = normal_entry(position, request);
        machine
            .apply_entry(&entry)
            .expect("applying to the in-memory store reads only rows apply wrote");
        assert_eq!(
            faults.load(Ordering::Relaxed),
            0,
            "a command panicked in apply (contained as a fault)"
        );
    }
    let audited = tally_ledger::audit(&KvLedger::new(&*kv)).map(|_| ());
    if let Err(violation) = audited {
        panic!("an invariant broke after applying the entries: {violation}");
    }
}

/// The codec's encoding of a value (for writing seed corpora).
pub fn encode_value<T: Serialize>(value: &T) -> Vec<u8> {
    encode(value)
}

/// The `position`th (from 0) normal entry of term 1's leader, carrying `request`.
fn normal_entry(position: usize, request: LedgerRequest) -> Entry {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), position as u64 + 1),
        payload: EntryPayload::Normal(request),
    }
}

/// A state machine after applying `requests` as entries 1, 2, ...
fn applied(requests: &[LedgerRequest]) -> Arc<MemKv> {
    let kv = Arc::new(MemKv::new());
    let machine = StateMachine::new(kv.clone());
    for (position, request) in requests.iter().enumerate() {
        let entry = normal_entry(position, request.clone());
        machine
            .apply_entry(&entry)
            .expect("the in-memory store does not fail");
    }
    kv
}

/// The snapshot stream of the state `requests` leave (for writing seed corpora).
pub fn snapshot_seed_stream(requests: &[LedgerRequest]) -> Vec<u8> {
    let kv = applied(requests);
    let view = kv.frozen_view().expect("an in-memory view");
    match crate::snapshot::build(&*kv, &*view, 1, &Mutex::new(())) {
        Ok((_, Built::Memory(bytes))) => bytes,
        Ok((_, Built::File(..))) => unreachable!("the in-memory store keeps snapshots in memory"),
        Err(error) => panic!("a seed snapshot builds: {error}"),
    }
}

/// The state rows `requests` leave, in key order (for writing seed corpora).
pub fn snapshot_seed_rows(requests: &[LedgerRequest]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let bytes = snapshot_seed_stream(requests);
    let (mut reader, _) = SnapshotReader::open(&bytes[..]).expect("a seed snapshot reads");
    let mut rows = Vec::new();
    while let Some(row) = reader.next_row().expect("a seed snapshot reads") {
        rows.push(row);
    }
    rows
}

/// One encoded value of each [`raft_message`] kind, as `(kind, payload)` (for seed corpora).
pub fn raft_message_seeds(requests: &[LedgerRequest]) -> Vec<(u8, Vec<u8>)> {
    let leader = CommittedLeaderId::new(3, 1);
    let entries: Vec<Entry> = requests
        .iter()
        .enumerate()
        .map(|(position, request)| Entry {
            log_id: LogId::new(leader, position as u64 + 1),
            payload: EntryPayload::Normal(request.clone()),
        })
        .collect();
    let vote = Vote::new_committed(3, 1);
    let append = AppendEntriesRequest::<TypeConfig> {
        vote,
        prev_log_id: Some(LogId::new(leader, 0)),
        leader_commit: Some(LogId::new(leader, 1)),
        entries: entries.clone(),
    };
    let snapshot_meta = SnapshotMeta {
        last_log_id: Some(LogId::new(leader, 9)),
        last_membership: StoredMembership::default(),
        snapshot_id: "3-9-1".to_string(),
    };
    let install = InstallSnapshotRequest::<TypeConfig> {
        vote,
        meta: snapshot_meta,
        offset: 0,
        data: snapshot_seed_stream(requests),
        done: true,
    };
    let append_ok: Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>> =
        Ok(AppendEntriesResponse::Success);
    let vote_ok: Result<VoteResponse<NodeId>, RaftError<NodeId>> = Ok(VoteResponse {
        vote,
        vote_granted: true,
        last_log_id: Some(LogId::new(leader, 9)),
    });
    let install_ok: Result<
        InstallSnapshotResponse<NodeId>,
        RaftError<NodeId, InstallSnapshotError>,
    > = Ok(InstallSnapshotResponse { vote });
    let mut seeds = vec![
        (0, encode(&append)),
        (
            1,
            encode(&VoteRequest::<NodeId> {
                vote,
                last_log_id: Some(LogId::new(leader, 9)),
            }),
        ),
        (2, encode(&install)),
        (3, encode(&append_ok)),
        (4, encode(&vote_ok)),
        (5, encode(&install_ok)),
        (7, encode(&Some(vote))),
    ];
    seeds.extend(entries.iter().map(|entry| (6, encode(entry))));
    seeds
}
