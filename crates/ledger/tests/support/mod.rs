//! Shared test support: the reference model of the ledger.

pub mod model;
