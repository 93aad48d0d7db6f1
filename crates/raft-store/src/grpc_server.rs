//! Serves a node's gRPC routes over HTTP/2 on any stream of accepted connections.
//!
//! hyper directly rather than tonic's server, for one reason: tonic's server stamps every
//! response with a `Date` header read from the wall clock, which gRPC clients never use and which
//! would make two simulated runs of one seed send different bytes. Everything else (routes,
//! message limits, HTTP/2 defaults) is tonic's and hyper's.

use crate::node::NodeError;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio_stream::{Stream, StreamExt};
use tonic::service::Routes;

/// How long calls in flight may take to finish once the node stops.
const SHUTDOWN_GRACE_MS: u64 = 5_000;

/// Accepts connections from `incoming` and serves `routes` on each until `stop` turns true (or
/// its sender goes away), then lets calls in flight finish for at most `SHUTDOWN_GRACE_MS`.
pub(crate) async fn serve<I, Io, E>(
    routes: Routes,
    incoming: I,
    mut stop: watch::Receiver<bool>,
) -> Result<(), NodeError>
where
    I: Stream<Item = Result<Io, E>>,
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    E: std::fmt::Display,
{
    let mut incoming = std::pin::pin!(incoming);
    let graceful = GracefulShutdown::new();
    let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    http2.auto_date_header(false);
    loop {
        let accepted = tokio::select! {
            _ = stop.wait_for(|stop| *stop) => break,
            accepted = incoming.next() => accepted,
        };
        match accepted {
            None => break,
            // One failed accept (a peer that hung up at once, no file descriptors left for a
            // moment) must not stop the server.
            Some(Err(error)) => tracing::debug!(%error, "accepting a connection failed"),
            Some(Ok(io)) => {
                let service = TowerToHyperService::new(routes.clone());
                let connection = graceful.watch(http2.serve_connection(TokioIo::new(io), service));
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
    Ok(())
}
