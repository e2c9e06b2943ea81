//! Edits by byte position for the script's text functions (textops'
//! `subst`/`replace`/`search_append`, sipmsgops' body and SDP edits), the
//! Content-Length they imply when the message is written, and the message
//! with every change applied (`msg_apply_changes`).
//!
//! As in OpenSIPS, where such changes are "lumps" applied at send time,
//! getters keep reading the message as received; [`Message::applied`] is
//! the way to read the new text.

use bytes::Bytes;
use std::ops::Range;

use super::edit::write_edits;
use super::header::HeaderKind;
use super::message::{CSeq, Edit, Message, StartLine};
use super::nameaddr::NameAddr;
use super::split::CommaSplit;
use super::via::Via;
use super::ParseError;

/// Why a positional edit was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditError {
    /// The range is not inside the message.
    OutOfRange,
    /// The range touches the blank line between headers and body: the
    /// result would not be framed.
    BlankLine,
}

impl std::fmt::Display for EditError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EditError::OutOfRange => "the range is outside the message",
            EditError::BlankLine => "the change would touch the line that ends the headers",
        })
    }
}

impl Message {
    /// Offset of the first header line (where the start line ends).
    pub fn headers_start(&self) -> usize {
        self.headers.first().map_or(self.head_end, |h| h.line.start) as usize
    }

    /// Offset of the blank line that ends the headers.
    pub fn headers_end(&self) -> usize {
        self.head_end as usize
    }

    /// Where the body is in [`Message::as_bytes`].
    pub fn body_range(&self) -> Range<usize> {
        self.body.range()
    }

    /// Where `inner`, a slice of this message's text (a header value, a
    /// URI a getter returned), starts in [`Message::as_bytes`]; None for
    /// text from elsewhere.
    pub fn offset_of(&self, inner: &str) -> Option<usize> {
        let p = inner.as_ptr() as usize;
        let within = |base: usize, len: usize| {
            (p >= base && p + inner.len() <= base + len).then(|| p - base)
        };
        // Header text is read from the head checked at parse (same
        // offsets); the body from the buffer.
        self.head_text
            .as_deref()
            .and_then(|h| within(h.as_ptr() as usize, h.len()))
            .or_else(|| within(self.buf.as_ptr() as usize, self.buf.len()))
    }

    /// The text a change put in place of `inner` (a slice of this message,
    /// replaced whole), if any: what OpenSIPS functions that rewrite a
    /// parsed value in place (nathelper's fix_nated_contact) leave for
    /// later readers of that value.
    pub fn rewritten(&self, inner: &str) -> Option<&str> {
        let at = self.offset_of(inner)?;
        self.replaced_text(at..at + inner.len())
    }

    /// Bytes of `range` as text; None when out of range or not UTF-8.
    pub fn text_at(&self, range: Range<usize>) -> Option<&str> {
        std::str::from_utf8(self.buf.get(range)?).ok()
    }

    /// Header line `index` (see `HeaderRef::index`) as a byte range, CRLF
    /// and continuation lines included.
    pub fn header_line(&self, index: usize) -> Option<Range<usize>> {
        self.headers.get(index).map(|h| h.line.range())
    }

    fn check_range(&self, r: &Range<usize>) -> Result<(), EditError> {
        if r.start > r.end || r.end > self.buf.len() {
            return Err(EditError::OutOfRange);
        }
        let (blank, body) = (self.head_end as usize, self.body.start as usize);
        let touches = if r.is_empty() {
            r.start > blank && r.start < body
        } else {
            r.start < body && r.end > blank
        };
        if touches {
            return Err(EditError::BlankLine);
        }
        Ok(())
    }

    /// Replaces the bytes of `range` with `text` when the message is
    /// written (an empty range inserts). Headers and body can be edited,
    /// never the blank line between them.
    pub fn replace_at(&mut self, range: Range<usize>, text: String) -> Result<(), EditError> {
        self.check_range(&range)?;
        self.edits.push(Edit {
            range: range.start as u32..range.end as u32,
            text,
        });
        Ok(())
    }

    /// The text the latest edit of exactly `range` writes there, if any
    /// (a value replaced several times reads as the last replacement).
    pub fn replaced_text(&self, range: Range<usize>) -> Option<&str> {
        let r = range.start as u32..range.end as u32;
        self.edits
            .iter()
            .rev()
            .find(|e| e.range == r)
            .map(|e| e.text.as_str())
    }

    /// Whether an edit of the whole `range` (or one around it) removes it.
    pub fn is_removed(&self, range: Range<usize>) -> bool {
        self.edits.iter().any(|e| {
            e.text.is_empty()
                && !e.range.is_empty()
                && e.range.start as usize <= range.start
                && e.range.end as usize >= range.end
        })
    }

