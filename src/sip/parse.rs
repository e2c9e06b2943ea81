//! Builds a [`Message`]'s index: the start line (RFC 3261 §7.1/§7.2), one
//! entry per header field with folded continuation lines attached (§7.3.1),
//! and the body framed by Content-Length (§18.3, §20.14).
//!
//! One pass over the bytes with `memchr` for line ends; nothing is copied
//! and the only allocation is the header index. While classifying each
//! header name it also notes where each known kind first occurs and how
//! often (`KindIndex`), so that getters and validation never scan.

use bytes::Bytes;
use memchr::{memchr, memchr2};
use nom::{
    bytes::complete::{tag, tag_no_case, take_while1, take_while_m_n},
    combinator::{all_consuming, rest},
    sequence::terminated,
    Parser,
};

use super::cache::KindIndex;
use super::header::HeaderKind;
use super::lex::{self, is_token, is_ws};
use super::message::{HeaderEntry, Message, Method, Span, StartLine};
use super::{ParseError, MAX_HEADERS, MAX_MESSAGE_SIZE};

type BRes<'a, O> = nom::IResult<&'a [u8], O, ()>;

/// The line starting at `pos`: (end of its content, start of the next line).
/// A line ends at LF; a CR before the LF is not content. Bare-LF endings are
/// tolerated because some user agents send them.
pub(super) fn line_at(b: &[u8], pos: usize) -> Option<(usize, usize)> {
    let i = memchr(b'\n', b.get(pos..)?)?;
    let lf = pos + i;
    let end = if i > 0 && b[lf - 1] == b'\r' {
        lf - 1
    } else {
        lf
    };
    Some((end, lf + 1))
}

/// A header line of the usual shape, `token *WSP ":" value`, ending in
/// CRLF or LF with no bare CR: (name length, colon offset, content end,
/// next line start), offsets from `pos` except the last two. Anything else
/// (the blank line, folding, every malformed line) gets None and goes the
/// exact way, which also picks the error to report.
///
/// One scan of the name and one `memchr2` per line, where the exact way
/// needs three `memchr` calls.
fn simple_field(b: &[u8], pos: usize) -> Option<(usize, usize, usize, usize)> {
    let line = b.get(pos..)?;
    let name_len = lex::run_len(line, &lex::TOKEN);
    if name_len == 0 {
        return None;
    }
    let mut colon = name_len;
    while line.get(colon).is_some_and(|&c| is_ws(c)) {
        colon += 1;
    }
    if line.get(colon) != Some(&b':') {
        return None;
    }
    let value = line.get(colon + 1..)?;
    let k = colon + 1 + memchr2(b'\r', b'\n', value)?;
    let next = match (line[k], line.get(k + 1)) {
        (b'\n', _) => k + 1,
        (_, Some(b'\n')) => k + 2,
        _ => return None,
    };
    Some((name_len, colon, pos + k, pos + next))
}

/// `SIP/x.y`; Ok for 2.0, `Version` for another well-formed version,
/// `StartLine` for anything else ("SIP" is case-insensitive, RFC 3261 §7.1).
fn version(v: &[u8]) -> Result<(), ParseError> {
    let digits = || take_while1(|b: u8| b.is_ascii_digit());
    let parsed: BRes<'_, _> = all_consuming((
        tag_no_case(&b"SIP/"[..]),
        digits(),
        tag(&b"."[..]),
        digits(),
    ))
    .parse(v);
    match parsed {
        Ok((_, (_, major, _, minor))) if major == b"2" && minor == b"0" => Ok(()),
        Ok(_) => Err(ParseError::Version),
        Err(_) => Err(ParseError::StartLine),
    }
}

/// `Method SP Request-URI SP SIP-Version`, exactly one SP between elements:
/// RFC 4475 §3.1.2.9/§3.1.2.10 allow rejecting extra SP, and accepting them
/// would forward them untouched, which §3.1.2.9 forbids.
fn request_line(line: &[u8]) -> Result<StartLine, ParseError> {
    let sp = || tag(&b" "[..]);
    let parsed: BRes<'_, _> = (
        terminated(take_while1(is_token), sp()),
        terminated(take_while1(|b: u8| b != b' '), sp()),
        rest,
    )
        .parse(line);
    let (_, (method, uri, ver)) = parsed.map_err(|_| ParseError::StartLine)?;
    version(ver)?;
    // The URI must at least look like one: `scheme:` and URI characters
    // (RFC 4475 §3.1.2.7 wraps it in <>, §3.1.2.8 embeds LWS).
    let uri_text = std::str::from_utf8(uri).map_err(|_| ParseError::Uri)?;
    if !lex::uri_shape_ok(uri_text) {
        return Err(ParseError::Uri);
    }
    let method_text = lex::utf8(method);
    Ok(StartLine::Request {
        method: Span::new(0, method.len()),
        ruri: Span::new(method.len() + 1, method.len() + 1 + uri.len()),
        kind: Method::of(method_text),
    })
}

