//! Header functions (OpenSIPS modules/sipmsgops/sipmsgops.c): is_method,
//! has_totag, append_hf/insert_hf (optionally next to a named header),
//! remove_hf, remove_hf_re, remove_hf_glob, is_present_hf,
//! append_to_reply, change_reply_status.

use mlua::{Lua, MultiValue};

use super::{msg_mut, ret_code};
use crate::modules::with_msg;
use crate::pv::re::{posix, Posix};
use crate::script::api::pv_fmt;
use crate::script::exports::{ret, Args};
use crate::script::host::State;
use crate::sip::{HeaderKind, Message, Method};

/// OpenSIPS's method ids (parser/msg_parser.h), as a bit each.
fn method_bit(m: Method) -> u32 {
    match m {
        Method::Invite => 1,
        Method::Cancel => 2,
        Method::Ack => 4,
        Method::Bye => 8,
        Method::Info => 16,
        Method::Options => 32,
        Method::Update => 64,
        Method::Register => 128,
        Method::Message => 256,
        Method::Subscribe => 512,
        Method::Notify => 1024,
        Method::Prack => 2048,
        Method::Refer => 4096,
        Method::Publish => 8192,
        Method::Other => 16384,
    }
}

/// What `is_method`'s argument asks for (sipmsgops.c `fixup_method`):
/// known methods by id (names case-insensitive), a single unknown one by
/// name; a `|` list may hold known methods only.
#[derive(Debug, PartialEq, Eq)]
pub enum MethodWant {
    Ids(u32),
    Name(String),
}

pub fn parse_methods(arg: &str) -> Result<MethodWant, String> {
    if arg.is_empty() {
        return Err("empty method name".into());
    }
    let list = arg.contains('|') || arg.contains(',');
    let mut ids = 0;
    for name in arg.split(['|', ',']) {
        let name = name.trim();
        let kind = Method::of(&name.to_ascii_uppercase());
        if name.is_empty() || (kind == Method::Other && list) {
            return Err(format!(
                "'{name}' in '{arg}': a list may name only methods OpenSIPS knows (INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REGISTER, MESSAGE, SUBSCRIBE, NOTIFY, PRACK, REFER, PUBLISH)"
            ));
        }
        if kind == Method::Other {
            return Ok(MethodWant::Name(name.to_string()));
        }
        ids |= method_bit(kind);
    }
    Ok(MethodWant::Ids(ids))
}

pub fn is_method(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let want = parse_methods(&a.str(0)?).map_err(|e| a.err(e))?;
    let hit = with_msg(st, a.fname, |m| {
        let kind = m.method_kind();
        match &want {
            MethodWant::Ids(ids) => method_bit(kind) & ids != 0,
            MethodWant::Name(n) => kind == Method::Other && m.method().eq_ignore_ascii_case(n),
        }
    })?;
    ret(lua, hit)
}

pub fn has_totag(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let hit = with_msg(st, a.fname, |m| m.to_tag().is_some_and(|t| !t.is_empty()))?;
    ret(lua, hit)
}

/// A header name as a script gives it: a token (RFC 3261 §25.1), so no
/// CR, LF, colon or space can slip into a header line.
pub fn check_name(name: &str) -> Result<(), String> {
    let token = |c: char| c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return Err(format!("'{}' is not a header name", name.escape_debug()));
    }
    Ok(())
}

/// Header lines as a script gives them: each `Name: value`, CRLF
/// terminated (a missing final CRLF is added, as lunasip always did,
/// rather than glued to the next line as OpenSIPS would), folding
/// allowed; no empty line, no bare CR or LF.
pub fn header_lines(text: &str) -> Result<String, String> {
    let mut t = text.to_string();
    if t.ends_with('\n') && !t.ends_with("\r\n") {
        t.pop();
    }
    if !t.ends_with("\r\n") {
        t.push_str("\r\n");
    }
    let bad = |why: &str| {
        Err(format!(
            "'{}' is not header lines: {why}",
            text.escape_debug()
        ))
    };
    let body = &t[..t.len() - 2];
    for (i, line) in body.split("\r\n").enumerate() {
        if line.contains(['\r', '\n']) {
            return bad("a bare CR or LF");
        }
        if line.starts_with([' ', '\t']) {
            if i == 0 {
                return bad("it starts with a continuation line");
            }
            continue;
        }
        let Some((name, _)) = line.split_once(':') else {
            return bad("a line without ':'");
        };
        if check_name(name.trim_end()).is_err() {
            return bad("a bad header name");
        }
    }
    Ok(t)
}

