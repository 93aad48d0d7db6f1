//! How a gRPC channel reaches `host:port`. By default tonic opens an OS TCP connection; a
//! [`Dialer`] replaces that with any byte stream — turmoil's simulated sockets in the simulation
//! tests — so the same client and Raft transport code runs in production and in simulation.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite};
use tonic::transport::{Channel, Endpoint, Uri};

/// A connected byte stream.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

pub type DialFuture = Pin<Box<dyn Future<Output = io::Result<Box<dyn Io>>> + Send>>;

/// Opens a connection to `host:port`. Cheap to clone.
#[derive(Clone)]
pub struct Dialer(Arc<dyn Fn(String) -> DialFuture + Send + Sync>);

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dialer")
    }
}

impl Dialer {
    pub fn new(dial: impl Fn(String) -> DialFuture + Send + Sync + 'static) -> Self {
        Dialer(Arc::new(dial))
    }

    /// A channel to `endpoint` that connects through this dialer on first use (and again after
    /// the connection breaks). The endpoint's timeouts still apply.
    pub fn channel(&self, endpoint: Endpoint) -> Channel {
        endpoint.connect_with_connector_lazy(DialService(self.0.clone()))
    }
}

/// The dialer as the `tower` service tonic's connector wants.
#[derive(Clone)]
struct DialService(Arc<dyn Fn(String) -> DialFuture + Send + Sync>);

type Connected = hyper_util::rt::TokioIo<Box<dyn Io>>;

impl tower_service::Service<Uri> for DialService {
    type Response = Connected;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Connected>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let dial = self.0.clone();
        Box::pin(async move {
            let authority = uri
                .authority()
                .map(|a| a.as_str().to_owned())
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("{uri} names no host:port to dial"),
                    )
                })?;
            let io = dial(authority).await?;
            Ok(hyper_util::rt::TokioIo::new(io))
        })
    }
}
