//! The client side: which CA the server must chain to, and the client's own certificate for
//! mutual TLS.

use super::pem::{provider, PemSource, TlsError};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// Where a client's TLS material lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientTlsFiles {
    /// PEM: the CA bundle the server's certificate must chain to.
    pub ca: PathBuf,
    /// PEM certificate and key to show (mutual TLS); `None` to show none.
    pub identity: Option<(PathBuf, PathBuf)>,
}

/// The material itself.
#[derive(Clone, Debug)]
pub struct ClientTlsPem {
    pub ca: PemSource,
    pub identity: Option<(PemSource, PemSource)>,
}

impl ClientTlsFiles {
    pub fn read(&self) -> Result<ClientTlsPem, TlsError> {
        let identity = match &self.identity {
            None => None,
            Some((cert, key)) => Some((PemSource::read(cert)?, PemSource::read(key)?)),
        };
        Ok(ClientTlsPem {
            ca: PemSource::read(&self.ca)?,
            identity,
        })
    }
}

/// A client TLS configuration. Cheap to clone.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls").finish_non_exhaustive()
    }
}

impl ClientTls {
    pub fn load(files: &ClientTlsFiles) -> Result<ClientTls, TlsError> {
        ClientTls::from_pem(&files.read()?)
    }

    pub fn from_pem(pem: &ClientTlsPem) -> Result<ClientTls, TlsError> {
        ClientTls::with_roots(pem.ca.root_store()?, pem.identity.as_ref())
    }

    /// Trusts `roots` (a configured bundle, or the system's for webhooks).
    pub fn with_roots(
        roots: rustls::RootCertStore,
        identity: Option<&(PemSource, PemSource)>,
    ) -> Result<ClientTls, TlsError> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(roots);
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => builder
                .with_client_auth_cert(cert.certificates()?, key.private_key()?)
                .map_err(|e| {
                    TlsError::Config(format!(
                        "client certificate {} and key {} do not go together: {e}",
                        cert.what, key.what
                    ))
                })?,
        };
        Ok(ClientTls {
            config: Arc::new(config),
        })
    }

    /// For servers outside Tally (merchants' webhook endpoints): the system's trusted roots plus
    /// `extra` (a configured bundle), or `extra` alone when `system_roots` is false; offers
    /// HTTP/2 and HTTP/1.1.
    pub fn public(extra: Option<&PemSource>, system_roots: bool) -> Result<ClientTls, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        if system_roots {
            let found = rustls_native_certs::load_native_certs();
            for error in &found.errors {
                tracing::warn!(%error, "a system root certificate could not be read");
            }
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                // Not fatal: deliveries to https endpoints then fail, each attempt recorded.
                tracing::warn!("no trusted root certificates found on this system: install ca-certificates, or give a CA bundle, for https endpoints");
            }
        }
        if let Some(extra) = extra {
            for cert in extra.certificates()? {
                roots.add(cert).map_err(|e| TlsError::Pem {
                    what: extra.what.clone(),
                    reason: format!("not a usable CA certificate: {e}"),
                })?;
            }
        }
        let mut tls = ClientTls::with_roots(roots, None)?;
        let config = Arc::make_mut(&mut tls.config);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(tls)
    }

    /// Runs the handshake over `io`, dialed to `addr` (`host:port`).
    pub async fn connect<S>(
        &self,
        addr: &str,
        io: S,
    ) -> io::Result<tokio_rustls::client::TlsStream<S>>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let name = server_name_of(addr)?;
        tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(name, io)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("TLS handshake with {addr}: {e}")))
    }
}

/// The name a server at `addr` (`host:port`, `[v6]:port`) must carry: its host, DNS or IP.
fn server_name_of(addr: &str) -> io::Result<ServerName<'static>> {
    ServerName::try_from(crate::dial::host_of(addr).to_owned()).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{addr}: no TLS server name in it: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_name_is_the_host_dialed() {
        assert_eq!(
            server_name_of("node1:7000").unwrap(),
            ServerName::try_from("node1").unwrap()
        );
        assert!(matches!(
            server_name_of("127.0.0.1:7000").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name_of("[::1]:7000").unwrap(),
            ServerName::IpAddress(_)
        ));
    }
}
