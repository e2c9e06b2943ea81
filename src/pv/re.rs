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
            .map_err(|e| bad_regex(pattern, &e))?;
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

/// How OpenSIPS compiles a pattern (its `regcomp` flags): `icase` is
/// REG_ICASE; `newline` is REG_NEWLINE (`.` and `[^…]` do not match a
/// newline, `^`/`$` match at line ends), on for `CMD_PARAM_REGEX`
/// arguments and for `subst` unless its `s` flag is given. With
/// `newline` a line ends at CRLF as well as LF (`.` does not match the
/// CR), where POSIX knows LF only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Posix {
    pub icase: bool,
    pub newline: bool,
}

impl Posix {
    /// A `CMD_PARAM_REGEX` argument (OpenSIPS mod_fix.c: REG_EXTENDED |
    /// REG_ICASE | REG_NEWLINE): `search`, `replace`, `remove_hf_re`…
    pub const PARAM: Posix = Posix {
        icase: true,
        newline: true,
    };
}

thread_local! {
    /// By flags, then by pattern: a lookup borrows the pattern, it does not
    /// copy it.
    static POSIX_CACHE: RefCell<HashMap<Posix, HashMap<String, Rc<Regex>>>> = RefCell::new(HashMap::new());
}

/// Rewrites a POSIX extended pattern into the `regex` crate's syntax: in
/// a bracket expression a backslash, `[` and the crate's set operators
/// (`&&`, `--`, `~~`) are literal characters, and with `newline` a negated
/// class leaves out the newline (REG_NEWLINE); a `{` that starts no bound
/// is literal.
fn translate(p: &str, newline: bool) -> String {
    let mut out = String::with_capacity(p.len() + 8);
    let mut it = p.chars().peekable();
    while let Some(ch) = it.next() {
        match ch {
            '\\' => {
                out.push('\\');
                match it.next() {
                    Some(c) => out.push(c),
                    None => out.push('\\'),
                }
            }
            '{' if !it.peek().is_some_and(|c| c.is_ascii_digit()) => out.push_str("\\{"),
            '[' => {
                out.push('[');
                let negated = it.peek() == Some(&'^');
                if negated {
                    out.push(it.next().unwrap_or('^'));
                }
                if it.peek() == Some(&']') {
                    it.next();
                    out.push_str("\\]");
                }
                while let Some(c) = it.next() {
                    match c {
                        ']' => break,
                        '[' if matches!(it.peek(), Some(':' | '.' | '=')) => {
                            // [:class:] (and [.x.], [=x=] as written).
                            out.push('[');
                            for c in it.by_ref() {
                                out.push(c);
                                if c == ']' {
                                    break;
                                }
                            }
                        }
                        '\\' | '[' | '&' | '~' => {
                            out.push('\\');
                            out.push(c);
                        }
                        '-' if it.peek() == Some(&'-') => out.push_str("\\-"),
                        c => out.push(c),
                    }
                }
                if negated && newline {
                    out.push_str("\\n");
                }
                out.push(']');
            }
            c => out.push(c),
        }
    }
    out
}

/// A POSIX extended pattern compiled with OpenSIPS's flags, not cached
/// (for patterns kept in shared settings).
pub fn posix_owned(pattern: &str, flags: Posix) -> Result<Regex, String> {
    RegexBuilder::new(&translate(pattern, flags.newline))
        .case_insensitive(flags.icase)
        .multi_line(flags.newline)
        .dot_matches_new_line(!flags.newline)
        // SIP lines end in CRLF: with REG_NEWLINE `$` matches before
        // the CR and `.` does not take it, so `(.*)$` keeps line ends
        // (POSIX would put the CR in the group; docs/message-changes.md).
        .crlf(flags.newline)
        .size_limit(SIZE_LIMIT)
        .build()
        .map_err(|e| bad_regex(pattern, &e))
}

/// The error of a pattern that does not compile: its last line says why.
fn bad_regex(pattern: &str, e: &regex::Error) -> String {
    format!(
        "bad regular expression '{pattern}': {}",
        e.to_string().lines().last().unwrap_or("")
    )
}