/// `SIP-Version SP Status-Code SP Reason-Phrase`; the code is three digits
/// in 100–699 (RFC 3261 §7.2, RFC 4475 §3.1.2.19). An empty phrase is
/// valid (§3.1.1.13); so is a missing SP before it, out of tolerance.
fn status_line(line: &[u8]) -> Result<StartLine, ParseError> {
    let sp = memchr(b' ', line).ok_or(ParseError::StartLine)?;
    version(&line[..sp])?;
    let after = &line[sp + 1..];
    let parsed: BRes<'_, &[u8]> = take_while_m_n(3, 3, |b: u8| b.is_ascii_digit()).parse(after);
    let (tail, code) = parsed.map_err(|_| ParseError::StartLine)?;
    let code = lex::parse_u32_bytes(code)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (100..=699).contains(c))
        .ok_or(ParseError::StartLine)?;
    let reason_start = match tail.first() {
        None => line.len(),
        Some(b' ') => sp + 1 + 3 + 1,
        Some(_) => return Err(ParseError::StartLine),
    };
    Ok(StartLine::Response {
        code,
        reason: Span::new(reason_start, line.len()),
    })
}

/// Parses a complete message; see [`Message::parse`]. With `framed`
/// false, Content-Length is not held against the body (the whole rest is
/// the body): [`Message::parse_unframed`].
pub(super) fn parse(mut buf: Bytes, framed: bool) -> Result<Message, ParseError> {
    if buf.len() > MAX_MESSAGE_SIZE {
        return Err(ParseError::TooLarge);
    }
    // RFC 3261 §7.5: CRLFs before the start line are ignored.
    let skip = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    if skip > 0 {
        buf = buf.slice(skip..);
    }
    let b = &buf[..];
    let (line_end, mut pos) = line_at(b, 0).ok_or(ParseError::Incomplete)?;
    let line = &b[..line_end];
    // A bare CR inside a line is a line end to some parsers and content to
    // others; refusing it keeps us from forwarding an ambiguity.
    if memchr(b'\r', line).is_some() {
        return Err(ParseError::StartLine);
    }
    let start = if line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"SIP/") {
        status_line(line)?
    } else {
        request_line(line)?
    };

    let mut headers: Vec<HeaderEntry> = Vec::with_capacity(24);
    let mut kinds = KindIndex::default();
    let (head_end, body_start) = loop {
        if let Some((name_len, colon, end, next)) = simple_field(b, pos) {
            if headers.len() == MAX_HEADERS {
                return Err(ParseError::TooManyHeaders);
            }
            let kind = HeaderKind::of(&b[pos..pos + name_len]);
            kinds.add(kind, headers.len());
            headers.push(HeaderEntry {
                line: Span::new(pos, next),
                name: Span::new(pos, pos + name_len),
                value: Span::new(pos + colon + 1, end),
                kind,
            });
            pos = next;
            continue;
        }
        let (end, next) = line_at(b, pos).ok_or(ParseError::Incomplete)?;
        if end == pos {
            break (pos, next);
        }
        let content = &b[pos..end];
        if memchr(b'\r', content).is_some() {
            return Err(ParseError::Header("line"));
        }
        if is_ws(content[0]) {
            // Folding (RFC 3261 §7.3.1): the line continues the previous field.
            let last = headers
                .last_mut()
                .ok_or(ParseError::Header("continuation"))?;
            last.line.end = next as u32;
            last.value.end = end as u32;
        } else {
            if headers.len() == MAX_HEADERS {
                return Err(ParseError::TooManyHeaders);
            }
            let colon = memchr(b':', content).ok_or(ParseError::Header("line"))?;
            let name = &content[..colon];
            let name_len = name.len() - name.iter().rev().take_while(|&&c| is_ws(c)).count();
            let name = &name[..name_len];
            if name.is_empty() || !name.iter().all(|&c| is_token(c)) {
                return Err(ParseError::Header("name"));
            }
            let kind = HeaderKind::of(name);
            kinds.add(kind, headers.len());
            headers.push(HeaderEntry {
                line: Span::new(pos, next),
                name: Span::new(pos, pos + name_len),
                value: Span::new(pos + colon + 1, end),
                kind,
            });
        }
        pos = next;
    };

    let mut content_length: Option<usize> = None;
    for h in &mut headers {
        let raw = &b[h.value.range()];
        let lead = raw.iter().take_while(|&&c| lex::is_lws(c)).count();
        let trail = raw[lead..]
            .iter()
            .rev()
            .take_while(|&&c| lex::is_lws(c))
            .count();
        h.value = Span::new(h.value.start as usize + lead, h.value.end as usize - trail);
        if h.kind == HeaderKind::ContentLength && framed {
            let n = content_length_value(&b[h.value.range()], MAX_MESSAGE_SIZE)?;
            // Conflicting values leave the body's extent unknown (RFC 4475
            // §3.3.9); equal repeats are left to validate_*.
            if content_length.is_some_and(|prev| prev != n) {
                return Err(ParseError::ContentLength);
            }
            content_length = Some(n);
        }
    }

    // Datagram framing (RFC 3261 §18.3): Content-Length bounds the body,
    // octets after it are dropped (RFC 4475 §3.1.1.8).
    let body_end = match content_length {
        Some(n) => {
            let end = body_start + n;
            if end > buf.len() {
                return Err(ParseError::Truncated);
            }
            end
        }
        None => buf.len(),
    };
    let head_text = std::str::from_utf8(&buf[..head_end]).ok().map(Into::into);
    buf.truncate(body_end);
    Ok(Message {
        buf,
        start,
        headers,
        head_end: head_end as u32,
        head_text,
        body: Span::new(body_start, body_end),
        edits: Vec::new(),
        kinds,
        cache: Default::default(),
        reply_headers: String::new(),
    })
}

