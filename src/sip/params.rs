//! `;name=value` parameter lists: header parameters (RFC 3261 §25.1
//! `generic-param`, with LWS and quoted values) on Via and name-addr, and
//! URI parameters (§19.1.1, escapes, no LWS).
//!
//! Lookups are lenient (they skip what they cannot read); `check_*` is the
//! strict grammar used by the typed parsers to reject malformed lists.

use super::lex::{byte_class, quoted_len, run_len, skip_lws, token_def, trim_lws, TOKEN};
use super::uri::unescape;

/// One parameter: name and raw value (quotes kept), both trimmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Param<'a> {
    pub(crate) name: &'a str,
    pub(crate) value: Option<&'a str>,
}

/// Iterates the parameters of a raw list (without the leading ';'). A ';'
/// inside a quoted value does not separate.
#[derive(Debug, Clone)]
pub(crate) struct Params<'a> {
    rest: &'a str,
}

impl<'a> Params<'a> {
    pub(crate) fn new(list: &'a str) -> Params<'a> {
        Params { rest: list }
    }
}

impl<'a> Iterator for Params<'a> {
    type Item = Param<'a>;

    fn next(&mut self) -> Option<Param<'a>> {
        while !self.rest.is_empty() {
            let b = self.rest.as_bytes();
            let mut i = 0;
            let mut q = false;
            // The first '=' of the piece, wherever it is (inside quotes too).
            let mut eq = None;
            while i < b.len() {
                match b[i] {
                    b'=' => {
                        eq = eq.or(Some(i));
                    }
                    b'"' => q = !q,
                    b';' if !q => break,
                    b'\\' if q => {
                        i += 1;
                        if b.get(i) == Some(&b'=') {
                            eq = eq.or(Some(i));
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            let end = i.min(b.len());
            // ';', '"' and '=' are ASCII, so these are char boundaries.
            let piece = self.rest.get(..end).unwrap_or("");
            self.rest = self.rest.get(end + 1..).unwrap_or("");
            let (name, value) = match eq {
                Some(eq) => (
                    piece.get(..eq).unwrap_or(""),
                    Some(trim_lws(piece.get(eq + 1..).unwrap_or(""))),
                ),
                None => (piece, None),
            };
            let name = trim_lws(name);
            if !name.is_empty() {
                return Some(Param { name, value });
            }
        }
        None
    }
}

/// A header parameter by name (case-insensitive): None when absent,
/// Some(None) when present without a value.
pub(crate) fn find<'a>(list: &'a str, name: &str) -> Option<Option<&'a str>> {
    Params::new(list)
        .find(|p| p.name.eq_ignore_ascii_case(name))
        .map(|p| p.value)
}

/// A URI parameter by name; names are compared after %-decoding because
/// escaped and plain characters are equivalent in URIs (RFC 3261 §19.1.4).
pub(crate) fn find_uri<'a>(list: &'a str, name: &str) -> Option<Option<&'a str>> {
    list.split(';')
        .filter(|p| !p.is_empty())
        .map(|p| match p.find('=') {
            Some(eq) => (&p[..eq], Some(&p[eq + 1..])),
            None => (p, None),
        })
        .find(|(n, _)| {
            if n.contains('%') {
                unescape(n).eq_ignore_ascii_case(name.as_bytes())
            } else {
                n.eq_ignore_ascii_case(name)
            }
        })
        .map(|(_, v)| v)
}

/// Characters of an unquoted `gen-value`: token, or host (IPv6 with or
/// without brackets, as `received` carries it).
const fn gen_value_def(b: u8) -> bool {
    token_def(b) || matches!(b, b'[' | b']' | b':')
}
static GEN_VALUE: [bool; 256] = byte_class!(gen_value_def);

