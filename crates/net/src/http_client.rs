//! A small HTTP/1.1 client over a [`Dialer`]: hyper's pooled client with a deadline on every
//! request and a cap on the answer's size. The gateway's PSP adapter, its webhook dispatcher and
//! the PSP simulator's webhooks use it, so in simulation they talk over turmoil's sockets.
//!
//! Plain `http` only: TLS, when a deployment needs it, belongs in the dialer's stream.

use crate::dial::{Connector, Dialer};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::time::Duration;

/// Answers larger than this are cut off as an error.
pub const RESPONSE_BYTES_MAX: usize = 1024 * 1024;
/// How long an idle pooled connection is kept.
const POOL_IDLE_MS: u64 = 30_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HttpError {
    #[error("no answer within {timeout_ms} ms")]
    Timeout { timeout_ms: u64 },
    /// The request could not be sent (connection refused, reset, a bad URL).
    #[error("request failed: {0}")]
    Send(String),
    /// The answer broke off or was larger than `RESPONSE_BYTES_MAX`.
    #[error("answer unreadable: {0}")]
    Body(String),
}

impl HttpError {
    pub fn is_timeout(&self) -> bool {
        matches!(self, HttpError::Timeout { .. })
    }
}

/// A complete answer.
#[derive(Clone, Debug)]
pub struct HttpResponse {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// Cheap to clone: clones share the connection pool.
#[derive(Clone)]
pub struct HttpClient {
    client: Client<Connector, Full<Bytes>>,
    timeout_ms: u64,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

impl HttpClient {
    /// A client whose every request (connect, send, whole answer) must finish in `timeout_ms`.
    /// Timers are tokio's, so simulated time drives them in a simulation.
    pub fn new(dialer: &Dialer, timeout_ms: u64) -> Self {
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_millis(POOL_IDLE_MS))
            .build(dialer.connector());
        HttpClient { client, timeout_ms }
    }

    pub fn timeout_ms(&self) -> u64 {
        self.timeout_ms
    }

    /// Sends `request` and reads the whole answer, within the client's deadline.
    pub async fn send(
        &self,
        request: http::Request<Full<Bytes>>,
    ) -> Result<HttpResponse, HttpError> {
        let timeout_ms = self.timeout_ms;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| HttpError::Send(error_chain(&e)))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, RESPONSE_BYTES_MAX)
                .collect()
                .await
                .map_err(|e| HttpError::Body(e.to_string()))?
                .to_bytes();
            Ok(HttpResponse {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        match tokio::time::timeout(Duration::from_millis(timeout_ms), exchange).await {
            Ok(answer) => answer,
            Err(_) => Err(HttpError::Timeout { timeout_ms }),
        }
    }

    /// `method url` with `body` and `headers`.
    pub async fn request(
        &self,
        method: http::Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<HttpResponse, HttpError> {
        let mut builder = http::Request::builder().method(method).uri(url);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder
            .body(Full::new(body))
            .map_err(|e| HttpError::Send(format!("invalid request to {url}: {e}")))?;
        self.send(request).await
    }
}

/// An error and its causes on one line (hyper's top-level messages say little alone).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    format!("{error}{}", causes(error))
}

/// The causes of an error, each after ": ", for appending to a message of one's own making.
pub fn causes(error: &dyn std::error::Error) -> String {
    let mut text = String::new();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::{serve, Protocols, ServerSecurity};
    use std::convert::Infallible;

    async fn echo_server() -> (String, tokio::sync::watch::Sender<bool>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let service =
            tower::service_fn(|request: http::Request<hyper::body::Incoming>| async move {
                let path = request.uri().path().to_string();
                let body = request.into_body().collect().await.unwrap().to_bytes();
                if path == "/slow" {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                let text = format!("{path} {}", String::from_utf8_lossy(&body));
                Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(text))))
            });
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        tokio::spawn(serve(
            service,
            Protocols::Http1AndHttp2,
            ServerSecurity::InsecureDev,
            incoming,
            stop_rx,
        ));
        (format!("http://{addr}"), stop_tx)
    }

    #[tokio::test]
    async fn a_request_over_a_dialer_reaches_the_served_service_and_reads_its_answer() {
        let (base, _stop) = echo_server().await;
        let client = HttpClient::new(&Dialer::tcp(), 2_000);
        let answer = client
            .request(
                http::Method::POST,
                &format!("{base}/echo"),
                &[("content-type", "text/plain")],
                Bytes::from_static(b"hello"),
            )
            .await
            .unwrap();
        assert_eq!(answer.status, http::StatusCode::OK);
        assert_eq!(&answer.body[..], b"/echo hello");
        assert!(
            answer.headers.get(http::header::DATE).is_none(),
            "no wall-clock Date header"
        );
    }

    #[tokio::test]
    async fn a_slow_answer_is_a_timeout_and_a_closed_port_a_send_error() {
        let (base, _stop) = echo_server().await;
        let client = HttpClient::new(&Dialer::tcp(), 200);
        let slow = client
            .request(
                http::Method::GET,
                &format!("{base}/slow"),
                &[],
                Bytes::new(),
            )
            .await;
        assert_eq!(slow.unwrap_err(), HttpError::Timeout { timeout_ms: 200 });
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let refused = client
            .request(
                http::Method::GET,
                &format!("http://{addr}/"),
                &[],
                Bytes::new(),
            )
            .await;
        assert!(matches!(refused, Err(HttpError::Send(_))), "{refused:?}");
    }
}
