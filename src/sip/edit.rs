//! Edits against a [`Message`]'s buffer and the one-pass serializer.
//!
//! An edit replaces a byte range (empty for an insertion) with new text.
//! Edits are stored in the order made (so a caller can undo the last few,
//! see [`Message::truncate_edits`]) and ordered by position when written: at
//! one position insertions come first, in the order made, then
//! replacements, the longer first. `write_to` copies the untouched bytes between edits, so what
//! nobody changed leaves as it came.
//!
//! Conflicts: a later replacement of exactly the same range supersedes an
//! earlier one (Max-Forwards set twice, the R-URI rewritten twice). An edit
//! that starts inside bytes an earlier-ordered edit already replaced is
//! dropped, text included. The edits made here only overlap by nesting (a
//! value removal inside a removed line or a replaced value, an insertion
//! into a removed Via), and dropping the inner one is then the right answer;
//! the outer edit always starts first, or at the same byte and is longer.

use super::header::{HeaderKind, NameQuery};
use super::lex::{offset_in, trim_lws_end};
use super::message::{Edit, Message, Span, StartLine};
use super::params::Params;
use super::split::CommaSplit;
use super::via::Via;
use std::cmp::Reverse;
use std::ops::Range;

/// Sort key of an edit: position, then insertions before replacements,
/// then the longer replacement first (so the outer of two nested edits that
/// start together is the one applied).
fn key(r: &Range<u32>) -> (u32, bool, Reverse<u32>) {
    (r.start, !r.is_empty(), Reverse(r.end))
}

/// Edits per message that are ordered without a heap allocation.
const INLINE_EDITS: usize = 32;

impl Message {
    fn push_edit(&mut self, range: Range<u32>, text: String) {
        self.edits.push(Edit { range, text });
    }

    /// How many edits were made so far; a mark for [`Message::truncate_edits`].
    pub fn edit_count(&self) -> usize {
        self.edits.len()
    }

    /// Forgets the edits made after `mark` (from [`Message::edit_count`]):
    /// a change meant for one written copy only, such as the Via of one
    /// forwarded branch.
    pub fn truncate_edits(&mut self, mark: usize) {
        self.edits.truncate(mark);
    }

    /// Whether an earlier removal already covers `range`.
    fn removed(&self, range: Range<u32>) -> bool {
        self.edits.iter().any(|e| {
            e.text.is_empty()
                && !e.range.is_empty()
                && e.range.start <= range.start
                && e.range.end >= range.end
        })
    }

    /// Replaces the Request-URI (applied when written).
    pub fn set_ruri(&mut self, uri: &str) {
        if let StartLine::Request { ruri, .. } = self.start {
            self.push_edit(ruri.edit_range(), uri.to_owned());
        }
    }

    /// Inserts `Name: value\r\n` before the first header line (new Via,
    /// Record-Route). Several prepends keep the order they were made in.
    pub fn prepend_header(&mut self, name: &str, value: &str) {
        let at = self.headers.first().map_or(self.head_end, |h| h.line.start);
        let mut text = String::with_capacity(name.len() + value.len() + 4);
        text.push_str(name);
        text.push_str(": ");
        text.push_str(value);
        text.push_str("\r\n");
        self.push_edit(at..at, text);
    }

    /// Inserts `text` verbatim (header lines with their CRLFs) before the
    /// first header line, ahead of any header prepended later.
    pub fn prepend_raw(&mut self, text: &str) {
        let at = self.headers.first().map_or(self.head_end, |h| h.line.start);
        self.push_edit(at..at, text.to_owned());
    }

