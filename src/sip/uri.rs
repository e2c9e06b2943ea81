//! SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966), with parameters,
//! headers, escapes and IPv6 references. Spans index into the parsed text.

use std::borrow::Cow;
use std::ops::Range;

use super::lex::{self, byte_class, offset_in, run_len, Res};
use super::params::{self, escapes_ok};
use super::ParseError;

/// The URI schemes the proxy routes on; any other is `Other` (opaque).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Sip,
    Sips,
    Tel,
    Other,
}

/// A parsed URI borrowing the text it came from.
///
/// For schemes other than sip, sips and tel only `text` and `scheme` carry
/// information (the rest is opaque, RFC 4475 §3.3.2–3.3.4); `host` is "".
/// For tel URIs the number is the `user` and `host` is "".
#[derive(Debug, Clone)]
pub struct Uri<'a> {
    pub text: &'a str,
    pub scheme: Scheme,
    /// User part as written (escapes kept), without password.
    pub user: Option<&'a str>,
    pub password: Option<&'a str>,
    /// Host as written; IPv6 references keep their brackets.
    pub host: &'a str,
    pub port: Option<u16>,
    /// Raw `;a=b;c` parameters (without the leading ';'), "" if none.
    pub params: &'a str,
    /// Raw headers after '?', if any.
    pub headers: Option<&'a str>,
    /// Spans in `text`, for rewriting one part ($rU = …).
    pub user_span: Option<Range<usize>>,
    pub host_span: Range<usize>,
    pub port_span: Option<Range<usize>>,
}

/// `unreserved` and `user-unreserved` characters of a SIP user part
/// (RFC 3261 §25.1), '%' for escapes.
const fn is_user_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'_'
                | b'.'
                | b'!'
                | b'~'
                | b'*'
                | b'\''
                | b'('
                | b')'
                | b'&'
                | b'='
                | b'+'
                | b'$'
                | b','
                | b';'
                | b'?'
                | b'/'
                | b'%'
        )
}

/// Characters of a SIP password (RFC 3261 §25.1).
const fn is_password_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'_'
                | b'.'
                | b'!'
                | b'~'
                | b'*'
                | b'\''
                | b'('
                | b')'
                | b'&'
                | b'='
                | b'+'
                | b'$'
                | b','
                | b'%'
        )
}

/// Characters of URI headers (`hname=hvalue&…`, RFC 3261 §25.1).
const fn is_header_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'_'
                | b'.'
                | b'!'
                | b'~'
                | b'*'
                | b'\''
                | b'('
                | b')'
                | b'['
                | b']'
                | b'/'
                | b'?'
                | b':'
                | b'+'
                | b'$'
                | b'&'
                | b'='
                | b'%'
        )
}

static USER: [bool; 256] = byte_class!(is_user_char);
static PASSWORD: [bool; 256] = byte_class!(is_password_char);
static HEADER: [bool; 256] = byte_class!(is_header_char);

/// Whether every byte of `s` is in `class`.
fn all_in(s: &str, class: &[bool; 256]) -> bool {
    run_len(s.as_bytes(), class) == s.len()
}

/// Characters of a tel number (RFC 3966 §3: digits, HEXDIG, '*', '#',
/// visual separators, leading '+').
fn is_tel_char(b: u8) -> bool {
    b.is_ascii_hexdigit() || matches!(b, b'*' | b'#' | b'-' | b'.' | b'(' | b')' | b'+')
}

/// Decodes %HH escapes (RFC 3261 §19.1.2). Bytes, not text: `%00` and
/// `%FF` are legal escapes (RFC 4475 §3.1.1.4), and an escaped NUL must not
/// truncate anything. A '%' not followed by two hex digits stays as is.
pub fn unescape(s: &str) -> Cow<'_, [u8]> {
    let b = s.as_bytes();
    if !b.contains(&b'%') {
        return Cow::Borrowed(b);
    }
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|&c| hex(c)),
                b.get(i + 2).and_then(|&c| hex(c)),
            ) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    Cow::Owned(out)
}

