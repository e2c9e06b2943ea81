//! A light index of an SDP body (RFC 4566): the media streams with their
//! byte ranges, media, transport, connection address and direction, as
//! OpenSIPS's sipmsgops reads them (`is_audio_on_hold`, `stream_*`). Also
//! the MIME types of a body's parts (`has_body`).

use std::ops::Range;

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    /// From the start of the `m=` line to the start of the next one (or
    /// the end of the SDP), relative to the SDP text.
    pub range: Range<usize>,
    pub media: String,
    pub transport: String,
    /// `c=` of the stream, else of the session.
    pub conn: Option<String>,
    /// `a=sendonly`/`a=inactive` in the stream (RFC 3264 hold).
    pub hold_3264: bool,
    /// The port of the `m=` line.
    pub port: Range<usize>,
    /// The payload list of the `m=` line with the spaces before it
    /// (`" 0 8 101"`), what codec functions rewrite.
    pub payloads: Range<usize>,
    /// `a=rtpmap:`, `a=fmtp:` and other `a=name:PT …` lines of the stream.
    pub attrs: Vec<Attr>,
}

/// An attribute line that belongs to one payload type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    pub pt: String,
    /// For `a=rtpmap`: the encoding name and clock rate.
    pub rtpmap: Option<(String, String)>,
    /// The whole line, line end included.
    pub line: Range<usize>,
}

/// RFC 3551 static payload types (OpenSIPS codecs.c keeps the same
/// table): number, encoding, clock.
pub const STATIC_PAYLOADS: &[(&str, &str, &str)] = &[
    ("0", "PCMU", "8000"),
    ("3", "GSM", "8000"),
    ("4", "G723", "8000"),
    ("5", "DVI4", "8000"),
    ("6", "DVI4", "16000"),
    ("7", "LPC", "8000"),
    ("8", "PCMA", "8000"),
    ("9", "G722", "8000"),
    ("10", "L16", "44100"),
    ("11", "L16", "44100"),
    ("12", "QCELP", "8000"),
    ("13", "CN", "8000"),
    ("14", "MPA", "90000"),
    ("15", "G728", "8000"),
    ("16", "DVI4", "11025"),
    ("17", "DVI4", "22050"),
    ("18", "G729", "8000"),
    ("25", "CelB", "8000"),
    ("26", "JPEG", "90000"),
    ("28", "nv", "90000"),
    ("31", "H261", "90000"),
    ("32", "MPV", "90000"),
    ("33", "MP2T", "90000"),
    ("34", "H263", "90000"),
    ("t38", "t38", ""),
];

impl Stream {
    /// OpenSIPS's hold codes: 2 for `a=sendonly`/`a=inactive` (RFC 3264),
    /// 1 for a `0.0.0.0` connection address (RFC 2543), 0 when not held.
    pub fn hold(&self) -> u8 {
        if self.hold_3264 {
            2
        } else if self.conn.as_deref() == Some("0.0.0.0") {
            1
        } else {
            0
        }
    }
}

/// The streams of an SDP text, in order; empty when it has no `m=` line.
pub fn streams(sdp: &str) -> Vec<Stream> {
    let mut out: Vec<Stream> = Vec::new();
    let mut session_conn: Option<String> = None;
    let mut pos = 0;
    for raw in sdp.split_inclusive('\n') {
        let start = pos;
        pos += raw.len();
        let line = raw.trim_end_matches(['\r', '\n']);
        if let Some(m) = line.strip_prefix("m=") {
            if let Some(last) = out.last_mut() {
                last.range.end = start;
            }
            let mut f = m.split_ascii_whitespace();
            let media = f.next().unwrap_or("").to_string();
            let at = |piece: &str| start + 2 + (piece.as_ptr() as usize - m.as_ptr() as usize);
            let port = f.next().map_or(start..start, |p| at(p)..at(p) + p.len());
            let transport = f.next().unwrap_or("");
            let after = if transport.is_empty() {
                port.end
            } else {
                at(transport) + transport.len()
            };
            let transport = transport.to_string();
            out.push(Stream {
                range: start..sdp.len(),
                media,
                transport,
                conn: session_conn.clone(),
                hold_3264: false,
                port,
                payloads: after..start + 2 + m.len(),
                attrs: Vec::new(),
            });
        } else if let Some(c) = line.strip_prefix("c=") {
            // c=IN IP4 addr[/ttl]
            let addr = c
                .split_ascii_whitespace()
                .nth(2)
                .map(|a| a.split('/').next().unwrap_or(a).to_string());
            match out.last_mut() {
                Some(s) => s.conn = addr,
                None => session_conn = addr,
            }
        } else if let Some(s) = out.last_mut() {
            let l = line.to_ascii_lowercase();
            if l.starts_with("a=sendonly") || l.starts_with("a=inactive") {
                s.hold_3264 = true;
            }
            if let Some((name, rest)) = line.strip_prefix("a=").and_then(|a| a.split_once(':')) {
                let pt = rest.split([' ', '\t']).next().unwrap_or("");
                let listed = sdp[s.payloads.clone()]
                    .split_ascii_whitespace()
                    .any(|p| p == pt);
                if listed {
                    let rtpmap = name.eq_ignore_ascii_case("rtpmap").then(|| {
                        let enc = rest[pt.len()..].trim();
                        let mut e = enc.split('/');
                        (
                            e.next().unwrap_or("").to_string(),
                            e.next().unwrap_or("").to_string(),
                        )
                    });
                    s.attrs.push(Attr {
                        pt: pt.to_string(),
                        rtpmap,
                        line: start..pos,
                    });
                }
            }
        }
    }
    out
}

