//! [`Message`]: one received buffer plus an index of spans, lazily parsed
//! header values, and the edits a route made (RFC 3261 §7).
//!
//! This file holds the type and its getters of the start line and of raw
//! header values; the typed header views (CSeq, From/To, Via, Route,
//! Contact) are in `message/typed.rs`. The index is built in `parse.rs`,
//! §16.3 validation is in `validate.rs`, edits and serialization live in
//! `edit.rs`.
//!
//! Getters see the message as received (edits are not reflected), except
//! [`Message::ruri`], which reflects [`Message::set_ruri`]. That is what lets
//! the getters a proxy calls on every message (From/To tags, CSeq, the top
//! Via and its parameters, the Via list) keep what they parsed the first
//! time (`cache.rs`): a second call is a slice, not a parse.

use bytes::Bytes;
use std::ops::Range;

use super::cache::{Cache, KindIndex};
use super::header::{HeaderKind, NameQuery};
use super::lex::utf8;
use super::split::CommaSplit;
use super::ParseError;

mod typed;
pub use typed::CSeq;

/// Request methods the core knows by name; everything else is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Register,
    Prack,
    Subscribe,
    Notify,
    Publish,
    Info,
    Refer,
    Message,
    Update,
    Other,
}

impl Method {
    /// Classifies a method name. Methods are case-sensitive (RFC 3261
    /// §7.1), so "invite" is `Other`.
    pub fn of(name: &str) -> Method {
        match name {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "REGISTER" => Method::Register,
            "PRACK" => Method::Prack,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "PUBLISH" => Method::Publish,
            "INFO" => Method::Info,
            "REFER" => Method::Refer,
            "MESSAGE" => Method::Message,
            "UPDATE" => Method::Update,
            _ => Method::Other,
        }
    }
}

/// One change to the buffer: replace `range` (empty for an insertion) by `text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub range: Range<u32>,
    pub text: String,
}

/// A header line as received.
#[derive(Debug, Clone, Copy)]
pub struct HeaderRef<'a> {
    /// Name as written (may be compact, any case).
    pub name: &'a str,
    /// Raw value: leading/trailing whitespace trimmed, folding kept.
    pub value: &'a str,
    pub kind: HeaderKind,
    /// Position among all header lines (0-based), for edits.
    pub index: usize,
}

/// A byte range of the buffer. u32 halves the index against `Range<usize>`;
/// messages are capped far below 4 GiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Span {
    pub(super) start: u32,
    pub(super) end: u32,
}

impl Span {
    pub(super) fn new(start: usize, end: usize) -> Span {
        Span {
            start: start as u32,
            end: end as u32,
        }
    }

    pub(super) fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }

    pub(super) fn edit_range(self) -> Range<u32> {
        self.start..self.end
    }
}

/// One header field in the index.
#[derive(Debug, Clone, Copy)]
pub(super) struct HeaderEntry {
    /// The whole field: name to the final line end, continuation lines
    /// included (what a removal takes out).
    pub(super) line: Span,
    pub(super) name: Span,
    /// The value, LWS-trimmed.
    pub(super) value: Span,
    pub(super) kind: HeaderKind,
}

/// The start line, parsed at parse time (RFC 3261 §7.1, §7.2).
#[derive(Debug, Clone, Copy)]
pub(super) enum StartLine {
    Request {
        method: Span,
        ruri: Span,
        kind: Method,
    },
    Response {
        code: u16,
        reason: Span,
    },
}

/// A parsed SIP message: the received bytes, an index of spans, and edits.
#[derive(Debug, Clone)]
pub struct Message {
    /// The message bytes: leading CRLFs and datagram octets beyond
    /// Content-Length are already cut off.
    pub(super) buf: Bytes,
    pub(super) start: StartLine,
    pub(super) headers: Vec<HeaderEntry>,
    /// Offset of the blank line that ends the headers.
    pub(super) head_end: u32,
    /// The start line and headers as text, checked as UTF-8 once at parse
    /// (None when they are not): every header read slices it instead of
    /// checking its bytes again.
    pub(super) head_text: Option<std::sync::Arc<str>>,
    pub(super) body: Span,
    /// In the order made; `write_to` orders them by position.
    pub(super) edits: Vec<Edit>,
    /// First line and line count of each header kind, from the parser.
    pub(super) kinds: KindIndex,
    /// Typed views parsed on first use (also filled by `validate_*`).
    pub(super) cache: Cache,
    /// Header lines (CRLF-terminated) for every reply lunasip itself
    /// builds to this request (OpenSIPS `append_to_reply`).
    pub(super) reply_headers: String,
}

