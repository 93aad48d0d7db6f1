//! The TLS flags every Tally binary takes, defined once: `--ca`, `--cert`, `--key` and
//! `--insecure-dev`, with their `TALLY_*` environment variables.

use super::client::{ClientTls, ClientTlsFiles};
use super::pem::TlsError;
use super::server::{ClientAuth, ServerTls, ServerTlsFiles};
use crate::dial::Dialer;
use crate::serve::ServerSecurity;
use std::path::PathBuf;

/// What to tell someone who started a binary without TLS material.
const HOW_TO_GET_CERTIFICATES: &str = "make a CA and certificates with `tally certs --out DIR`, or pass --insecure-dev for a plaintext development stack";

#[derive(clap::Args, Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsArgs {
    /// PEM bundle of the CA that signs the cluster's certificates: servers must chain to it,
    /// and (on nodes) so must every client certificate.
    #[arg(long, env = "TALLY_CA", global = true)]
    pub ca: Option<PathBuf>,
    /// PEM certificate this process shows (`tally certs` writes one per role).
    #[arg(long, env = "TALLY_CERT", global = true)]
    pub cert: Option<PathBuf>,
    /// PEM private key of `--cert`.
    #[arg(long, env = "TALLY_KEY", global = true)]
    pub key: Option<PathBuf>,
    /// Plaintext, no certificates, every caller trusted with every role. For a development stack
    /// on one machine only; TLS is the default.
    #[arg(long, env = "TALLY_INSECURE_DEV", global = true)]
    pub insecure_dev: bool,
}

impl TlsArgs {
    fn required(&self, flag: &str, value: &Option<PathBuf>) -> Result<PathBuf, TlsError> {
        value.clone().ok_or_else(|| {
            TlsError::Config(format!(
                "TLS is on by default and needs {flag}: {HOW_TO_GET_CERTIFICATES}"
            ))
        })
    }

    fn refuse_mixed(&self) -> Result<(), TlsError> {
        if self.insecure_dev && (self.ca.is_some() || self.cert.is_some() || self.key.is_some()) {
            return Err(TlsError::Config(
                "--insecure-dev turns TLS off, but --ca, --cert or --key was given too: pass one or the other".to_owned(),
            ));
        }
        Ok(())
    }

    /// How a server secures its listeners. `require_client_certificates`: mutual TLS (nodes);
    /// otherwise any client may connect and authenticates otherwise (the gateway's API keys).
    pub fn server_security(
        &self,
        require_client_certificates: bool,
    ) -> Result<ServerSecurity, TlsError> {
        self.refuse_mixed()?;
        if self.insecure_dev {
            return Ok(ServerSecurity::InsecureDev);
        }
        let client_auth = match (&self.ca, require_client_certificates) {
            (_, true) => ClientAuth::Required(self.required("--ca", &self.ca)?),
            (Some(ca), false) => ClientAuth::Optional(ca.clone()),
            (None, false) => ClientAuth::None,
        };
        let tls = ServerTls::load(ServerTlsFiles {
            cert: self.required("--cert", &self.cert)?,
            key: self.required("--key", &self.key)?,
            client_auth,
        })?;
        Ok(ServerSecurity::Tls(tls))
    }

    /// `base` with TLS to servers chained to `--ca`, showing `--cert` when given.
    pub fn dialer(&self, base: Dialer) -> Result<Dialer, TlsError> {
        self.refuse_mixed()?;
        if self.insecure_dev {
            return Ok(base);
        }
        let identity = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
            (None, None) => None,
            _ => {
                return Err(TlsError::Config(
                    "--cert and --key go together: pass both or neither".to_owned(),
                ))
            }
        };
        let tls = ClientTls::load(&ClientTlsFiles {
            ca: self.required("--ca", &self.ca)?,
            identity,
        })?;
        Ok(base.with_tls(tls))
    }

    /// `base` with TLS for `https` URLs only, trusting `--ca` (a dialer without it refuses
    /// `https` URLs rather than sending them in plaintext).
    pub fn https_dialer(&self, base: Dialer) -> Result<Dialer, TlsError> {
        self.refuse_mixed()?;
        match (&self.ca, self.insecure_dev) {
            (Some(ca), false) => Ok(base.with_https(ClientTls::load(&ClientTlsFiles {
                ca: ca.clone(),
                identity: None,
            })?)),
            _ => Ok(base),
        }
    }
}

/// Rereads a server's certificate and key on every SIGHUP, for rotation without a restart. A
/// reload that fails is logged and the server keeps what it had.
pub fn reload_on_hangup(security: &ServerSecurity) {
    let ServerSecurity::Tls(tls) = security else {
        return;
    };
    let tls = tls.clone();
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(hangups) => hangups,
            Err(error) => {
                tracing::error!(%error, "cannot watch for SIGHUP: TLS certificates reload only on restart");
                return;
            }
        };
        while hangups.recv().await.is_some() {
            match tls.reload() {
                Ok(()) => tracing::info!("TLS certificate and key reloaded"),
                Err(error) => {
                    tracing::error!(%error, "TLS reload failed; serving the previous certificate")
                }
            }
        }
    });
    #[cfg(not(unix))]
    let _ = tls;
}