impl<'a> Uri<'a> {
    /// Parses a URI. sip/sips/tel are checked against their grammar; other
    /// schemes need only `scheme:` followed by URI characters.
    pub fn parse(text: &'a str) -> Result<Uri<'a>, ParseError> {
        let (rest, scheme) = lex::scheme(text).map_err(|_| ParseError::Uri)?;
        let scheme = if scheme.eq_ignore_ascii_case("sip") {
            Scheme::Sip
        } else if scheme.eq_ignore_ascii_case("sips") {
            Scheme::Sips
        } else if scheme.eq_ignore_ascii_case("tel") {
            Scheme::Tel
        } else {
            Scheme::Other
        };
        let mut uri = Uri {
            text,
            scheme,
            user: None,
            password: None,
            host: "",
            port: None,
            params: "",
            headers: None,
            user_span: None,
            host_span: text.len()..text.len(),
            port_span: None,
        };
        match scheme {
            Scheme::Sip | Scheme::Sips => {
                uri.parse_sip(rest).map_err(|_| ParseError::Uri)?;
            }
            Scheme::Tel => uri.parse_tel(rest).ok_or(ParseError::Uri)?,
            Scheme::Other => {
                if rest.is_empty() || !lex::all_uri_chars(rest) {
                    return Err(ParseError::Uri);
                }
            }
        }
        Ok(uri)
    }

    fn span(&self, part: &str) -> Range<usize> {
        let start = offset_in(self.text, part);
        start..start + part.len()
    }

    /// `[userinfo@]hostport[;params][?headers]` after "sip:".
    fn parse_sip(&mut self, rest: &'a str) -> Res<'a, ()> {
        // hvalue and paramchar exclude '@', so the first '@' ends the
        // userinfo even when the user part holds ';' or '?' (RFC 4475
        // §3.1.1.9, §3.1.1.2).
        let hostpart = match memchr::memchr(b'@', rest.as_bytes()) {
            Some(at) => {
                let userinfo = &rest[..at];
                let (user, password) = match memchr::memchr(b':', userinfo.as_bytes()) {
                    Some(c) => (&userinfo[..c], Some(&userinfo[c + 1..])),
                    None => (userinfo, None),
                };
                if user.is_empty() || !all_in(user, &USER) || !escapes_ok(user) {
                    return lex::fail();
                }
                if let Some(pw) = password {
                    if !all_in(pw, &PASSWORD) || !escapes_ok(pw) {
                        return lex::fail();
                    }
                }
                self.user = Some(user);
                self.user_span = Some(self.span(user));
                self.password = password;
                &rest[at + 1..]
            }
            None => rest,
        };
        let (after, host) = lex::host(hostpart)?;
        self.host = host;
        self.host_span = self.span(host);
        let mut after = after;
        if let Some(p) = after.strip_prefix(':') {
            let (r, port) = lex::port(p)?;
            self.port = Some(port);
            self.port_span = Some(self.span(&p[..p.len() - r.len()]));
            after = r;
        }
        if let Some(p) = after.strip_prefix(';') {
            let end = memchr::memchr(b'?', p.as_bytes()).unwrap_or(p.len());
            let list = &p[..end];
            if !params::check_uri(list) {
                return lex::fail();
            }
            self.params = list;
            after = &p[end..];
        }
        if let Some(h) = after.strip_prefix('?') {
            if h.is_empty() || !all_in(h, &HEADER) || !escapes_ok(h) {
                return lex::fail();
            }
            self.headers = Some(h);
            after = "";
        }
        if !after.is_empty() {
            return lex::fail();
        }
        Ok(("", ()))
    }

    /// `number[;params]` after "tel:" (RFC 3966).
    fn parse_tel(&mut self, rest: &'a str) -> Option<()> {
        let end = rest.find(';').unwrap_or(rest.len());
        let number = &rest[..end];
        let digits = number.strip_prefix('+').unwrap_or(number);
        if digits.is_empty() || !digits.bytes().all(|b| b != b'+' && is_tel_char(b)) {
            return None;
        }
        self.user = Some(number);
        self.user_span = Some(self.span(number));
        let host_at = offset_in(self.text, rest) + end;
        self.host_span = host_at..host_at;
        if let Some(list) = rest[end..].strip_prefix(';') {
            if !params::check_uri(list) {
                return None;
            }
            self.params = list;
        }
        Some(())
    }

    /// A URI parameter: None absent, Some(None) present without value.
    pub fn param(&self, name: &str) -> Option<Option<&'a str>> {
        params::find_uri(self.params, name)
    }

    /// The host without IPv6 brackets.
    pub fn host_bare(&self) -> &'a str {
        self.host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(self.host)
    }