impl Message {
    /// Parses a complete message (a datagram or one stream frame). The body is
    /// framed by Content-Length when present (extra bytes are ignored, a short
    /// body is `Truncated`); without Content-Length the rest is the body.
    pub fn parse(buf: Bytes) -> Result<Message, ParseError> {
        super::parse::parse(buf, true)
    }

    /// Parses a datagram whose Content-Length did not frame it (`Truncated`,
    /// conflicting values) with the rest of the datagram as its body, only
    /// so that it can be answered 400 (RFC 4475 §3.1.2.x); never routed.
    pub fn parse_unframed(buf: Bytes) -> Result<Message, ParseError> {
        super::parse::parse(buf, false)
    }

    /// The text of `span`; "" where it is not UTF-8.
    pub(super) fn text(&self, span: Span) -> &str {
        let r = span.range();
        if let Some(head) = &self.head_text {
            match head.get(r.clone()) {
                Some(t) => return t,
                // Inside the head but cutting a character.
                None if r.end <= head.len() => return "",
                None => {}
            }
        }
        self.buf.get(r).map(utf8).unwrap_or("")
    }

    pub(super) fn value_of(&self, h: &HeaderEntry) -> &str {
        self.text(h.value)
    }

    pub(super) fn name_bytes(&self, h: &HeaderEntry) -> &[u8] {
        self.buf.get(h.name.range()).unwrap_or(&[])
    }

    /// Index entries of the headers `q` names, in order.
    pub(super) fn matching<'s, 'n>(
        &'s self,
        q: NameQuery<'n>,
    ) -> impl Iterator<Item = (usize, &'s HeaderEntry)> + use<'s, 'n> {
        // No line of the kind comes before its first one.
        let from = self.kinds.first(q.kind()).unwrap_or(self.headers.len());
        self.headers
            .iter()
            .enumerate()
            .skip(from)
            .filter(move |(_, h)| q.matches(self.name_bytes(h), h.kind))
    }

    /// Whether the start line is a Request-Line (else a Status-Line).
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// Request method as written; for a response the CSeq method ("" if none).
    pub fn method(&self) -> &str {
        match self.start {
            StartLine::Request { method, .. } => self.text(method),
            StartLine::Response { .. } => self.cached_cseq().map(|c| c.method).unwrap_or(""),
        }
    }

    /// [`Message::method`] classified, for matching without string compares.
    pub fn method_kind(&self) -> Method {
        match self.start {
            StartLine::Request { kind, .. } => kind,
            StartLine::Response { .. } => Method::of(self.method()),
        }
    }

    /// Current Request-URI (reflects `set_ruri`); "" for a response.
    pub fn ruri(&self) -> &str {
        let StartLine::Request { ruri, .. } = self.start else {
            return "";
        };
        let range = ruri.edit_range();
        match self
            .edits
            .iter()
            .rev()
            .find(|e| e.range == range && !range.is_empty())
        {
            Some(e) => &e.text,
            None => self.text(ruri),
        }
    }

    /// Request-URI as received.
    pub fn original_ruri(&self) -> &str {
        match self.start {
            StartLine::Request { ruri, .. } => self.text(ruri),
            StartLine::Response { .. } => "",
        }
    }

    /// The status code of a response (100–699); None for a request.
    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    /// The reason phrase; "" when it is not UTF-8.
    pub fn reason(&self) -> Option<&str> {
        match self.start {
            StartLine::Response { reason, .. } => Some(self.text(reason)),
            StartLine::Request { .. } => None,
        }
    }

    /// Every header line as received, in order (removed ones included).
    /// A value that is not UTF-8 reads as "".
    pub fn headers(&self) -> impl Iterator<Item = HeaderRef<'_>> + '_ {
        self.headers.iter().enumerate().map(|(index, h)| HeaderRef {
            name: self.text(h.name),
            value: self.text(h.value),
            kind: h.kind,
            index,
        })
    }