    /// The Via lines as they would be written (their edits applied, such
    /// as `received=`): what a reply to this request must carry back.
    pub fn via_lines(&self) -> String {
        let mut out = Vec::new();
        for h in self.headers.iter().filter(|h| h.kind == HeaderKind::Via) {
            self.write_range(&mut out, h.line.edit_range(), false);
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Inserts `text` verbatim (the caller supplies the CRLF) after the last
    /// header line (OpenSIPS append_hf).
    pub fn append_header_raw(&mut self, text: &str) {
        let at = self.head_end;
        self.push_edit(at..at, text.to_owned());
    }

    /// Removes every header line with this name; returns how many.
    pub fn remove_headers(&mut self, name: &str) -> usize {
        let q = NameQuery::new(name);
        let lines: Vec<Span> = self.matching(q).map(|(_, h)| h.line).collect();
        for line in &lines {
            self.push_edit(line.edit_range(), String::new());
        }
        lines.len()
    }

    /// Removes the first value of the first header with this name (the whole
    /// line when it carries one value, else `value,` from the line).
    ///
    /// Values already removed are skipped, so calling it twice removes the
    /// first two values (two Route entries pointing at this proxy).
    pub fn remove_first_value(&mut self, name: &str) -> bool {
        let q = NameQuery::new(name);
        let mut found: Option<Range<u32>> = None;
        for (_, h) in self.matching(q) {
            if self.removed(h.line.edit_range()) {
                continue;
            }
            let value = self.text(h.value);
            let base = h.value.start;
            let at = |piece: &str| base + offset_in(value, piece) as u32;
            // The first value not yet removed, and the one after it.
            let mut live = CommaSplit::new(value).filter(|p| {
                let s = at(p);
                !self.removed(s..s + p.len() as u32)
            });
            let Some(first) = live.next() else { continue };
            found = Some(match live.next() {
                Some(next) => at(first)..at(next),
                None => h.line.edit_range(),
            });
            break;
        }
        match found {
            Some(range) => {
                self.push_edit(range, String::new());
                true
            }
            None => false,
        }
    }

    /// Removes the last value of the last header with this name (the whole
    /// line when it is the only value left there, else `, value`). Used for
    /// strict-router compatibility (RFC 3261 §16.4).
    pub fn remove_last_value(&mut self, name: &str) -> bool {
        let q = NameQuery::new(name);
        let lines: Vec<_> = self.matching(q).map(|(_, h)| (h.line, h.value)).collect();
        for (line, value_span) in lines.into_iter().rev() {
            if self.removed(line.edit_range()) {
                continue;
            }
            let value = self.text(value_span);
            let base = value_span.start;
            let at = |piece: &str| base + offset_in(value, piece) as u32;
            let live: Vec<&str> = CommaSplit::new(value)
                .filter(|p| {
                    let s = at(p);
                    !self.removed(s..s + p.len() as u32)
                })
                .collect();
            let range = match live.as_slice() {
                [] => continue,
                [_] => line.edit_range(),
                [.., prev, last] => (at(prev) + prev.len() as u32)..(at(last) + last.len() as u32),
            };
            self.push_edit(range, String::new());
            return true;
        }
        false
    }

    /// Replaces the value of header line `index` (see `HeaderRef::index`).
    pub fn set_header_value(&mut self, index: usize, value: &str) {
        if let Some(h) = self.headers.get(index) {
            let range = h.value.edit_range();
            self.push_edit(range, value.to_owned());
        }
    }

    /// RFC 3261 §18.2.1 / RFC 3581: sets `received=` and/or fills `rport=` on
    /// the top Via (replacing an existing value; a bare `;rport` gets the port,
    /// `rport` is added when absent only if `rport` is Some and `force` is set).
    pub fn set_top_via_received(
        &mut self,
        received: Option<&str>,
        rport: Option<u16>,
        force_rport: bool,
    ) {
        let Some(h) = self.headers.iter().find(|h| h.kind == HeaderKind::Via) else {
            return;
        };
        let value = self.text(h.value);
        let Some(top) = CommaSplit::new(value).next() else {
            return;
        };
        let Ok(via) = Via::parse(top) else { return };
        let pos = |s: &str| h.value.start + offset_in(value, s) as u32;
        // New parameters go right after the last byte of the top value.
        let end = pos(top) + trim_lws_end(top).len() as u32;
        let mut edits: Vec<(Range<u32>, String)> = Vec::new();
        let mut set = |name: &str, text: Option<String>, add: bool| {
            let Some(text) = text else { return };
            match Params::new(via.params).find(|p| p.name.eq_ignore_ascii_case(name)) {
                Some(p) => match p.value {
                    Some(v) => edits.push((pos(v)..pos(v) + v.len() as u32, text)),
                    None => {
                        let at = pos(p.name) + p.name.len() as u32;
                        edits.push((at..at, format!("={text}")));
                    }
                },
                None if add => edits.push((end..end, format!(";{name}={text}"))),
                None => {}
            }
        };
        // rport first: a bare `;rport` at the end of the value shares its
        // insertion point with an appended `;received=`, and `=port` must
        // stay attached to its name.
        set("rport", rport.map(|p| p.to_string()), force_rport);
        set("received", received.map(str::to_owned), true);
        for (range, text) in edits {
            self.push_edit(range, text);
        }
    }

    /// Writes the message with all edits applied in one pass. When an edit
    /// falls in the body, Content-Length is rewritten to the new body's
    /// length (see `rewrite.rs`); otherwise it is kept as received.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let extra: usize = self.edits.iter().map(|e| e.text.len()).sum();
        out.reserve(self.buf.len() + extra);
        if self.body_edited() {
            self.write_with_new_length(out);
        } else {
            self.write_range(out, 0..self.buf.len() as u32, true);
        }
    }

    /// Copies `range` of the buffer with the edits inside it applied. With
    /// `edges` false, insertions at `range.start` and `range.end` belong to
    /// the neighbours and are left out (a prepended Via is not part of the
    /// first request Via line).
    pub(super) fn write_range(&self, out: &mut Vec<u8>, range: Range<u32>, edges: bool) {
        write_edits(&self.buf, &self.edits, out, range, edges);
    }

    /// Writes the Via lines (with the edits that fall in them), From, To,
    /// Call-ID and CSeq lines, as a reply to this request needs them.
    ///
    /// `to_tag` is added to the To when it has no tag (RFC 3261 §8.2.6.2);
    /// the caller leaves it None for a 100 Trying.
    pub fn write_reply_headers(&self, out: &mut Vec<u8>, to_tag: Option<&str>) {
        // The kind index finds the lines; no scan of the whole header list.
        for h in self.lines_of(HeaderKind::Via) {
            self.write_range(out, h.line.edit_range(), false);
        }
        let first = |kind| self.first_of(kind);
        if let Some(h) = first(HeaderKind::From) {
            self.write_range(out, h.line.edit_range(), false);
        }
        if let Some(h) = first(HeaderKind::To) {
            match to_tag {
                Some(tag) if self.to_tag().is_none() => {
                    self.write_range(out, h.line.start..h.value.end, false);
                    out.extend_from_slice(b";tag=");
                    out.extend_from_slice(tag.as_bytes());
                    self.write_range(out, h.value.end..h.line.end, false);
                }
                _ => self.write_range(out, h.line.edit_range(), false),
            }
        }
        for kind in [HeaderKind::CallId, HeaderKind::CSeq] {
            if let Some(h) = first(kind) {
                self.write_range(out, h.line.edit_range(), false);
            }
        }
    }
}

/// Whether a later edit replaces exactly the same range as edit `i`.
fn superseded(edits: &[Edit], i: usize) -> bool {
    let r = &edits[i].range;
    !r.is_empty() && edits[i + 1..].iter().any(|e| e.range == *r)
}

/// Copies `range` of `buf` with the `edits` inside it applied (see
/// [`Message::write_range`]).
pub(super) fn write_edits(
    buf: &[u8],
    edits: &[Edit],
    out: &mut Vec<u8>,
    range: Range<u32>,
    edges: bool,
) {
    // Every edit that may be written starts inside the range: without one,
    // the bytes go as they are (a reply copying request lines after an
    // unrelated edit), with no sort.
    let touches = |e: &Edit| e.range.start >= range.start && e.range.start <= range.end;
    if !edits.iter().any(touches) {
        out.extend_from_slice(
            buf.get(range.start as usize..range.end as usize)
                .unwrap_or(&[]),
        );
        return;
    }
    let n = edits.len();

    let mut inline = [0u32; INLINE_EDITS];
    let mut heap = Vec::new();
    let order: &mut [u32] = if n <= INLINE_EDITS {
        &mut inline[..n]
    } else {
        heap.resize(n, 0u32);
        &mut heap
    };
    for (i, slot) in order.iter_mut().enumerate() {
        *slot = i as u32;
    }
    // Stable: equal keys stay in the order made.
    order.sort_by_key(|&i| key(&edits[i as usize].range));

    let mut cur = range.start as usize;
    for &i in order.iter() {
        let i = i as usize;
        let e = &edits[i];
        let (s, t) = (e.range.start as usize, e.range.end as usize);
        let inside = if e.range.is_empty() {
            if edges {
                e.range.start >= range.start && e.range.start <= range.end
            } else {
                e.range.start > range.start && e.range.start < range.end
            }
        } else {
            e.range.start >= range.start && e.range.end <= range.end
        };
        // Outside, overridden, or starting in bytes already replaced
        // (nested in a removed line or a replaced value): dropped.
        if !inside || superseded(edits, i) || s < cur {
            continue;
        }
        out.extend_from_slice(buf.get(cur..s).unwrap_or(&[]));
        out.extend_from_slice(e.text.as_bytes());
        cur = t;
    }
    out.extend_from_slice(buf.get(cur..range.end as usize).unwrap_or(&[]));
}

#[cfg(test)]
mod tests {
    use super::super::reply::write_reply;
    use super::*;
    use bytes::Bytes;

