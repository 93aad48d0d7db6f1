//! Serves an HTTP service — tonic routes, an axum router — on any stream of accepted
//! connections: a `TcpListener` in production, turmoil's listener in simulation.
//!
//! hyper directly rather than tonic's or axum's own server loop, for one reason: those stamp
//! every response with a `Date` header read from the wall clock, which no Tally client uses and
//! which would make two simulated runs of one seed send different bytes.

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::convert::Infallible;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio_stream::{Stream, StreamExt};

/// How long requests in flight may take to finish once the server stops.
pub const SHUTDOWN_GRACE_MS: u64 = 5_000;

/// Which HTTP versions a server speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocols {
    /// gRPC: HTTP/2 with prior knowledge.
    Http2Only,
    /// HTTP/1.1 and HTTP/2, told apart by the connection's first bytes.
    Http1AndHttp2,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Accepts connections from `incoming` and serves `service` on each until `stop` turns true (or
/// its sender goes away), then lets requests in flight finish for at most `SHUTDOWN_GRACE_MS`.
/// A failed accept is logged and skipped: one peer that hung up at once must not stop a server.
pub async fn serve<S, B, I, Io, E>(
    service: S,
    protocols: Protocols,
    incoming: I,
    mut stop: watch::Receiver<bool>,
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
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|stop| *stop) => break,
            accepted = incoming.next() => accepted,
        };
        match accepted {
            None => break,
            Some(Err(error)) => tracing::debug!(%error, "accepting a connection failed"),
            Some(Ok(io)) => {
                let service = TowerToHyperService::new(service.clone());
                let connection = graceful.watch(
                    builder
                        .serve_connection_with_upgrades(TokioIo::new(io), service)
                        .into_owned(),
                );
                tokio::spawn(async move {
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