    /// Value of the first header with this name (full or compact, any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let q = NameQuery::new(name);
        match q.kind() {
            HeaderKind::Other => self.matching(q).next().map(|(_, h)| self.value_of(h)),
            kind => self.first_of(kind).map(|h| self.value_of(h)),
        }
    }

    /// Position (see `HeaderRef::index`) of the first header line of `kind`:
    /// `headers().find(|h| h.kind == kind).map(|h| h.index)` as a table
    /// lookup, without building a [`HeaderRef`] (two UTF-8 checks) for
    /// every line before it. Use it to find the line to hand to
    /// [`Message::set_header_value`] (Max-Forwards).
    pub fn header_index(&self, kind: HeaderKind) -> Option<usize> {
        self.kinds.first(kind)
    }

    /// Every value of the headers with this name, in order; for kinds that
    /// allow a comma list (Via, Route, Record-Route, Contact, Allow, …)
    /// each header's value is split on commas outside quotes and <>.
    pub fn header_values<'a>(&'a self, name: &str) -> Vec<&'a str> {
        let q = NameQuery::new(name);
        // Looked up at the first line found: most asked-for headers are absent.
        let mut list = None;
        let mut out = Vec::new();
        for (_, h) in self.matching(q) {
            let v = self.value_of(h);
            if *list.get_or_insert_with(|| q.is_list()) {
                out.extend(CommaSplit::new(v));
            } else {
                out.push(v);
            }
        }
        out
    }

    /// How many header lines carry this name (lines, not comma values).
    pub fn header_count(&self, name: &str) -> usize {
        let q = NameQuery::new(name);
        match q.kind() {
            HeaderKind::Other => self.matching(q).count(),
            kind => self.count_of(kind),
        }
    }

    /// The first Call-ID value as written.
    pub fn call_id(&self) -> Option<&str> {
        self.first_of(HeaderKind::CallId).map(|h| self.value_of(h))
    }

    /// The body as framed by Content-Length (or the rest of a datagram).
    pub fn body(&self) -> &[u8] {
        self.buf.get(self.body.range()).unwrap_or(&[])
    }

    /// The bytes as received (without leading CRLFs or octets past
    /// Content-Length).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The edits made so far, in the order made.
    pub fn edits(&self) -> &[Edit] {
        &self.edits
    }

    /// Whether any edit was recorded (else `write_to` copies the buffer).
    pub fn has_edits(&self) -> bool {
        !self.edits.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::nameaddr::Contacts;
    use crate::sip::uri::Uri;

    pub(crate) const INVITE: &str = "INVITE sip:bob@[2001:db8::5]:5070;transport=udp SIP/2.0\r\n\
v: SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bKa;rport, SIP/2.0/TCP h2;branch=z9hG4bKb\r\n\
Via: SIP/2.0/UDP h3;branch=z9hG4bKc\r\n\
Max-Forwards: 70\r\n\
f: \"Alice, A.\" <sip:alice@example.com>;tag=1928\r\n\
t: <sip:bob@example.com>\r\n\
i: a84b4c76e66710\r\n\
CSeq: 314159 INVITE\r\n\
Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>\r\n\
Route: <sip:p3.example.com;lr>\r\n\
Record-Route: <sip:rr.example.com;lr>\r\n\
m: <sip:alice@pc33.example.com>, \"Second, Contact\" <sip:a2@pc34.example.com>;q=0.5\r\n\
k: timer, 100rel\r\n\
Allow: INVITE, ACK,\r\n BYE\r\n\
Date: Sat, 13 Nov 2010 23:29:00 GMT\r\n\
X-Custom: one\r\n\
x-custom: two, three\r\n\
c: application/sdp\r\n\
l: 5\r\n\
\r\n\
v=0\r\n";

    pub(crate) fn msg(s: &str) -> Message {
        Message::parse(Bytes::copy_from_slice(s.as_bytes())).unwrap()
    }

    #[test]
    fn getters() {
        let m = msg(INVITE);
        m.validate_request().unwrap();
        assert!(m.is_request());
        assert_eq!(m.method(), "INVITE");
        assert_eq!(m.method_kind(), Method::Invite);
        assert_eq!(m.ruri(), "sip:bob@[2001:db8::5]:5070;transport=udp");
        let u = Uri::parse(m.ruri()).unwrap();
        assert_eq!((u.host_bare(), u.port), ("2001:db8::5", Some(5070)));
        assert_eq!(m.status(), None);
        assert_eq!(m.reason(), None);
        assert_eq!(m.call_id(), Some("a84b4c76e66710"));
        assert_eq!(
            m.cseq(),
            Some(CSeq {
                num: 314159,
                method: "INVITE"
            })
        );
        assert_eq!(m.from_tag(), Some("1928"));
        assert_eq!(m.from().unwrap().display_name().unwrap(), "Alice, A.");
        assert_eq!(m.to_tag(), None);
        assert_eq!(m.max_forwards(), Some(Ok(70)));
        let top = m.top_via().unwrap();
        assert_eq!(
            (top.host, top.host_bare(), top.port),
            ("[2001:db8::1]", "2001:db8::1", Some(5060))
        );
        assert_eq!(top.rport(), Some(None));
        let branches: Vec<_> = m.vias().iter().map(|v| v.branch().unwrap()).collect();
        assert_eq!(branches, vec!["z9hG4bKa", "z9hG4bKb", "z9hG4bKc"]);
        let routes: Vec<_> = m.routes().iter().map(|r| r.uri).collect();
        assert_eq!(
            routes,
            vec![
                "sip:p1.example.com;lr",
                "sip:p2.example.com;lr",
                "sip:p3.example.com;lr"
            ]
        );
        assert_eq!(m.record_routes()[0].uri, "sip:rr.example.com;lr");
        assert_eq!(m.body(), b"v=0\r\n");
        let Ok(Contacts::List(c)) = m.contacts() else {
            panic!()
        };
        assert_eq!(c.len(), 2);
        assert_eq!(c[1].param("q"), Some(Some("0.5")));
    }

    #[test]
    fn lookups_by_name() {
        let m = msg(INVITE);
        assert_eq!(m.header("Via"), m.header("v"));
        assert_eq!(m.header("VIA"), Some("SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bKa;rport, SIP/2.0/TCP h2;branch=z9hG4bKb"));
        assert_eq!(m.header("call-id"), Some("a84b4c76e66710"));
        assert_eq!(m.header("Supported"), Some("timer, 100rel"));
        assert_eq!(m.header("Content-Type"), Some("application/sdp"));
        assert_eq!(m.header("x-CUSTOM"), Some("one"));
        assert_eq!(m.header("X-Missing"), None);
        assert_eq!(m.header_count("via"), 2);
        assert_eq!(m.header_count("Route"), 2);
        assert_eq!(m.header_count("x-custom"), 2);
        assert_eq!(m.header_count("Nope"), 0);
        assert_eq!(m.header_values("v").len(), 3);
        assert_eq!(m.header_values("route").len(), 3);
        assert_eq!(m.header_values("k"), vec!["timer", "100rel"]);
        assert_eq!(m.header_values("Allow"), vec!["INVITE", "ACK", "BYE"]);
        assert_eq!(
            m.header_values("Contact")[1],
            "\"Second, Contact\" <sip:a2@pc34.example.com>;q=0.5"
        );
        // Unknown and non-list headers keep their commas.
        assert_eq!(m.header_values("X-Custom"), vec!["one", "two, three"]);
        assert_eq!(
            m.header_values("Date"),
            vec!["Sat, 13 Nov 2010 23:29:00 GMT"]
        );
        assert_eq!(m.header_values("f").len(), 1);
        let names: Vec<_> = m.headers().map(|h| h.name).collect();
        assert_eq!(names[..3], ["v", "Via", "Max-Forwards"]);
        let h = m.headers().nth(3).unwrap();
        assert_eq!((h.kind, h.index), (HeaderKind::From, 3));
    }

    #[test]
    fn responses() {
        let m = msg("SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 2 INVITE\r\nContent-Length: 0\r\n\r\n");
        m.validate_response().unwrap();
        assert_eq!(m.validate_request(), Err(ParseError::StartLine));
        assert!(!m.is_request());
        assert_eq!((m.status(), m.reason()), (Some(180), Some("Ringing")));
        assert_eq!(m.method(), "INVITE");
        assert_eq!(m.method_kind(), Method::Invite);
        assert_eq!(m.ruri(), "");
        assert_eq!(m.original_ruri(), "");
    }

    #[test]
    fn contact_star() {
        let base = "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 2 REGISTER\r\nExpires: 0\r\n";
        let m = msg(&format!("{base}Contact: *\r\n\r\n"));
        assert!(matches!(m.contacts(), Ok(Contacts::Star)));
        m.validate_request().unwrap();
        let m = msg(&format!("{base}Contact: *, <sip:a@b>\r\n\r\n"));
        assert_eq!(m.contacts().unwrap_err(), ParseError::Header("contact"));
        // Validation leaves Contact to whoever uses it (a registrar).
        assert_eq!(m.validate_request(), Ok(()));
        let m = msg(&format!("{base}\r\n"));
        assert!(matches!(m.contacts(), Ok(Contacts::List(l)) if l.is_empty()));
    }

    #[test]
    fn kept_views_and_their_accessors() {
        let mut m = msg(INVITE);
        // Before validation, after it, and twice: the same answers.
        for _ in 0..2 {
            assert_eq!(m.top_via_branch(), Some("z9hG4bKa"));
            assert_eq!(m.top_via_rport(), Some(None));
            assert_eq!(m.top_via_received(), None);
            assert_eq!(m.from_tag(), Some("1928"));
            assert_eq!(m.to_tag(), None);
            assert_eq!(
                m.cseq().map(|c| (c.num, c.method)),
                Some((314159, "INVITE"))
            );
            assert_eq!(m.via_count(), 3);
            assert_eq!(m.via(2).map(|v| v.host), Some("h3"));
            assert_eq!(m.via(3).map(|v| v.host), None);
            m.validate_request().unwrap();
        }
        assert_eq!(m.header_index(HeaderKind::MaxForwards), Some(2));
        assert_eq!(m.header_index(HeaderKind::Via), Some(0));
        assert_eq!(m.header_index(HeaderKind::Other), Some(11));
        assert_eq!(m.header_index(HeaderKind::ContentLength), Some(17));
        assert_eq!(m.header_count("Content-Length"), 1);
        // A clone keeps the views; edits do not change them (getters see
        // the message as received).
        let c = m.clone();
        m.set_top_via_received(Some("192.0.2.9"), Some(7000), true);
        assert!(m.remove_first_value("Via"));
        m.prepend_header("Via", "SIP/2.0/UDP proxy;branch=z9hG4bKp");
        for m in [&m, &c] {
            assert_eq!(m.top_via().unwrap().host, "[2001:db8::1]");
            assert_eq!(m.top_via_received(), None);
            assert_eq!(m.vias().len(), 3);
        }
        let received = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a;received=192.0.2.1;rport=5062;branch=z9hG4bK1;branch=second\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 2 INVITE\r\n\r\n";
        let m = msg(received);
        assert_eq!(m.top_via_received(), Some("192.0.2.1"));
        assert_eq!(m.top_via_rport(), Some(Some(5062)));
        // The first of a repeated parameter, as Via::branch finds it.
        assert_eq!(m.top_via_branch(), Some("z9hG4bK1"));
        assert_eq!(m.top_via_branch(), m.top_via().unwrap().branch());
    }

    #[test]
    fn message_stays_send_clone_debug() {
        // The kept views live in `OnceCell`s, so a Message is Send but no
        // longer Sync: it may move to another thread, not be shared by two.
        fn bounds<T: Send + Clone + std::fmt::Debug>() {}
        bounds::<Message>();
    }

    #[test]
    fn malformed_top_via_and_later_ones() {
        let m = msg("SIP/2.0 200 OK\r\nVia: junk, SIP/2.0/UDP h2;branch=z9hG4bK2\r\nv: SIP/2.0/TCP h3\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 2 INVITE\r\n\r\n");
        assert!(m.top_via().is_none());
        assert_eq!((m.top_via_branch(), m.top_via_rport()), (None, None));
        assert_eq!(m.via_count(), 2);
        assert_eq!(m.via(0).and_then(|v| v.branch()), Some("z9hG4bK2"));
        assert_eq!(m.validate_response(), Err(ParseError::Header("via")));
        // An empty first Via line: no top Via, though a later line has one.
        let m =
            msg("OPTIONS sip:a@b SIP/2.0\r\nVia: ,\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK3\r\n\r\n");
        assert!(m.top_via().is_none());
        assert_eq!(m.vias()[0].host, "h");
    }

    #[test]
    fn non_utf8_from_is_malformed() {
        let mut raw = b"OPTIONS sip:a@b SIP/2.0\r\nFrom: \"caf".to_vec();
        raw.extend_from_slice(&[0xe9]);
        raw.extend_from_slice(b"\" <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\n\r\n");
        let m = Message::parse(Bytes::from(raw)).unwrap();
        assert!(m.from().is_none());
        assert_eq!(m.from_tag(), None);
        assert_eq!(m.to().map(|t| t.uri), Some("sip:c@d"));
    }

    #[test]
    fn non_utf8_value_reads_empty() {
        let mut raw = b"OPTIONS sip:a@b SIP/2.0\r\nSubject: caf".to_vec();
        raw.extend_from_slice(&[0xe9, b'\r', b'\n', b'\r', b'\n']);
        let m = Message::parse(Bytes::from(raw.clone())).unwrap();
        assert_eq!(m.header("Subject"), Some(""));
        let mut out = Vec::new();
        m.write_to(&mut out);
        assert_eq!(out, raw);
    }
}
