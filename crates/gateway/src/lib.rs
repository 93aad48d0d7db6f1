//! `tally-gateway`: the stateless public tier (issue 4, not built yet).
//!
//! It will serve the public gRPC and HTTP APIs, authenticate merchants, run the PSP executor,
//! retry and dead-letter workers, the outbound webhook dispatcher and reconciliation jobs. It holds
//! no durable state: every decision is a command replicated by the `tally-node` cluster, reached
//! only over gRPC.
//!
//! Nothing here works yet; no code pretends to.
