//! Serves an HTTP service — tonic routes, an axum router — on any stream of accepted
//! connections: a `TcpListener` in production, turmoil's listener in simulation; over TLS
//! ([`ServerSecurity::Tls`]) or, only when asked for by name, plaintext
//! ([`ServerSecurity::InsecureDev`]). Every request carries the [`Peer`] it came from in its
//! extensions, for the services' authorization.
//!
//! hyper directly rather than tonic's or axum's own server loop, for one reason: those stamp
//! every response with a `Date` header read from the wall clock, which no Tally client uses and
//! which would make two simulated runs of one seed send different bytes.

use crate::tls::{Identity, Peer, ServerTls};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{watch, Semaphore};
use tokio_stream::{Stream, StreamExt};

/// How long requests in flight may take to finish once the server stops.
pub const SHUTDOWN_GRACE_MS: u64 = 5_000;

/// How long a client has to finish its TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT_MS: u64 = 10_000;
/// Connections one listener serves at once (handshakes included). At the cap the listener stops
/// accepting until one closes: the kernel's backlog queues the rest, then refuses them.
pub const CONNECTIONS_MAX: usize = 4_096;

/// Which HTTP versions a server speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocols {
    /// gRPC: HTTP/2 with prior knowledge.
    Http2Only,
    /// HTTP/1.1 and HTTP/2, told apart by the connection's first bytes.
    Http1AndHttp2,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How a server secures its connections.
#[derive(Clone, Debug)]
pub enum ServerSecurity {
    /// TLS (mutual when the configuration asks for client certificates).
    Tls(ServerTls),
    /// Plaintext, every caller trusted with every role: `--insecure-dev` and the simulation.
    InsecureDev,
}

/// The address a request's connection came from, on every request whose transport has one
/// (TCP; not the simulation's). For per-client limits, never for authorization.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteAddr(pub SocketAddr);

/// The peer address of `io` when it is a TCP stream.
fn remote_addr_of<Io: 'static>(io: &Io) -> Option<RemoteAddr> {
    let any: &dyn std::any::Any = io;
    any.downcast_ref::<tokio::net::TcpStream>()
        .and_then(|stream| stream.peer_addr().ok())
        .map(RemoteAddr)
}

/// Adds the connection's [`Peer`] and [`RemoteAddr`] to every request.
#[derive(Clone)]
struct WithPeer<S> {
    inner: S,
    peer: Peer,
    remote: Option<RemoteAddr>,
}

impl<S, B> tower_service::Service<http::Request<B>> for WithPeer<S>
where
    S: tower_service::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        request.extensions_mut().insert(self.peer.clone());
        if let Some(remote) = self.remote {
            request.extensions_mut().insert(remote);
        }
        self.inner.call(request)
    }
}

/// The connection as it will be served, and who is on the other end: the TLS handshake's result
/// (`None` when it failed or ran out of time), or the plaintext stream of an insecure-dev server.
async fn secure<Io>(
    io: Io,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
) -> Option<(Box<dyn crate::dial::Io>, Peer)>
where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Some(acceptor) = acceptor else {
        return Some((Box::new(io), Peer::InsecureDev));
    };
    let handshake = tokio::time::timeout(
        Duration::from_millis(TLS_HANDSHAKE_TIMEOUT_MS),
        acceptor.accept(io),
    );
    match handshake.await {
        Ok(Ok(stream)) => {
            let peer = peer_of(stream.get_ref().1);
            Some((Box::new(stream), peer))
        }
        Ok(Err(error)) => {
            tracing::info!(%error, "TLS handshake refused");
            None
        }
        Err(_) => {
            tracing::info!(
                timeout_ms = TLS_HANDSHAKE_TIMEOUT_MS,
                "TLS handshake not finished in time"
            );
            None
        }
    }
}

/// Who a finished handshake says the client is.
fn peer_of(connection: &rustls::ServerConnection) -> Peer {
    match connection
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| Identity::from_certificate(leaf))
    {
        Some(identity) => Peer::Verified(identity),
        None => Peer::Anonymous,
    }
}

/// Accepts connections from `incoming` and serves `service` on each until `stop` turns true (or
/// its sender goes away), then lets requests in flight finish for at most `SHUTDOWN_GRACE_MS`.
/// A failed accept is logged and skipped: one peer that hung up at once must not stop a server.
/// With [`ServerSecurity::Tls`], each connection's handshake runs in its own task within
/// `TLS_HANDSHAKE_TIMEOUT_MS`, so a client that stalls it holds up no one else; a failed
/// handshake (no certificate where one is required, one from another CA, plaintext) closes the
/// connection before any request is read.
pub async fn serve<S, B, I, Io, E>(
    service: S,
    protocols: Protocols,
    security: ServerSecurity,
    incoming: I,
    stop: watch::Receiver<bool>,
) where
    S: tower_service::Service<
            http::Request<Incoming>,
            Response = http::Response<B>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    I: Stream<Item = Result<Io, E>>,
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    E: std::fmt::Display,
{
    serve_capped(
        service,
        protocols,
        security,
        incoming,
        stop,
        CONNECTIONS_MAX,
    )
    .await
}

/// [`serve`] with at most `connections_max` connections at once.
pub async fn serve_capped<S, B, I, Io, E>(
    service: S,
    protocols: Protocols,
    security: ServerSecurity,
    incoming: I,
    mut stop: watch::Receiver<bool>,
    connections_max: usize,
) where
    S: tower_service::Service<
            http::Request<Incoming>,
            Response = http::Response<B>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    I: Stream<Item = Result<Io, E>>,
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    E: std::fmt::Display,
{
    let mut incoming = std::pin::pin!(incoming);
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    if protocols == Protocols::Http2Only {
        builder = builder.http2_only();
    }
    builder
        .http1()
        .auto_date_header(false)
        .timer(TokioTimer::new());
    builder
        .http2()
        .auto_date_header(false)
        .timer(TokioTimer::new());
    let permits = Arc::new(Semaphore::new(connections_max.max(1)));
    loop {
        // A permit first: at the cap, stop accepting rather than accept and drop.
        let permit = tokio::select! {
            _ = stop.wait_for(|stop| *stop) => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = stop.wait_for(|stop| *stop) => break,
            accepted = incoming.next() => accepted,
        };
        match accepted {
            None => break,
            Some(Err(error)) => tracing::debug!(%error, "accepting a connection failed"),
            Some(Ok(io)) => {
                let service = service.clone();
                let builder = builder.clone();
                let watcher = graceful.watcher();
                let acceptor = match &security {
                    ServerSecurity::Tls(tls) => Some(tls.acceptor()),
                    ServerSecurity::InsecureDev => None,
                };
                let remote = remote_addr_of(&io);
                tokio::spawn(async move {
                    let _permit = permit;
                    let Some((stream, peer)) = secure(io, acceptor).await else {
                        return;
                    };
                    let service = TowerToHyperService::new(WithPeer {
                        inner: service,
                        peer,
                        remote,
                    });
                    let connection = watcher.watch(
                        builder
                            .serve_connection_with_upgrades(TokioIo::new(stream), service)
                            .into_owned(),
                    );
                    if let Err(error) = connection.await {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                });
            }
        }
    }
    let _ = tokio::time::timeout(
        Duration::from_millis(SHUTDOWN_GRACE_MS),
        graceful.shutdown(),
    )
    .await;
}