/// A POSIX extended pattern compiled with OpenSIPS's flags, from the
/// per-thread cache when seen before.
pub fn posix(pattern: &str, flags: Posix) -> Result<Rc<Regex>, String> {
    POSIX_CACHE.with(|c| {
        if let Some(r) = c.borrow().get(&flags).and_then(|m| m.get(pattern)) {
            return Ok(r.clone());
        }
        let r = Rc::new(posix_owned(pattern, flags)?);
        let mut c = c.borrow_mut();
        let m = c.entry(flags).or_default();
        if m.len() >= CACHE_MAX {
            m.clear();
        }
        m.insert(pattern.to_string(), r.clone());
        Ok(r)
    })
}

/// One piece of a `subst` replacement.
#[derive(Debug, Clone)]
pub enum Piece {
    Text(String),
    /// `\0`..`\9`: a group of the match (`\0` the whole match).
    Group(usize),
    /// `\u`: the Request-URI (the current one).
    Uri,
    /// A pseudo-variable, read when the replacement is built.
    Spec(Rc<super::Spec>),
}

/// A parsed sed-like `/re/replacement/flags` (OpenSIPS re.c
/// `subst_parser`): any delimiter but `\`, flags `i` (ignore case), `g`
/// (every match), `s` (`.` matches newlines: REG_NEWLINE off).
#[derive(Debug, Clone)]
pub struct SubstExpr {
    pub re: Rc<Regex>,
    pub global: bool,
    pub repl: Vec<Piece>,
}

/// Largest replacement one match may produce (OpenSIPS's buffer size).
pub const MAX_REPLACEMENT: usize = 1024;

thread_local! {
    static SUBST_CACHE: RefCell<HashMap<String, Rc<SubstExpr>>> = RefCell::new(HashMap::new());
}

/// Parses a sed-like expression, from the per-thread cache when seen
/// before (a literal is parsed and compiled once per worker).
pub fn subst_expr(expr: &str) -> Result<Rc<SubstExpr>, String> {
    if let Some(e) = SUBST_CACHE.with(|c| c.borrow().get(expr).cloned()) {
        return Ok(e);
    }
    let e = Rc::new(parse_subst(expr).map_err(|m| format!("bad substitution '{expr}': {m}"))?);
    SUBST_CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= CACHE_MAX {
            c.clear();
        }
        c.insert(expr.to_string(), e.clone());
    });
    Ok(e)
}

fn parse_subst(expr: &str) -> Result<SubstExpr, String> {
    let mut chars = expr.char_indices();
    let (_, delim) = chars.next().ok_or("empty")?;
    if expr.len() < 3 {
        return Err("too short".into());
    }
    if delim == '\\' {
        return Err("'\\' cannot be the separator".into());
    }
    let body = &expr[delim.len_utf8()..];
    // The pattern ends at the first separator not preceded by '\'; the
    // pattern keeps its escapes, as regcomp sees them.
    let mut prev = '\0';
    let mut re_end = None;
    for (i, c) in body.char_indices() {
        if c == delim && prev != '\\' {
            re_end = Some(i);
            break;
        }
        prev = c;
    }
    let re_end = re_end.ok_or("no separator after the pattern")?;
    let pattern = &body[..re_end];
    let rest = &body[re_end + delim.len_utf8()..];
    let (repl, used) = parse_repl(rest, delim)?;
    let flags = &rest[used..];
    let mut posix_flags = Posix {
        icase: false,
        newline: true,
    };
    let mut global = false;
    for f in flags.chars() {
        match f {
            'i' => posix_flags.icase = true,
            's' => posix_flags.newline = false,
            'g' => global = true,
            other => return Err(format!("unknown flag '{other}'")),
        }
    }
    let re = posix(pattern, posix_flags)?;
    if let Some(Piece::Group(n)) = repl
        .iter()
        .filter(|p| matches!(p, Piece::Group(_)))
        .max_by_key(|p| match p {
            Piece::Group(n) => *n,
            _ => 0,
        })
    {
        if *n >= re.captures_len() {
            return Err(format!("\\{n} refers to a group the pattern does not have"));
        }
    }
    Ok(SubstExpr { re, global, repl })
}

