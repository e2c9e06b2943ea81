//! Request and response validation (RFC 3261 §16.3 step 1, §8.2.2 and
//! §8.1.3.3): what a proxy checks before it routes a message, so that a
//! malformed one gets its 400 (or 505, via the parser) up front.

use super::header::HeaderKind;
use super::message::{CSeq, HeaderEntry, Message, StartLine};
use super::uri::{Scheme, Uri};
use super::ParseError;

impl Message {
    /// The line of a header that must occur exactly once (RFC 4475 §3.3.1,
    /// §3.3.8).
    fn exactly_one(
        &self,
        kind: HeaderKind,
        name: &'static str,
    ) -> Result<&HeaderEntry, ParseError> {
        match self.count_of(kind) {
            0 => Err(ParseError::Missing(name)),
            1 => self.first_of(kind).ok_or(ParseError::Missing(name)),
            _ => Err(ParseError::Header(name)),
        }
    }

    /// RFC 3261 §16.3 step 1 / §8.2: exactly one well-formed From, To, Call-ID
    /// and CSeq (method equal to the request method), a well-formed top Via,
    /// Max-Forwards a number when present, a single Content-Length.
    ///
    /// Also refused, as RFC 4475 allows: a sip/sips Request-URI carrying
    /// `?headers` (§3.1.2.11: a proxy would forward them).
    ///
    /// Not checked: Contact, and the Vias below the top one. A proxy
    /// forwards them untouched (OpenSIPS does not refuse a request for a bad
    /// Contact either); whoever uses a Contact (a registrar) gets the error
    /// from [`Message::contacts`]. The top Via, From, To and CSeq parsed
    /// here are kept, so the getters that follow do not parse them again.
    pub fn validate_request(&self) -> Result<(), ParseError> {
        let StartLine::Request { .. } = self.start else {
            return Err(ParseError::StartLine);
        };
        let uri = Uri::parse(self.original_ruri())?;
        if matches!(uri.scheme, Scheme::Sip | Scheme::Sips) && uri.headers.is_some() {
            return Err(ParseError::Uri);
        }
        let cseq = self.validate_common()?;
        if self.count_of(HeaderKind::MaxForwards) > 1 {
            return Err(ParseError::Header("max-forwards"));
        }
        if let Some(Err(e)) = self.max_forwards() {
            return Err(e);
        }
        if cseq.method != self.method() {
            return Err(ParseError::CSeqMismatch);
        }
        Ok(())
    }

    /// The same for a response: top Via, From, To, Call-ID, CSeq.
    pub fn validate_response(&self) -> Result<(), ParseError> {
        let StartLine::Response { .. } = self.start else {
            return Err(ParseError::StartLine);
        };
        self.validate_common().map(|_| ())
    }

    /// The checks requests and responses share; returns the CSeq.
    fn validate_common(&self) -> Result<CSeq<'_>, ParseError> {
        if self.count_of(HeaderKind::Via) == 0 {
            return Err(ParseError::Missing("via"));
        }
        self.cached_top_via().ok_or(ParseError::Header("via"))?;
        for (kind, name) in [(HeaderKind::From, "from"), (HeaderKind::To, "to")] {
            self.exactly_one(kind, name)?;
            let spans = match kind {
                HeaderKind::From => self.cached_from(),
                _ => self.cached_to(),
            };
            let na = self.addr_view(spans.ok_or(ParseError::Header(name))?);
            // sip, sips and tel are held to their grammar; other schemes
            // only to the URI shape (RFC 4475 §3.3.4).
            Uri::parse(na.uri).map_err(|_| ParseError::Header(name))?;
        }
        // callid = word ["@" word]: visible characters only.
        let call_id = self.exactly_one(HeaderKind::CallId, "call-id")?;
        let call_id = self.buf.get(call_id.value.range()).unwrap_or(&[]);
        if call_id.is_empty() || !call_id.iter().all(u8::is_ascii_graphic) {
            return Err(ParseError::Header("call-id"));
        }
        self.exactly_one(HeaderKind::CSeq, "cseq")?;
        let cseq = self.cached_cseq().ok_or(ParseError::Header("cseq"))?;
        if self.count_of(HeaderKind::ContentLength) > 1 {
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
        // Contact is not the proxy's to judge (it forwards it untouched):
        // validation passes, the Contact getter reports the error.
        let contact = "Content-Length: 0\r\nContact: <sip:a@b>, <sip:a@b>;;\r\n";
        let m = msg(&ok.replacen("Content-Length: 0\r\n", contact, 1));
        m.validate_request().unwrap();
        assert_eq!(m.contacts().unwrap_err(), ParseError::Header("contact"));
        let m = msg(&ok.replacen("Max-Forwards: 70", "Max-Forwards: 7x", 1));
        assert_eq!(
            m.max_forwards(),
            Some(Err(ParseError::Header("max-forwards")))
        );
    }
}
