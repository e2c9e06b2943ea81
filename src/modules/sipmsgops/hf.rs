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
use crate::sip::args::{check_name, header_lines, parse_methods, MethodWant};
use crate::sip::{HeaderKind, Message, Method};

pub fn is_method(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    // Borrowed where the argument is a Lua string (the usual literal).
    let want = match a.vals.front() {
        Some(mlua::Value::String(s)) => parse_methods(&s.to_str()?),
        _ => parse_methods(&a.str(0)?),
    }
    .map_err(|e| a.err(e))?;
    let hit = with_msg(st, a.fname, |m| {
        let kind = m.method_kind();
        match &want {
            MethodWant::Ids(ids) => crate::sip::args::method_bit(kind) & ids != 0,
            MethodWant::Name(n) => kind == Method::Other && m.method().eq_ignore_ascii_case(n),
        }
    })?;
    ret(lua, hit)
}

pub fn has_totag(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let hit = with_msg(st, a.fname, |m| m.to_tag().is_some_and(|t| !t.is_empty()))?;
    ret(lua, hit)
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

pub use crate::sip::glob::glob;

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