/// Where `append_hf`/`insert_hf` put their text (sipmsgops.c
/// `add_hf_helper`): next to the first header named `anchor` (a known
/// header by kind, compact forms included; another one by its exact
/// name), else after the last header or before the first one.
fn add_hf(lua: &Lua, st: &State, a: Args, after: bool) -> mlua::Result<MultiValue> {
    let text = pv_fmt(lua, st, &a.str(0)?)?;
    let anchor = a.opt_str(1)?;
    if let Some(n) = &anchor {
        check_name(n).map_err(|e| a.err(e))?;
    }
    if text.is_empty() {
        return ret(lua, false);
    }
    let text = header_lines(&text).map_err(|e| a.err(e))?;
    let mut call = st.call.borrow_mut();
    let m = msg_mut(&mut call, &a)?;
    let line = anchor.and_then(|n| find_anchor(m, &n));
    let at = match (line, after) {
        (Some(r), true) => r.end,
        (Some(r), false) => r.start,
        (None, true) => m.headers_end(),
        (None, false) => m.headers_start(),
    };
    let ok = m.replace_at(at..at, text).is_ok();
    ret(lua, ok)
}

fn find_anchor(m: &Message, name: &str) -> Option<std::ops::Range<usize>> {
    let kind = HeaderKind::of(name.as_bytes());
    let h = m.headers().find(|h| match kind {
        HeaderKind::Other => h.kind == HeaderKind::Other && h.name == name,
        k => h.kind == k,
    })?;
    m.header_line(h.index)
}

pub fn append_hf(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    add_hf(lua, st, a, true)
}

pub fn insert_hf(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    add_hf(lua, st, a, false)
}

pub fn remove_hf(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let name = a.str(0)?;
    check_name(&name).map_err(|e| a.err(e))?;
    let mut call = st.call.borrow_mut();
    let n = msg_mut(&mut call, &a)?.remove_headers(&name);
    ret(lua, n > 0)
}

/// Removes the header lines whose name `hit` accepts, skipping those
/// already removed; true when one was.
fn remove_where(m: &mut Message, hit: impl Fn(&str) -> bool) -> bool {
    let lines: Vec<_> = m
        .headers()
        .filter(|h| hit(h.name))
        .filter_map(|h| m.header_line(h.index))
        .filter(|r| !m.is_removed(r.clone()))
        .collect();
    for r in &lines {
        let _ = m.replace_at(r.clone(), String::new());
    }
    !lines.is_empty()
}

pub fn remove_hf_re(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let re = posix(&a.str(0)?, Posix::PARAM).map_err(|e| a.err(e))?;
    let mut call = st.call.borrow_mut();
    let m = msg_mut(&mut call, &a)?;
    ret(lua, remove_where(m, |n| re.is_match(n)))
}

pub fn remove_hf_glob(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let pat = a.str(0)?.to_ascii_lowercase();
    let mut call = st.call.borrow_mut();
    let m = msg_mut(&mut call, &a)?;
    ret(
        lua,
        remove_where(m, |n| {
            glob(pat.as_bytes(), n.to_ascii_lowercase().as_bytes())
        }),
    )
}