/// A Content-Length value: digits only (no sign, RFC 4475 §3.1.2.3), at
/// most `limit`; LWS around it is ignored.
pub(crate) fn content_length_value(v: &[u8], limit: usize) -> Result<usize, ParseError> {
    let lead = v.iter().take_while(|&&c| lex::is_lws(c)).count();
    let v = &v[lead..];
    let trail = v.iter().rev().take_while(|&&c| lex::is_lws(c)).count();
    let v = &v[..v.len() - trail];
    lex::parse_u32_bytes(v)
        .map(|n| n as usize)
        .filter(|&n| n <= limit)
        .ok_or(ParseError::ContentLength)
}

#[cfg(test)]
mod tests {

    #[test]
    fn header_text_reads_the_same_with_or_without_a_utf8_head() {
        let ok = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: \"Zoë\" <sip:z@b>;tag=1\r\nX-A: één\r\nContent-Length: 4\r\n\r\nbody";
        let m = parse(Bytes::from(ok), true).unwrap();
        assert!(m.head_text.is_some());
        assert_eq!(m.header("X-A"), Some("één"));
        assert_eq!(m.header("From"), Some("\"Zoë\" <sip:z@b>;tag=1"));
        // A span cutting a character reads "" either way.
        let at = ok.find("één").unwrap() as u32;
        assert_eq!(
            m.text(Span {
                start: at,
                end: at + 1
            }),
            ""
        );
        // The body is outside the head.
        assert_eq!(m.text(m.body), "body");
        // One bad byte: the head is not kept as text, the other headers
        // still read, the bad one reads "".
        let mut bad = ok.as_bytes().to_vec();
        let x = ok.find("één").unwrap();
        bad[x] = 0xff;
        let m = parse(Bytes::from(bad), true).unwrap();
        assert!(m.head_text.is_none());
        assert_eq!(m.header("X-A"), Some(""));
        assert_eq!(m.header("From"), Some("\"Zoë\" <sip:z@b>;tag=1"));
    }
    use super::*;

