//! Parsing pseudo-variable specs and xlog format strings (OpenSIPS 3.4
//! grammar): `$name`, `$name(inner)`, `$(name(inner)[idx]{tr}{tr,arg,…})`.
//!
//! The inner name may itself be a spec (`$hdr($var(h))`), an index is
//! `[n]`, `[-n]`, `[*]` or a spec (`[$var(i)]`), and transformation
//! arguments are literals or specs. Everything is resolved at parse time:
//! the variable's definition, each transformation's function and its
//! argument count, so evaluation never looks a name up again.

use std::borrow::Cow;

use super::tr::{self, Trans};
use super::{lookup, PvDef, Value};
use crate::proxy::context::Call;

/// Which value(s) of a multi-valued variable: `[n]`, `[-1]`, `[*]`, `[$var(i)]`.
#[derive(Debug, Clone, PartialEq)]
pub enum Index {
    At(i32),
    All,
    Dyn(Box<Spec>),
}

impl PartialEq for Spec {
    fn eq(&self, other: &Spec) -> bool {
        self.text == other.text
    }
}

/// The `(inner)` part: a literal name or a spec evaluated per use.
#[derive(Debug, Clone, PartialEq)]
pub enum Inner {
    Lit(String),
    Dyn(Box<Spec>),
}

/// The message a spec reads other than the current one (OpenSIPS pvar.c
/// contexts, registered by tm.c): `$(<request>ru)` the transaction's
/// request (in reply and failure routes), `$(<reply>hdr(X))` the reply
/// (the winning one in a failure route).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ctx {
    Request,
    Reply,
}

/// A parsed pseudo-variable reference.
#[derive(Clone)]
pub struct Spec {
    pub def: &'static PvDef,
    /// `$(<request>…)` / `$(<reply>…)`.
    pub ctx: Option<Ctx>,
    /// The text inside `(...)`, e.g. the header name of `$hdr(Via)`.
    pub inner: Option<Inner>,
    pub index: Option<Index>,
    /// Transformations, applied left to right.
    pub trans: Vec<Trans>,
    /// The spec as written, for error messages.
    pub text: Box<str>,
}

impl std::fmt::Debug for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl Spec {
    /// The inner name for this call: the literal, or the inner spec's value
    /// as text (None when it evaluates to null or fails).
    pub fn name<'a>(&'a self, c: &Call) -> Option<Cow<'a, str>> {
        match self.inner.as_ref()? {
            Inner::Lit(s) => Some(Cow::Borrowed(s)),
            Inner::Dyn(s) => match super::eval(c, s) {
                Ok(Value::Str(s)) => Some(Cow::Owned(s)),
                Ok(Value::Int(i)) => Some(Cow::Owned(i.to_string())),
                _ => None,
            },
        }
    }

    /// The index for this call: `Some(Ok(n))`, `Some(Err(()))` for `[*]`,
    /// None when absent (or a dynamic index that is not an integer).
    pub fn index(&self, c: &Call) -> Option<Result<i64, ()>> {
        match self.index.as_ref()? {
            Index::At(n) => Some(Ok(*n as i64)),
            Index::All => Some(Err(())),
            Index::Dyn(s) => match super::eval(c, s) {
                Ok(Value::Int(i)) => Some(Ok(i)),
                Ok(Value::Str(s)) => s.trim().parse().ok().map(Ok),
                _ => None,
            },
        }
    }

    /// The literal inner name, when there is one (for code that has no call).
    pub fn inner_lit(&self) -> Option<&str> {
        match self.inner.as_ref()? {
            Inner::Lit(s) => Some(s),
            Inner::Dyn(_) => None,
        }
    }
}

/// A piece of a format string.
#[derive(Debug, Clone)]
pub enum Part {
    Text(String),
    Spec(Spec),
}

/// A spec error: what is wrong and the byte offset where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub pos: usize,
    pub msg: String,
}

impl std::fmt::Display for SpecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (at offset {})", self.msg, self.pos)
    }
}

