//! Tally's deterministic simulation tests (issue 6, not built yet).
//!
//! turmoil will run the real node, gateway and PSP-simulator code under partitions, crashes that
//! lose unsynced writes, delays and PSP faults, checking the ledger invariants after every step.
//! Every run is reproducible from its seed.
//!
//! Nothing here works yet; no code pretends to.