    /// The user part with escapes decoded (`user;par=u%40example.net` →
    /// `user;par=u@example.net`).
    pub fn user_unescaped(&self) -> Option<Cow<'a, [u8]>> {
        self.user.map(unescape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_sip() {
        let u = Uri::parse("sip:alice:secret@example.com:5062;transport=tcp;lr?subject=hi&x=1")
            .unwrap();
        assert_eq!(u.scheme, Scheme::Sip);
        assert_eq!(u.user, Some("alice"));
        assert_eq!(u.password, Some("secret"));
        assert_eq!(u.host, "example.com");
        assert_eq!(u.port, Some(5062));
        assert_eq!(u.params, "transport=tcp;lr");
        assert_eq!(u.param("transport"), Some(Some("tcp")));
        assert_eq!(u.param("lr"), Some(None));
        assert_eq!(u.param("maddr"), None);
        assert_eq!(u.headers, Some("subject=hi&x=1"));
        assert_eq!(&u.text[u.user_span.clone().unwrap()], "alice");
        assert_eq!(&u.text[u.host_span.clone()], "example.com");
        assert_eq!(&u.text[u.port_span.clone().unwrap()], "5062");
    }

    #[test]
    fn host_only_and_sips() {
        let u = Uri::parse("SIPS:example.com").unwrap();
        assert_eq!(u.scheme, Scheme::Sips);
        assert_eq!(u.user, None);
        assert_eq!(u.host, "example.com");
        assert_eq!(u.port, None);
        assert_eq!(u.params, "");
        assert_eq!(u.headers, None);
    }

    #[test]
    fn ipv6_references() {
        let u = Uri::parse("sip:bob@[2001:db8::10]:5070;maddr=[2001:db8::1]").unwrap();
        assert_eq!(u.host, "[2001:db8::10]");
        assert_eq!(u.host_bare(), "2001:db8::10");
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.param("maddr"), Some(Some("[2001:db8::1]")));
        let u = Uri::parse("sip:[::ffff:192.0.2.1]").unwrap();
        assert_eq!(u.host_bare(), "::ffff:192.0.2.1");
        assert!(Uri::parse("sip:bob@[2001:db8::10").is_err());
        assert!(Uri::parse("sip:bob@2001:db8::10").is_err());
    }

    #[test]
    fn escapes() {
        let u = Uri::parse("sip:sips%3Auser%40example.com@example.net").unwrap();
        assert_eq!(u.user, Some("sips%3Auser%40example.com"));
        assert_eq!(&*u.user_unescaped().unwrap(), b"sips:user@example.com");
        let u = Uri::parse("sip:null-%00-null@example.com").unwrap();
        assert_eq!(&*u.user_unescaped().unwrap(), b"null-\0-null");
        assert!(Uri::parse("sip:bad%zzuser@example.com").is_err());
        assert!(Uri::parse("sip:bad%4@example.com").is_err());
        assert_eq!(&*unescape("100%"), b"100%");
        assert_eq!(&*unescape("%41%4a%4A"), b"AJJ");
    }

    #[test]
    fn semicolon_in_user_part() {
        let u = Uri::parse("sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(u.user, Some("user;par=u%40example.net"));
        assert_eq!(&*u.user_unescaped().unwrap(), b"user;par=u@example.net");
        assert_eq!(u.host, "example.com");
        assert_eq!(u.params, "");
    }

    #[test]
    fn tel_uris() {
        let u = Uri::parse("tel:+1-201-555-0123;ext=1234;phone-context=example.com").unwrap();
        assert_eq!(u.scheme, Scheme::Tel);
        assert_eq!(u.user, Some("+1-201-555-0123"));
        assert_eq!(u.host, "");
        assert_eq!(u.param("ext"), Some(Some("1234")));
        assert_eq!(u.param("phone-context"), Some(Some("example.com")));
        let u = Uri::parse("tel:7042;phone-context=example.com").unwrap();
        assert_eq!(u.user, Some("7042"));
        assert!(Uri::parse("tel:").is_err());
        assert!(Uri::parse("tel:+").is_err());
        assert!(Uri::parse("tel:12 34").is_err());
        assert!(Uri::parse("tel:1?x=y").is_err());
    }

    #[test]
    fn other_schemes_are_opaque() {
        for s in [
            "nobodyKnowsThisScheme:totallyopaquecontent",
            "soap.beep://192.0.2.103:3002",
            "isbn:2983792873",
            "http://www.example.com",
            "name:John_Smith",
        ] {
            let u = Uri::parse(s).unwrap();
            assert_eq!(u.scheme, Scheme::Other, "{s}");
            assert_eq!(u.host, "");
        }
        assert!(Uri::parse("x:").is_err());
        assert!(Uri::parse("x:a b").is_err());
    }

    #[test]
    fn malformed() {
        for s in [
            "",
            ":",
            "sip",
            "sip:",
            "sip:@host",
            "sip:user@",
            "sip:host:",
            "sip:host:99999",
            "sip:host;",
            "sip:host;;lr",
            "sip:host?",
            "sip:ho st",
            "sip:host>",
            "<sip:host>",
            "sip:user@host@x",
            "sip:us\"er@host",
        ] {
            assert!(Uri::parse(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn unusual_but_valid_user_and_password() {
        let s = "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com";
        let u = Uri::parse(s).unwrap();
        assert_eq!(
            u.user,
            Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
        );
        assert_eq!(
            u.password,
            Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
        );
        assert_eq!(u.host, "example.com");
    }
}