fn err<T>(pos: usize, msg: impl Into<String>) -> Result<T, SpecError> {
    Err(SpecError {
        pos,
        msg: msg.into(),
    })
}

fn is_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'.'
}

/// Variables whose `(inner)` may be left out (`$rb` and `$rb(mime)`).
const OPTIONAL_INNER: &[&str] = &["rb", "socket_in", "socket_out", "time", "C"];

/// Deepest nesting of specs inside specs (`$hdr($var($var(...)))`): bad
/// input must not recurse without bound.
const MAX_DEPTH: usize = 8;

/// Index of the byte closing the bracket opened at `open`, skipping nested
/// brackets of any kind and backslash escapes.
fn find_close(b: &[u8], open: usize) -> Option<usize> {
    let mut stack: Vec<u8> = Vec::new();
    let mut k = open;
    while k < b.len() {
        match b[k] {
            b'\\' => k += 1,
            c @ (b'(' | b'[' | b'{') => stack.push(match c {
                b'(' => b')',
                b'[' => b']',
                _ => b'}',
            }),
            c @ (b')' | b']' | b'}') => {
                if stack.last() == Some(&c) {
                    stack.pop();
                    if stack.is_empty() {
                        return Some(k);
                    }
                } else if stack.len() <= 1 {
                    return None;
                }
            }
            _ => {}
        }
        k += 1;
    }
    None
}

/// Parses one spec at the start of `s` (which starts with '$'); returns it
/// and the bytes consumed. `base` is `s`'s offset in the text the user
/// wrote, for error positions. `lenient` (xlog text) backs off a name that
/// is unknown as written to its longest known prefix at a '.', so
/// `"$fu."` is `$fu` followed by a dot.
fn parse_at(s: &str, base: usize, depth: usize, lenient: bool) -> Result<(Spec, usize), SpecError> {
    if depth > MAX_DEPTH {
        return err(base, "specs nested too deep");
    }
    let b = s.as_bytes();
    if b.first() != Some(&b'$') {
        return err(base, "a pseudo-variable starts with $");
    }
    let bracketed = b.get(1) == Some(&b'(');
    let mut start = if bracketed { 2 } else { 1 };
    let mut ctx = None;
    if bracketed && b.get(2) == Some(&b'<') {
        let Some(close) = s[3..].find('>').map(|k| k + 3) else {
            return err(base + 2, "unbalanced < of a context");
        };
        ctx = Some(match &s[3..close] {
            "request" => Ctx::Request,
            "reply" => Ctx::Reply,
            other => {
                return err(
                    base + 3,
                    format!("unknown pseudo-variable context <{other}>"),
                )
            }
        });
        start = close + 1;
    }
    let mut i = start;
    while i < b.len() && is_name_char(b[i]) {
        i += 1;
    }
    let mut name = &s[start..i];
    if name.is_empty() {
        return err(base + start, "missing pseudo-variable name");
    }
    let mut def = lookup(name);
    let mut field = None;
    if def.is_none() {
        // `$auth.nonce`: a dotted field of a variable that takes a name.
        if let Some((head, tail)) = name.rsplit_once('.') {
            if let Some(d) = lookup(head).filter(|d| d.takes_inner && !tail.is_empty()) {
                def = Some(d);
                field = Some(Inner::Lit(tail.to_string()));
            }
        }
    }
    if def.is_none() && !bracketed {
        // `$fu.` in text, `$ct.fields(uri)` known as a whole.
        let mut end = name.len();
        while def.is_none() {
            match name[..end].rfind('.') {
                Some(dot) if dot > 0 => {
                    end = dot;
                    def = lookup(&name[..end]);
                }
                _ => break,
            }
        }
        if def.is_some() && (lenient || end == name.len()) {
            name = &name[..end];
            i = start + end;
        } else {
            def = None;
        }
    }
    let Some(def) = def else {
        return err(base + start, format!("unknown pseudo-variable ${name}"));
    };
    let mut inner = field;
    if inner.is_some() {
        // The field was the name's suffix.
    } else if b.get(i) == Some(&b'(') && def.takes_inner {
        let close = find_close(b, i).ok_or(SpecError {
            pos: base + i,
            msg: "unbalanced (".into(),
        })?;
        let text = &s[i + 1..close];
        inner = Some(parse_inner(text, base + i + 1, depth)?);
        i = close + 1;
    } else if def.takes_inner && !OPTIONAL_INNER.contains(&def.name) {
        return err(base + i, format!("${name} needs a name in parentheses"));
    }
    let mut index = None;
    let mut trans = Vec::new();
    if bracketed {
        if b.get(i) == Some(&b'[') {
            let close = find_close(b, i).ok_or(SpecError {
                pos: base + i,
                msg: "unbalanced [".into(),
            })?;
            let ix = s[i + 1..close].trim();
            index = Some(if ix == "*" {
                Index::All
            } else if ix.starts_with('$') {
                Index::Dyn(Box::new(parse_whole(ix, base + i + 1, depth + 1)?))
            } else {
                Index::At(ix.parse().map_err(|_| SpecError {
                    pos: base + i + 1,
                    msg: format!("bad index [{ix}]"),
                })?)
            });
            i = close + 1;
        }
        while b.get(i) == Some(&b'{') {
            let close = find_close(b, i).ok_or(SpecError {
                pos: base + i,
                msg: "unbalanced {".into(),
            })?;
            trans.push(parse_trans(&s[i + 1..close], base + i + 1, depth)?);
            i = close + 1;
        }
        if b.get(i) != Some(&b')') {
            return err(base + i, "expected )");
        }
        i += 1;
    }
    Ok((
        Spec {
            def,
            ctx,
            inner,
            index,
            trans,
            text: s[..i].into(),
        },
        i,
    ))
}

