//! Regular expressions for `sip.re_match` (OpenSIPS `=~`), `{re.subst}`
//! and the `/re/repl/flags` substitution syntax. POSIX extended syntax maps
//! onto the `regex` crate (bracket classes like `[[:digit:]]` included);
//! compiled patterns are cached per thread, so a route that matches the
//! same pattern for every message compiles it once.

use regex::{Regex, RegexBuilder};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// Patterns kept per thread before the cache is cleared.
const CACHE_MAX: usize = 1024;
/// Largest compiled program a script pattern may build.
const SIZE_LIMIT: usize = 1 << 20;

thread_local! {
    static CACHE: RefCell<HashMap<(String, bool), Rc<Regex>>> = RefCell::new(HashMap::new());
}

/// The compiled pattern, from the cache when seen before.
pub fn compile(pattern: &str, icase: bool) -> Result<Rc<Regex>, String> {
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if let Some(r) = c.get(&(pattern.to_string(), icase)) {
            return Ok(r.clone());
        }
        let r = RegexBuilder::new(pattern)
            .case_insensitive(icase)
            .size_limit(SIZE_LIMIT)
            .build()
            .map_err(|e| {
                format!(
                    "bad regular expression '{pattern}': {}",
                    e.to_string().lines().last().unwrap_or("")
                )
            })?;
        let r = Rc::new(r);
        if c.len() >= CACHE_MAX {
            c.clear();
        }
        c.insert((pattern.to_string(), icase), r.clone());
        Ok(r)
    })
}

/// `s =~ re` with flags: `i` case-insensitive (others ignored, as POSIX
/// `REG_EXTENDED` is always on).
pub fn is_match(s: &str, pattern: &str, flags: &str) -> Result<bool, String> {
    Ok(compile(pattern, flags.contains('i'))?.is_match(s))
}

/// Applies a sed-like `/re/replacement/flags` (`i` ignore case, `g` every
/// match; `\1`..`\9` refer to groups). Returns None when nothing matched.
pub fn subst(input: &str, expr: &str) -> Result<Option<String>, String> {
    let mut chars = expr.chars();
    let delim = chars.next().ok_or("empty substitution")?;
    let body = chars.as_str();
    let mut parts = Vec::with_capacity(3);
    let mut cur = String::new();
    let mut it = body.chars().peekable();
    while let Some(ch) = it.next() {
        if ch == '\\' && it.peek() == Some(&delim) {
            cur.push(delim);
            it.next();
        } else if ch == delim && parts.len() < 2 {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(ch);
        }
    }
    parts.push(cur);
    let [re, repl, flags] = <[String; 3]>::try_from(parts)
        .map_err(|_| format!("'{expr}' is not {delim}re{delim}replacement{delim}flags"))?;
    let r = compile(&re, flags.contains('i'))?;
    if !r.is_match(input) {
        return Ok(None);
    }
    // \N → ${N}; a literal '$' must not start a group reference.
    let mut rep = String::with_capacity(repl.len() + 8);
    let mut it = repl.chars().peekable();
    while let Some(ch) = it.next() {
        match ch {
            '\\' => match it.next() {
                Some(d @ '0'..='9') => {
                    rep.push_str("${");
                    rep.push(d);
                    rep.push('}');
                }
                Some(other) => rep.push(other),
                None => rep.push('\\'),
            },
            '$' => rep.push_str("$$"),
            _ => rep.push(ch),
        }
    }
    Ok(Some(if flags.contains('g') {
        r.replace_all(input, rep.as_str()).into_owned()
    } else {
        r.replace(input, rep.as_str()).into_owned()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_and_subst() {
        assert!(is_match("sip:alice@example.com", "^sip:[a-z]+@", "").unwrap());
        assert!(!is_match("SIP:A@B", "^sip:", "").unwrap());
        assert!(is_match("SIP:A@B", "^sip:", "i").unwrap());
        assert!(is_match("123", "^[[:digit:]]+$", "").unwrap());
        assert!(is_match("x", "(", "").is_err());
        assert_eq!(
            subst("+4930123", "/^\\+49/0/").unwrap().as_deref(),
            Some("030123")
        );
        assert_eq!(
            subst("a.b.c", "/\\./-/g").unwrap().as_deref(),
            Some("a-b-c")
        );
        assert_eq!(
            subst("alice@x", "/(.*)@(.*)/\\2:\\1/").unwrap().as_deref(),
            Some("x:alice")
        );
        assert_eq!(subst("abc", "/z/y/").unwrap(), None);
        assert!(subst("abc", "/z/").is_err());
    }
}
