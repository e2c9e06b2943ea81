//! Request and response validation (RFC 3261 §16.3 step 1, §8.2.2 and
//! §8.1.3.3): what a proxy checks before it routes a message, so that a
//! malformed one gets its 400 (or 505, via the parser) up front.

use super::header::HeaderKind;
use super::lex;
use super::message::{CSeq, HeaderEntry, Message, StartLine};
use super::nameaddr::{Contacts, NameAddr};
use super::split::CommaSplit;
use super::uri::{Scheme, Uri};
use super::via::Via;
use super::ParseError;

/// How many lines a header has, and its first line.
#[derive(Clone, Copy, Default)]
struct Seen<'m> {
    count: usize,
    first: Option<&'m HeaderEntry>,
}

impl<'m> Seen<'m> {
    fn add(&mut self, h: &'m HeaderEntry) {
        self.count += 1;
        self.first.get_or_insert(h);
    }

    /// The line when the header occurs exactly once (RFC 4475 §3.3.1, §3.3.8).
    fn exactly_one(self, name: &'static str) -> Result<&'m HeaderEntry, ParseError> {
        match (self.count, self.first) {
            (1, Some(h)) => Ok(h),
            (0, _) | (_, None) => Err(ParseError::Missing(name)),
            _ => Err(ParseError::Header(name)),
        }
    }
}

/// The headers validation looks at, gathered in one pass over the index.
#[derive(Default)]
struct Tally<'m> {
    via: Seen<'m>,
    from: Seen<'m>,
    to: Seen<'m>,
    call_id: Seen<'m>,
    cseq: Seen<'m>,
    max_forwards: Seen<'m>,
    content_length: Seen<'m>,
    contact: Seen<'m>,
}

impl<'m> Tally<'m> {
    fn of(m: &'m Message) -> Tally<'m> {
        let mut t = Tally::default();
        for h in &m.headers {
            let seen = match h.kind {
                HeaderKind::Via => &mut t.via,
                HeaderKind::From => &mut t.from,
                HeaderKind::To => &mut t.to,
                HeaderKind::CallId => &mut t.call_id,
                HeaderKind::CSeq => &mut t.cseq,
                HeaderKind::MaxForwards => &mut t.max_forwards,
                HeaderKind::ContentLength => &mut t.content_length,
                HeaderKind::Contact => &mut t.contact,
                _ => continue,
            };
            seen.add(h);
        }
        t
    }
}

impl Message {
    /// RFC 3261 §16.3 step 1 / §8.2: exactly one well-formed From, To, Call-ID
    /// and CSeq (method equal to the request method), a well-formed top Via,
    /// Max-Forwards a number when present, a single Content-Length.
    ///
    /// Also refused, as RFC 4475 allows: a sip/sips Request-URI carrying
    /// `?headers` (§3.1.2.11: a proxy would forward them) and a malformed
    /// Contact (§3.1.2.13), whose URI is held to the same grammar as the
    /// From and To URIs.
    pub fn validate_request(&self) -> Result<(), ParseError> {
        let StartLine::Request { .. } = self.start else {
            return Err(ParseError::StartLine);
        };
        let uri = Uri::parse(self.original_ruri())?;
        if matches!(uri.scheme, Scheme::Sip | Scheme::Sips) && uri.headers.is_some() {
            return Err(ParseError::Uri);
        }
        let t = Tally::of(self);
        let cseq = self.validate_common(&t)?;
        if t.max_forwards.count > 1 {
            return Err(ParseError::Header("max-forwards"));
        }
        if let Some(h) = t.max_forwards.first {
            lex::parse_u32(self.text(h.value)).ok_or(ParseError::Header("max-forwards"))?;
        }
        if cseq.method != self.method() {
            return Err(ParseError::CSeqMismatch);
        }
        if t.contact.count > 0 {
            if let Contacts::List(list) = self.contacts()? {
                for c in list {
                    Uri::parse(c.uri).map_err(|_| ParseError::Header("contact"))?;
                }
            }
        }
        Ok(())
    }

