//! Bytes from a peer or a disk: Raft messages and log rows, and snapshot streams.

use crate::frame::all_fields;
use std::sync::Once;
use tally_ledger::StoreFailure;
use tally_raft_store::fuzzing;

/// A Raft message or log row: the first byte picks the type, the rest is the encoded value.
pub fn raft_message(data: &[u8]) {
    if let Some((&kind, payload)) = data.split_first() {
        fuzzing::raft_message(kind, payload);
    }
}

/// A snapshot stream: an even first byte sends the rest as raw stream bytes; an odd one reads
/// the rest as key and value fields (`frame.rs`) and frames them into a well-formed, checksummed stream, so the install's
/// audit sees arbitrary rows.
pub fn snapshot(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let_store_failures_unwind();
    if mode % 2 == 0 {
        fuzzing::snapshot_bytes(rest);
    } else {
        let fields = all_fields(rest);
        let rows = fields
            .chunks_exact(2)
            .map(|pair| (pair[0].to_vec(), pair[1].to_vec()))
            .collect();
        fuzzing::snapshot_rows(rows);
    }
}

/// Log entries applied in order: each field (`frame.rs`) is one codec-encoded ledger request.
/// Every command is answered and the ledger's invariants hold after any of them.
pub fn apply(data: &[u8]) {
    fuzzing::apply_requests(&all_fields(data));
}

/// The install refuses a snapshot whose rows the ledger cannot read by catching the store's
/// `StoreFailure` panic (only a replica that cannot read its own state must stop). libFuzzer's
/// panic hook aborts on every panic, caught or not: let this one unwind to its catch, and keep
/// every other panic a crash.
fn let_store_failures_unwind() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.payload().is::<StoreFailure>() {
                previous(info);
            }
        }));
    });
}
