//! The public payments API: [`PaymentsApi`] does the work, [`grpc`] serves it as
//! `tally.payments.v1` over tonic and [`facade`] as JSON over axum. Proto and domain types meet
//! only in [`convert`].

mod auth;
pub mod convert;
pub mod create_input;
pub mod error;
pub mod facade;
pub mod grpc;
mod idempotent;
mod payouts;
mod service;
mod signed;
mod webhooks;

pub use auth::{
    Presented, KEY_LOOKUPS_PER_ADDRESS_BURST, KEY_LOOKUPS_PER_ADDRESS_PER_S,
    KEY_LOOKUP_ADDRESSES_MAX,
};
pub use create_input::{parse_create, CreateInput, METADATA_ENTRIES_MAX};
pub use error::{ApiError, ErrorKind, RETRY_AFTER_MS_METADATA};
pub use idempotent::{check_client_key, CLIENT_IDEMPOTENCY_KEY_BYTES_MAX};
pub use payouts::Caller;
pub use service::{
    ApiConfig, PaymentsApi, IDEMPOTENCY_RETENTION_MS_DEFAULT, LIST_PAGE_SIZE_DEFAULT,
};
