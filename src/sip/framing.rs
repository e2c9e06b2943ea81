//! Stream framing (RFC 3261 §18.3): a message ends Content-Length bytes after
//! the blank line. Keep-alive CRLFs between messages are skipped (RFC 5626
//! §3.5.1 sends them as a double CRLF).

use memchr::memchr;

use super::header::HeaderKind;
use super::lex::is_ws;
use super::parse::{content_length_value, line_at};
use super::ParseError;

/// What the front of a stream buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// `skip` leading CRLF keep-alive bytes, then a message of `len` bytes.
    Message { skip: usize, len: usize },
    /// Only keep-alive bytes so far (consume them).
    KeepAlive { skip: usize },
    /// Need more bytes.
    Incomplete,
}

/// Finds the first message in `buf`. Errors when the headers exceed `limit`,
/// Content-Length is missing-but-needed/bad/duplicated, or the frame exceeds `limit`.
///
/// A stream message without Content-Length is taken to have no body: the
/// header is mandatory on streams (RFC 3261 §20.14), and waiting for a body
/// that may never come would stall the connection. Conflicting values are
/// an error because the framing can no longer be trusted (RFC 4475 §3.3.9);
/// the connection should be closed.
pub fn next_frame(buf: &[u8], limit: usize) -> Result<Frame, ParseError> {
    let skip = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    if skip == buf.len() {
        return Ok(if skip == 0 {
            Frame::Incomplete
        } else {
            Frame::KeepAlive { skip }
        });
    }
    let msg = &buf[skip..];
    // The headers must end within the limit; look no further than that.
    let window = &msg[..msg.len().min(limit)];
    let mut content_length: Option<usize> = None;
    // Start of a Content-Length value whose end (the next field) is not yet known.
    let mut pending: Option<usize> = None;
    let mut pos = match line_at(window, 0) {
        Some((_, next)) => next,
        None => return incomplete(msg.len(), limit),
    };
    let head_len = loop {
        let Some((end, next)) = line_at(window, pos) else {
            return incomplete(msg.len(), limit);
        };
        let folded = end > pos && is_ws(window[pos]);
        if !folded {
            // A new field or the blank line ends a pending Content-Length.
            if let Some(start) = pending.take() {
                let n = content_length_value(&window[start..pos], usize::MAX)?;
                if content_length.is_some_and(|prev| prev != n) {
                    return Err(ParseError::ContentLength);
                }
                content_length = Some(n);
            }
        }
        if end == pos {
            break next;
        }
        if !folded {
            if let Some(colon) = memchr(b':', &window[pos..end]) {
                let name = &window[pos..pos + colon];
                let name =
                    &name[..name.len() - name.iter().rev().take_while(|&&c| is_ws(c)).count()];
                if HeaderKind::of(name) == HeaderKind::ContentLength {
                    pending = Some(pos + colon + 1);
                }
            }
        }
        pos = next;
    };
    let len = head_len
        .checked_add(content_length.unwrap_or(0))
        .ok_or(ParseError::TooLarge)?;
    if len > limit {
        return Err(ParseError::TooLarge);
    }
    if msg.len() < len {
        return Ok(Frame::Incomplete);
    }
    Ok(Frame::Message { skip, len })
}

/// No end of headers yet: wait, unless the limit is already reached.
fn incomplete(have: usize, limit: usize) -> Result<Frame, ParseError> {
    if have >= limit {
        Err(ParseError::TooLarge)
    } else {
        Ok(Frame::Incomplete)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = super::super::MAX_MESSAGE_SIZE;

    #[test]
    fn keepalives() {
        assert_eq!(next_frame(b"", LIMIT), Ok(Frame::Incomplete));
        assert_eq!(
            next_frame(b"\r\n\r\n", LIMIT),
            Ok(Frame::KeepAlive { skip: 4 })
        );
        assert_eq!(next_frame(b"\r\n\r\nOPTIONS", LIMIT), Ok(Frame::Incomplete));
    }

    #[test]
    fn frames_by_content_length() {
        let m = b"\r\n\r\nINVITE sip:a@b SIP/2.0\r\nl: 4\r\nVia: x\r\n\r\nbodyNEXT";
        let head = b"INVITE sip:a@b SIP/2.0\r\nl: 4\r\nVia: x\r\n\r\n".len();
        assert_eq!(
            next_frame(m, LIMIT),
            Ok(Frame::Message {
                skip: 4,
                len: head + 4
            })
        );
        assert_eq!(next_frame(&m[..m.len() - 6], LIMIT), Ok(Frame::Incomplete));
        let folded = b"INVITE sip:a@b SIP/2.0\r\nContent-Length :\r\n 2\r\n\r\nab";
        assert_eq!(
            next_frame(folded, LIMIT),
            Ok(Frame::Message {
                skip: 0,
                len: folded.len()
            })
        );
    }

    #[test]
    fn missing_content_length_means_no_body() {
        let m = b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\nOPTIONS";
        assert_eq!(
            next_frame(m, LIMIT),
            Ok(Frame::Message {
                skip: 0,
                len: m.len() - 7
            })
        );
    }

    #[test]
    fn errors() {
        let dup = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 13\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(next_frame(dup, LIMIT), Err(ParseError::ContentLength));
        let same = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 0\r\nl: 0\r\n\r\n";
        assert_eq!(
            next_frame(same, LIMIT),
            Ok(Frame::Message {
                skip: 0,
                len: same.len()
            })
        );
        let neg = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -999\r\n\r\n";
        assert_eq!(next_frame(neg, LIMIT), Err(ParseError::ContentLength));
        let huge = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 70000\r\n\r\n";
        assert_eq!(next_frame(huge, LIMIT), Err(ParseError::TooLarge));
        let big = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 100\r\n\r\n";
        assert_eq!(next_frame(big, 60), Err(ParseError::TooLarge));
        let endless = vec![b'a'; 100];
        assert_eq!(next_frame(&endless, 64), Err(ParseError::TooLarge));
        assert_eq!(next_frame(&endless, 1000), Ok(Frame::Incomplete));
    }
}
