//! The textops functions (OpenSIPS modules/textops/textops.c, 3.4).
//!
//! What each one reads, as OpenSIPS: `search` the whole message; `replace`,
//! `replace_all`, `search_append` and `subst` the message after the start
//! line (headers, blank line and body); the `_body` forms the body;
//! `subst_uri`/`subst_user` the current R-URI. All read the message as
//! received: an earlier change is not seen (docs/message-changes.md). A
//! change that would touch the line ending the headers, or leave a
//! message that does not parse, is not made (false, and a warning).

use mlua::{Lua, MultiValue};
use regex::Regex;
use std::ops::Range;

use crate::modules::sipmsgops::{msg_mut, ret_code};
use crate::proxy::context::Call;
use crate::pv::re::{posix, subst_expr, Piece, Posix, SubstExpr, MAX_REPLACEMENT};
use crate::script::api::pv_fmt;
use crate::script::exports::{ret, Args};
use crate::script::host::State;
use crate::sip::{Message, Uri};

/// Which part of the message a function reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    /// The whole message (`search`).
    All,
    /// After the start line (`replace`, `subst`, `search_append`).
    Head,
    Body,
}

fn part_range(m: &Message, p: Part) -> Range<usize> {
    let len = m.as_bytes().len();
    match p {
        Part::All => 0..len,
        Part::Head => m.headers_start()..len,
        Part::Body => m.body_range(),
    }
}

fn regex_arg(a: &Args, i: usize) -> mlua::Result<std::rc::Rc<Regex>> {
    posix(&a.str(i)?, Posix::PARAM).map_err(|e| a.err(e))
}

/// The matches of `re` in `text`: the first, or every one (`all`). None
/// when a match is empty in `all` mode (OpenSIPS stops: "matched string
/// is empty").
fn matches(re: &Regex, text: &str, all: bool) -> Option<Vec<Range<usize>>> {
    if !all {
        return Some(re.find(text).map(|m| m.range()).into_iter().collect());
    }
    let mut out = Vec::new();
    for m in re.find_iter(text) {
        if m.is_empty() {
            return None;
        }
        out.push(m.range());
    }
    Some(out)
}

fn search_in(lua: &Lua, st: &State, a: Args, p: Part) -> mlua::Result<MultiValue> {
    let re = regex_arg(&a, 0)?;
    let call = st.call.borrow();
    let m = call
        .msg
        .as_ref()
        .ok_or_else(|| a.err("no message in this route"))?;
    let r = part_range(m, p);
    if r.is_empty() {
        return ret(lua, false);
    }
    ret(lua, m.text_at(r).is_some_and(|t| re.is_match(t)))
}

pub fn search(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    search_in(lua, st, a, Part::All)
}

pub fn search_body(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    search_in(lua, st, a, Part::Body)
}

/// Applies `edits` (ranges relative to `part`) as one change: all or none.
fn apply(a: &Args, m: &mut Message, base: usize, edits: Replacements) -> bool {
    if edits.is_empty() {
        return false;
    }
    let mark = m.edit_count();
    for (r, text) in edits {
        if let Err(e) = m.replace_at(base + r.start..base + r.end, text) {
            m.truncate_edits(mark);
            tracing::warn!("{}: change not made: {e}", a.fname);
            return false;
        }
    }
    if !m.keep_if_parses(mark) {
        tracing::warn!("{}: change not made: the message would not parse", a.fname);
        return false;
    }
    true
}

/// `replace*` and `search_append*`: a fixed text (pseudo-variables
/// expanded) replaces each match, or is inserted after the first.
fn with_text(
    lua: &Lua,
    st: &State,
    a: Args,
    p: Part,
    all: bool,
    append: bool,
) -> mlua::Result<MultiValue> {
    let re = regex_arg(&a, 0)?;
    let text = pv_fmt(lua, st, &a.str(1)?)?;
    let mut call = st.call.borrow_mut();
    let m = msg_mut(&mut call, &a)?;
    let r = part_range(m, p);
    if r.is_empty() {
        return ret_code(lua, -1);
    }
    let Some(hay) = m.text_at(r.clone()) else {
        return ret_code(lua, -1);
    };
    let Some(found) = matches(&re, hay, all) else {
        tracing::warn!("{}: the pattern matched an empty string", a.fname);
        return ret_code(lua, -1);
    };
    let edits = found
        .into_iter()
        .map(|f| match append {
            true => (f.end..f.end, text.clone()),
            false => (f, text.clone()),
        })
        .collect();
    ret_code(lua, if apply(&a, m, r.start, edits) { 1 } else { -1 })
}

pub fn search_append(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    with_text(lua, st, a, Part::Head, false, true)
}

pub fn search_append_body(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    with_text(lua, st, a, Part::Body, false, true)
}

pub fn replace(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    with_text(lua, st, a, Part::Head, false, false)
}

pub fn replace_all(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    with_text(lua, st, a, Part::Head, true, false)
}

pub fn replace_body(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    with_text(lua, st, a, Part::Body, false, false)
}

pub fn replace_body_all(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    with_text(lua, st, a, Part::Body, true, false)
}

/// OpenSIPS differs from `replace_body_all` only in whether `^` may match
/// right after an earlier match that ended a line; lunasip treats both
/// alike (a `^` matches at every line start).
pub fn replace_body_atonce(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    with_text(lua, st, a, Part::Body, true, false)
}

/// Ranges of a text and what replaces each.
pub type Replacements = Vec<(Range<usize>, String)>;