/// The replacement up to the closing separator; returns the pieces and
/// the bytes used (separator included).
fn parse_repl(s: &str, delim: char) -> Result<(Vec<Piece>, usize), String> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut it = s.char_indices().peekable();
    let flush = |text: &mut String, pieces: &mut Vec<Piece>| {
        if !text.is_empty() {
            pieces.push(Piece::Text(std::mem::take(text)));
        }
    };
    while let Some((i, c)) = it.next() {
        match c {
            '\\' => {
                let Some((_, e)) = it.next() else {
                    return Err("a '\\' ends the replacement".into());
                };
                match e {
                    'n' => text.push('\n'),
                    'r' => text.push('\r'),
                    't' => text.push('\t'),
                    'u' => {
                        flush(&mut text, &mut pieces);
                        pieces.push(Piece::Uri);
                    }
                    d @ '0'..='9' => {
                        flush(&mut text, &mut pieces);
                        pieces.push(Piece::Group(d as usize - '0' as usize));
                    }
                    other => text.push(other),
                }
            }
            '$' => {
                let (spec, used) = super::spec::parse_spec_prefix(&s[i..])
                    .map_err(|e| format!("bad pseudo-variable in the replacement: {e}"))?;
                flush(&mut text, &mut pieces);
                pieces.push(Piece::Spec(Rc::new(spec)));
                while it.peek().is_some_and(|(j, _)| *j < i + used) {
                    it.next();
                }
            }
            c if c == delim => {
                flush(&mut text, &mut pieces);
                return Ok((pieces, i + c.len_utf8()));
            }
            c => text.push(c),
        }
    }
    Err("no separator after the replacement".into())
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

    fn p(pat: &str) -> Rc<Regex> {
        posix(pat, Posix::PARAM).unwrap()
    }

    #[test]
    fn posix_param_regex_is_icase_and_newline() {
        let msg = "INVITE sip:a@b SIP/2.0\r\nContact: <sip:x@y>\r\nm: <sip:z@w>\r\n";
        // ^ at a line start, case-insensitive (OpenSIPS mod_fix.c).
        assert!(p("^contact:[ ]*<").is_match(msg));
        // [^>[:cntrl:]] as the corpus writes it.
        let m = p("m:.*sip:[^>[:cntrl:]]*").find(msg).unwrap();
        assert_eq!(m.as_str(), "m: <sip:z@w");
        // A negated class stops at a newline with REG_NEWLINE.
        assert_eq!(p("a[^x]*").find("ab\ncd").unwrap().as_str(), "ab");
        // Literal backslash and '[' inside brackets, literal '{'.
        assert!(p("[\\]").is_match("a\\b"));
        assert!(p("x{").is_match("x{"));
        assert!(p("a{2}").is_match("aa"));
        assert!(posix("(", Posix::PARAM).is_err());
        // A line ends at CRLF: the CR stays out of `(.*)$`.
        let c = p("^(x-a: .*)$").captures("X-A: 1\r\nX-B: 2\r\n").unwrap();
        assert_eq!(&c[1], "X-A: 1");
        // The s flag of subst: `.` takes newlines, `^` only at the start.
        let e = subst_expr("/a.*z/-/s").unwrap();
        assert_eq!(e.re.find("xa\r\nbz").unwrap().as_str(), "a\r\nbz");
    }

    #[test]
    fn subst_expressions() {
        let e = subst_expr("/^(.*)@(.*)$/\\1@example.com/ig").unwrap();
        assert!(e.global && e.re.is_match("ALICE@x"));
        assert!(matches!(e.repl[0], Piece::Group(1)));
        let e = subst_expr("#a#b#").unwrap();
        assert!(!e.global);
        // An escaped separator stays in the pattern.
        let e = subst_expr("/a\\/b/c/").unwrap();
        assert!(e.re.is_match("a/b"));
        let e = subst_expr("/x/$ru-\\u-\\$-\\n/").unwrap();
        assert!(matches!(e.repl[0], Piece::Spec(_)));
        assert!(matches!(e.repl[2], Piece::Uri));
        assert!(matches!(&e.repl[3], Piece::Text(t) if t == "-$-\n"));
        for bad in [
            "",
            "/a/",
            "/a/b",
            "\\a\\b\\",
            "/a/b/x",
            "/(/b/",
            "/a/\\2/",
            "/a/$nope/",
        ] {
            assert!(subst_expr(bad).is_err(), "{bad}");
        }
    }
}
