//! TLS and mutual TLS over real sockets: who gets in, who is refused, and that a reload is seen.

use bytes::Bytes;
use http_body_util::Full;
use std::convert::Infallible;
use std::path::Path;
use std::time::{Duration, Instant};
use tally_net::tls::{
    CertAuthority, ClientAuth, ClientTls, ClientTlsPem, Identity, Peer, PemSource, Role, ServerTls,
    ServerTlsFiles,
};
use tally_net::{serve, Dialer, HttpClient, Protocols, ServerSecurity};
use tokio::sync::watch;

const TIMEOUT_MS: u64 = 5_000;

/// Answers with who the server thinks called.
async fn who_am_i(
    request: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let who = match request.extensions().get::<Peer>() {
        Some(Peer::Verified(identity)) => identity.to_string(),
        Some(Peer::Anonymous) => "anonymous".to_owned(),
        Some(Peer::InsecureDev) => "insecure-dev".to_owned(),
        None => "no peer".to_owned(),
    };
    Ok(http::Response::new(Full::new(Bytes::from(who))))
}

struct Pki {
    ca: CertAuthority,
}

impl Pki {
    fn new(name: &str) -> Pki {
        Pki {
            ca: CertAuthority::generate(name, 2).unwrap(),
        }
    }

    /// Writes the CA and a certificate for `identity` serving on 127.0.0.1 into `dir`; returns
    /// (ca, cert, key) paths.
    fn write(&self, dir: &Path, stem: &str, identity: Option<Identity>) -> [std::path::PathBuf; 3] {
        let issued = self
            .ca
            .issue(identity.as_ref(), &["127.0.0.1".to_owned()], 2)
            .unwrap();
        let paths = [
            dir.join(format!("{stem}-ca.pem")),
            dir.join(format!("{stem}.pem")),
            dir.join(format!("{stem}.key")),
        ];
        std::fs::write(&paths[0], self.ca.cert_pem()).unwrap();
        std::fs::write(&paths[1], &issued.cert_pem).unwrap();
        std::fs::write(&paths[2], issued.key_pem.expose()).unwrap();
        paths
    }

    /// A client trusting this CA and showing a certificate for `identity` (none if `None`).
    fn client(&self, identity: Option<Identity>) -> ClientTls {
        let identity = identity.map(|identity| {
            let issued = self.ca.issue(Some(&identity), &[], 2).unwrap();
            (
                PemSource::from_text("client cert", &issued.cert_pem),
                PemSource::from_text("client key", issued.key_pem.expose()),
            )
        });
        ClientTls::from_pem(&ClientTlsPem {
            ca: PemSource::from_text("ca", self.ca.cert_pem()),
            identity,
        })
        .unwrap()
    }
}

fn gateway() -> Option<Identity> {
    Identity::new(Role::Gateway, "eu1")
}

struct Server {
    addr: std::net::SocketAddr,
    _stop: watch::Sender<bool>,
}

async fn start(security: ServerSecurity) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stop_rx) = watch::channel(false);
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tokio::spawn(serve(
        tower::service_fn(who_am_i),
        Protocols::Http1AndHttp2,
        security,
        incoming,
        stop_rx,
    ));
    Server { addr, _stop: stop }
}

/// A server whose certificate comes from `pki`, requiring client certificates from it.
async fn mtls_server(pki: &Pki, dir: &Path) -> (Server, ServerTls) {
    let [ca, cert, key] = pki.write(dir, "server", Identity::new(Role::Node, "1"));
    let tls = ServerTls::load(ServerTlsFiles {
        cert,
        key,
        client_auth: ClientAuth::Required(ca),
    })
    .unwrap();
    (start(ServerSecurity::Tls(tls.clone())).await, tls)
}

async fn who(dialer: &Dialer, url: &str) -> Result<String, String> {
    let client = HttpClient::new(dialer, TIMEOUT_MS);
    let answer = client
        .request(http::Method::GET, url, &[], Bytes::new())
        .await
        .map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&answer.body).into_owned())
}

#[tokio::test]
async fn mutual_tls_serves_a_client_of_the_cluster_ca_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new("cluster");
    let (server, _) = mtls_server(&pki, dir.path()).await;
    let dialer = Dialer::tcp().with_tls(pki.client(gateway()));
    let answer = who(&dialer, &format!("http://{}/", server.addr)).await;
    assert_eq!(answer, Ok("gateway-eu1".to_owned()));
}

