//! The server side: a certificate and key, and, for mutual TLS, the CA client certificates must
//! chain to. Reloadable in place: a reload builds the new configuration completely before it
//! replaces the old, so a bad file leaves the server serving what it had.

use super::pem::{provider, PemSource, TlsError};
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

/// Which client certificates a server asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// None asked for: anyone may connect (the gateway's public API, whose callers hold API keys).
    None,
    /// A certificate chained to this CA bundle may be shown; one that does not chain is refused.
    Optional(PathBuf),
    /// A certificate chained to this CA bundle must be shown, or the handshake fails.
    Required(PathBuf),
}

/// Where a server's TLS material lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerTlsFiles {
    /// PEM: the server's certificate, then any intermediates.
    pub cert: PathBuf,
    /// PEM: its private key.
    pub key: PathBuf,
    pub client_auth: ClientAuth,
}

/// The material itself (tests and `ServerTlsFiles` both end here).
#[derive(Clone, Debug)]
pub struct ServerTlsPem {
    pub cert: PemSource,
    pub key: PemSource,
    /// `None`: no client certificates. `Some((ca, required))`.
    pub client_ca: Option<(PemSource, bool)>,
}

impl ServerTlsFiles {
    pub fn read(&self) -> Result<ServerTlsPem, TlsError> {
        let client_ca = match &self.client_auth {
            ClientAuth::None => None,
            ClientAuth::Optional(ca) => Some((PemSource::read(ca)?, false)),
            ClientAuth::Required(ca) => Some((PemSource::read(ca)?, true)),
        };
        Ok(ServerTlsPem {
            cert: PemSource::read(&self.cert)?,
            key: PemSource::read(&self.key)?,
            client_ca,
        })
    }
}

impl ServerTlsPem {
    /// A rustls config. ALPN offers HTTP/2 and HTTP/1.1 on every listener (a gRPC-only one
    /// then refuses HTTP/1.1 at the HTTP layer), so one configuration serves all of a process's
    /// listeners and one reload reaches them all.
    pub fn config(&self) -> Result<ServerConfig, TlsError> {
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some((ca, required)) => {
                let verifier = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(ca.root_store()?),
                    provider(),
                );
                let verifier = if *required {
                    verifier
                } else {
                    verifier.allow_unauthenticated()
                };
                let verifier = verifier
                    .build()
                    .map_err(|e| TlsError::Config(format!("client CA {}: {e}", ca.what)))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(self.cert.certificates()?, self.key.private_key()?)
            .map_err(|e| {
                TlsError::Config(format!(
                    "certificate {} and key {} do not go together: {e}",
                    self.cert.what, self.key.what
                ))
            })?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// A server's live TLS configuration. Cheap to clone; clones share the configuration, so a
/// reload through one is seen by every listener using another.
#[derive(Clone)]
pub struct ServerTls {
    current: Arc<RwLock<Arc<ServerConfig>>>,
    source: Option<ServerTlsFiles>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("source", &self.source)
            .finish()
    }
}

impl ServerTls {
    pub fn load(files: ServerTlsFiles) -> Result<ServerTls, TlsError> {
        let config = files.read()?.config()?;
        Ok(ServerTls {
            current: Arc::new(RwLock::new(Arc::new(config))),
            source: Some(files),
        })
    }

    /// From material in memory (cannot be reloaded from disk).
    pub fn from_pem(pem: &ServerTlsPem) -> Result<ServerTls, TlsError> {
        Ok(ServerTls {
            current: Arc::new(RwLock::new(Arc::new(pem.config()?))),
            source: None,
        })
    }

    /// Rereads the files and swaps the new configuration in; new connections use it, open ones
    /// keep theirs. On error nothing changes.
    pub fn reload(&self) -> Result<(), TlsError> {
        let Some(files) = &self.source else {
            return Err(TlsError::Config(
                "this TLS configuration was not loaded from files".to_owned(),
            ));
        };
        let config = Arc::new(files.read()?.config()?);
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = config;
        Ok(())
    }

    pub fn config(&self) -> Arc<ServerConfig> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config())
    }
}
