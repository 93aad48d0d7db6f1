//! TLS for every Tally connection, over rustls with the ring provider.
//!
//! - [`ServerTls`]: what a listener serves (certificate, key, and for mutual TLS the CA client
//!   certificates must chain to); reloadable in place.
//! - [`ClientTls`]: what a dialer trusts and shows.
//! - [`Identity`] and [`Peer`]: who a verified client certificate names, and what that role may
//!   call ([`authorize`]).
//! - [`CertAuthority`]: issuing a CA and its certificates (`tally certs`, tests).

mod args;
mod client;
mod identity;
mod issue;
mod pem;
mod server;

pub use args::{reload_on_hangup, TlsArgs};
pub use client::{ClientTls, ClientTlsFiles, ClientTlsPem};
pub use identity::{authorize, Identity, NotAllowed, Peer, Role, IDENTITY_SUFFIX};
pub use issue::{CertAuthority, Issued, SecretPem, VALIDITY_DAYS_MAX};
pub use pem::{PemSource, TlsError};
pub use server::{ClientAuth, ServerTls, ServerTlsFiles, ServerTlsPem};
