//! Issuing certificates: a CA and the certificates it signs, for `tally certs` (a development
//! or small deployment's PKI) and for tests. Keys are ECDSA P-256.

use super::identity::Identity;
use super::pem::TlsError;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use std::fmt;
use time::{Duration, OffsetDateTime};

/// Longest validity `issue` grants.
pub const VALIDITY_DAYS_MAX: u32 = 3_650;

/// A PEM private key: shown by `Debug` as elided, so it cannot reach a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretPem(String);

impl SecretPem {
    /// The PEM text, for writing to a key file.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretPem([private key elided])")
    }
}

/// A certificate and its key.
#[derive(Clone, Debug)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: SecretPem,
}

/// A certificate authority that can sign.
pub struct CertAuthority {
    cert_pem: String,
    key_pem: SecretPem,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for CertAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertAuthority").finish_non_exhaustive()
    }
}

fn issue_error(e: rcgen::Error) -> TlsError {
    TlsError::Issue(e.to_string())
}

fn validity(params: &mut CertificateParams, days: u32) -> Result<(), TlsError> {
    if days == 0 || days > VALIDITY_DAYS_MAX {
        return Err(TlsError::Issue(format!(
            "a validity of {days} days: give 1 to {VALIDITY_DAYS_MAX}"
        )));
    }
    let now = OffsetDateTime::now_utc();
    // A day of slack for clocks that run behind the issuer's.
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(i64::from(days));
    Ok(())
}

impl CertAuthority {
    /// A new self-signed CA called `name`, valid for `days`.
    pub fn generate(name: &str, days: u32) -> Result<CertAuthority, TlsError> {
        let key = KeyPair::generate().map_err(issue_error)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        dn.push(DnType::OrganizationName, "Tally");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut params, days)?;
        let cert = params.self_signed(&key).map_err(issue_error)?;
        let key_pem = SecretPem(key.serialize_pem());
        Ok(CertAuthority {
            cert_pem: cert.pem(),
            key_pem,
            issuer: Issuer::new(params, key),
        })
    }

    /// A CA from its certificate and key (as `generate` wrote them).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<CertAuthority, TlsError> {
        let key =
            KeyPair::from_pem(key_pem).map_err(|e| TlsError::Issue(format!("the CA key: {e}")))?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)
            .map_err(|e| TlsError::Issue(format!("the CA certificate: {e}")))?;
        Ok(CertAuthority {
            cert_pem: cert_pem.to_owned(),
            key_pem: SecretPem(key_pem.to_owned()),
            issuer,
        })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn key_pem(&self) -> &SecretPem {
        &self.key_pem
    }

    /// A certificate for `identity` (its `*.id.tally` name) that is also valid for `hosts` (DNS
    /// names or IP addresses it serves on), usable by servers and clients alike.
    pub fn issue(
        &self,
        identity: Option<&Identity>,
        hosts: &[String],
        days: u32,
    ) -> Result<Issued, TlsError> {
        let mut names: Vec<String> = identity.map(Identity::dns_name).into_iter().collect();
        names.extend(hosts.iter().cloned());
        if names.is_empty() {
            return Err(TlsError::Issue(
                "a certificate needs an identity or at least one host".to_owned(),
            ));
        }
        let mut params = CertificateParams::new(names).map_err(issue_error)?;
        let mut dn = DistinguishedName::new();
        let common_name = match identity {
            Some(identity) => identity.to_string(),
            None => hosts[0].clone(),
        };
        dn.push(DnType::CommonName, common_name);
        dn.push(DnType::OrganizationName, "Tally");
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        validity(&mut params, days)?;
        debug_assert!(params
            .subject_alt_names
            .iter()
            .all(|san| matches!(san, SanType::DnsName(_) | SanType::IpAddress(_))));
        let key = KeyPair::generate().map_err(issue_error)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(issue_error)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: SecretPem(key.serialize_pem()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::identity::Role;

    #[test]
    fn an_issued_certificate_carries_its_identity() {
        let ca = CertAuthority::generate("test CA", 30).unwrap();
        let identity = Identity::new(Role::Gateway, "eu1").unwrap();
        let issued = ca
            .issue(Some(&identity), &["localhost".to_owned()], 30)
            .unwrap();
        let pem = crate::tls::PemSource::from_text("issued", &issued.cert_pem);
        let der = pem.certificates().unwrap().remove(0);
        assert_eq!(Identity::from_certificate(&der), Some(identity));
        assert!(!format!("{issued:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn a_ca_read_back_from_pem_still_signs() {
        let ca = CertAuthority::generate("test CA", 30).unwrap();
        let again = CertAuthority::from_pem(ca.cert_pem(), ca.key_pem().expose()).unwrap();
        again.issue(None, &["127.0.0.1".to_owned()], 1).unwrap();
        assert!(ca.issue(None, &[], 1).is_err());
        assert!(ca.issue(None, &["a".to_owned()], 0).is_err());
    }
}
