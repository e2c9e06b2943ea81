//! Listen entries (`proto:addr:port [as host[:port]] [anycast] [tag name]`)
//! as the config gives them and the sockets are bound from.

use std::net::SocketAddr;

use super::Proto;

/// One `listen` entry: `proto:addr:port [as host[:port]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    pub proto: Proto,
    pub addr: SocketAddr,
    /// Address to put in Via/Record-Route instead of `addr` (OpenSIPS `as`).
    pub advertise: Option<(String, u16)>,
    /// OpenSIPS `anycast`: the address is shared by several nodes, so a
    /// request of a transaction may land on a node that does not hold it
    /// (tm's `t_anycast_replicate`).
    pub anycast: bool,
    /// OpenSIPS `tag`: a name for the socket, the same on every node of
    /// a cluster (tm's replication names the socket by it).
    pub tag: Option<String>,
}

/// Parses `udp:127.0.0.1:5060`, `tcp:[::1]:5060`, `udp:0.0.0.0:5060 as 1.2.3.4:5060`,
/// `udp:10.0.0.1:5060 anycast tag pub` (OpenSIPS cfg.y `socket_def_param`:
/// `as`, `anycast`, `tag` in any order). A missing protocol means udp; a
/// missing port means 5060.
pub fn parse_listen(spec: &str) -> Result<Listen, String> {
    let spec = spec.trim();
    let mut words = spec.split_whitespace();
    let main = words.next().unwrap_or("");
    let (mut advertise, mut anycast, mut tag) = (None, false, None);
    while let Some(w) = words.next() {
        match w.to_ascii_lowercase().as_str() {
            "as" => {
                advertise = Some(
                    words
                        .next()
                        .ok_or_else(|| format!("'as' needs an address in '{spec}'"))?,
                )
            }
            "anycast" => anycast = true,
            "tag" => {
                let t = words
                    .next()
                    .ok_or_else(|| format!("'tag' needs a name in '{spec}'"))?;
                tag = Some(t.to_string());
            }
            _ => {
                return Err(format!(
                    "unknown listen option '{w}' in '{spec}' (as, anycast, tag)"
                ))
            }
        }
    }
    let (proto, rest) = match main.split_once(':') {
        Some((p, r)) if Proto::parse(p).is_some() => (Proto::parse(p).unwrap_or(Proto::Udp), r),
        _ => (Proto::Udp, main),
    };
    let addr = parse_hostport_addr(rest).ok_or_else(|| format!("bad listen address '{spec}'"))?;
    let advertise = match advertise {
        None => None,
        Some(a) => {
            let (h, p) =
                split_hostport(a).ok_or_else(|| format!("bad advertised address '{a}'"))?;
            Some((h.to_string(), p.unwrap_or(addr.port())))
        }
    };
    Ok(Listen {
        proto,
        addr,
        advertise,
        anycast,
        tag,
    })
}

fn parse_hostport_addr(s: &str) -> Option<SocketAddr> {
    let (host, port) = split_hostport(s)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip: std::net::IpAddr = host.parse().ok()?;
    Some(SocketAddr::new(ip, port.unwrap_or(5060)))
}

/// Splits `host[:port]` where host may be `[v6]`.
pub fn split_hostport(s: &str) -> Option<(&str, Option<u16>)> {
    if s.is_empty() {
        return None;
    }
    if s.starts_with('[') {
        let end = s.find(']')?;
        let host = &s[..=end];
        let rest = &s[end + 1..];
        if rest.is_empty() {
            return Some((host, None));
        }
        let port = rest.strip_prefix(':')?.parse().ok()?;
        return Some((host, Some(port)));
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => Some((h, Some(p.parse().ok()?))),
        Some(_) => Some((s, None)), // bare IPv6 without brackets
        None => Some((s, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_forms() {
        let l = parse_listen("udp:127.0.0.1:5070").unwrap();
        assert_eq!(l.proto, Proto::Udp);
        assert_eq!(l.addr, "127.0.0.1:5070".parse().unwrap());
        let l = parse_listen("tcp:[::1]:5060").unwrap();
        assert_eq!(l.proto, Proto::Tcp);
        assert_eq!(l.addr, "[::1]:5060".parse().unwrap());
        let l = parse_listen("udp:0.0.0.0 as sip.example.com:5080").unwrap();
        assert_eq!(l.addr.port(), 5060);
        assert_eq!(l.advertise, Some(("sip.example.com".into(), 5080)));
        let l = parse_listen("10.0.0.1").unwrap();
        assert_eq!(l.proto, Proto::Udp);
        assert!(!l.anycast && l.tag.is_none());
        let l = parse_listen("udp:127.0.0.1:5070 anycast tag pub as 10.0.0.1").unwrap();
        assert!(l.anycast);
        assert_eq!(l.tag.as_deref(), Some("pub"));
        assert_eq!(l.advertise, Some(("10.0.0.1".into(), 5070)));
        assert!(parse_listen("udp:127.0.0.1:5070 tag").is_err());
        assert!(parse_listen("udp:127.0.0.1:5070 anycats").is_err());
        assert!(parse_listen("udp:nohost:5060").is_err());
        assert!(parse_listen("udp:1.2.3.4:99999").is_err());
    }
}
