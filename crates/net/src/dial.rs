//! How a connection reaches `host:port`. [`Dialer::tcp`] opens an OS TCP connection; a
//! simulation builds a [`Dialer`] over its own sockets (turmoil's), so the same client, Raft
//! transport, PSP adapter and webhook code runs in production and in simulation.
//!
//! TLS wraps the dialed stream ([`Dialer::with_tls`], [`Dialer::with_https`]). An `https` URI
//! through a dialer without TLS is an error, never a plaintext request.

use crate::tls::ClientTls;
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

/// When a dialer's connections speak TLS.
#[derive(Clone, Debug)]
enum TlsWhen {
    /// Every connection (Tally's own processes: the URI scheme tonic sees is always `http`).
    Always(ClientTls),
    /// Connections for `https` URIs only (webhooks to endpoints of either scheme).
    Https(ClientTls),
}

/// The host of `host:port` (`[v6]:port` without its brackets); all of `addr` if it has no port.
pub fn host_of(addr: &str) -> &str {
    let host = match addr.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => host,
        _ => addr,
    };
    host.trim_start_matches('[').trim_end_matches(']')
}

/// Opens a connection to `host:port`. Cheap to clone.
#[derive(Clone)]
pub struct Dialer {
    dial: DialFn,
    tls: Option<TlsWhen>,
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialer").field("tls", &self.tls).finish()
    }
}

impl Dialer {
    pub fn new(dial: impl Fn(String) -> DialFuture + Send + Sync + 'static) -> Self {
        Dialer {
            dial: Arc::new(dial),
            tls: None,
        }
    }

    /// Every connection runs a TLS handshake with `tls` first.
    pub fn with_tls(mut self, tls: ClientTls) -> Self {
        self.tls = Some(TlsWhen::Always(tls));
        self
    }

    /// Connections for `https` URIs run a TLS handshake with `tls`; `http` ones stay plaintext.
    pub fn with_https(mut self, tls: ClientTls) -> Self {
        self.tls = Some(TlsWhen::Https(tls));
        self
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

    /// Connects to `host:port` (through TLS for a [`Dialer::with_tls`] dialer).
    pub async fn dial(&self, addr: String) -> io::Result<Box<dyn Io>> {
        let tls = match &self.tls {
            Some(TlsWhen::Always(tls)) => Some(tls),
            _ => None,
        };
        Ok(open(&self.dial, tls, addr).await?.0)
    }

    /// This dialer as the `tower` connector tonic and hyper's client take.
    pub fn connector(&self) -> Connector {
        Connector(self.clone())
    }
}

/// Dials `addr`, then runs the TLS handshake if `tls`; also says whether ALPN chose HTTP/2.
async fn open(
    dial: &DialFn,
    tls: Option<&ClientTls>,
    addr: String,
) -> io::Result<(Box<dyn Io>, bool)> {
    let io = dial(addr.clone()).await?;
    match tls {
        None => Ok((io, false)),
        Some(tls) => {
            let stream = tls.connect(&addr, io).await?;
            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
            Ok((Box::new(stream) as Box<dyn Io>, h2))
        }
    }
}

/// The dialer as a `tower::Service<Uri>`: connects to the URI's `host:port` (port 80 for an
/// `http` URI that names none, 443 for `https`).
#[derive(Clone)]
pub struct Connector(Dialer);

impl tower_service::Service<http::Uri> for Connector {
    type Response = TokioIo<Dialed>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TokioIo<Dialed>>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let dialer = self.0.clone();
        Box::pin(async move {
            let host = uri.host().ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{uri} names no host to dial"),
                )
            })?;
            let https = match uri.scheme_str() {
                Some("https") => true,
                Some("http") | None => false,
                Some(other) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("{uri}: scheme {other} is neither http nor https"),
                    ))
                }
            };
            let tls = match (&dialer.tls, https) {
                (Some(TlsWhen::Always(tls)), _) | (Some(TlsWhen::Https(tls)), true) => Some(tls),
                (None, true) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("{uri} is https but this connection has no TLS configured; refusing to send it in plaintext"),
                    ))
                }
                _ => None,
            };
            let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
            let (io, h2) = open(&dialer.dial, tls, format!("{host}:{port}")).await?;
            Ok(TokioIo::new(Dialed { io, h2 }))
        })
    }
}

/// A dialed stream, as hyper's client wants it (it asks each connection what it is).
pub struct Dialed {
    io: Box<dyn Io>,
    /// TLS negotiated HTTP/2 (ALPN): hyper's client then speaks it.
    h2: bool,
}

impl Connection for Dialed {
    fn connected(&self) -> Connected {
        let connected = Connected::new();
        if self.h2 {
            connected.negotiated_h2()
        } else {
            connected
        }
    }
}

impl AsyncRead for Dialed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Dialed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.io).poll_shutdown(cx)
    }
}
