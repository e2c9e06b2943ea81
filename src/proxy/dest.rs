//! Next hop from a URI (RFC 3263 without SRV/NAPTR yet): transport from
//! `transport=`, host from `maddr` or the host part, port or 5060.

use std::net::{IpAddr, SocketAddr};

use crate::script::call::Dest;
use crate::sip::{Scheme, Uri};
use crate::transport::Proto;

/// Where a URI says to send: transport and address or name.
pub fn next_hop(uri: &str) -> Result<(Proto, Dest), String> {
    let u = Uri::parse(uri).map_err(|_| format!("'{uri}' is not a valid URI"))?;
    match u.scheme {
        Scheme::Sip => {}
        Scheme::Sips => {
            return Err(format!(
                "'{uri}': sips needs TLS, which lunasip does not offer yet"
            ))
        }
        _ => return Err(format!("'{uri}': cannot route a non-SIP URI")),
    }
    let proto = match u.param("transport") {
        None | Some(None) => Proto::Udp,
        Some(Some(t)) => {
            Proto::parse(t).ok_or_else(|| format!("'{uri}': transport {t} is not supported"))?
        }
    };
    let host = match u.param("maddr") {
        Some(Some(m)) => m,
        _ => u.host_bare(),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = u.port.unwrap_or(5060);
    Ok((proto, host_dest(host, port)))
}

/// An IP literal becomes an address; anything else a name to resolve.
pub fn host_dest(host: &str, port: u16) -> Dest {
    match host.parse::<IpAddr>() {
        Ok(ip) => Dest::Addr(SocketAddr::new(ip, port)),
        Err(_) => Dest::Name(host.to_ascii_lowercase(), port),
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
            (Proto::Udp, Dest::Name("example.com".into(), 5060))
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