    const REQ: &str = "INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport, SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK2\r\n\
v: SIP/2.0/TCP 10.0.0.3;branch=z9hG4bK3;received=1.1.1.1\r\n\
Max-Forwards: 70\r\n\
Route: <sip:p1;lr>, <sip:p2;lr>\r\n\
Route: <sip:p3;lr>\r\n\
From: <sip:alice@example.com>;tag=a1\r\n\
To: <sip:bob@example.com>\r\n\
Call-ID: c1\r\n\
CSeq: 1 INVITE\r\n\
Content-Length: 2\r\n\
\r\n\
hi";

    fn msg(s: &str) -> Message {
        Message::parse(Bytes::copy_from_slice(s.as_bytes())).unwrap()
    }

    fn written(m: &Message) -> String {
        let mut out = Vec::new();
        m.write_to(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn no_edits_is_byte_identical() {
        let m = msg(REQ);
        assert!(!m.has_edits());
        assert_eq!(written(&m), REQ);
    }

    #[test]
    fn prepend_keeps_call_order_and_append_goes_last() {
        let mut m = msg(REQ);
        m.prepend_header("Via", "SIP/2.0/UDP proxy;branch=z9hG4bKp");
        m.prepend_header("Record-Route", "<sip:proxy;lr>");
        m.append_header_raw("X-A: 1\r\n");
        m.append_header_raw("X-B: 2\r\n");
        let out = written(&m);
        assert!(out.starts_with("INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP proxy;branch=z9hG4bKp\r\nRecord-Route: <sip:proxy;lr>\r\nVia: SIP/2.0/UDP 10.0.0.1"));
        assert!(out.ends_with("Content-Length: 2\r\nX-A: 1\r\nX-B: 2\r\n\r\nhi"));
        // Getters still see the message as received.
        assert_eq!(m.top_via().unwrap().host, "10.0.0.1");
        assert_eq!(m.edit_count(), 4);
    }

    #[test]
    fn truncate_edits_undoes_a_forwarded_copy() {
        let mut m = msg(REQ);
        m.set_ruri("sip:bob@10.9.9.9");
        let mark = m.edit_count();
        m.prepend_header("Via", "SIP/2.0/UDP proxy;branch=z9hG4bKp");
        assert!(written(&m).contains("proxy"));
        m.truncate_edits(mark);
        let out = written(&m);
        assert!(!out.contains("proxy"));
        assert!(out.starts_with("INVITE sip:bob@10.9.9.9 SIP/2.0\r\n"));
    }

    #[test]
    fn set_ruri_is_seen_by_ruri_only() {
        let mut m = msg(REQ);
        m.set_ruri("sip:first@x");
        m.set_ruri("sip:bob@[2001:db8::1]:5080");
        assert_eq!(m.ruri(), "sip:bob@[2001:db8::1]:5080");
        assert_eq!(m.original_ruri(), "sip:bob@example.com");
        assert_eq!(
            written(&m),
            REQ.replacen(
                "sip:bob@example.com SIP",
                "sip:bob@[2001:db8::1]:5080 SIP",
                1
            )
        );
    }

    #[test]
    fn remove_headers_and_values() {
        let mut m = msg(REQ);
        assert_eq!(m.remove_headers("Via"), 2);
        assert_eq!(m.remove_headers("X-None"), 0);
        let out = written(&m);
        assert!(!out.contains("Via") && !out.contains("v:"));
        assert!(out.starts_with("INVITE sip:bob@example.com SIP/2.0\r\nMax-Forwards: 70\r\n"));

        // Route by Route: a value from a two-value line, the line's last
        // value (the whole line goes), then the next line.
        let mut m = msg(REQ);
        assert!(m.remove_first_value("Route"));
        assert!(written(&m).contains("Route: <sip:p2;lr>\r\nRoute: <sip:p3;lr>\r\n"));
        assert!(m.remove_first_value("route"));
        assert!(written(&m).contains("Max-Forwards: 70\r\nRoute: <sip:p3;lr>\r\nFrom"));
        assert!(m.remove_first_value("Route"));
        assert!(!written(&m).contains("Route"));
        assert!(!m.remove_first_value("Route"));
        // Getters see the message as received.
        assert_eq!(m.routes().len(), 3);

        // The proxy's own top Via in a reply.
        let mut m = msg(REQ);
        assert!(m.remove_first_value("v"));
        assert!(written(&m).contains("Via: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK2\r\nv: SIP/2.0/TCP"));
    }

    #[test]
    fn overlapping_removals_do_not_corrupt() {
        let mut m = msg(REQ);
        assert!(m.remove_first_value("Route"));
        assert_eq!(m.remove_headers("Route"), 2);
        assert!(!m.remove_first_value("Route"));
        m.set_header_value(3, "69");
        assert_eq!(m.remove_headers("Max-Forwards"), 1);
        let expected = REQ
            .replacen("Route: <sip:p1;lr>, <sip:p2;lr>\r\n", "", 1)
            .replacen("Route: <sip:p3;lr>\r\n", "", 1)
            .replacen("Max-Forwards: 70\r\n", "", 1);
        assert_eq!(written(&m), expected);
        let m2 = msg(&expected);
        m2.validate_request().unwrap();
    }

    #[test]
    fn nested_edits_keep_the_outer_one() {
        let route = |m: &Message| m.headers().find(|h| h.name == "Route").unwrap().index;
        // A value removal, then the whole value replaced: the replacement.
        let mut m = msg(REQ);
        m.remove_first_value("Route");
        m.set_header_value(route(&m), "<sip:x;lr>");
        assert!(written(&m).contains("\r\nRoute: <sip:x;lr>\r\nRoute: <sip:p3;lr>\r\n"));
        // The other way round: the same.
        let mut m = msg(REQ);
        m.set_header_value(route(&m), "<sip:x;lr>");
        m.remove_first_value("Route");
        assert!(written(&m).contains("\r\nRoute: <sip:x;lr>\r\nRoute: <sip:p3;lr>\r\n"));
        // An insertion into a removed Via disappears with it.
        let mut m = msg(REQ);
        m.remove_headers("Via");
        m.set_top_via_received(Some("192.0.2.1"), Some(1), true);
        assert!(!written(&m).contains("192.0.2.1"));
    }

    #[test]
    fn set_header_value_latest_wins() {
        let mut m = msg(REQ);
        let idx = m
            .headers()
            .find(|h| h.kind == HeaderKind::MaxForwards)
            .unwrap()
            .index;
        m.set_header_value(idx, "69");
        m.set_header_value(idx, "68");
        m.set_header_value(999, "ignored");
        assert_eq!(
            written(&m),
            REQ.replacen("Max-Forwards: 70", "Max-Forwards: 68", 1)
        );
        assert_eq!(m.max_forwards(), Some(Ok(70)));
    }

    #[test]
    fn received_and_rport() {
        // A bare rport gets the port; received is added.
        let mut m = msg(REQ);
        m.set_top_via_received(Some("192.0.2.7"), Some(40000), false);
        let out = written(&m);
        assert!(out.contains("Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport=40000;received=192.0.2.7, SIP/2.0/UDP 10.0.0.2"), "{out}");

        // rport absent: added only when forced.
        let via3 = REQ.replacen("Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport, SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK2\r\n", "", 1);
        let mut m = msg(&via3);
        m.set_top_via_received(None, Some(5070), false);
        assert!(!m.has_edits());
        m.set_top_via_received(Some("[2001:db8::2]"), Some(5070), true);
        assert!(written(&m).contains(
            "v: SIP/2.0/TCP 10.0.0.3;branch=z9hG4bK3;received=[2001:db8::2];rport=5070\r\n"
        ));

        // An existing rport value is replaced.
        let mut m = msg(&REQ.replacen(";rport,", ";rport=1234 ,", 1));
        m.set_top_via_received(None, Some(5062), false);
        assert!(written(&m).contains(";rport=5062 ,"));
    }

    #[test]
    fn reply_headers_and_stateless_reply() {
        let mut m = msg(REQ);
        m.set_top_via_received(Some("192.0.2.7"), None, false);
        m.prepend_header("Via", "SIP/2.0/UDP proxy;branch=z9hG4bKp");
        let mut out = Vec::new();
        write_reply(
            &m,
            404,
            "Not Found",
            Some("xyz"),
            "Server: lunasip\r\n",
            &mut out,
        );
        let expected = "SIP/2.0 404 Not Found\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport;received=192.0.2.7, SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK2\r\n\
v: SIP/2.0/TCP 10.0.0.3;branch=z9hG4bK3;received=1.1.1.1\r\n\
From: <sip:alice@example.com>;tag=a1\r\n\
To: <sip:bob@example.com>;tag=xyz\r\n\
Call-ID: c1\r\n\
CSeq: 1 INVITE\r\n\
Server: lunasip\r\n\
Content-Length: 0\r\n\r\n";
        assert_eq!(String::from_utf8(out.clone()).unwrap(), expected);
        let reply = Message::parse(Bytes::from(out)).unwrap();
        reply.validate_response().unwrap();
        assert_eq!(reply.to_tag(), Some("xyz"));

        // No tag given: none added. A To that has a tag keeps it.
        let mut out = Vec::new();
        write_reply(&m, 100, "Trying", None, "", &mut out);
        assert!(String::from_utf8(out)
            .unwrap()
            .contains("To: <sip:bob@example.com>\r\n"));
        let tagged = msg(&REQ.replacen(
            "To: <sip:bob@example.com>",
            "To: <sip:bob@example.com>;tag=b2",
            1,
        ));
        let mut out = Vec::new();
        write_reply(&tagged, 200, "OK", Some("xyz"), "", &mut out);
        assert!(String::from_utf8(out)
            .unwrap()
            .contains("To: <sip:bob@example.com>;tag=b2\r\n"));
        // A CRLF in the reason cannot inject a header.
        let mut out = Vec::new();
        write_reply(&tagged, 500, "Oops\r\nX-Evil: 1", None, "", &mut out);
        assert!(out.starts_with(b"SIP/2.0 500 OopsX-Evil: 1\r\n"));
    }
}