/// Runs a substitution over `text` (re.c `subst_run`): the replaced
/// ranges and their new text; None when nothing matched. Errors on an
/// empty match and on a replacement over 1024 bytes, as OpenSIPS.
pub fn run_subst(e: &SubstExpr, text: &str, call: &Call) -> Result<Option<Replacements>, String> {
    let mut out = Vec::new();
    for caps in e.re.captures_iter(text) {
        let Some(whole) = caps.get(0) else { continue };
        if whole.is_empty() {
            return Err("the pattern matched an empty string".into());
        }
        let mut rep = String::new();
        for p in &e.repl {
            match p {
                Piece::Text(t) => rep.push_str(t),
                Piece::Group(n) => rep.push_str(caps.get(*n).map_or("", |g| g.as_str())),
                Piece::Uri => {
                    if let Some(m) = call.msg.as_ref().filter(|m| m.is_request()) {
                        rep.push_str(m.ruri());
                    }
                }
                Piece::Spec(s) => crate::pv::get(call, s).write_to(&mut rep),
            }
        }
        if rep.len() >= MAX_REPLACEMENT {
            return Err(format!("a replacement is over {MAX_REPLACEMENT} bytes"));
        }
        out.push((whole.range(), rep));
        if !e.global {
            break;
        }
    }
    Ok((!out.is_empty()).then_some(out))
}

/// The string `text` with the substitution applied; None when nothing
/// matched.
pub fn subst_string(e: &SubstExpr, text: &str, call: &Call) -> Result<Option<String>, String> {
    let Some(edits) = run_subst(e, text, call)? else {
        return Ok(None);
    };
    let mut out = String::with_capacity(text.len() + 16);
    let mut cur = 0;
    for (r, rep) in edits {
        out.push_str(&text[cur..r.start]);
        out.push_str(&rep);
        cur = r.end;
    }
    out.push_str(&text[cur..]);
    Ok(Some(out))
}

fn subst_arg(a: &Args) -> mlua::Result<std::rc::Rc<SubstExpr>> {
    subst_expr(&a.str(0)?).map_err(|e| a.err(e))
}

fn subst_in(lua: &Lua, st: &State, a: Args, p: Part) -> mlua::Result<MultiValue> {
    let e = subst_arg(&a)?;
    let (base, edits) = {
        let call = st.call.borrow();
        let m = call
            .msg
            .as_ref()
            .ok_or_else(|| a.err("no message in this route"))?;
        let r = part_range(m, p);
        let Some(text) = m.text_at(r.clone()).filter(|t| !t.is_empty()) else {
            return ret_code(lua, -1);
        };
        match run_subst(&e, text, &call) {
            Ok(Some(edits)) => (r.start, edits),
            Ok(None) => return ret_code(lua, -1),
            Err(err) => {
                tracing::warn!("{}: {err}", a.fname);
                return ret_code(lua, -1);
            }
        }
    };
    let mut call = st.call.borrow_mut();
    let m = msg_mut(&mut call, &a)?;
    ret_code(lua, if apply(&a, m, base, edits) { 1 } else { -1 })
}

pub fn subst(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    subst_in(lua, st, a, Part::Head)
}

pub fn subst_body(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    subst_in(lua, st, a, Part::Body)
}

/// textops.c `subst_uri_f`: on the current R-URI; the result becomes the
/// R-URI (later `$ru` reads see it). A result that is not a URI is not
/// set.
pub fn subst_uri(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let e = subst_arg(&a)?;
    let new = {
        let call = st.call.borrow();
        let Some(m) = call.msg.as_ref().filter(|m| m.is_request()) else {
            return ret_code(lua, -1);
        };
        match subst_string(&e, m.ruri(), &call) {
            Ok(Some(n)) => n,
            Ok(None) => return ret_code(lua, -1),
            Err(err) => {
                tracing::warn!("{}: {err}", a.fname);
                return ret_code(lua, -1);
            }
        }
    };
    if Uri::parse(&new).is_err() || new.contains(char::is_whitespace) {
        tracing::warn!(
            "{}: '{}' is not a URI, R-URI kept",
            a.fname,
            new.escape_debug()
        );
        return ret_code(lua, -1);
    }
    let mut call = st.call.borrow_mut();
    msg_mut(&mut call, &a)?.set_ruri(&new);
    ret_code(lua, 1)
}

/// textops.c `subst_user_f`: on the user of the current R-URI ("" when it
/// has none); the result becomes the user, as `$rU = …`.
pub fn subst_user(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let e = subst_arg(&a)?;
    let new = {
        let call = st.call.borrow();
        let Some(m) = call.msg.as_ref().filter(|m| m.is_request()) else {
            return ret_code(lua, -1);
        };
        let Ok(u) = Uri::parse(m.ruri()) else {
            return ret_code(lua, -1);
        };
        match subst_string(&e, u.user.unwrap_or(""), &call) {
            Ok(Some(n)) => n,
            Ok(None) => return ret_code(lua, -1),
            Err(err) => {
                tracing::warn!("{}: {err}", a.fname);
                return ret_code(lua, -1);
            }
        }
    };
    let spec = st.pv.borrow_mut().named("rU").map_err(|e| a.err(e))?;
    let mut call = st.call.borrow_mut();
    match crate::pv::set(&mut call, &spec, crate::pv::Value::Str(new)) {
        Ok(()) => ret_code(lua, 1),
        Err(err) => {
            tracing::warn!("{}: {err}", a.fname);
            ret_code(lua, -1)
        }
    }
}
