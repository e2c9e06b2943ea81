//! Lexical building blocks shared by the parsers (RFC 3261 §25.1): character
//! classes, linear white space, quoted strings, bounded numbers. Every helper
//! works on borrowed input and never panics: slicing happens only at ASCII
//! positions the helper itself found.

use nom::IResult;

/// nom result with no error payload: callers map a failure to their own
/// `ParseError`, so carrying nom's error context would only cost time.
pub(crate) type Res<'a, O> = IResult<&'a str, O, ()>;

/// A nom failure without payload.
pub(crate) fn fail<T>() -> Result<T, nom::Err<()>> {
    Err(nom::Err::Error(()))
}

/// A 256-entry membership table for a byte class, built at compile time
/// from a `const fn` predicate: one load per byte in the scanning loops,
/// where the grammar's character classes are tested most.
macro_rules! byte_class {
    ($pred:path) => {{
        let mut t = [false; 256];
        let mut i = 0;
        while i < 256 {
            t[i] = $pred(i as u8);
            i += 1;
        }
        t
    }};
}
pub(crate) use byte_class;

/// RFC 3261 `token` characters, for building tables.
pub(crate) const fn token_def(b: u8) -> bool {
    matches!(b,
        b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9'
        | b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~')
}
pub(crate) static TOKEN: [bool; 256] = byte_class!(token_def);

/// RFC 3261 `token` characters.
pub(crate) fn is_token(b: u8) -> bool {
    TOKEN[b as usize]
}

/// SP or HT.
pub(crate) fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Bytes that may appear in (folded) linear white space.
pub(crate) fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Trims LWS, folding included, from both ends.
pub(crate) fn trim_lws(s: &str) -> &str {
    trim_lws_end(trim_lws_start(s))
}

/// Trims LWS from the start. Byte-wise: LWS is ASCII, so the cut is a
/// char boundary.
pub(crate) fn trim_lws_start(s: &str) -> &str {
    let n = s.bytes().take_while(|&b| is_lws(b)).count();
    s.get(n..).unwrap_or("")
}

/// Trims LWS from the end.
pub(crate) fn trim_lws_end(s: &str) -> &str {
    let n = s.bytes().rev().take_while(|&b| is_lws(b)).count();
    s.get(..s.len() - n).unwrap_or("")
}

/// Splits `s` after its first `n` bytes when `n` is an ASCII position.
fn split_at(s: &str, n: usize) -> Res<'_, &str> {
    match (s.get(n..), s.get(..n)) {
        (Some(rest), Some(head)) => Ok((rest, head)),
        _ => fail(),
    }
}

/// Leading run of bytes matching `f` (which must only accept ASCII).
pub(crate) fn take_ascii(s: &str, f: impl Fn(u8) -> bool) -> Res<'_, &str> {
    let n = s.bytes().take_while(|&b| b.is_ascii() && f(b)).count();
    split_at(s, n)
}

/// Length of the leading run of bytes in `class` (an ASCII-only table).
pub(crate) fn run_len(s: &[u8], class: &[bool; 256]) -> usize {
    s.iter().take_while(|&&b| class[b as usize]).count()
}

/// Like [`take_ascii`] but at least one byte.
pub(crate) fn take_ascii1(s: &str, f: impl Fn(u8) -> bool) -> Res<'_, &str> {
    let (rest, head) = take_ascii(s, f)?;
    if head.is_empty() {
        return fail();
    }
    Ok((rest, head))
}

/// One `token`.
pub(crate) fn token(s: &str) -> Res<'_, &str> {
    match run_len(s.as_bytes(), &TOKEN) {
        0 => fail(),
        n => split_at(s, n),
    }
}

/// Optional LWS (RFC 3261 SWS), folding included.
pub(crate) fn sws(s: &str) -> Res<'_, &str> {
    take_ascii(s, is_lws)
}

/// Mandatory LWS.
pub(crate) fn lws(s: &str) -> Res<'_, &str> {
    take_ascii1(s, is_lws)
}

/// A `quoted-string`, returned with its quotes; `\` escapes the next byte
/// (quoted-pair). Fails when the closing quote is missing.
pub(crate) fn quoted(s: &str) -> Res<'_, &str> {
    match quoted_len(s.as_bytes()) {
        Some(n) => split_at(s, n),
        None => fail(),
    }
}

/// Length of the `quoted-string` (quotes included) at the start of `b`.
pub(crate) fn quoted_len(b: &[u8]) -> Option<usize> {
    if b.first() != Some(&b'"') {
        return None;
    }
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            b'"' => return Some(i + 1),
            // quoted-pair never escapes CR or LF (RFC 3261 §25.1).
            b'\\' => match b.get(i + 1) {
                Some(b'\r') | Some(b'\n') | None => return None,
                Some(_) => i += 2,
            },
            _ => i += 1,
        }
    }
    None
}

/// Index of the first byte at or after `i` that is not LWS.
pub(crate) fn skip_lws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_lws(b[i]) {
        i += 1;
    }
    i
}

/// Decimal digits (leading zeros allowed) as a u32; None when empty, not all
/// digits, or larger than `u32::MAX` (RFC 4475 §3.1.2.4 overlarge scalars).
pub(crate) fn parse_u32(s: &str) -> Option<u32> {
    parse_u32_bytes(s.as_bytes())
}