fn parse_inner(text: &str, base: usize, depth: usize) -> Result<Inner, SpecError> {
    if text.starts_with('$') {
        Ok(Inner::Dyn(Box::new(parse_whole(text, base, depth + 1)?)))
    } else {
        Ok(Inner::Lit(text.to_string()))
    }
}

fn parse_whole(s: &str, base: usize, depth: usize) -> Result<Spec, SpecError> {
    let (spec, used) = parse_at(s, base, depth, false)?;
    if used != s.len() {
        return err(base + used, "trailing text after the pseudo-variable");
    }
    Ok(spec)
}

/// `class.name,arg,arg` (the text between braces).
fn parse_trans(text: &str, base: usize, depth: usize) -> Result<Trans, SpecError> {
    let name_end = text.find(',').unwrap_or(text.len());
    let name = text[..name_end].trim();
    let Some(def) = tr::lookup(name) else {
        return err(base, format!("unknown transformation {{{name}}}"));
    };
    let mut args = Vec::new();
    if name_end < text.len() {
        let rest = &text[name_end + 1..];
        let mut off = base + name_end + 1;
        // Split on top-level commas; the last argument of a transformation
        // keeps any further commas (`{s.select,1,,}` selects on ',').
        let pieces = split_args(rest, def.max_args);
        for p in pieces {
            args.push(parse_arg(p, off, depth)?);
            off += p.len() + 1;
        }
    }
    if args.len() < def.min_args || args.len() > def.max_args {
        let want = if def.min_args == def.max_args {
            format!("{}", def.min_args)
        } else {
            format!("{} to {}", def.min_args, def.max_args)
        };
        return err(
            base,
            format!(
                "{{{name}}} takes {want} argument{}, not {}",
                if def.max_args == 1 { "" } else { "s" },
                args.len()
            ),
        );
    }
    Ok(Trans { def, args })
}

