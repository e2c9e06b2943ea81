//! Building a reply to a request (RFC 3261 §8.2.6): Vias, From, To (with a
//! tag), Call-ID and CSeq copied from the request.

use super::Message;

/// Whether a reply this proxy builds itself gets its own To tag: from 180
/// on, as OpenSIPS (tm t_reply.c `_reply` and `t_reply_with_body`, sl
/// sl_funcs.c `sl_send_reply_helper`: `code>=180`). RFC 3261 §8.2.6.2
/// exempts only the 100; OpenSIPS leaves 101–179 untagged too, and we
/// answer as it does.
pub const fn adds_to_tag(code: u16) -> bool {
    code >= 180
}

/// Writes a complete reply to `req` into `out`: status line, the request's
/// Vias (with their edits), From, To (adding `to_tag` when the request's To
/// has none; the caller decides with [`adds_to_tag`]), Call-ID, CSeq,
/// `extra` (raw header lines, CRLF terminated), the lines `append_to_reply`
/// added to the request, `Content-Length: 0`, blank line.
pub fn write_reply(
    req: &Message,
    code: u16,
    reason: &str,
    to_tag: Option<&str>,
    extra: &str,
    out: &mut Vec<u8>,
) {
    write_reply_parts(req, code, reason, to_tag, &[extra], out);
}

/// [`write_reply`] with the extra header lines in pieces, written in order.
pub fn write_reply_parts(
    req: &Message,
    code: u16,
    reason: &str,
    to_tag: Option<&str>,
    extra: &[&str],
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(b"SIP/2.0 ");
    push_code(out, code);
    out.push(b' ');
    // A reason is one line of text; a stray CR or LF would end the line
    // early and let the caller inject header fields.
    match memchr::memchr2(b'\r', b'\n', reason.as_bytes()) {
        None => out.extend_from_slice(reason.as_bytes()),
        Some(_) => out.extend(reason.bytes().filter(|&b| b != b'\r' && b != b'\n')),
    }
    out.extend_from_slice(b"\r\n");
    req.write_reply_headers(out, to_tag);
    for e in extra {
        out.extend_from_slice(e.as_bytes());
    }
    out.extend_from_slice(req.reply_headers.as_bytes());
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
}

/// [`write_reply`] with a body; its Content-Type is among the reply
/// headers (`append_to_reply`) when the script gave one.
pub fn write_reply_body(
    req: &Message,
    code: u16,
    reason: &str,
    to_tag: Option<&str>,
    extra: &str,
    body: &[u8],
    out: &mut Vec<u8>,
) {
    write_reply(req, code, reason, to_tag, extra, out);
    if body.is_empty() {
        return;
    }
    // Replace the empty framing write_reply ended with.
    out.truncate(out.len() - b"Content-Length: 0\r\n\r\n".len());
    out.extend_from_slice(b"Content-Length: ");
    out.extend_from_slice(body.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
}

/// Appends a status code in decimal without going through `fmt`.
fn push_code(out: &mut Vec<u8>, code: u16) {
    let (digits, at) = u16_digits(code);
    out.extend_from_slice(&digits[at..]);
}

/// `n` in decimal on the stack, without `fmt`: the digits are
/// `buf[at..]` of the returned `(buf, at)`.
pub fn u16_digits(mut n: u16) -> ([u8; 5], usize) {
    let mut digits = [0u8; 5];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    (digits, i)
}

#[cfg(test)]
mod tests {
    use super::{adds_to_tag, push_code};

    // The pieces are written in order, as one joined `extra`.
    #[test]
    fn reply_parts_as_one_extra() {
        let m = crate::sip::Message::parse(bytes::Bytes::from_static(
            b"OPTIONS sip:a SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=9\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 7 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        ))
        .expect("parses");
        let (mut a, mut b) = (Vec::new(), Vec::new());
        super::write_reply(&m, 401, "No", Some("t"), "X: 1\r\nY: 2\r\n", &mut a);
        super::write_reply_parts(
            &m,
            401,
            "No",
            Some("t"),
            &["X: 1\r\n", "", "Y: 2\r\n"],
            &mut b,
        );
        assert_eq!(a, b);
        let a = String::from_utf8(a).expect("utf-8");
        assert!(
            a.contains("CSeq: 7 OPTIONS\r\nX: 1\r\nY: 2\r\nContent-Length: 0\r\n\r\n"),
            "{a}"
        );
    }

    // Every Via in order (lines apart and a list), From, To with our tag,
    // Call-ID, CSeq; a CR or LF in the reason is dropped.
    #[test]
    fn reply_copies_the_request_headers() {
        let m = crate::sip::Message::parse(bytes::Bytes::from_static(
            b"OPTIONS sip:a SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCall-ID: c\r\nTo: <sip:a@b>\r\nVia: SIP/2.0/UDP g, SIP/2.0/UDP k\r\nCSeq: 7 OPTIONS\r\nf: <sip:a@b>;tag=9\r\nContent-Length: 0\r\n\r\n",
        ))
        .expect("parses");
        let mut out = Vec::new();
        super::write_reply(&m, 200, "O\r\nX: 1\nK", Some("t"), "", &mut out);
        let want = "SIP/2.0 200 OX: 1K\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\nVia: SIP/2.0/UDP g, SIP/2.0/UDP k\r\n\
                    f: <sip:a@b>;tag=9\r\nTo: <sip:a@b>;tag=t\r\nCall-ID: c\r\nCSeq: 7 OPTIONS\r\n";
        let got = String::from_utf8(out).expect("utf-8");
        assert!(got.starts_with(want), "{got}");
    }

    // Edits the reply copies (the Via's received) and edits it does not
    // (a removed header between the copied lines).
    #[test]
    fn reply_lines_with_and_without_edits() {
        let mut m = crate::sip::Message::parse(bytes::Bytes::from_static(
            b"OPTIONS sip:a SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nX-A: 1\r\nFrom: <sip:a@b>;tag=9\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 7 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        ))
        .expect("parses");
        assert_eq!(m.remove_headers("X-A"), 1);
        m.set_top_via_received(Some("1.2.3.4"), None, false);
        let mut out = Vec::new();
        super::write_reply(&m, 404, "No", None, "", &mut out);
        let want = "SIP/2.0 404 No\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1;received=1.2.3.4\r\n\
                    From: <sip:a@b>;tag=9\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 7 OPTIONS\r\n";
        let got = String::from_utf8(out).expect("utf-8");
        assert!(got.starts_with(want), "{got}");
    }

    #[test]
    fn own_to_tag_from_180_on() {
        for code in [100, 101, 179] {
            assert!(!adds_to_tag(code), "{code}");
        }
        for code in [180, 183, 200, 404, 699] {
            assert!(adds_to_tag(code), "{code}");
        }
    }

    #[test]
    fn status_codes() {
        for code in [0u16, 7, 100, 183, 404, 699, 65535] {
            let mut out = Vec::new();
            push_code(&mut out, code);
            assert_eq!(out, code.to_string().into_bytes());
        }
    }
}
