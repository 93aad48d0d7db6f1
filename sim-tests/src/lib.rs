//! Tally's deterministic simulation tests.
//!
//! turmoil runs the real node code — openraft with Tally's log store and state machine, the
//! group-commit batcher, the ledger and admin gRPC services — the real leader-following
//! `LedgerClient`, the real payments gateways (API, executor, payout worker, PSP webhooks) and
//! the real PSP simulator, over simulated sockets and on the in-memory store that keeps synced
//! and unsynced writes apart. Faults (partitions, loss, latency, clock skew, power loss of one node
//! or of a majority) are drawn from the seed; checkers run after every step and at the end.
//! The same seed gives the same run: the same trace, hashed.
//!
//! - [`config`]: what a run is (seed, sizes, bounds, a planted bug).
//! - [`cluster`]: the node hosts and their stores; [`net`]: turmoil sockets for tonic.
//! - [`workload`]: the clients and the [`workload::History`] of what they saw.
//! - [`gateways`]: the gateway hosts and the PSP simulator's host; [`shop`]: the payments
//!   workload over the gateways' API; [`payments_check`]: payment states only move forward,
//!   every PSP charge in the ledger exactly once, refunds and payouts agree, everything settles;
//!   [`charge_calls`]: the lease checker (no two charge calls for one order at once).
//! - [`faults`]: the seeded fault plan; [`check`]: the checkers; [`trace`]: the hashed trace.
//! - [`run`]: one run, start to report; [`summary`]: many runs, one table.

pub mod charge_calls;
pub mod check;
pub mod cluster;
pub mod config;
pub mod faults;
pub mod gateways;
pub mod net;
pub mod payments_check;
pub mod run;
pub mod shop;
pub mod summary;
pub mod trace;
pub mod workload;

pub use config::{PlantedBug, SimConfig};
pub use run::{run, Report};
