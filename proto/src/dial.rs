//! How a gRPC channel reaches `host:port`. By default tonic opens an OS TCP connection; a
//! [`Dialer`] (from `tally-net`) replaces that with any byte stream — turmoil's simulated sockets
//! in the simulation tests — so the same client and Raft transport code runs in production and
//! in simulation.

pub use tally_net::dial::{DialFuture, Dialer, Io};
use tonic::transport::{Channel, Endpoint};

/// A channel to `endpoint` that connects through `dialer` on first use (and again after the
/// connection breaks). The endpoint's timeouts still apply.
pub fn channel(dialer: &Dialer, endpoint: Endpoint) -> Channel {
    endpoint.connect_with_connector_lazy(dialer.connector())
}
