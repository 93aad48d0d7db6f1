//! `tally-raft-store`: replication of the ledger (issue 3, not built yet).
//!
//! It will hold the openraft 0.9 (`storage-v2`) type config whose request is a batch of
//! `tally_ledger::Command`s, the log store and state machine over a small key-value trait
//! (RocksDB in production; an in-memory backend that keeps synced and unsynced writes apart for
//! simulation), snapshots, the gRPC Raft transport, the leader's group-commit batcher and the
//! `tally-node` binary. The state machine will call `tally_ledger::apply` against a
//! `tally_ledger::LedgerRead` view of its key-value store and write the returned
//! `tally_ledger::ChangeSet` together with the last-applied log id in one synced batch.
//!
//! Nothing here works yet; no code pretends to.
