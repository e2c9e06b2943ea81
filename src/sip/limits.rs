//! Size caps on what a peer sends, checked once a message parsed and
//! before anything routes it: a header field, the whole header block, the
//! Request-URI, and the host of the Request-URI, each Via, Route and
//! Record-Route. A 64 KB Via host (PROTOS c07-sip case 388) is refused
//! here rather than forwarded to a peer that may not survive it.

use super::header::HeaderKind;
use super::message::Message;
use super::nameaddr::NameAddr;
use super::split::CommaSplit;
use super::uri::Uri;
use super::via::Via;
use super::{ParseError, MAX_MESSAGE_SIZE};

/// The caps (`config.max_header_size`, `max_headers_size`, `max_uri_size`,
/// `max_host_size`), in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// One header field with its name and folded lines.
    pub header: usize,
    /// The start line and all header fields.
    pub headers: usize,
    /// The Request-URI (OpenSIPS `MAX_URI_SIZE`: 1024).
    pub uri: usize,
    /// A host name in the Request-URI, a Via, a Route or a Record-Route
    /// (RFC 1035 §2.3.4: 255; OpenSIPS `MAX_DNS_NAME` 256 with its NUL).
    pub host: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header: 8192,
            headers: MAX_MESSAGE_SIZE,
            uri: 1024,
            host: 255,
        }
    }
}

/// The name a limit error gives a header kind.
fn kind_name(kind: HeaderKind) -> &'static str {
    match kind {
        HeaderKind::Via => "via",
        HeaderKind::From => "from",
        HeaderKind::To => "to",
        HeaderKind::CallId => "call-id",
        HeaderKind::CSeq => "cseq",
        HeaderKind::Contact => "contact",
        HeaderKind::ContentLength => "content-length",
        HeaderKind::ContentType => "content-type",
        HeaderKind::MaxForwards => "max-forwards",
        HeaderKind::Route => "route",
        HeaderKind::RecordRoute => "record-route",
        HeaderKind::Other => "header",
    }
}

impl Message {
    /// Checks the message against `l`: `TooLong` names the header (or
    /// "headers", "uri"), `HostTooLong` where the host was. Values whose
    /// length cannot hold a host over the cap are not parsed, so ordinary
    /// traffic pays one pass over the header index.
    pub fn check_limits(&self, l: &Limits) -> Result<(), ParseError> {
        if self.head_end as usize > l.headers {
            return Err(ParseError::TooLong("headers"));
        }
        if self.is_request() {
            let ruri = self.original_ruri();
            if ruri.len() > l.uri {
                return Err(ParseError::TooLong("uri"));
            }
            if ruri.len() > l.host && Uri::parse(ruri).is_ok_and(|u| u.host.len() > l.host) {
                return Err(ParseError::HostTooLong("uri"));
            }
        }
        for h in &self.headers {
            if h.line.range().len() > l.header {
                return Err(ParseError::TooLong(kind_name(h.kind)));
            }
            if h.value.range().len() <= l.host
                || !matches!(
                    h.kind,
                    HeaderKind::Via | HeaderKind::Route | HeaderKind::RecordRoute
                )
            {
                continue;
            }
            let value = self.value_of(h);
            let long = |host: &str| host.len() > l.host;
            let over = match h.kind {
                HeaderKind::Via => {
                    CommaSplit::new(value).any(|v| Via::parse(v).is_ok_and(|v| long(v.host)))
                }
                HeaderKind::Route | HeaderKind::RecordRoute => CommaSplit::new(value).any(|v| {
                    NameAddr::parse(v)
                        .ok()
                        .and_then(|na| Uri::parse(na.uri).ok())
                        .is_some_and(|u| long(u.host))
                }),
                _ => false,
            };
            if over {
                return Err(ParseError::HostTooLong(kind_name(h.kind)));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    const OK: &str = "OPTIONS sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\nRoute: <sip:p.example.com;lr>\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: x\r\nCSeq: 2 OPTIONS\r\nContent-Length: 0\r\n\r\n";

    fn check(from: &str, to: &str) -> Result<(), ParseError> {
        let m = Message::parse(Bytes::from(OK.replacen(from, to, 1))).unwrap();
        m.check_limits(&Limits::default())
    }

    #[test]
    fn caps() {
        assert_eq!(check("", ""), Ok(()));
        let host = "h".repeat(300);
        assert_eq!(
            check("h.example.com", &host),
            Err(ParseError::HostTooLong("via"))
        );
        // The second Via of a comma list counts as well.
        assert_eq!(
            check(
                "h.example.com;branch=z9hG4bK1",
                &format!("h;branch=z9hG4bK1, SIP/2.0/UDP {host}")
            ),
            Err(ParseError::HostTooLong("via"))
        );
        assert_eq!(
            check("p.example.com", &host),
            Err(ParseError::HostTooLong("route"))
        );
        assert_eq!(
            check("sip:b@example.com SIP", &format!("sip:b@{host} SIP")),
            Err(ParseError::HostTooLong("uri"))
        );
        let user = "u".repeat(1100);
        assert_eq!(
            check("sip:b@example.com SIP", &format!("sip:{user}@b SIP")),
            Err(ParseError::TooLong("uri"))
        );
        // 300 bytes of user part: long, but no host over the cap.
        assert_eq!(
            check("<sip:a@b>", &format!("<sip:{}@b>", "u".repeat(300))),
            Ok(())
        );
        assert_eq!(
            check("Call-ID: x", &format!("Call-ID: {}", "x".repeat(9000))),
            Err(ParseError::TooLong("call-id"))
        );
        let mut m = Message::parse(Bytes::from(OK)).unwrap();
        let tight = Limits {
            headers: 100,
            ..Limits::default()
        };
        assert_eq!(m.check_limits(&tight), Err(ParseError::TooLong("headers")));
        m = Message::parse(Bytes::from(OK)).unwrap();
        assert_eq!(m.check_limits(&Limits::default()), Ok(()));
    }
}
