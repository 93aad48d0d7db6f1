//! The fuzz targets' bodies: one function per parser of input from outside a process, each run
//! on arbitrary bytes. `targets/` wraps each in a libFuzzer target (`scripts/fuzz.sh` runs them
//! under a nightly toolchain); `tests/corpus.rs` replays the seed corpus and every input that
//! ever crashed a target on the stable toolchain, in the ordinary test run.
//!
//! Each body checks more than "does not panic" where a property is known: a request the JSON
//! facade accepts carries no card number, a correctly signed request or webhook is accepted,
//! a decoded Raft value re-encodes to itself, and any log entries applied leave every
//! ledger invariant holding with no command panicking.

pub mod frame;
mod grpc;
mod http_facade;
mod payments_door;
mod psp_webhook;
mod raft;
pub mod seeds;

pub use grpc::{grpc_ledger, grpc_payments};
pub use http_facade::http_facade;
pub use payments_door::payments_door;
pub use psp_webhook::psp_webhook;
pub use raft::{apply, raft_message, snapshot};

/// A target's body: runs one input.
pub type Body = fn(&[u8]);

/// Every target by the name of its corpus directory and libFuzzer binary.
pub const TARGETS: &[(&str, Body)] = &[
    ("http_facade", http_facade),
    ("grpc_ledger", grpc_ledger),
    ("grpc_payments", grpc_payments),
    ("psp_webhook", psp_webhook),
    ("raft_message", raft_message),
    ("snapshot", snapshot),
    ("payments_door", payments_door),
    ("apply", apply),
];
