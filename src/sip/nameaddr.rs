//! name-addr / addr-spec with header parameters (From, To, Contact, Route;
//! RFC 3261 §20.10, §25.1), and the Contact list with its `*` form.

use std::borrow::Cow;

use super::lex::{self, is_lws, is_token, quoted, trim_lws, trim_lws_end, trim_lws_start};
use super::params;
use super::ParseError;

/// `"Display" <uri>;params` or `uri;params`.
#[derive(Debug, Clone)]
pub struct NameAddr<'a> {
    /// The display name as written: a quoted string keeps its quotes and
    /// escapes (see [`NameAddr::display_name`]); tokens keep their inner LWS.
    pub display: Option<&'a str>,
    /// The URI text (without <>).
    pub uri: &'a str,
    /// Raw header parameters after the URI, without the leading ';'.
    pub params: &'a str,
}

/// Why a value is not a name-addr; one reason is enough for a 400.
const BAD: ParseError = ParseError::Header("name-addr");

/// Display names made of tokens separated by LWS (RFC 3261 `*(token LWS)`).
fn tokens_ok(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| is_token(b) || is_lws(b))
}

impl<'a> NameAddr<'a> {
    /// Parses one value. In the addr-spec form (no `<>`) the first ';'
    /// starts the header parameters and a '?' is refused, because such URIs
    /// must be bracketed (RFC 3261 §20; RFC 4475 §3.1.2.13, §3.3.12).
    /// Spaces inside `<>` are refused (RFC 4475 §3.1.2.14), and so are
    /// display names that are neither tokens nor a quoted string (§3.1.2.15).
    pub fn parse(text: &'a str) -> Result<NameAddr<'a>, ParseError> {
        let t = trim_lws(text);
        let (display, bracketed) = if t.starts_with('"') {
            let (rest, q) = quoted(t).map_err(|_| BAD)?;
            (Some(q), trim_lws_start(rest))
        } else if let Some(lt) = memchr::memchr(b'<', t.as_bytes()) {
            // Tokens may touch the '<' (RFC 4475 §3.1.1.6 accepts it).
            let d = trim_lws_end(&t[..lt]);
            if !d.is_empty() && !tokens_ok(d) {
                return Err(BAD);
            }
            ((!d.is_empty()).then_some(d), &t[lt..])
        } else {
            return Self::parse_addr_spec(t);
        };
        let inner = bracketed.strip_prefix('<').ok_or(BAD)?;
        let gt = memchr::memchr(b'>', inner.as_bytes()).ok_or(BAD)?;
        let uri = &inner[..gt];
        if !lex::uri_shape_ok(uri) {
            return Err(BAD);
        }
        let after = trim_lws_start(&inner[gt + 1..]);
        let params = if after.is_empty() {
            ""
        } else {
            let p = after.strip_prefix(';').ok_or(BAD)?;
            let p = trim_lws(p);
            if !params::check(p) || p.is_empty() {
                return Err(BAD);
            }
            p
        };
        Ok(NameAddr {
            display,
            uri,
            params,
        })
    }

    fn parse_addr_spec(t: &'a str) -> Result<NameAddr<'a>, ParseError> {
        let (uri, params) = match t.find(';') {
            Some(semi) => {
                let p = trim_lws(&t[semi + 1..]);
                if p.is_empty() || !params::check(p) {
                    return Err(BAD);
                }
                (trim_lws_end(&t[..semi]), p)
            }
            None => (t, ""),
        };
        if !lex::uri_shape_ok(uri) || uri.contains('?') || uri.contains(',') {
            return Err(BAD);
        }
        Ok(NameAddr {
            display: None,
            uri,
            params,
        })
    }

    /// A header parameter (case-insensitive name): None absent, Some(None)
    /// present without a value.
    pub fn param(&self, name: &str) -> Option<Option<&'a str>> {
        params::find(self.params, name)
    }

    /// The `tag` parameter (RFC 3261 §19.3).
    pub fn tag(&self) -> Option<&'a str> {
        self.param("tag").flatten()
    }

    /// The display name as a user reads it: quotes removed and quoted-pairs
    /// resolved (`"J Rosenberg \\\""` → `J Rosenberg \"`).
    pub fn display_name(&self) -> Option<Cow<'a, str>> {
        let d = self.display?;
        let Some(inner) = d.strip_prefix('"').and_then(|s| s.strip_suffix('"')) else {
            return Some(Cow::Borrowed(d));
        };
        if !inner.contains('\\') {
            return Some(Cow::Borrowed(inner));
        }
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.extend(chars.next()),
                c => out.push(c),
            }
        }
        Some(Cow::Owned(out))
    }
}