/// The MIME type (`type/subtype`, lower case) of each part of a body:
/// one for a plain body, each part's Content-Type for a multipart one
/// (parts without one count as `text/plain`, RFC 2046 §5.1).
pub fn part_types(content_type: &str, body: &[u8]) -> Vec<String> {
    let ct = mime_of(content_type);
    if !ct.starts_with("multipart/") {
        return vec![ct];
    }
    let Some(boundary) = param(content_type, "boundary") else {
        return vec![ct];
    };
    let delim = format!("--{boundary}");
    let text = String::from_utf8_lossy(body);
    let mut out = Vec::new();
    for part in text.split(delim.as_str()).skip(1) {
        if part.starts_with("--") {
            break;
        }
        let head = part.split("\r\n\r\n").next().unwrap_or("");
        let ty = head
            .lines()
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                let n = n.trim();
                (n.eq_ignore_ascii_case("content-type") || n.eq_ignore_ascii_case("c"))
                    .then(|| mime_of(v))
            })
            .unwrap_or_else(|| "text/plain".to_string());
        out.push(ty);
    }
    out
}

/// One part of a multipart body (RFC 2046 §5.1.1), ranges relative to
/// the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyPart {
    /// `type/subtype` of the part, lower case (`text/plain` by default).
    pub mime: String,
    /// The part's header lines, each with its CRLF.
    pub headers: Range<usize>,
    pub body: Range<usize>,
    /// From its delimiter line to the next delimiter: what removing the
    /// part takes out.
    pub whole: Range<usize>,
}

/// The parts of a multipart body; None when `content_type` is not
/// multipart or has no boundary.
pub fn parts(content_type: &str, body: &[u8]) -> Option<Vec<BodyPart>> {
    if !mime_of(content_type).starts_with("multipart/") {
        return None;
    }
    let delim = format!("--{}", param(content_type, "boundary")?);
    let d = delim.as_bytes();
    let at_line = |i: usize| i == 0 || body[i - 1] == b'\n';
    let marks: Vec<usize> = (0..body.len())
        .filter(|&i| body[i..].starts_with(d) && at_line(i))
        .collect();
    let mut out = Vec::new();
    for w in marks.windows(2) {
        let (start, next) = (w[0], w[1]);
        if body[start + d.len()..].starts_with(b"--") {
            break;
        }
        // The part starts after the delimiter line and ends before the
        // CRLF that precedes the next delimiter.
        let from = match body[start..next].iter().position(|&b| b == b'\n') {
            Some(p) => start + p + 1,
            None => continue,
        };
        let mut end = next;
        if end > from && body[end - 1] == b'\n' {
            end -= 1;
            if end > from && body[end - 1] == b'\r' {
                end -= 1;
            }
        }
        let seg = &body[from..end];
        let (headers, content) = if seg.starts_with(b"\r\n") {
            (from..from, from + 2..end)
        } else {
            match seg.windows(4).position(|x| x == b"\r\n\r\n") {
                Some(p) => (from..from + p + 2, from + p + 4..end),
                None => (from..end, end..end),
            }
        };
        let head = String::from_utf8_lossy(&body[headers.clone()]);
        let mime = head
            .lines()
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                let n = n.trim();
                (n.eq_ignore_ascii_case("content-type") || n.eq_ignore_ascii_case("c"))
                    .then(|| mime_of(v))
            })
            .unwrap_or_else(|| "text/plain".to_string());
        out.push(BodyPart {
            mime,
            headers,
            body: content,
            whole: start..next,
        });
    }
    Some(out)
}

/// `type/subtype` of a Content-Type value, lower case, parameters cut.
pub fn mime_of(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    value.split(';').skip(1).find_map(|p| {
        let (n, v) = p.split_once('=')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDP: &str = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n\
m=audio 4000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\n\
m=video 4002 RTP/AVP 96\r\nc=IN IP4 10.0.0.1\r\na=sendonly\r\n";

    #[test]
    fn streams_and_hold() {
        let s = streams(SDP);
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].media.as_str(), s[0].transport.as_str()),
            ("audio", "RTP/AVP")
        );
        assert_eq!(s[0].hold(), 1);
        assert_eq!(s[1].hold(), 2);
        assert!(SDP[s[0].range.clone()].starts_with("m=audio"));
        assert!(SDP[s[0].range.clone()].ends_with("PCMU/8000\r\n"));
        assert_eq!(s[1].range.end, SDP.len());
        assert!(streams("v=0\r\n").is_empty());
        assert_eq!(&SDP[s[0].payloads.clone()], " 0 8");
        assert_eq!(&SDP[s[0].port.clone()], "4000");
        assert_eq!(s[0].attrs.len(), 1);
        assert_eq!(
            s[0].attrs[0].rtpmap,
            Some(("PCMU".to_string(), "8000".to_string()))
        );
        assert_eq!(&SDP[s[0].attrs[0].line.clone()], "a=rtpmap:0 PCMU/8000\r\n");
    }

    #[test]
    fn body_part_types() {
        assert_eq!(part_types("Application/SDP", b"v=0"), ["application/sdp"]);
        let body = b"--xx\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n--xx\r\nContent-Type: application/isup;version=itu-t92+\r\n\r\n\x01\x02\r\n--xx--\r\n";
        assert_eq!(
            part_types("multipart/mixed;boundary=\"xx\"", body),
            ["application/sdp", "application/isup"]
        );
        let p = parts("multipart/mixed;boundary=xx", body).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(&body[p[0].body.clone()], b"v=0");
        assert_eq!(&body[p[1].body.clone()], b"\x01\x02");
        assert_eq!(p[1].mime, "application/isup");
        assert!(body[p[1].whole.clone()].starts_with(b"--xx\r\nContent-Type: application/isup"));
        assert!(parts("application/sdp", body).is_none());
    }
}
