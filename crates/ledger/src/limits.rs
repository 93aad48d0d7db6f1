//! Every bound the ledger enforces, in one place. Names carry their unit.

/// Commands in one `apply` call (one Raft entry). 8,190 matches TigerBeetle's batch size, so a
/// batch of transfers and its results fit comfortably in one replicated message.
pub const BATCH_COMMANDS_MAX: usize = 8_190;

/// Pending transfers expired by one `apply` call. Expiry is a sweep at the start of each batch;
/// bounding it keeps a batch's cost bounded. Holds past their deadline that the sweep has not
/// reached yet can no longer be posted, so the bound never lets money move late.
pub const EXPIRIES_PER_BATCH_MAX: usize = 8_190;

/// Batch timestamps above this are refused, so that adding timeouts and per-event offsets can
/// never overflow `u64` (the bound is about year 2262 in Unix nanoseconds).
pub const TIMESTAMP_NS_MAX: u64 = i64::MAX as u64;

pub const METADATA_ENTRIES_MAX: usize = 16;
pub const METADATA_KEY_BYTES_MAX: usize = 64;
pub const METADATA_VALUE_BYTES_MAX: usize = 256;

pub const IDEMPOTENCY_KEY_BYTES_MAX: usize = 255;
pub const IDEMPOTENCY_RESPONSE_BYTES_MAX: usize = 64 * 1024;
/// A gateway holding an idempotency key in progress must finish within this lease or lose it.
pub const IDEMPOTENCY_LEASE_MS_MAX: u64 = 60 * 60 * 1000;

/// Entries in one page of account history.
pub const HISTORY_PAGE_ENTRIES_MAX: usize = 1_000;

pub const NANOS_PER_SECOND: u64 = 1_000_000_000;
pub const NANOS_PER_MILLISECOND: u64 = 1_000_000;
