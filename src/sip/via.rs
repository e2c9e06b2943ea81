//! The Via header value (RFC 3261 §20.42, §18.2.1; RFC 3581 rport).

use super::lex::{self, sws, token, trim_lws, trim_lws_start, Res};
use super::params;
use super::ParseError;

/// One Via value: `SIP/2.0/UDP host:port;params`.
#[derive(Debug, Clone)]
pub struct Via<'a> {
    /// Transport token, upper case as written (UDP, TCP, TLS, SCTP, WS, …).
    pub transport: &'a str,
    /// sent-by host; IPv6 references keep their brackets.
    pub host: &'a str,
    pub port: Option<u16>,
    /// Raw parameters without the leading ';'.
    pub params: &'a str,
}

const BAD: ParseError = ParseError::Header("via");

/// `sent-protocol LWS sent-by`: `SIP / 2.0 / UDP host [: port]`, where
/// SLASH and COLON allow LWS on both sides (RFC 3261 §25.1; RFC 4475
/// §3.1.1.1 folds a Via across three lines).
fn sent_protocol_by(i: &str) -> Res<'_, (&str, &str, &str, &str, Option<u16>)> {
    let (i, name) = token(i)?;
    let (i, version) = token(slash(i)?)?;
    let (i, transport) = token(slash(i)?)?;
    let (i, _) = lex::lws(i)?;
    let (i, host) = lex::host(i)?;
    let (after_ws, _) = sws(i)?;
    let (i, port) = match after_ws.strip_prefix(':') {
        Some(p) => {
            let (p, _) = sws(p)?;
            let (p, port) = lex::port(p)?;
            (p, Some(port))
        }
        None => (i, None),
    };
    Ok((i, (name, version, transport, host, port)))
}

/// An `rport` value as a port; None when it is not one.
pub(super) fn port_value(p: &str) -> Option<u16> {
    lex::parse_u32(p).and_then(|n| u16::try_from(n).ok())
}

/// `SLASH` (LWS allowed on both sides): what follows it.
fn slash(i: &str) -> Result<&str, nom::Err<()>> {
    match trim_lws_start(i).strip_prefix('/') {
        Some(rest) => Ok(trim_lws_start(rest)),
        None => lex::fail(),
    }
}

impl<'a> Via<'a> {
    /// Parses one Via value (one element of the comma list). Only SIP/2.0
    /// is accepted; parameters must be well formed (no empty ones, RFC 4475
    /// §3.1.2.1).
    pub fn parse(text: &'a str) -> Result<Via<'a>, ParseError> {
        let t = trim_lws(text);
        let (rest, (name, version, transport, host, port)) =
            sent_protocol_by(t).map_err(|_| BAD)?;
        if !name.eq_ignore_ascii_case("SIP") || version != "2.0" {
            return Err(BAD);
        }
        let rest = lex::trim_lws_start(rest);
        let params = if rest.is_empty() {
            ""
        } else {
            let p = trim_lws(rest.strip_prefix(';').ok_or(BAD)?);
            if p.is_empty() || !params::check(p) {
                return Err(BAD);
            }
            p
        };
        Ok(Via {
            transport,
            host,
            port,
            params,
        })
    }

    /// A parameter: None absent, Some(None) present without a value.
    pub fn param(&self, name: &str) -> Option<Option<&'a str>> {
        params::find(self.params, name)
    }

    /// The transaction id (RFC 3261 §8.1.1.7); may lack the magic cookie
    /// when the sender follows RFC 2543.
    pub fn branch(&self) -> Option<&'a str> {
        self.param("branch").flatten()
    }

    /// The source address a server stamped on this hop (RFC 3261 §18.2.1).
    pub fn received(&self) -> Option<&'a str> {
        self.param("received").flatten()
    }

    /// None: absent; Some(None): `;rport` without value (or with a value
    /// that is not a port).
    pub fn rport(&self) -> Option<Option<u16>> {
        self.param("rport").map(|v| v.and_then(port_value))
    }

    /// The multicast address to send replies to (RFC 3261 §18.2.2).
    pub fn maddr(&self) -> Option<&'a str> {
        self.param("maddr").flatten()
    }

    /// The multicast ttl (0–255); None when absent or out of range.
    pub fn ttl(&self) -> Option<u8> {
        self.param("ttl")
            .flatten()
            .and_then(lex::parse_u32)
            .and_then(|n| u8::try_from(n).ok())
    }

    /// The sent-by host without IPv6 brackets.
    pub fn host_bare(&self) -> &'a str {
        self.host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(self.host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain() {
        let v = Via::parse("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776;rport;received=10.0.0.1;maddr=224.0.1.75;ttl=16").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.host, "192.0.2.1");
        assert_eq!(v.port, Some(5060));
        assert_eq!(v.branch(), Some("z9hG4bK776"));
        assert_eq!(v.rport(), Some(None));
        assert_eq!(v.received(), Some("10.0.0.1"));
        assert_eq!(v.maddr(), Some("224.0.1.75"));
        assert_eq!(v.ttl(), Some(16));
        assert_eq!(v.param("BRANCH"), Some(Some("z9hG4bK776")));
    }

    #[test]
    fn folded_with_lws_everywhere() {
        let v = Via::parse("SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.host, "192.0.2.2");
        assert_eq!(v.branch(), Some("390skdjuw"));
        let v = Via::parse(
            "SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8",
        )
        .unwrap();
        assert_eq!(v.transport, "TCP");
        assert_eq!(v.host, "spindle.example.com");
        assert_eq!(v.branch(), Some("z9hG4bK9ikj8"));
        let v = Via::parse("SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n z9hG4bK30239")
            .unwrap();
        assert_eq!(v.branch(), Some("z9hG4bK30239"));
        let v = Via::parse("SIP/2.0/TCP host : 5061").unwrap();
        assert_eq!(v.port, Some(5061));
    }

    #[test]
    fn ipv6_sent_by_and_received() {
        let v = Via::parse(
            "SIP/2.0/TLS [2001:db8::9:1]:5061;branch=z9hG4bKas;received=2001:db8::9:255;rport=5061",
        )
        .unwrap();
        assert_eq!(v.host, "[2001:db8::9:1]");
        assert_eq!(v.host_bare(), "2001:db8::9:1");
        assert_eq!(v.port, Some(5061));
        assert_eq!(v.received(), Some("2001:db8::9:255"));
        assert_eq!(v.rport(), Some(Some(5061)));
    }

    #[test]
    fn unknown_transport_and_no_params() {
        let v = Via::parse("SIP/2.0/UNKNOWN t4.example.com").unwrap();
        assert_eq!(v.transport, "UNKNOWN");
        assert_eq!(v.params, "");
        assert_eq!(v.branch(), None);
        assert_eq!(v.rport(), None);
        assert_eq!(v.ttl(), None);
    }

    #[test]
    fn rejects_malformed() {
        for s in [
            "",
            "SIP/2.0/UDP",
            "SIP/2.0/UDP ",
            "SIP/2.0 UDP host",
            "SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw",
            "HTTP/2.0/UDP host",
            "SIP/2.0/UDP 192.0.2.15;;",
            "SIP/2.0/UDP host;",
            "SIP/2.0/UDP host:99999",
            "SIP/2.0/UDP host:",
            "SIP/2.0/UDP [::1",
            "SIP/2.0/UDP host junk",
            "SIP/2.0/UDPhost",
        ] {
            assert!(Via::parse(s).is_err(), "{s:?}");
        }
    }
}