    /// Adds a header line (CRLF-terminated) to every reply lunasip builds
    /// for this request (OpenSIPS `append_to_reply`).
    pub fn add_reply_header(&mut self, line: &str) {
        self.reply_headers.push_str(line);
    }

    /// Takes over the reply headers `other` collected (a transaction's
    /// copy of the request learns what the route added since).
    pub fn copy_reply_headers(&mut self, other: &Message) {
        self.reply_headers.clone_from(&other.reply_headers);
    }

    /// The lines [`Message::add_reply_header`] collected.
    pub fn reply_headers(&self) -> &str {
        &self.reply_headers
    }

    /// Rewrites the status line of a reply: the code at once (later reads
    /// of [`Message::status`] see it, as OpenSIPS rewrites it in place),
    /// the reason when written. False for a request.
    pub fn set_status(&mut self, code: u16, reason: &str) -> bool {
        let StartLine::Response { reason: span, .. } = self.start else {
            return false;
        };
        let line = &self.buf[..self.headers_start().min(self.buf.len())];
        // "SIP/2.0 " then three digits.
        let Some(sp) = line.iter().position(|&b| b == b' ') else {
            return false;
        };
        let at = sp + 1;
        if line.len() < at + 3 {
            return false;
        }
        let clean: String = reason
            .chars()
            .filter(|c| *c != '\r' && *c != '\n')
            .collect();
        let end = (span.end as usize).max(at + 3);
        self.edits.push(Edit {
            range: at as u32..end as u32,
            text: format!("{code} {clean}"),
        });
        self.start = StartLine::Response { code, reason: span };
        true
    }

    /// Whether an edit falls in the body (an insertion at its start too).
    pub(super) fn body_edited(&self) -> bool {
        self.edits.iter().any(|e| e.range.start >= self.body.start)
    }

    /// [`Message::write_to`] when the body changed: the body is written
    /// first to learn its length, then the head with Content-Length set to
    /// it (added when the message had none).
    pub(super) fn write_with_new_length(&self, out: &mut Vec<u8>) {
        let body_range = self.body.start..self.buf.len() as u32;
        let mut body = Vec::with_capacity(self.body.range().len() + 64);
        write_edits(&self.buf, &self.edits, &mut body, body_range, true);
        let n = body.len().to_string();
        let mut edits = self.edits.clone();
        match self
            .headers
            .iter()
            .find(|h| h.kind == HeaderKind::ContentLength)
        {
            Some(h) => edits.push(Edit {
                range: h.value.edit_range(),
                text: n,
            }),
            None => edits.push(Edit {
                range: self.head_end..self.head_end,
                text: format!("Content-Length: {n}\r\n"),
            }),
        }
        // Insertions at the body's start belong to the body, written above.
        write_edits(&self.buf, &edits, out, 0..self.body.start, false);
        out.extend_from_slice(&body);
    }

    /// The message as it would be written, parsed again: every change is
    /// then what getters read (OpenSIPS has no such step for its lumps;
    /// Kamailio's `msg_apply_changes` is the model). The reply headers of
    /// `append_to_reply` carry over.
    pub fn applied(&self) -> Result<Message, ParseError> {
        let mut out = Vec::new();
        self.write_to(&mut out);
        let mut m = Message::parse(Bytes::from(out))?;
        m.reply_headers = self.reply_headers.clone();
        Ok(m)
    }

    /// Keeps the edits made since `mark` (from [`Message::edit_count`]) only
    /// when the message they write still parses as the same kind of
    /// message, its header lines still ending in CRLF and its core headers
    /// (Via, From, To, CSeq, Call-ID, RFC 3261 §16.3) still valid (when
    /// they were); else forgets them and returns false. The guard of
    /// free-form text edits: a replacement may not break the framing or a
    /// header line. Edits in the body need no check (Content-Length is
    /// rewritten); edits in the headers are checked on the lines they
    /// touch, the whole message is parsed again only when that is not
    /// enough.
    pub fn keep_if_parses(&mut self, mark: usize) -> bool {
        if self.edits.len() <= mark {
            return true;
        }
        let body = self.body.start;
        if self.edits[mark..].iter().all(|e| e.range.start >= body) {
            return true;
        }
        let ok = match self.head_region(mark) {
            Some(region) => self.region_ok(region).unwrap_or_else(|| self.reparses()),
            None => self.reparses(),
        };
        if !ok {
            self.edits.truncate(mark);
        }
        ok
    }

