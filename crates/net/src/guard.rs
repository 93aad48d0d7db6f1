//! Where outbound requests to addresses a customer chose (webhook endpoints) may go: never to
//! loopback, private, link-local (cloud metadata included), shared, multicast or unspecified
//! addresses unless an operator allow-lists them. The check runs on the addresses DNS returned,
//! at delivery time, and the connection goes to the address that passed, so a name that
//! resolves differently between check and connect (DNS rebinding) gains nothing.

use crate::dial::{DialFuture, Dialer, Io};
use ipnet::IpNet;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// Addresses outside the public internet that are refused unless allow-listed.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_internal_v4(v4),
            None => is_internal_v6(v6),
        },
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254/16: cloud metadata services live here
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // 100.64/10, carrier-grade NAT
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // 192.0.0/24, protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // 198.18/15, benchmarking
        || a >= 240 // reserved
}

fn is_internal_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // fc00::/7, unique local
        || (first & 0xffc0) == 0xfe80 // fe80::/10, link local
        || (first == 0x2001 && ip.segments()[1] == 0x0db8) // documentation
        || (first == 0x0064 && ip.segments()[1] == 0xff9b) // NAT64: may embed an internal v4
}

/// Which internal networks an operator allows anyway (e.g. a merchant on a private link).
#[derive(Clone, Debug, Default)]
pub struct AddressPolicy {
    pub allow: Vec<IpNet>,
}

impl AddressPolicy {
    /// Parses `--webhook-allow-net` values: CIDR blocks or single addresses.
    pub fn parse(allow: &[String]) -> Result<AddressPolicy, String> {
        let mut nets = Vec::with_capacity(allow.len());
        for text in allow {
            let net = text
                .parse::<IpNet>()
                .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    format!("{text:?} is not an address or a CIDR block (e.g. 10.1.0.0/16)")
                })?;
            nets.push(net);
        }
        Ok(AddressPolicy { allow: nets })
    }

    pub fn permits(&self, ip: IpAddr) -> bool {
        !is_internal(ip) || self.allow.iter().any(|net| net.contains(&ip))
    }

    /// The first of `resolved` this policy permits, or why none is.
    pub fn choose(&self, host: &str, resolved: &[SocketAddr]) -> io::Result<SocketAddr> {
        if let Some(addr) = resolved.iter().find(|addr| self.permits(addr.ip())) {
            return Ok(*addr);
        }
        let seen = resolved
            .iter()
            .map(|addr| addr.ip().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            if resolved.is_empty() {
                format!("{host} resolves to no address")
            } else {
                format!("{host} resolves to {seen}: internal addresses (loopback, private, link-local, metadata) are refused; an operator may allow them with --webhook-allow-net")
            },
        ))
    }
}

/// OS TCP that resolves `host:port` itself and connects only to an address `policy` permits.
pub fn guarded_tcp(policy: AddressPolicy) -> Dialer {
    let policy = Arc::new(policy);
    Dialer::new(move |addr: String| -> DialFuture {
        let policy = policy.clone();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host(&addr).await?.collect();
            let chosen = policy.choose(crate::dial::host_of(&addr), &resolved)?;
            let stream = tokio::net::TcpStream::connect(chosen).await?;
            stream.set_nodelay(true)?;
            Ok(Box::new(stream) as Box<dyn Io>)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_refused_and_public_ones_pass() {
        let policy = AddressPolicy::default();
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
        ] {
            let ip: IpAddr = internal.parse().unwrap();
            assert!(!policy.permits(ip), "{internal} must be refused");
        }
        for public in ["93.184.216.34", "1.1.1.1", "2606:4700::1111"] {
            let ip: IpAddr = public.parse().unwrap();
            assert!(policy.permits(ip), "{public} must pass");
        }
    }

    #[test]
    fn an_allow_list_admits_the_networks_it_names_only() {
        let policy =
            AddressPolicy::parse(&["127.0.0.1".to_owned(), "10.1.0.0/16".to_owned()]).unwrap();
        assert!(policy.permits("127.0.0.1".parse().unwrap()));
        assert!(policy.permits("10.1.9.9".parse().unwrap()));
        assert!(!policy.permits("10.2.0.1".parse().unwrap()));
        assert!(!policy.permits("169.254.169.254".parse().unwrap()));
        assert!(AddressPolicy::parse(&["not-a-net".to_owned()]).is_err());
    }

    #[test]
    fn the_first_permitted_address_is_chosen_and_a_refusal_names_what_dns_said() {
        let policy = AddressPolicy::default();
        let resolved: Vec<SocketAddr> = vec![
            "127.0.0.1:443".parse().unwrap(),
            "93.184.216.34:443".parse().unwrap(),
        ];
        assert_eq!(
            policy.choose("shop.example", &resolved).unwrap(),
            resolved[1]
        );
        let refusal = policy.choose("evil.example", &resolved[..1]).unwrap_err();
        assert!(refusal.to_string().contains("127.0.0.1"), "{refusal}");
    }
}
