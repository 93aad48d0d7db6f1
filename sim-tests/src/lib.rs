//! Tally's deterministic simulation tests.
//!
//! turmoil runs the real node code — openraft with Tally's log store and state machine, the
//! group-commit batcher, the ledger and admin gRPC services — and the real leader-following
//! `LedgerClient`, over simulated sockets and on the in-memory store that keeps synced and
//! unsynced writes apart. Faults (partitions, loss, latency, clock skew, power loss of one node
//! or of a majority) are drawn from the seed; checkers run after every step and at the end.
//! The same seed gives the same run: the same trace, hashed.
//!
//! - [`config`]: what a run is (seed, sizes, bounds, a planted bug).
//! - [`cluster`]: the node hosts and their stores; [`net`]: turmoil sockets for tonic.
//! - [`workload`]: the clients and the [`workload::History`] of what they saw.
//! - [`faults`]: the seeded fault plan; [`check`]: the checkers; [`trace`]: the hashed trace.
//! - [`run`]: one run, start to report; [`summary`]: many runs, one table.

pub mod check;
pub mod cluster;
pub mod config;
pub mod faults;
pub mod net;
pub mod run;
pub mod summary;
pub mod trace;
pub mod workload;

pub use config::{PlantedBug, SimConfig};
pub use run::{run, Report};
