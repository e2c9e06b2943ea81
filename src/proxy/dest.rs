//! Next hop from a URI (RFC 3263 without SRV/NAPTR yet): transport from
//! `transport=`, host from `maddr` or the host part, port or 5060.

use std::net::{IpAddr, SocketAddr};

use super::ProxyError;
use crate::proxy::context::Dest;
use crate::sip::{Scheme, Uri};
use crate::transport::dns::Hop;
use crate::transport::Proto;

/// Where a URI says to send: transport and address, or a name to locate
/// (RFC 3263) later.
pub fn next_hop(uri: &str) -> Result<(Proto, Dest), ProxyError> {
    next_hop_forced(uri, None)
}

/// [`next_hop`] for a request with a forced sending socket of `forced`'s
/// transport: a URI without `transport=` goes over that transport
/// (OpenSIPS tm `uri2proxy` with the forced socket's proto).
pub fn next_hop_forced(uri: &str, forced: Option<Proto>) -> Result<(Proto, Dest), ProxyError> {
    let (proto, hop) = hop_forced(uri, forced)?;
    match hop.host.parse::<IpAddr>() {
        Ok(ip) => Ok((
            proto,
            Dest::Addr(SocketAddr::new(ip, hop.port.unwrap_or(5060))),
        )),
        Err(_) => Ok((proto, Dest::Name(hop))),
    }
}

/// The RFC 3263 view of a URI: the transport a copy is sent with (the
/// `transport=` parameter, else UDP) and the hop to locate: host from
/// `maddr` or the host part, the port and transport when the URI fixes them.
pub fn hop(uri: &str) -> Result<(Proto, Hop), ProxyError> {
    hop_forced(uri, None)
}

/// [`hop`] with the transport of a forced sending socket standing in for
/// an absent `transport=` parameter.
pub fn hop_forced(uri: &str, forced: Option<Proto>) -> Result<(Proto, Hop), ProxyError> {
    let bad = |why: String| ProxyError::BadUri(why);
    let u = Uri::parse(uri).map_err(|_| bad(format!("'{uri}' is not a valid URI")))?;
    match u.scheme {
        Scheme::Sip => {}
        Scheme::Sips => {
            return Err(bad(format!(
                "'{uri}': sips needs TLS, which lunasip does not offer yet"
            )))
        }
        _ => return Err(bad(format!("'{uri}': cannot route a non-SIP URI"))),
    }
    let explicit = match u.param("transport") {
        None | Some(None) => forced,
        Some(Some(t)) => Some(
            Proto::parse(t)
                .ok_or_else(|| bad(format!("'{uri}': transport {t} is not supported")))?,
        ),
    };
    let host = match u.param("maddr") {
        Some(Some(m)) => m,
        _ => u.host_bare(),
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    Ok((
        explicit.unwrap_or(Proto::Udp),
        Hop {
            host,
            port: u.port,
            proto: explicit,
        },
    ))
}

/// An IP literal becomes an address; anything else a name to resolve
/// (A/AAAA only: the port is fixed, as in a Via's sent-by, RFC 3263 §5).
pub fn host_dest(host: &str, port: u16) -> Dest {
    match host.parse::<IpAddr>() {
        Ok(ip) => Dest::Addr(SocketAddr::new(ip, port)),
        Err(_) => Dest::Name(Hop {
            host: host.to_ascii_lowercase(),
            port: Some(port),
            proto: None,
        }),
    }
}

/// Addresses a datagram must never be sent to (RFC 4475 §3.3.10: a reply
/// with a broadcast Via must not be amplified).
pub fn is_forbidden(addr: &SocketAddr) -> bool {
    let ip = addr.ip();
    ip.is_unspecified()
        || ip.is_multicast()
        || matches!(ip, IpAddr::V4(v4) if v4.is_broadcast())
        || addr.port() == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hops() {
        assert_eq!(
            next_hop("sip:bob@127.0.0.1:5080").unwrap(),
            (Proto::Udp, Dest::Addr("127.0.0.1:5080".parse().unwrap()))
        );
        assert_eq!(
            next_hop("sip:bob@[::1];transport=tcp").unwrap(),
            (Proto::Tcp, Dest::Addr("[::1]:5060".parse().unwrap()))
        );
        assert_eq!(
            next_hop("sip:Example.COM").unwrap(),
            (
                Proto::Udp,
                Dest::Name(Hop {
                    host: "example.com".into(),
                    port: None,
                    proto: None
                })
            )
        );
        assert_eq!(
            next_hop("sip:a@example.com;maddr=10.0.0.1").unwrap().1,
            Dest::Addr("10.0.0.1:5060".parse().unwrap())
        );
        assert!(next_hop("sips:a@example.com").is_err());
        assert!(next_hop("sip:a@example.com;transport=sctp").is_err());
        assert!(next_hop("tel:+123").is_err());
    }

    #[test]
    fn forbidden() {
        assert!(is_forbidden(&"255.255.255.255:5060".parse().unwrap()));
        assert!(is_forbidden(&"224.0.0.1:5060".parse().unwrap()));
        assert!(is_forbidden(&"0.0.0.0:5060".parse().unwrap()));
        assert!(!is_forbidden(&"127.0.0.1:5060".parse().unwrap()));
    }
}