#[tokio::test]
async fn a_plaintext_client_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new("cluster");
    let (server, _) = mtls_server(&pki, dir.path()).await;
    let answer = who(&Dialer::tcp(), &format!("http://{}/", server.addr)).await;
    assert!(answer.is_err(), "{answer:?}");
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new("cluster");
    let (server, _) = mtls_server(&pki, dir.path()).await;
    // Trusts the right server CA, but shows a certificate another CA signed.
    let other = Pki::new("other");
    let issued = other.ca.issue(gateway().as_ref(), &[], 2).unwrap();
    let tls = ClientTls::from_pem(&ClientTlsPem {
        ca: PemSource::from_text("ca", pki.ca.cert_pem()),
        identity: Some((
            PemSource::from_text("cert", &issued.cert_pem),
            PemSource::from_text("key", issued.key_pem.expose()),
        )),
    })
    .unwrap();
    let answer = who(
        &Dialer::tcp().with_tls(tls),
        &format!("http://{}/", server.addr),
    )
    .await;
    assert!(answer.is_err(), "{answer:?}");
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused_where_one_is_required() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new("cluster");
    let (server, _) = mtls_server(&pki, dir.path()).await;
    let dialer = Dialer::tcp().with_tls(pki.client(None));
    let answer = who(&dialer, &format!("http://{}/", server.addr)).await;
    assert!(answer.is_err(), "{answer:?}");
}

#[tokio::test]
async fn without_client_authentication_a_caller_is_anonymous() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new("cluster");
    let [_, cert, key] = pki.write(dir.path(), "server", None);
    let tls = ServerTls::load(ServerTlsFiles {
        cert,
        key,
        client_auth: ClientAuth::None,
    })
    .unwrap();
    let server = start(ServerSecurity::Tls(tls)).await;
    let dialer = Dialer::tcp().with_tls(pki.client(None));
    let answer = who(&dialer, &format!("http://{}/", server.addr)).await;
    assert_eq!(answer, Ok("anonymous".to_owned()));
}

#[tokio::test]
async fn the_client_refuses_a_server_certificate_from_a_ca_it_does_not_trust() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new("cluster");
    let (server, _) = mtls_server(&pki, dir.path()).await;
    let dialer = Dialer::tcp().with_tls(Pki::new("other").client(gateway()));
    let answer = who(&dialer, &format!("http://{}/", server.addr)).await;
    let error = answer.unwrap_err();
    assert!(error.contains("certificate"), "{error}");
}

#[tokio::test]
async fn an_https_url_through_a_dialer_without_tls_is_an_error_not_plaintext() {
    let server = start(ServerSecurity::InsecureDev).await;
    let answer = who(&Dialer::tcp(), &format!("https://{}/", server.addr)).await;
    let error = answer.unwrap_err();
    assert!(error.contains("no TLS configured"), "{error}");
    // The same server over http answers, as an insecure-dev caller.
    let answer = who(&Dialer::tcp(), &format!("http://{}/", server.addr)).await;
    assert_eq!(answer, Ok("insecure-dev".to_owned()));
}

#[tokio::test]
async fn a_client_that_never_finishes_its_handshake_holds_up_no_one_else() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new("cluster");
    let (server, _) = mtls_server(&pki, dir.path()).await;
    let mut silent = Vec::new();
    for _ in 0..8 {
        silent.push(tokio::net::TcpStream::connect(server.addr).await.unwrap());
    }
    let started = Instant::now();
    let dialer = Dialer::tcp().with_tls(pki.client(gateway()));
    let answer = who(&dialer, &format!("http://{}/", server.addr)).await;
    assert_eq!(answer, Ok("gateway-eu1".to_owned()));
    assert!(
        started.elapsed() < Duration::from_millis(TIMEOUT_MS),
        "served only after {:?}",
        started.elapsed()
    );
    drop(silent);
}

#[tokio::test]
async fn a_reload_is_seen_by_new_connections_and_a_bad_file_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let first = Pki::new("first");
    let (server, tls) = mtls_server(&first, dir.path()).await;
    let url = format!("http://{}/", server.addr);
    let trusts_first = Dialer::tcp().with_tls(first.client(gateway()));
    assert_eq!(who(&trusts_first, &url).await, Ok("gateway-eu1".to_owned()));

    // A broken key file: the reload fails and the server keeps serving what it had.
    std::fs::write(dir.path().join("server.key"), "not a key").unwrap();
    assert!(tls.reload().is_err());
    assert_eq!(who(&trusts_first, &url).await, Ok("gateway-eu1".to_owned()));

    // New material from another CA, rewritten in place: after the reload a client trusting
    // only the first CA is refused and one of the second is served.
    let second = Pki::new("second");
    second.write(dir.path(), "server", Identity::new(Role::Node, "1"));
    tls.reload().unwrap();
    let trusts_first = Dialer::tcp().with_tls(first.client(gateway()));
    assert!(who(&trusts_first, &url).await.is_err());
    let trusts_second = Dialer::tcp().with_tls(second.client(gateway()));
    assert_eq!(
        who(&trusts_second, &url).await,
        Ok("gateway-eu1".to_owned())
    );
}