    fn parse_str(s: &str) -> Result<Message, ParseError> {
        Message::parse(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn start_lines() {
        assert!(request_line(b"INVITE sip:a@b SIP/2.0").is_ok());
        assert!(request_line(b"INVITE sip:a@b sip/2.0").is_ok());
        assert_eq!(
            request_line(b"INVITE sip:a@b SIP/7.0").unwrap_err(),
            ParseError::Version
        );
        assert_eq!(
            request_line(b"INVITE sip:a@b SIP/2.0 ").unwrap_err(),
            ParseError::StartLine
        );
        assert_eq!(
            request_line(b"INVITE  sip:a@b SIP/2.0").unwrap_err(),
            ParseError::StartLine
        );
        assert_eq!(
            request_line(b"INVITE <sip:a@b> SIP/2.0").unwrap_err(),
            ParseError::Uri
        );
        assert_eq!(
            request_line(b"INVITE sip:a@b").unwrap_err(),
            ParseError::StartLine
        );
        assert_eq!(
            request_line(b"IN(VITE sip:a@b SIP/2.0").unwrap_err(),
            ParseError::StartLine
        );
        assert!(status_line(b"SIP/2.0 200 OK").is_ok());
        assert!(status_line(b"SIP/2.0 100 ").is_ok());
        assert!(status_line(b"SIP/2.0 100").is_ok());
        assert_eq!(
            status_line(b"SIP/2.0 4294967301 x").unwrap_err(),
            ParseError::StartLine
        );
        assert_eq!(
            status_line(b"SIP/2.0 099 x").unwrap_err(),
            ParseError::StartLine
        );
        assert_eq!(
            status_line(b"SIP/2.0 700 x").unwrap_err(),
            ParseError::StartLine
        );
        assert_eq!(
            status_line(b"SIP/2.0 20 x").unwrap_err(),
            ParseError::StartLine
        );
        assert_eq!(
            status_line(b"SIP/3.0 200 OK").unwrap_err(),
            ParseError::Version
        );
        assert_eq!(status_line(b"SIP/2.0").unwrap_err(), ParseError::StartLine);
    }

    #[test]
    fn folding_and_index() {
        let m = parse_str(
            "OPTIONS sip:a@b SIP/2.0\r\nSubject: one\r\n two\r\n\tthree\r\ns :\r\nX: y \r\n\r\n",
        )
        .unwrap();
        let hs: Vec<_> = m.headers().map(|h| (h.name, h.value)).collect();
        assert_eq!(
            hs,
            vec![("Subject", "one\r\n two\r\n\tthree"), ("s", ""), ("X", "y")]
        );
        assert_eq!(m.head_end as usize, m.as_bytes().len() - 2);
        assert!(m.body().is_empty());
    }

    #[test]
    fn framing_errors() {
        let base = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\n";
        assert_eq!(
            parse_str(&format!("{base}Content-Length: 5\r\n\r\nabc")).unwrap_err(),
            ParseError::Truncated
        );
        assert_eq!(
            parse_str(&format!("{base}Content-Length: -1\r\n\r\n")).unwrap_err(),
            ParseError::ContentLength
        );
        assert_eq!(
            parse_str(&format!("{base}Content-Length: 99999999999\r\n\r\n")).unwrap_err(),
            ParseError::ContentLength
        );
        assert_eq!(
            parse_str(&format!("{base}l: 1\r\nContent-Length: 2\r\n\r\nab")).unwrap_err(),
            ParseError::ContentLength
        );
        assert_eq!(
            parse_str(&format!("{base}Content-Length: 3\r\n\r\nabcdef"))
                .unwrap()
                .body(),
            b"abc"
        );
        assert_eq!(
            parse_str(&format!("{base}\r\nabcdef")).unwrap().body(),
            b"abcdef"
        );
        assert_eq!(parse_str(base).unwrap_err(), ParseError::Incomplete);
        assert_eq!(
            parse_str(&format!("{base} folded-first\r\n\r\n"))
                .unwrap()
                .header("via"),
            Some("SIP/2.0/UDP h\r\n folded-first")
        );
        assert_eq!(
            parse_str("OPTIONS sip:a@b SIP/2.0\r\n bad\r\n\r\n").unwrap_err(),
            ParseError::Header("continuation")
        );
        assert_eq!(
            parse_str(&format!("{base}No colon\r\n\r\n")).unwrap_err(),
            ParseError::Header("line")
        );
        assert_eq!(
            parse_str(&format!("{base}Bad Name: x\r\n\r\n")).unwrap_err(),
            ParseError::Header("name")
        );
        assert_eq!(
            parse_str(&format!("{base}: x\r\n\r\n")).unwrap_err(),
            ParseError::Header("name")
        );
        assert_eq!(
            parse_str(&format!("{base}X: a\rb\r\n\r\n")).unwrap_err(),
            ParseError::Header("line")
        );
        assert_eq!(parse_str("").unwrap_err(), ParseError::Incomplete);
        assert_eq!(parse_str("\r\n\r\n").unwrap_err(), ParseError::Incomplete);
    }

    #[test]
    fn limits() {
        let mut s = String::from("OPTIONS sip:a@b SIP/2.0\r\n");
        for i in 0..MAX_HEADERS {
            s.push_str(&format!("X-{i}: v\r\n"));
        }
        assert!(parse_str(&format!("{s}\r\n")).is_ok());
        assert_eq!(
            parse_str(&format!("{s}X-last: v\r\n\r\n")).unwrap_err(),
            ParseError::TooManyHeaders
        );
        let big = format!(
            "OPTIONS sip:a@b SIP/2.0\r\nX: {}\r\n\r\n",
            "a".repeat(MAX_MESSAGE_SIZE)
        );
        assert_eq!(parse_str(&big).unwrap_err(), ParseError::TooLarge);
    }

    #[test]
    fn leading_crlf_and_bare_lf() {
        let m = parse_str("\r\n\r\nOPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h\n\nbody").unwrap();
        assert_eq!(m.method(), "OPTIONS");
        assert_eq!(m.header("v"), Some("SIP/2.0/UDP h"));
        assert_eq!(m.body(), b"body");
        assert!(m.as_bytes().starts_with(b"OPTIONS"));
    }
}
