//! Who is on the other end of a connection, and what that lets them call.
//!
//! A Tally certificate names its holder in one DNS subject-alternative name of the form
//! `<role>-<name>.id.tally` (`node-1.id.tally`, `gateway-eu1.id.tally`,
//! `operator-alice.id.tally`, `client-shop.id.tally`). The name is only trusted after rustls has
//! verified the chain to the cluster CA; this module reads it, it verifies nothing.

use std::fmt;

/// The DNS suffix that marks an identity name.
pub const IDENTITY_SUFFIX: &str = ".id.tally";
/// Longest identity name accepted (a DNS label).
pub const IDENTITY_NAME_BYTES_MAX: usize = 63;

/// What a certificate's holder is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// A cluster node: may call other nodes' Raft service.
    Node,
    /// A payments gateway: may call the nodes' payments door and the ledger API.
    Gateway,
    /// An operator (the `tally` CLI run by a person): the admin API and the ledger API.
    Operator,
    /// A ledger client (an application posting transfers): the ledger API only.
    Client,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Node, Role::Gateway, Role::Operator, Role::Client];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Node => "node",
            Role::Gateway => "gateway",
            Role::Operator => "operator",
            Role::Client => "client",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == text)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A verified holder: its role and its name within the role.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Identity {
    pub role: Role,
    pub name: String,
}

impl Identity {
    /// `role` named `name`; `None` unless `name` is a DNS label of lowercase letters, digits and
    /// inner hyphens, at most [`IDENTITY_NAME_BYTES_MAX`] bytes.
    pub fn new(role: Role, name: &str) -> Option<Identity> {
        let valid = !name.is_empty()
            && name.len() <= IDENTITY_NAME_BYTES_MAX
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !name.starts_with('-')
            && !name.ends_with('-');
        valid.then(|| Identity {
            role,
            name: name.to_owned(),
        })
    }

    /// The DNS name that carries this identity in a certificate.
    pub fn dns_name(&self) -> String {
        format!("{}-{}{IDENTITY_SUFFIX}", self.role, self.name)
    }

    /// The identity a DNS name carries, if it is one.
    pub fn from_dns_name(dns: &str) -> Option<Identity> {
        let label = dns.to_ascii_lowercase();
        let label = label.strip_suffix(IDENTITY_SUFFIX)?;
        let (role, name) = label.split_once('-')?;
        Identity::new(Role::parse(role)?, name)
    }

    /// The identity in a DER certificate: its one `*.id.tally` DNS name. `None` when it has no
    /// such name, or several different ones (an ambiguous certificate grants nothing).
    pub fn from_certificate(der: &[u8]) -> Option<Identity> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let sans = cert.subject_alternative_name().ok()??;
        let mut found: Option<Identity> = None;
        for name in &sans.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(dns) = name {
                if let Some(identity) = Identity::from_dns_name(dns) {
                    match &found {
                        Some(other) if *other != identity => return None,
                        _ => found = Some(identity),
                    }
                }
            }
        }
        found
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.role, self.name)
    }
}

/// Who sent a request, as the server saw the connection. Every request a Tally server serves
/// carries one in its extensions; authorization fails closed on a request without one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    /// Mutual TLS: a certificate chained to the cluster CA.
    Verified(Identity),
    /// TLS, but the client showed no certificate (or one with no identity name).
    Anonymous,
    /// A plaintext server started with `--insecure-dev`: every caller may do everything.
    InsecureDev,
}

impl Peer {
    /// Whether this peer may call a service open to `allowed`.
    pub fn is_allowed(&self, allowed: &[Role]) -> bool {
        match self {
            Peer::InsecureDev => true,
            Peer::Verified(identity) => allowed.contains(&identity.role),
            Peer::Anonymous => false,
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Verified(identity) => write!(f, "{identity}"),
            Peer::Anonymous => f.write_str("a caller without a client certificate"),
            Peer::InsecureDev => f.write_str("an insecure-dev caller"),
        }
    }
}

/// Why a request was refused: says who called, what they needed to be, and what to do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{service} is open to {} only, and {who} is none of them: call it with a certificate whose identity is one of those roles", roles(allowed))]
pub struct NotAllowed {
    pub service: &'static str,
    pub allowed: Vec<Role>,
    /// Who called, as text (`gateway-eu1`, or why there is no identity).
    pub who: String,
}

fn roles(allowed: &[Role]) -> String {
    allowed
        .iter()
        .map(|role| role.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Allows `peer` to call `service` if it holds one of `allowed`. No peer (a request that did not
/// come through `tally_net::serve`) is refused.
pub fn authorize(
    peer: Option<&Peer>,
    service: &'static str,
    allowed: &[Role],
) -> Result<(), NotAllowed> {
    match peer {
        Some(peer) if peer.is_allowed(allowed) => Ok(()),
        _ => Err(NotAllowed {
            service,
            allowed: allowed.to_vec(),
            who: peer.map_or_else(|| "an unidentified caller".to_owned(), Peer::to_string),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_round_trips_through_its_dns_name() {
        for role in Role::ALL {
            let identity = Identity::new(role, "eu-1").unwrap();
            assert_eq!(
                Identity::from_dns_name(&identity.dns_name()),
                Some(identity)
            );
        }
    }

    #[test]
    fn names_that_are_not_identities_are_refused() {
        for dns in [
            "localhost",
            "node-1.id.tally.evil.com",
            "admin-1.id.tally",
            "node-.id.tally",
            "node-a_b.id.tally",
            "node.id.tally",
            "-1.id.tally",
        ] {
            assert_eq!(Identity::from_dns_name(dns), None, "{dns}");
        }
    }

    #[test]
    fn authorization_fails_closed() {
        let gateway = Peer::Verified(Identity::new(Role::Gateway, "a").unwrap());
        assert!(authorize(Some(&gateway), "Admin", &[Role::Operator]).is_err());
        assert!(authorize(Some(&gateway), "Ledger", &[Role::Gateway, Role::Client]).is_ok());
        assert!(authorize(Some(&Peer::Anonymous), "Ledger", &Role::ALL).is_err());
        assert!(authorize(None, "Ledger", &Role::ALL).is_err());
        assert!(authorize(Some(&Peer::InsecureDev), "Admin", &[Role::Operator]).is_ok());
        let refusal = authorize(Some(&gateway), "Admin", &[Role::Operator]).unwrap_err();
        assert!(refusal.to_string().contains("gateway-a"), "{refusal}");
    }
}