    /// The whole header lines the head edits since `mark` fall in; None
    /// when one touches the start line or no line holds it.
    fn head_region(&self, mark: usize) -> Option<Range<u32>> {
        let first_header = self.headers_start() as u32;
        let (mut lo, mut hi) = (u32::MAX, 0);
        for e in self.edits[mark..]
            .iter()
            .filter(|e| e.range.start < self.body.start)
        {
            let (s, t) = (e.range.start, e.range.end);
            if s < first_header || t > self.head_end {
                return None;
            }
            let first = self.headers.iter().rfind(|h| h.line.start <= s)?;
            let end = match self.headers.iter().find(|h| h.line.end >= t) {
                Some(h) => h.line.end,
                None => self.head_end,
            };
            lo = lo.min(first.line.start);
            hi = hi.max(end).max(first.line.end.min(self.head_end));
        }
        (lo <= hi).then_some(lo..hi)
    }

    /// Checks the written text of `region` (whole header lines): CRLF line
    /// ends, `name: value` fields, valid core headers, no core header lost
    /// and Content-Length unchanged. None when the text cannot be judged
    /// here (not UTF-8, or line ends that were not CRLF to begin with).
    fn region_ok(&self, region: Range<u32>) -> Option<bool> {
        let orig = &self.buf[region.start as usize..region.end as usize];
        if !crlf_only(orig) {
            return None;
        }
        let mut out = Vec::with_capacity(orig.len() + 64);
        write_edits(&self.buf, &self.edits, &mut out, region.clone(), true);
        let text = std::str::from_utf8(&out).ok()?;
        if !(text.is_empty() || text.ends_with("\r\n")) || !crlf_only(&out) {
            return Some(false);
        }
        let mut kinds = Vec::new();
        let mut fields: Vec<String> = Vec::new();
        for line in text.split_terminator("\r\n") {
            if line.starts_with([' ', '\t']) {
                match fields.last_mut() {
                    Some(f) => f.push_str(line),
                    None => return Some(false),
                }
            } else {
                fields.push(line.to_string());
            }
        }
        for f in &fields {
            let Some((name, value)) = f.split_once(':') else {
                return Some(false);
            };
            let name = name.trim_end_matches([' ', '\t']);
            let token = |c: u8| c.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&c);
            if name.is_empty() || !name.bytes().all(token) {
                return Some(false);
            }
            let kind = HeaderKind::of(name.as_bytes());
            let value = value.trim_matches([' ', '\t']);
            let valid = match kind {
                HeaderKind::Via => CommaSplit::new(value).all(|v| Via::parse(v).is_ok()),
                HeaderKind::From | HeaderKind::To => NameAddr::parse(value).is_ok(),
                HeaderKind::CSeq => CSeq::parse(value).is_ok(),
                HeaderKind::CallId => !value.is_empty(),
                HeaderKind::ContentLength => self
                    .headers
                    .iter()
                    .any(|h| h.kind == HeaderKind::ContentLength && self.text(h.value) == value),
                _ => true,
            };
            if !valid {
                return Some(false);
            }
            kinds.push(kind);
        }
        // A core header of the region may go only when another line of
        // its kind stays outside it (one of several Via lines).
        for h in self.headers.iter().filter(|h| {
            h.line.start >= region.start && h.line.end <= region.end && h.kind != HeaderKind::Other
        }) {
            let outside = self
                .headers
                .iter()
                .filter(|o| {
                    o.kind == h.kind && (o.line.end <= region.start || o.line.start >= region.end)
                })
                .count();
            let core = matches!(
                h.kind,
                HeaderKind::Via
                    | HeaderKind::From
                    | HeaderKind::To
                    | HeaderKind::CSeq
                    | HeaderKind::CallId
                    | HeaderKind::ContentLength
            );
            if core && outside == 0 && !kinds.contains(&h.kind) {
                return Some(false);
            }
        }
        Some(true)
    }

    /// The whole message written and parsed again: same kind, CRLF line
    /// ends kept, §16.3 headers still valid (when they were).
    fn reparses(&self) -> bool {
        let mut out = Vec::new();
        self.write_to(&mut out);
        let crlf = crlf_only(&self.buf[..self.head_end as usize]);
        let valid = |m: &Message| match m.is_request() {
            true => m.validate_request().is_ok(),
            false => m.validate_response().is_ok(),
        };
        let was_valid = valid(self);
        matches!(Message::parse(Bytes::from(out)), Ok(m)
            if m.is_request() == self.is_request()
                && (!crlf || crlf_only(&m.buf[..m.head_end as usize]))
                && (!was_valid || valid(&m)))
    }
}

