//! A listener's connection cap: at the cap it serves no new connection until one closes.

use bytes::Bytes;
use http_body_util::Full;
use std::convert::Infallible;
use tally_net::serve::serve_capped;
use tally_net::{Dialer, HttpClient, Protocols, ServerSecurity};

#[tokio::test]
async fn at_the_connection_cap_a_new_connection_waits_until_one_closes() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let ok = tower::service_fn(|_request: http::Request<hyper::body::Incoming>| async {
        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from("ok"))))
    });
    tokio::spawn(serve_capped(
        ok,
        Protocols::Http1AndHttp2,
        ServerSecurity::InsecureDev,
        tokio_stream::wrappers::TcpListenerStream::new(listener),
        stop_rx,
        1,
    ));
    let url = format!("http://{addr}/");
    // One idle connection holds the only slot.
    let idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let waiting = HttpClient::new(&Dialer::tcp(), 500);
    let answer = waiting
        .request(http::Method::GET, &url, &[], Bytes::new())
        .await;
    assert!(
        answer.as_ref().is_err_and(|e| e.is_timeout()),
        "served beyond the cap: {answer:?}"
    );
    drop(idle);
    let fresh = HttpClient::new(&Dialer::tcp(), 5_000);
    let answer = fresh
        .request(http::Method::GET, &url, &[], Bytes::new())
        .await
        .expect("served once the slot is free");
    assert_eq!(answer.status, http::StatusCode::OK);
}