/// Splits on commas outside brackets, at most `max` pieces.
fn split_args(s: &str, max: usize) -> Vec<&str> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut from = 0;
    let mut k = 0;
    while k < b.len() {
        match b[k] {
            b'\\' => k += 1,
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            b',' if depth == 0 && out.len() + 1 < max.max(1) => {
                out.push(&s[from..k]);
                from = k + 1;
            }
            _ => {}
        }
        k += 1;
    }
    out.push(&s[from.min(s.len())..]);
    out
}

fn parse_arg(p: &str, base: usize, depth: usize) -> Result<tr::Arg, SpecError> {
    if p.starts_with('$') && p.len() > 1 {
        return Ok(tr::Arg::Pv(Box::new(parse_whole(p, base, depth + 1)?)));
    }
    // `\}`, `\{` and `\,` stand for themselves inside an argument.
    let mut lit = String::with_capacity(p.len());
    let mut chars = p.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(&n) = chars.peek() {
                if matches!(n, '{' | '}' | ',' | '\\') {
                    lit.push(n);
                    chars.next();
                    continue;
                }
            }
        }
        lit.push(c);
    }
    Ok(tr::Arg::lit(lit))
}

/// Parses a whole string as exactly one spec.
pub fn parse_spec(s: &str) -> Result<Spec, String> {
    parse_spec_at(s).map_err(|e| format!("'{}': {e}", s.trim()))
}

/// [`parse_spec`] with the error's position kept apart.
pub fn parse_spec_at(s: &str) -> Result<Spec, SpecError> {
    let lead = s.len() - s.trim_start().len();
    parse_whole(s.trim(), lead, 0)
}

/// A spec at the start of `s` (`$ru…`) and the bytes it takes; the rest
/// is left alone (the PVs inside a `subst` replacement).
pub fn parse_spec_prefix(s: &str) -> Result<(Spec, usize), SpecError> {
    parse_at(s, 0, 0, true)
}

/// Parses an xlog format: text with specs; `\n`, `\t`, `\r`, `\\` and
/// `\$` escapes. A '$' not followed by a name is text.
pub fn parse_format(s: &str) -> Result<Vec<Part>, String> {
    parse_format_at(s).map_err(|e| format!("'{s}': {e}"))
}