/// Whether every line end in `head` is a CRLF (no bare CR or LF).
fn crlf_only(head: &[u8]) -> bool {
    head.iter().enumerate().all(|(i, &b)| match b {
        b'\n' => i > 0 && head[i - 1] == b'\r',
        b'\r' => head.get(i + 1) == Some(&b'\n'),
        _ => true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQ: &str = "INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n\
From: <sip:alice@example.com>;tag=a1\r\n\
To: <sip:bob@example.com>\r\n\
Call-ID: c1\r\n\
CSeq: 1 INVITE\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 10\r\n\
\r\n\
v=0\r\nm=x\r\n";

    fn msg(s: &str) -> Message {
        Message::parse(Bytes::copy_from_slice(s.as_bytes())).unwrap()
    }

    fn written(m: &Message) -> String {
        let mut out = Vec::new();
        m.write_to(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn body_edit_rewrites_content_length() {
        let mut m = msg(REQ);
        let b = m.body_range();
        m.replace_at(b.start..b.start + 3, "v=00".into()).unwrap();
        let out = written(&m);
        assert!(
            out.ends_with("Content-Length: 11\r\n\r\nv=00\r\nm=x\r\n"),
            "{out}"
        );
        // An insertion at the body's start is body, not header.
        let mut m = msg(REQ);
        m.replace_at(b.start..b.start, "X".into()).unwrap();
        assert!(written(&m).ends_with("Content-Length: 11\r\n\r\nXv=0\r\nm=x\r\n"));
        // A whole new body where there was none, and no Content-Length.
        let bare = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK2\r\n\r\n";
        let mut m = msg(bare);
        let at = m.body_range().start;
        m.replace_at(at..at, "hello".into()).unwrap();
        let out = written(&m);
        assert_eq!(
            out,
            "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK2\r\nContent-Length: 5\r\n\r\nhello"
        );
        assert_eq!(m.applied().unwrap().body(), b"hello");
    }

    #[test]
    fn blank_line_is_never_edited() {
        let mut m = msg(REQ);
        let end = m.headers_end();
        assert_eq!(
            m.replace_at(end - 2..end + 2, String::new()),
            Err(EditError::BlankLine)
        );
        assert_eq!(
            m.replace_at(end + 1..end + 1, "x".into()),
            Err(EditError::BlankLine)
        );
        assert_eq!(
            m.replace_at(0..REQ.len() + 1, String::new()),
            Err(EditError::OutOfRange)
        );
        // At the end of the headers: a new header line.
        m.replace_at(end..end, "X-A: 1\r\n".into()).unwrap();
        assert!(written(&m).contains("Content-Length: 10\r\nX-A: 1\r\n\r\nv=0"));
    }

    #[test]
    fn keep_if_parses_forgets_a_breaking_edit() {
        let mut m = msg(REQ);
        let mark = m.edit_count();
        let at = m.headers_start();
        m.replace_at(at..at + 3, "V i a".into()).unwrap();
        assert!(!m.keep_if_parses(mark));
        assert!(!m.has_edits());
        // A line end without its CR (a subst that swallowed it).
        let to = REQ.find("To:").unwrap();
        m.replace_at(to..to + 27, "To: <sip:bob@example.net>\n".into())
            .unwrap();
        assert!(!m.keep_if_parses(mark));
        // A From that no longer parses, a lost Call-ID, a new
        // Content-Length: refused; another header may go.
        let from = REQ.find("From:").unwrap();
        m.replace_at(from + 6..from + 7, String::new()).unwrap();
        assert!(!m.keep_if_parses(mark));
        let cid = REQ.find("Call-ID").unwrap();
        m.replace_at(cid..cid + 12, String::new()).unwrap();
        assert!(!m.keep_if_parses(mark));
        m.replace_at(cid..cid, "Content-Length: 3\r\n".into())
            .unwrap();
        assert!(!m.keep_if_parses(mark));
        let ct = REQ.find("Content-Type").unwrap();
        m.replace_at(ct..ct + 31, String::new()).unwrap();
        assert!(m.keep_if_parses(mark));
        m.truncate_edits(mark);
        m.replace_at(at..at + 3, "v".into()).unwrap();
        assert!(m.keep_if_parses(mark));
        assert!(written(&m).contains("\r\nv: SIP/2.0/UDP"));
    }

    #[test]
    fn status_and_reply_headers() {
        let mut m = msg("SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n");
        assert!(m.set_status(603, "Decline\r\nX: 1"));
        assert_eq!(m.status(), Some(603));
        assert_eq!(m.reason(), Some("Busy Here"));
        assert!(written(&m).starts_with("SIP/2.0 603 DeclineX: 1\r\nVia:"));
        let applied = m.applied().unwrap();
        assert_eq!(applied.reason(), Some("DeclineX: 1"));
        let mut r = msg(REQ);
        r.add_reply_header("X-R: 1\r\n");
        assert_eq!(r.reply_headers(), "X-R: 1\r\n");
        assert!(!r.set_status(200, "OK"));
    }
}