/// fnmatch(3) without flags but FNM_CASEFOLD (the caller folds): `*`,
/// `?`, `[…]` with ranges and `!`/`^` negation, `\` escapes.
pub fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(b'*') => (0..=s.len()).any(|i| glob(&p[1..], &s[i..])),
        Some(b'?') => !s.is_empty() && glob(&p[1..], &s[1..]),
        Some(b'[') => {
            let Some(&c) = s.first() else { return false };
            let mut i = 1;
            let neg = matches!(p.get(1), Some(b'!' | b'^'));
            if neg {
                i += 1;
            }
            let mut hit = false;
            let mut first = true;
            while let Some(&pc) = p.get(i) {
                if pc == b']' && !first {
                    return hit != neg && glob(&p[i + 1..], &s[1..]);
                }
                first = false;
                if p.get(i + 1) == Some(&b'-') && p.get(i + 2).is_some_and(|e| *e != b']') {
                    hit |= (pc..=p[i + 2]).contains(&c);
                    i += 3;
                } else {
                    hit |= pc == c;
                    i += 1;
                }
            }
            // No closing ']': the '[' is literal.
            c == b'[' && glob(&p[1..], &s[1..])
        }
        Some(b'\\') if p.len() > 1 => s.first() == Some(&p[1]) && glob(&p[2..], &s[1..]),
        Some(&c) => s.first() == Some(&c) && glob(&p[1..], &s[1..]),
    }
}

pub fn is_present_hf(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let name = a.str(0)?;
    check_name(&name).map_err(|e| a.err(e))?;
    let hit = with_msg(st, a.fname, |m| m.header(&name).is_some())?;
    ret(lua, hit)
}

pub fn append_to_reply(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let text = pv_fmt(lua, st, &a.str(0)?)?;
    let text = header_lines(&text).map_err(|e| a.err(e))?;
    let mut call = st.call.borrow_mut();
    msg_mut(&mut call, &a)?.add_reply_header(&text);
    ret(lua, true)
}

/// sipmsgops.c `change_reply_status_f`: 100–699, and the class of a
/// provisional or positive reply cannot change.
pub fn change_reply_status(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let code = a.int(0)?;
    let reason = pv_fmt(lua, st, &a.str(1)?)?;
    if !(100..=699).contains(&code) {
        return Err(a.err(format!("{code} is not a status code (100-699)")));
    }
    let code = code as u16;
    let mut call = st.call.borrow_mut();
    let m = msg_mut(&mut call, &a)?;
    let Some(old) = m.status() else {
        return ret_code(lua, -1);
    };
    if (code < 300 || old < 300) && code / 100 != old / 100 {
        return ret_code(lua, -1);
    }
    ret_code(lua, if m.set_status(code, &reason) { 1 } else { -1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_lists() {
        assert_eq!(parse_methods("INVITE"), Ok(MethodWant::Ids(1)));
        assert_eq!(parse_methods("invite|ack|BYE"), Ok(MethodWant::Ids(13)));
        assert_eq!(parse_methods("KDMQ"), Ok(MethodWant::Name("KDMQ".into())));
        assert!(parse_methods("INVITE|KDMQ").is_err());
        assert!(parse_methods("").is_err());
        assert!(parse_methods("INVITE|").is_err());
    }

    #[test]
    fn header_text() {
        assert_eq!(header_lines("X-A: 1").unwrap(), "X-A: 1\r\n");
        assert_eq!(header_lines("X-A: 1\n").unwrap(), "X-A: 1\r\n");
        assert_eq!(
            header_lines("X-A: 1\r\nX-B: 2\r\n").unwrap(),
            "X-A: 1\r\nX-B: 2\r\n"
        );
        header_lines("X-A: 1\r\n  folded\r\n").unwrap();
        for bad in [
            "X-A: 1\r\n\r\n",
            "X-A 1",
            "X-A: 1\nX-B: 2",
            "Bad Name: 1",
            ": x",
            " X: 1",
        ] {
            assert!(header_lines(bad).is_err(), "{bad:?}");
        }
        assert!(check_name("X-Foo").is_ok());
        assert!(check_name("X-Foo\r\nX-Evil").is_err());
        assert!(check_name("").is_err());
    }

    #[test]
    fn globs() {
        let g = |p: &str, s: &str| glob(p.as_bytes(), s.as_bytes());
        assert!(g("x-*", "x-foo"));
        assert!(!g("x-*", "y-foo"));
        assert!(g("p-?-id", "p-a-id"));
        assert!(g("[a-c]x", "bx"));
        assert!(!g("[!a-c]x", "bx"));
        assert!(g("*", ""));
        assert!(g("a[", "a["));
    }
}
