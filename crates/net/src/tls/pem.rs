//! Reading certificates and keys from PEM, with errors that name the file and say what to fix.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};

/// Why TLS material could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{what} holds no PEM certificate: give a file with at least one `-----BEGIN CERTIFICATE-----` block")]
    NoCertificate { what: String },
    #[error("{what} holds no PEM private key: give a PKCS#8, PKCS#1 or SEC1 key (`tally certs` writes PKCS#8)")]
    NoKey { what: String },
    #[error("{what} is not valid PEM: {reason}")]
    Pem { what: String, reason: String },
    #[error("the TLS configuration is unusable: {0}")]
    Config(String),
    #[error("cannot issue a certificate: {0}")]
    Issue(String),
}

/// PEM bytes of a certificate chain and its key, with where they came from for errors.
#[derive(Clone)]
pub struct PemSource {
    pub what: String,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for PemSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The bytes may be a private key.
        f.debug_struct("PemSource")
            .field("what", &self.what)
            .finish()
    }
}

impl PemSource {
    pub fn read(path: &Path) -> Result<PemSource, TlsError> {
        let bytes = std::fs::read(path).map_err(|e| TlsError::Read {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(PemSource {
            what: path.display().to_string(),
            bytes,
        })
    }

    pub fn from_text(what: &str, text: &str) -> PemSource {
        PemSource {
            what: what.to_owned(),
            bytes: text.as_bytes().to_vec(),
        }
    }

    /// Every certificate, in order; at least one.
    pub fn certificates(&self) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        let certs = CertificateDer::pem_slice_iter(&self.bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::Pem {
                what: self.what.clone(),
                reason: e.to_string(),
            })?;
        if certs.is_empty() {
            return Err(TlsError::NoCertificate {
                what: self.what.clone(),
            });
        }
        Ok(certs)
    }

    /// The first private key.
    pub fn private_key(&self) -> Result<PrivateKeyDer<'static>, TlsError> {
        PrivateKeyDer::from_pem_slice(&self.bytes).map_err(|e| match e {
            rustls_pki_types::pem::Error::NoItemsFound => TlsError::NoKey {
                what: self.what.clone(),
            },
            other => TlsError::Pem {
                what: self.what.clone(),
                reason: other.to_string(),
            },
        })
    }

    /// The certificates as a root store (a CA bundle).
    pub fn root_store(&self) -> Result<rustls::RootCertStore, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in self.certificates()? {
            roots.add(cert).map_err(|e| TlsError::Pem {
                what: self.what.clone(),
                reason: format!("not a usable CA certificate: {e}"),
            })?;
        }
        Ok(roots)
    }
}

/// The crypto provider every Tally TLS config uses: ring, never a process-wide default.
///
/// rustls 0.23.48 deprecates ring's provider because it has no post-quantum key exchange; the
/// provider that has one (aws-lc-rs) needs cmake and a C toolchain to build, which Tally's
/// build does not assume. SECURITY.md records the trade.
#[allow(deprecated)]
pub fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}