/// The Contact header field values of a message (RFC 3261 §20.10): either
/// the wildcard `*` (REGISTER removing all bindings, §10.2.2) or a list.
#[derive(Debug, Clone)]
pub enum Contacts<'a> {
    Star,
    List(Vec<NameAddr<'a>>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_display_and_params() {
        let n = NameAddr::parse(
            r#""J Rosenberg \\\""       <sip:jdrosen@example.com>
  ;
  tag = 98asjd8"#,
        )
        .unwrap();
        assert_eq!(n.display, Some(r#""J Rosenberg \\\"""#));
        assert_eq!(n.display_name().unwrap(), r#"J Rosenberg \""#);
        assert_eq!(n.uri, "sip:jdrosen@example.com");
        assert_eq!(n.tag(), Some("98asjd8"));
    }

    #[test]
    fn token_display_without_space() {
        let n = NameAddr::parse("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(n.display, Some("caller"));
        assert_eq!(n.uri, "sip:caller@example.com");
        assert_eq!(n.tag(), Some("323"));
        let n =
            NameAddr::parse("token1~` token2'+_ token3*%!.- <sip:mundane@example.com>").unwrap();
        assert_eq!(n.display, Some("token1~` token2'+_ token3*%!.-"));
    }

    #[test]
    fn addr_spec_params_belong_to_header() {
        let n = NameAddr::parse("sip:+19725552222@gw1.example.net;unknownparam").unwrap();
        assert_eq!(n.uri, "sip:+19725552222@gw1.example.net");
        assert_eq!(n.param("unknownparam"), Some(None));
        let n = NameAddr::parse("<sip:+19725552222@gw1.example.net;unknownparam>").unwrap();
        assert_eq!(n.uri, "sip:+19725552222@gw1.example.net;unknownparam");
        assert_eq!(n.params, "");
        assert_eq!(n.param("unknownparam"), None);
        let n = NameAddr::parse("\r\n sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n")
            .unwrap();
        assert_eq!(n.uri, "sip:vivekg@chair-dnrc.example.com");
        assert_eq!(n.tag(), Some("1918181833n"));
    }

    #[test]
    fn other_schemes() {
        assert_eq!(
            NameAddr::parse("isbn:2983792873").unwrap().uri,
            "isbn:2983792873"
        );
        assert_eq!(
            NameAddr::parse("<http://www.example.com>;tag=3234233")
                .unwrap()
                .tag(),
            Some("3234233")
        );
        assert_eq!(
            NameAddr::parse("<name:John_Smith>").unwrap().uri,
            "name:John_Smith"
        );
    }

    #[test]
    fn quoted_with_escaped_controls_and_brackets() {
        let n = NameAddr::parse("\"BEL:\\\x07 NUL:\\\0 DEL:\\\x7f\" <sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com>").unwrap();
        assert_eq!(
            n.uri,
            "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com"
        );
        assert_eq!(n.display_name().unwrap(), "BEL:\x07 NUL:\0 DEL:\x7f");
        let n = NameAddr::parse(
            r#""Quoted string \"\"" <sip:jdrosen@example.com> ; newparam =
      newvalue ;
  secondparam ; q = 0.33"#,
        )
        .unwrap();
        assert_eq!(n.display_name().unwrap(), r#"Quoted string """#);
        assert_eq!(n.param("q"), Some(Some("0.33")));
        assert_eq!(n.param("secondparam"), Some(None));
        assert_eq!(n.param("newparam"), Some(Some("newvalue")));
    }

    #[test]
    fn rejects_malformed() {
        for s in [
            "",
            "\"Mr. J. User <sip:j.user@example.com>",
            "\"Watson, Thomas\" < sip:t.watson@example.org >",
            "Bell, Alexander <sip:a.g.bell@example.com>;tag=43",
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
            "\"Joe\" <sip:joe@example.org>;;;;",
            "<sip:joe@example.org",
            "<sip:joe@example.org> junk",
            "<>",
            "<sip:a@b>;",
            "sip:a@b;",
            "\"a\" b <sip:c@d>",
            "no-scheme",
        ] {
            assert!(NameAddr::parse(s).is_err(), "{s:?}");
        }
    }
}
