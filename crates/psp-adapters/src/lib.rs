//! `tally-psp`: payment service provider adapters (issue 4, not built yet).
//!
//! It will define the `Psp` trait (charge/authorize with an idempotency key, capture, cancel,
//! refund, status, webhook verification), one adapter per provider, and `tally-psp-sim`, a
//! standalone PSP with idempotency keys, asynchronous webhooks, settlement files and fault
//! injection.
//!
//! Nothing here works yet; no code pretends to.
