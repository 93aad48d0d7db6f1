//! `tally-net`: how Tally's processes reach each other, in one place so that production and the
//! deterministic simulation run the same code over different sockets.
//!
//! - [`dial::Dialer`]: opens a byte stream to `host:port` — OS TCP in production, turmoil's
//!   simulated sockets in `sim-tests`. gRPC channels, Raft peers, the gateway's PSP adapter and
//!   the PSP simulator's webhooks all connect through one.
//! - [`serve::serve`]: serves any HTTP service (tonic routes, an axum router) on any stream of
//!   accepted connections, without the wall-clock `Date` header, with a bounded graceful stop.
//! - [`tls`]: TLS and mutual TLS for both sides, the identities client certificates carry and
//!   what each may call.
//! - [`http_client::HttpClient`]: a bounded HTTP/1.1 client over a dialer, with a deadline per
//!   request and a cap on the answer's size.

pub mod dial;
pub mod guard;
pub mod http_client;
pub mod serve;
pub mod tls;

pub use dial::{DialFuture, Dialer, Io};
pub use http_client::{HttpClient, HttpError, HttpResponse};
pub use serve::{serve, Protocols, RemoteAddr, ServerSecurity};
