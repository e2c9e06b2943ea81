//! Splitting comma lists outside quotes and angle brackets (RFC 3261 §7.3.1).

use super::lex::trim_lws;

/// Splits a header value on commas that are outside quoted strings and <>;
/// each piece trimmed; empty pieces dropped.
pub fn split_commas(value: &str) -> Vec<&str> {
    CommaSplit::new(value).collect()
}

/// The allocation-free iterator behind [`split_commas`], for callers on the
/// hot path. Pieces are subslices of the input, so their offsets can be
/// recovered for edits.
#[derive(Debug, Clone)]
pub(crate) struct CommaSplit<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> CommaSplit<'a> {
    pub(crate) fn new(s: &'a str) -> CommaSplit<'a> {
        CommaSplit { s, pos: 0 }
    }

    /// The next raw piece (untrimmed, possibly empty), or None at the end.
    fn next_raw(&mut self) -> Option<&'a str> {
        let b = self.s.as_bytes();
        if self.pos > b.len() {
            return None;
        }
        let start = self.pos;
        let mut i = start;
        let mut quoted = false;
        let mut angle = 0usize;
        while i < b.len() {
            // Outside quotes and <>, only these three bytes change anything:
            // jump to the next one.
            if !quoted && angle == 0 {
                match memchr::memchr3(b',', b'"', b'<', &b[i..]) {
                    Some(k) => i += k,
                    None => {
                        i = b.len();
                        break;
                    }
                }
            }
            match b[i] {
                b'\\' if quoted => i += 1,
                b'"' => quoted = !quoted,
                b'<' if !quoted => angle += 1,
                b'>' if !quoted => angle = angle.saturating_sub(1),
                b',' if !quoted && angle == 0 => break,
                _ => {}
            }
            i += 1;
        }
        // An escape at the very end can push `i` one past the end.
        let end = i.min(b.len());
        self.pos = end + 1;
        // Commas and quotes are ASCII, so `start` and `end` are boundaries.
        self.s.get(start..end)
    }
}

impl<'a> Iterator for CommaSplit<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        loop {
            let piece = trim_lws(self.next_raw()?);
            if !piece.is_empty() {
                return Some(piece);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_outside_quotes_and_brackets() {
        assert_eq!(
            split_commas(r#""Bell, A." <sip:a@b>;tag=1, <sip:c@d?x=1,2>, sip:e@f"#),
            vec![
                r#""Bell, A." <sip:a@b>;tag=1"#,
                "<sip:c@d?x=1,2>",
                "sip:e@f"
            ]
        );
    }

    #[test]
    fn trims_and_drops_empty() {
        assert_eq!(split_commas(" a ,\r\n b,,  , c "), vec!["a", "b", "c"]);
        assert_eq!(split_commas(";;,,;;,;"), vec![";;", ";;", ";"]);
        assert!(split_commas("").is_empty());
        assert!(split_commas(" , ").is_empty());
    }

    #[test]
    fn escaped_quote_inside_quotes() {
        assert_eq!(
            split_commas(r#""a \", b" <sip:x>, <sip:y>"#),
            vec![r#""a \", b" <sip:x>"#, "<sip:y>"]
        );
    }

    #[test]
    fn unbalanced_input_does_not_panic() {
        assert_eq!(split_commas(r#""abc, def"#), vec![r#""abc, def"#]);
        assert_eq!(split_commas("<a, b"), vec!["<a, b"]);
        assert_eq!(split_commas(">a, b"), vec![">a", "b"]);
        assert_eq!(split_commas("\"\\"), vec!["\"\\"]);
    }

    #[test]
    fn via_list() {
        let v = "SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8  ,\r\n SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n z9hG4bK30239";
        let parts = split_commas(v);
        assert_eq!(parts.len(), 2);
        assert!(parts[0].ends_with("z9hG4bK9ikj8"));
        assert!(parts[1].starts_with("SIP  /    2.0"));
    }
}