/// [`parse_u32`] for raw bytes.
pub(crate) fn parse_u32_bytes(b: &[u8]) -> Option<u32> {
    if b.is_empty() {
        return None;
    }
    let mut n: u32 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u32::from(c - b'0'))?;
    }
    Some(n)
}

/// Byte offset of `inner` inside `outer`; `inner` must be a subslice of
/// `outer` (every caller passes a slice it cut from `outer`).
pub(crate) fn offset_in(outer: &str, inner: &str) -> usize {
    let o = outer.as_ptr() as usize;
    let i = inner.as_ptr() as usize;
    debug_assert!(i >= o && i + inner.len() <= o + outer.len());
    i.saturating_sub(o).min(outer.len())
}

/// Bytes as text; invalid UTF-8 reads as "" so a peer's odd bytes in a
/// header nobody asks for never stop a message, while typed parsers treat an
/// empty value as malformed.
pub(crate) fn utf8(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap_or("")
}

const fn host_def(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_'
}
static HOST: [bool; 256] = byte_class!(host_def);

const fn ipv6_def(b: u8) -> bool {
    b.is_ascii_hexdigit() || b == b':' || b == b'.'
}
static IPV6: [bool; 256] = byte_class!(ipv6_def);

/// A `host` (RFC 3261 §25.1): an IPv6 reference in brackets (kept) or a
/// hostname / IPv4 address. Underscores are tolerated in names because
/// deployed DNS uses them.
pub(crate) fn host(s: &str) -> Res<'_, &str> {
    let b = s.as_bytes();
    if b.first() == Some(&b'[') {
        let inner = &b[1..];
        let n = run_len(inner, &IPV6);
        if n == 0 || inner.get(n) != Some(&b']') || memchr::memchr(b':', &inner[..n]).is_none() {
            return fail();
        }
        return split_at(s, n + 2);
    }
    match run_len(b, &HOST) {
        0 => fail(),
        n => split_at(s, n),
    }
}

/// A port: 1 to 5 digits, at most 65535.
pub(crate) fn port(s: &str) -> Res<'_, u16> {
    let (rest, digits) = take_ascii1(s, |b| b.is_ascii_digit())?;
    if digits.len() > 5 {
        return fail();
    }
    match parse_u32(digits).and_then(|n| u16::try_from(n).ok()) {
        Some(p) => Ok((rest, p)),
        None => fail(),
    }
}

const fn scheme_def(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')
}
static SCHEME: [bool; 256] = byte_class!(scheme_def);

/// A URI scheme followed by ':' (RFC 3986 §3.1); returns the scheme.
pub(crate) fn scheme(s: &str) -> Res<'_, &str> {
    let b = s.as_bytes();
    if !b.first().is_some_and(u8::is_ascii_alphabetic) {
        return fail();
    }
    let n = run_len(b, &SCHEME);
    if b.get(n) != Some(&b':') {
        return fail();
    }
    match (s.get(..n), s.get(n + 1..)) {
        (Some(sch), Some(rest)) => Ok((rest, sch)),
        _ => fail(),
    }
}

const fn uri_char_def(b: u8) -> bool {
    b >= 0x21 && b < 0x7f && !matches!(b, b'<' | b'>' | b'"')
}
static URI_CHAR: [bool; 256] = byte_class!(uri_char_def);

/// Whether every byte of `s` may appear in a URI outside brackets: visible
/// ASCII except the delimiters that end a URI inside a header (`<`, `>`,
/// `"`).
pub(crate) fn all_uri_chars(s: &str) -> bool {
    run_len(s.as_bytes(), &URI_CHAR) == s.len()
}

/// A cheap shape check for a URI of any scheme: `scheme:` and then URI
/// characters only (no LWS, RFC 4475 §3.1.2.14).
pub(crate) fn uri_shape_ok(s: &str) -> bool {
    match scheme(s) {
        Ok((rest, _)) => !rest.is_empty() && all_uri_chars(rest),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_strings() {
        assert_eq!(quoted(r#""a\"b" x"#), Ok((" x", r#""a\"b""#)));
        assert_eq!(
            quoted(r#""J Rosenberg \\\"""#),
            Ok(("", r#""J Rosenberg \\\"""#))
        );
        assert!(quoted(r#""unterminated"#).is_err());
        assert!(quoted("no").is_err());
        assert!(quoted("\"a\\").is_err());
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u32("0068"), Some(68));
        assert_eq!(parse_u32("4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32("4294967296"), None);
        assert_eq!(parse_u32("-1"), None);
        assert_eq!(parse_u32(""), None);
        assert_eq!(port("5060;x"), Ok((";x", 5060)));
        assert!(port("65536").is_err());
        assert!(port("000005060").is_err());
    }

    #[test]
    fn hosts() {
        assert_eq!(host("[2001:db8::1]:5060"), Ok((":5060", "[2001:db8::1]")));
        assert_eq!(host("example.com;x"), Ok((";x", "example.com")));
        assert!(host("[2001:db8::1").is_err());
        assert!(host("[]").is_err());
        assert!(host(";").is_err());
    }

    #[test]
    fn schemes() {
        assert_eq!(scheme("sip:a"), Ok(("a", "sip")));
        assert_eq!(scheme("soap.beep://x"), Ok(("//x", "soap.beep")));
        assert!(scheme("<sip:a>").is_err());
        assert!(scheme("1sip:a").is_err());
        assert!(uri_shape_ok("isbn:2983792873"));
        assert!(!uri_shape_ok(" sip:a@b"));
        assert!(!uri_shape_ok("sip:a@b "));
    }
}