/// [`parse_format`] with the error's position kept apart.
pub fn parse_format_at(s: &str) -> Result<Vec<Part>, SpecError> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' if i + 1 < b.len() => {
                match b[i + 1] {
                    b'n' => text.push('\n'),
                    b't' => text.push('\t'),
                    b'r' => text.push('\r'),
                    b'\\' => text.push('\\'),
                    b'$' => text.push('$'),
                    _ => {
                        text.push('\\');
                        i += 1;
                        continue;
                    }
                }
                i += 2;
            }
            b'$' if b
                .get(i + 1)
                .is_some_and(|c| *c == b'(' || c.is_ascii_alphabetic() || *c == b'_') =>
            {
                let (spec, used) = parse_at(&s[i..], i, 0, true)?;
                if !text.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut text)));
                }
                parts.push(Part::Spec(spec));
                i += used;
            }
            _ => {
                // Copy a whole UTF-8 char.
                let ch_len = s[i..].chars().next().map_or(1, char::len_utf8);
                text.push_str(&s[i..i + ch_len]);
                i += ch_len;
            }
        }
    }
    if !text.is_empty() {
        parts.push(Part::Text(text));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_forms() {
        assert_eq!(parse_spec("$ru").unwrap().def.name, "ru");
        assert_eq!(parse_spec("$(ru)").unwrap().def.name, "ru");
        let h = parse_spec("$hdr(Via)").unwrap();
        assert_eq!(h.inner_lit(), Some("Via"));
        let h = parse_spec("$(hdr(Via)[1])").unwrap();
        assert_eq!(h.index, Some(Index::At(1)));
        let h = parse_spec("$(hdr(Route)[*])").unwrap();
        assert_eq!(h.index, Some(Index::All));
        let h = parse_spec("$(hdr(Route)[-1])").unwrap();
        assert_eq!(h.index, Some(Index::At(-1)));
        assert!(parse_spec("$nope").is_err());
        assert!(parse_spec("$hdr").is_err());
        assert!(parse_spec("$ru x").is_err());
    }

    #[test]
    fn nested_and_transformations() {
        let h = parse_spec("$hdr($var(h))").unwrap();
        assert!(matches!(h.inner, Some(Inner::Dyn(_))));
        let t = parse_spec("$(ru{uri.user}{s.len})").unwrap();
        assert_eq!(t.trans.len(), 2);
        let t = parse_spec("$(hdr(Via)[0]{via.branch})").unwrap();
        assert_eq!((t.trans.len(), t.index.clone()), (1, Some(Index::At(0))));
        let t = parse_spec("$(var(x){s.select,1,,})").unwrap();
        assert_eq!(t.trans[0].args.len(), 2);
        let t = parse_spec("$(var(x){s.substr,$var(a),2})").unwrap();
        assert!(matches!(t.trans[0].args[0], tr::Arg::Pv(_)));
        let t = parse_spec("$(avp(x)[$var(i)])").unwrap();
        assert!(matches!(t.index, Some(Index::Dyn(_))));
        let e = parse_spec_at("$(ru{uri.nope})").unwrap_err();
        assert!(e.msg.contains("unknown transformation {uri.nope}"), "{e}");
        assert_eq!(e.pos, 5);
        let e = parse_spec_at("$(ru{s.substr,1})").unwrap_err();
        assert!(e.msg.contains("takes 2 arguments, not 1"), "{e}");
        assert!(parse_spec("$(ru{s.len}").is_err());
        assert!(parse_spec("$(ru[x])").is_err());
        let deep = "$hdr(".repeat(20) + "$ru" + &")".repeat(20);
        assert!(parse_spec(&deep).is_err());
    }

    #[test]
    fn contexts_of_tm() {
        // OpenSIPS pvar.c: `$(<ctx>name…)`; tm registers request and reply.
        let r = parse_spec("$(<request>ru{uri.user})").unwrap();
        assert_eq!(
            (r.ctx, r.def.name, r.trans.len()),
            (Some(Ctx::Request), "ru", 1)
        );
        let h = parse_spec("$(<reply>hdr(X-Why)[0])").unwrap();
        assert_eq!((h.ctx, h.inner_lit()), (Some(Ctx::Reply), Some("X-Why")));
        assert_eq!(parse_spec("$(ru)").unwrap().ctx, None);
        let e = parse_spec_at("$(<branch>ru)").unwrap_err();
        assert!(
            e.msg.contains("unknown pseudo-variable context <branch>"),
            "{e}"
        );
        assert_eq!(e.pos, 3);
        assert!(parse_spec("$(<request ru)").is_err());
        let p = parse_format("$(<request>si):$(<request>sp)").unwrap();
        assert_eq!(p.len(), 3);
        // A context is read, never written.
        let mut c = Call::new();
        let e = super::super::set(&mut c, &r, Value::Str("x".into())).unwrap_err();
        assert!(e.contains("context"), "{e}");
        // No message of that kind: null, as OpenSIPS when tm finds none.
        assert_eq!(super::super::eval(&c, &h), Ok(Value::Null));
    }

    #[test]
    fn formats() {
        let p = parse_format("from $fu to $(ru) costs $5\\n").unwrap();
        let kinds: Vec<_> = p.iter().map(|p| matches!(p, Part::Spec(_))).collect();
        assert_eq!(kinds, vec![false, true, false, true, false]);
        match &p[4] {
            Part::Text(t) => assert_eq!(t, " costs $5\n"),
            _ => panic!(),
        }
        assert!(parse_format("$unknown_pv").is_err());
        let p = parse_format("user $fU.").unwrap();
        assert_eq!(p.len(), 3);
        let e = parse_format_at("ok $(ru{x.y})").unwrap_err();
        assert_eq!(e.pos, 8);
    }
}
