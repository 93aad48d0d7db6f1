//! How a connection reaches `host:port`. [`Dialer::tcp`] opens an OS TCP connection; a
//! simulation builds a [`Dialer`] over its own sockets (turmoil's), so the same client, Raft
//! transport, PSP adapter and webhook code runs in production and in simulation.

use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connected byte stream.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}

pub type DialFuture = Pin<Box<dyn Future<Output = io::Result<Box<dyn Io>>> + Send>>;

type DialFn = Arc<dyn Fn(String) -> DialFuture + Send + Sync>;

/// Opens a connection to `host:port`. Cheap to clone.
#[derive(Clone)]
pub struct Dialer(DialFn);

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dialer")
    }
}

impl Dialer {
    pub fn new(dial: impl Fn(String) -> DialFuture + Send + Sync + 'static) -> Self {
        Dialer(Arc::new(dial))
    }

    /// OS TCP, with Nagle off (requests are small and latency-bound).
    pub fn tcp() -> Self {
        Dialer::new(|addr| {
            Box::pin(async move {
                let stream = tokio::net::TcpStream::connect(addr).await?;
                stream.set_nodelay(true)?;
                Ok(Box::new(stream) as Box<dyn Io>)
            })
        })
    }

    /// Connects to `host:port`.
    pub async fn dial(&self, addr: String) -> io::Result<Box<dyn Io>> {
        (self.0)(addr).await
    }

    /// This dialer as the `tower` connector tonic and hyper's client take.
    pub fn connector(&self) -> Connector {
        Connector(self.0.clone())
    }
}

/// The dialer as a `tower::Service<Uri>`: connects to the URI's `host:port` (port 80 when an
/// `http` URI names none).
#[derive(Clone)]
pub struct Connector(DialFn);

impl tower_service::Service<http::Uri> for Connector {
    type Response = TokioIo<Dialed>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TokioIo<Dialed>>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let dial = self.0.clone();
        Box::pin(async move {
            let host = uri.host().ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{uri} names no host to dial"),
                )
            })?;
            let port = uri.port_u16().unwrap_or(80);
            let io = dial(format!("{host}:{port}")).await?;
            Ok(TokioIo::new(Dialed(io)))
        })
    }
}

/// A dialed stream, as hyper's client wants it (it asks each connection what it is).
pub struct Dialed(Box<dyn Io>);

impl Connection for Dialed {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for Dialed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Dialed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}
