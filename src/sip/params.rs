//! `;name=value` parameter lists: header parameters (RFC 3261 §25.1
//! `generic-param`, with LWS and quoted values) on Via and name-addr, and
//! URI parameters (§19.1.1, escapes, no LWS).
//!
//! Lookups are lenient (they skip what they cannot read); `check_*` is the
//! strict grammar used by the typed parsers to reject malformed lists.

use super::lex::{is_lws, is_token, quoted, sws, token, trim_lws};
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
            while i < b.len() {
                match b[i] {
                    b'\\' if q => i += 1,
                    b'"' => q = !q,
                    b';' if !q => break,
                    _ => {}
                }
                i += 1;
            }
            let end = i.min(b.len());
            // ';' and '"' are ASCII, so these are char boundaries.
            let piece = self.rest.get(..end).unwrap_or("");
            self.rest = self.rest.get(end + 1..).unwrap_or("");
            let (name, value) = match piece.find('=') {
                Some(eq) => (&piece[..eq], Some(trim_lws(&piece[eq + 1..]))),
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
fn is_gen_value(b: u8) -> bool {
    is_token(b) || matches!(b, b'[' | b']' | b':')
}

/// Strict check of a header parameter list (without the leading ';'):
/// `token [= (token / host / quoted-string)]` separated by ';', LWS allowed
/// around separators. Rejects empty parameters (RFC 4475 §3.1.2.1).
pub(crate) fn check(list: &str) -> bool {
    let mut s = list;
    loop {
        let Ok((rest, _)) = sws(s) else { return false };
        let Ok((rest, _)) = token(rest) else {
            return false;
        };
        let Ok((mut rest, _)) = sws(rest) else {
            return false;
        };
        if let Some(r) = rest.strip_prefix('=') {
            let Ok((r, _)) = sws(r) else { return false };
            rest = if r.starts_with('"') {
                match quoted(r) {
                    Ok((r, _)) => r,
                    Err(_) => return false,
                }
            } else {
                let n = r.bytes().take_while(|&b| is_gen_value(b)).count();
                if n == 0 {
                    return false;
                }
                &r[n..]
            };
            let Ok((r, _)) = sws(rest) else { return false };
            rest = r;
        }
        match rest.strip_prefix(';') {
            Some(r) => s = r,
            None => return rest.is_empty(),
        }
    }
}

/// URI `paramchar`s plus the separators (RFC 3261 §25.1 uri-parameters).
fn is_uri_param_char(b: u8) -> bool {
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

/// Strict-enough check of URI parameters: allowed characters, escapes well
/// formed, no empty names.
pub(crate) fn check_uri(list: &str) -> bool {
    list.bytes().all(is_uri_param_char)
        && escapes_ok(list)
        && list
            .split(';')
            .all(|p| !p.is_empty() && !p.starts_with('=') && !p.bytes().any(is_lws))
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
