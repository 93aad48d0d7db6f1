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
/// Longest an idempotency record may be kept: 30 days.
pub const IDEMPOTENCY_RETAIN_MS_MAX: u64 = 30 * 24 * 60 * 60 * 1000;
/// Idempotency records one batch forgets at most; the rest wait for the next batch.
pub const IDEMPOTENCY_EXPIRIES_PER_BATCH_MAX: usize = 1_024;

/// Entries in one page of account history.
pub const HISTORY_PAGE_ENTRIES_MAX: usize = 1_000;

pub const NANOS_PER_SECOND: u64 = 1_000_000_000;
pub const NANOS_PER_MILLISECOND: u64 = 1_000_000;

/// Bytes of a merchant, buyer, checkout, order, refund, PSP or API-key id.
pub const PAYMENT_ID_BYTES_MAX: usize = 64;
/// Orders in one checkout. One payment record holds all of them, so this bounds its size.
pub const ORDERS_PER_PAYMENT_MAX: usize = 16;
/// Refunds of one order (partial refunds add up; each is its own record).
pub const REFUNDS_PER_ORDER_MAX: usize = 16;
/// API keys a merchant may hold at once, revoked ones included (rotate by revoking, then adding).
pub const API_KEYS_PER_MERCHANT_MAX: usize = 8;
/// Currencies a merchant may set a fixed fee for, and a buyer may hold wallets in.
pub const CURRENCIES_PER_PARTY_MAX: usize = 16;
pub const MERCHANT_NAME_BYTES_MAX: usize = 128;
/// A card token, QR reference or PSP charge id carried in a payment.
pub const PSP_REFERENCE_BYTES_MAX: usize = 128;
/// Bytes of what a buyer must do next for a pending charge (a redirect URL or a QR payload).
pub const NEXT_ACTION_BYTES_MAX: usize = 2_048;
/// Reasons a risk decision records, and the bytes of each.
pub const RISK_REASONS_MAX: usize = 8;
pub const RISK_REASON_BYTES_MAX: usize = 128;
/// The code and message of the last error an order met.
pub const ORDER_ERROR_BYTES_MAX: usize = 256;
/// 100% in basis points: a fee rate above it is refused.
pub const FEE_BPS_MAX: u32 = 10_000;
/// How long an executor may hold an order claim before another may take over.
pub const ORDER_LEASE_MS_MAX: u64 = 10 * 60 * 1000;
/// Held funds move to the seller's available balance at most this long after capture.
pub const HOLD_PERIOD_S_MAX: u32 = 90 * 24 * 60 * 60;
/// Orders whose hold period ended released by one `apply` call (like expiries, a bounded sweep).
pub const RELEASES_PER_BATCH_MAX: usize = 1_024;
/// A pending (3-D-Secure or QR) charge not completed by webhook is checked at the PSP after this.
pub const PENDING_CHECK_AFTER_MS: u64 = 60 * 1000;
/// Failed attempts kept on a piece of work (the newest), for its dead letter's history.
pub const ATTEMPTS_KEPT_MAX: usize = 16;
/// Provider webhook event ids remembered per order, for deduplication; older duplicates still
/// change nothing, because order states only move forward.
pub const WEBHOOK_EVENTS_PER_ORDER_MAX: usize = 16;
/// Payout schedules per merchant (one per currency).
pub const PAYOUT_SCHEDULES_PER_MERCHANT_MAX: usize = CURRENCIES_PER_PARTY_MAX;
/// Shortest interval a payout schedule may run at (tests use seconds; operators days).
pub const PAYOUT_INTERVAL_S_MIN: u32 = 1;
/// Longest reason an operator may give for discarding a dead letter.
pub const DISCARD_REASON_BYTES_MAX: usize = 256;
/// Webhook endpoints per merchant.
pub const WEBHOOK_ENDPOINTS_PER_MERCHANT_MAX: usize = 8;
/// Event types one endpoint may filter on.
pub const WEBHOOK_EVENT_TYPES_MAX: usize = 16;
pub const WEBHOOK_SECRET_BYTES_MAX: usize = 128;
pub const WEBHOOK_URL_BYTES_MAX: usize = 2_048;
/// The start of an endpoint's answer kept with each delivery attempt.
pub const DELIVERY_EXCERPT_BYTES_MAX: usize = 512;