    /// The same for a response: top Via, From, To, Call-ID, CSeq.
    pub fn validate_response(&self) -> Result<(), ParseError> {
        let StartLine::Response { .. } = self.start else {
            return Err(ParseError::StartLine);
        };
        self.validate_common(&Tally::of(self)).map(|_| ())
    }

    /// The checks requests and responses share; returns the CSeq.
    fn validate_common(&self, t: &Tally<'_>) -> Result<CSeq<'_>, ParseError> {
        let via = t.via.first.ok_or(ParseError::Missing("via"))?;
        let top = CommaSplit::new(self.text(via.value))
            .next()
            .ok_or(ParseError::Header("via"))?;
        Via::parse(top)?;
        for (seen, name) in [(t.from, "from"), (t.to, "to")] {
            let h = seen.exactly_one(name)?;
            let na = NameAddr::parse(self.text(h.value)).map_err(|_| ParseError::Header(name))?;
            // sip, sips and tel are held to their grammar; other schemes
            // only to the URI shape (RFC 4475 §3.3.4).
            Uri::parse(na.uri).map_err(|_| ParseError::Header(name))?;
        }
        // callid = word ["@" word]: visible characters only.
        let call_id = self.text(t.call_id.exactly_one("call-id")?.value);
        if call_id.is_empty() || !call_id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ParseError::Header("call-id"));
        }
        let cseq = CSeq::parse(self.text(t.cseq.exactly_one("cseq")?.value))?;
        if t.content_length.count > 1 {
            return Err(ParseError::Header("content-length"));
        }
        Ok(cseq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn msg(s: &str) -> Message {
        Message::parse(Bytes::copy_from_slice(s.as_bytes())).unwrap()
    }

    #[test]
    fn validation_failures() {
        let ok = "OPTIONS tel:+1-201-555-0123 SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <tel:+12015550123>\r\nCall-ID: x\r\nCSeq: 2 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
        msg(ok).validate_request().unwrap();
        let bad = |from: &str, to: &str| {
            msg(&ok.replacen(from, to, 1))
                .validate_request()
                .unwrap_err()
        };
        assert_eq!(
            bad("Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n", ""),
            ParseError::Missing("via")
        );
        assert_eq!(
            bad("SIP/2.0/UDP h;", "SIP/2.0/UDP h;;"),
            ParseError::Header("via")
        );
        assert_eq!(
            bad("To: <tel:+12015550123>\r\n", ""),
            ParseError::Missing("to")
        );
        assert_eq!(
            bad("<tel:+12015550123>", "<tel:>"),
            ParseError::Header("to")
        );
        assert_eq!(bad("<sip:a@b>", "<sip:a@>"), ParseError::Header("from"));
        assert_eq!(
            bad("Call-ID: x", "Call-ID: x y"),
            ParseError::Header("call-id")
        );
        assert_eq!(
            bad("CSeq: 2 OPTIONS", "CSeq: OPTIONS"),
            ParseError::Header("cseq")
        );
        assert_eq!(
            bad("CSeq: 2 OPTIONS", "CSeq: 2 options"),
            ParseError::CSeqMismatch
        );
        assert_eq!(
            bad("Max-Forwards: 70", "Max-Forwards: seventy"),
            ParseError::Header("max-forwards")
        );
        assert_eq!(
            bad("Max-Forwards: 70", "Max-Forwards: 70\r\nMax-Forwards: 69"),
            ParseError::Header("max-forwards")
        );
        assert_eq!(
            bad("Content-Length: 0", "Content-Length: 0\r\nl: 0"),
            ParseError::Header("content-length")
        );
        assert_eq!(bad("tel:+1-201-555-0123", "sip:a@b?x=y"), ParseError::Uri);
        assert_eq!(bad("tel:+1-201-555-0123", "sip:a@b;;"), ParseError::Uri);
        let contact = "Content-Length: 0\r\nContact: <sip:a@b>, <sip:::::>\r\n";
        assert_eq!(
            bad("Content-Length: 0\r\n", contact),
            ParseError::Header("contact")
        );
        let m = msg(&ok.replacen("Max-Forwards: 70", "Max-Forwards: 7x", 1));
        assert_eq!(
            m.max_forwards(),
            Some(Err(ParseError::Header("max-forwards")))
        );
    }
}