/// Strict check of a header parameter list (without the leading ';'):
/// `token [= (token / host / quoted-string)]` separated by ';', LWS allowed
/// around separators. Rejects empty parameters (RFC 4475 §3.1.2.1).
pub(crate) fn check(list: &str) -> bool {
    let b = list.as_bytes();
    let mut i = 0;
    loop {
        i = skip_lws(b, i);
        match run_len(&b[i..], &TOKEN) {
            0 => return false,
            n => i += n,
        }
        i = skip_lws(b, i);
        if b.get(i) == Some(&b'=') {
            i = skip_lws(b, i + 1);
            let n = if b.get(i) == Some(&b'"') {
                quoted_len(&b[i..])
            } else {
                Some(run_len(&b[i..], &GEN_VALUE)).filter(|&n| n > 0)
            };
            match n {
                Some(n) => i = skip_lws(b, i + n),
                None => return false,
            }
        }
        match b.get(i) {
            Some(b';') => i += 1,
            None => return true,
            Some(_) => return false,
        }
    }
}

/// URI `paramchar`s plus the separators (RFC 3261 §25.1 uri-parameters).
const fn uri_param_def(b: u8) -> bool {
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
                | b':'
                | b'&'
                | b'+'
                | b'$'
                | b'='
                | b';'
                | b'%'
        )
}

static URI_PARAM: [bool; 256] = byte_class!(uri_param_def);

/// Strict-enough check of URI parameters: allowed characters (LWS is not
/// one), escapes well formed, no empty parameter and none without a name.
pub(crate) fn check_uri(list: &str) -> bool {
    let b = list.as_bytes();
    if run_len(b, &URI_PARAM) != b.len() || !escapes_ok(list) {
        return false;
    }
    let mut prev = b';';
    for &c in b {
        if prev == b';' && (c == b';' || c == b'=') {
            return false;
        }
        prev = c;
    }
    prev != b';'
}

/// Every '%' is followed by two hex digits.
pub(crate) fn escapes_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let ok = b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            if !ok {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_params_with_lws_and_quotes() {
        let list = "newparam =\r\n      newvalue ;\r\n  secondparam ; q = 0.33";
        assert_eq!(find(list, "newparam"), Some(Some("newvalue")));
        assert_eq!(find(list, "SECONDPARAM"), Some(None));
        assert_eq!(find(list, "q"), Some(Some("0.33")));
        assert_eq!(find(list, "x"), None);
        assert!(check(list));

        let list = r#"fromParam''~+*_!.-%="ÑÐ°;Ð";tag=_token~1'+`*%!-."#;
        assert_eq!(find(list, "tag"), Some(Some("_token~1'+`*%!-.")));
        assert_eq!(find(list, "fromparam''~+*_!.-%"), Some(Some(r#""ÑÐ°;Ð""#)));
        assert!(check(list));
    }

    #[test]
    fn strict_check() {
        assert!(!check(""));
        assert!(check("branch=z9hG4bK;rport;received=[2001:db8::1]"));
        assert!(check("received=2001:db8::1"));
        assert!(!check(";"));
        assert!(!check("a;;b"));
        assert!(!check("a="));
        assert!(!check("a=\"open"));
        assert!(!check("a b"));
        assert!(!check("a=b c"));
        assert!(!check("a,b"));
    }

    #[test]
    fn uri_params() {
        assert_eq!(find_uri("lr;transport=tcp", "transport"), Some(Some("tcp")));
        assert_eq!(find_uri("lr;transport=tcp", "LR"), Some(None));
        assert_eq!(find_uri("%6C%72;n%61me=v%61lue", "lr"), Some(None));
        assert_eq!(
            find_uri("%6C%72;n%61me=v%61lue", "name"),
            Some(Some("v%61lue"))
        );
        assert_eq!(find_uri("", "lr"), None);
        assert!(check_uri("lr;maddr=[::1];x=%41"));
        assert!(!check_uri("lr;;x"));
        assert!(!check_uri("x=%4"));
        assert!(!check_uri("x=<y>"));
        assert!(!check_uri(" lr"));
    }
}
