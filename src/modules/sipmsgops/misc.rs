//! The rest of OpenSIPS 3.4 sipmsgops (sipmsgops.c, uri.c, list_hdr.c):
//! append_time, append_urihf, ruri_tel2sip, is_privacy, the list header
//! options, get_glob_headers_values, get_updated_body_part.

use mlua::{Lua, MultiValue};

use super::hf::glob;
use super::{msg_mut, ret_code};
use crate::pv::Value;
use crate::script::api::pv_fmt;
use crate::script::exports::{ret, Args};
use crate::script::host::State;
use crate::sip::args::{check_name, header_lines};
use crate::sip::{sdp, HeaderKind, Message, Uri};

/// sipmsgops.c `append_time_f`: a `Date:` header (RFC 822 form, GMT) in
/// every reply lunasip builds for this request.
pub fn append_time(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let now = jiff::Timestamp::now();
    let date = jiff::fmt::strtime::format("%a, %d %b %Y %H:%M:%S GMT", now)
        .map_err(|e| a.err(format!("cannot format the date: {e}")))?;
    let mut call = st.call.borrow_mut();
    msg_mut(&mut call, &a)?.add_reply_header(&format!("Date: {date}\r\n"));
    ret(lua, true)
}

/// sipmsgops.c `append_urihf`: `prefix` + the R-URI as received +
/// `suffix`, after the last header.
pub fn append_urihf(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let prefix = pv_fmt(lua, st, &a.str(0)?)?;
    let suffix = pv_fmt(lua, st, &a.str(1)?)?;
    let mut call = st.call.borrow_mut();
    let m = msg_mut(&mut call, &a)?;
    let text =
        header_lines(&format!("{prefix}{}{suffix}", m.original_ruri())).map_err(|e| a.err(e))?;
    let at = m.headers_end();
    ret(lua, m.replace_at(at..at, text).is_ok())
}

/// uri.c `ruri_tel2sip`: a `tel:` R-URI becomes
/// `sip:NUMBER@<From host>;user=phone`; any other is left alone (true).
pub fn ruri_tel2sip(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let mut call = st.call.borrow_mut();
    let m = msg_mut(&mut call, &a)?;
    let ruri = m.ruri().to_string();
    if ruri.len() < 4 || !ruri[..4].eq_ignore_ascii_case("tel:") {
        return ret_code(lua, 1);
    }
    let Some(host) = m
        .from()
        .and_then(|f| Uri::parse(f.uri).ok().map(|u| u.host.to_string()))
        .filter(|h| !h.is_empty())
    else {
        return ret_code(lua, -1);
    };
    let new = format!("sip:{}@{host};user=phone", &ruri[4..]);
    m.set_ruri(&new);
    ret_code(lua, 1)
}

/// parser/parse_privacy.c values (RFC 3323, RFC 3325 `id`).
const PRIVACY: &[&str] = &[
    "user", "header", "session", "none", "critical", "id", "history",
];

/// sipmsgops.c `is_privacy_f`: whether the Privacy header holds `value`.
pub fn is_privacy(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let want = a.str(0)?.trim().to_ascii_lowercase();
    if !PRIVACY.contains(&want.as_str()) {
        return Err(a.err(format!(
            "'{want}' is not a privacy value ({})",
            PRIVACY.join(", ")
        )));
    }
    let hit = crate::modules::with_msg(st, a.fname, |m| {
        m.header_values("Privacy")
            .iter()
            .flat_map(|v| v.split(';'))
            .any(|v| v.trim().eq_ignore_ascii_case(&want))
    })?;
    ret(lua, hit)
}

/// The header lines with this name (known kinds by kind, others by name,
/// case-insensitive), as list_hdr.c finds them.
fn lines_named(m: &Message, name: &str) -> Vec<std::ops::Range<usize>> {
    let kind = HeaderKind::of(name.as_bytes());
    m.headers()
        .filter(|h| match kind {
            HeaderKind::Other => h.kind == HeaderKind::Other && h.name.eq_ignore_ascii_case(name),
            k => h.kind == k,
        })
        .filter_map(|h| m.header_line(h.index))
        .collect()
}

/// The current text of a header line (the last rewrite, if any).
fn line_text(m: &Message, r: &std::ops::Range<usize>) -> String {
    m.replaced_text(r.clone())
        .map(str::to_string)
        .or_else(|| m.text_at(r.clone()).map(str::to_string))
        .unwrap_or_default()
}

/// `Name: a, b` → ("Name: ", ["a", "b"]); None when there is no ':'.
fn split_list(line: &str) -> Option<(&str, Vec<&str>)> {
    let colon = line.find(':')?;
    let body = line[colon + 1..].trim_end_matches(['\r', '\n']);
    let lead = body.len() - body.trim_start().len();
    let tokens = body
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    Some((&line[..colon + 1 + lead], tokens))
}

fn list_args(lua: &Lua, st: &State, a: &Args) -> mlua::Result<(String, String)> {
    let name = a.str(0)?;
    check_name(&name).map_err(|e| a.err(e))?;
    let opt = pv_fmt(lua, st, &a.str(1)?)?;
    if opt.contains([',', '\r', '\n']) {
        return Err(a.err(format!("'{}' is not one option", opt.escape_debug())));
    }
    Ok((name, opt.trim().to_string()))
}

/// list_hdr.c `list_hdr_has_val`: the option in any instance of the
/// header as received, case-insensitive.
pub fn list_hdr_has_option(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let (name, opt) = list_args(lua, st, &a)?;
    let hit = crate::modules::with_msg(st, a.fname, |m| {
        lines_named(m, &name).iter().any(|r| {
            m.text_at(r.clone())
                .and_then(split_list)
                .is_some_and(|(_, t)| t.iter().any(|x| x.eq_ignore_ascii_case(&opt)))
        })
    })?;
    ret(lua, hit)
}

/// list_hdr.c `list_hdr_add_val`: appended to the first instance (a
/// missing header is not added, as OpenSIPS); later list calls see it.
pub fn list_hdr_add_option(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let (name, opt) = list_args(lua, st, &a)?;
    let mut call = st.call.borrow_mut();
    let m = msg_mut(&mut call, &a)?;
    let Some(first) = lines_named(m, &name).into_iter().next() else {
        return ret(lua, false);
    };
    let cur = line_text(m, &first);
    let new = match split_list(&cur) {
        Some((head, tokens)) if !tokens.is_empty() => {
            format!("{head}{}, {opt}\r\n", tokens.join(", "))
        }
        _ => {
            let orig = m.text_at(first.clone()).unwrap_or("");
            let head = orig.split(':').next().unwrap_or(&name);
            format!("{head}: {opt}\r\n")
        }
    };
    ret(lua, m.replace_at(first, new).is_ok())
}

/// list_hdr.c `list_hdr_remove_val`: the option out of every instance; an
/// instance left empty goes.
pub fn list_hdr_remove_option(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let (name, opt) = list_args(lua, st, &a)?;
    let mut call = st.call.borrow_mut();
    let m = msg_mut(&mut call, &a)?;
    let mut removed = false;
    for r in lines_named(m, &name) {
        let cur = line_text(m, &r);
        let Some((head, tokens)) = split_list(&cur) else {
            continue;
        };
        let kept: Vec<&str> = tokens
            .iter()
            .copied()
            .filter(|t| !t.eq_ignore_ascii_case(&opt))
            .collect();
        if kept.len() == tokens.len() {
            continue;
        }
        removed = true;
        let new = match kept.is_empty() {
            true => String::new(),
            false => format!("{head}{}\r\n", kept.join(", ")),
        };
        let _ = m.replace_at(r, new);
    }
    ret(lua, removed)
}

/// sipmsgops.c `get_glob_headers_values`: the name and value of every
/// header whose name matches the shell pattern, added to two AVPs.
pub fn get_glob_headers_values(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let pat = a.str(0)?.to_ascii_lowercase();
    let names = st.pv.borrow_mut().spec(&a.str(1)?).map_err(|e| a.err(e))?;
    let vals = st.pv.borrow_mut().spec(&a.str(2)?).map_err(|e| a.err(e))?;
    if names.def.name != "avp" || vals.def.name != "avp" {
        return Err(a.err("the names and values must go to $avp variables"));
    }
    let mut call = st.call.borrow_mut();
    let found: Vec<(String, String)> = match call.msg.as_ref() {
        Some(m) => m
            .headers()
            .filter(|h| glob(pat.as_bytes(), h.name.to_ascii_lowercase().as_bytes()))
            .map(|h| (h.name.to_string(), h.value.to_string()))
            .collect(),
        None => return Err(a.err("no message in this route")),
    };
    for (n, v) in &found {
        crate::pv::set(&mut call, &names, Value::Str(n.clone())).map_err(|e| a.err(e))?;
        crate::pv::set(&mut call, &vals, Value::Str(v.clone())).map_err(|e| a.err(e))?;
    }
    ret(lua, !found.is_empty())
}

/// sipmsgops.c `get_updated_body_part_f`: the body with every change so
/// far, or only the part of `mime` (code -2 when there is none).
pub fn get_updated_body_part(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    // `(var)` alone, or `(mime, var)` with mime possibly nil.
    let (mime, out) = match a.len() {
        1 => (None, a.str(0)?),
        _ => (a.opt_str(0)?, a.str(1)?),
    };
    let mime = match mime {
        Some(t) if !t.is_empty() => Some(super::body::check_mime(&t).map_err(|e| a.err(e))?),
        _ => None,
    };
    let spec = st.pv.borrow_mut().spec(&out).map_err(|e| a.err(e))?;
    let mut call = st.call.borrow_mut();
    let m = msg_mut(&mut call, &a)?;
    let Ok(applied) = m.applied() else {
        return ret_code(lua, -1);
    };
    if applied.body().is_empty() {
        return ret_code(lua, -1);
    }
    let ct = applied.header("Content-Type").unwrap_or("");
    let text = match (&mime, sdp::parts(ct, applied.body())) {
        (None, _) => String::from_utf8_lossy(applied.body()).into_owned(),
        (Some(w), Some(parts)) => match parts.iter().find(|p| &p.mime == w) {
            Some(p) => String::from_utf8_lossy(&applied.body()[p.body.clone()]).into_owned(),
            None => return ret_code(lua, -2),
        },
        (Some(w), None) if sdp::mime_of(ct) == *w || ct.is_empty() => {
            String::from_utf8_lossy(applied.body()).into_owned()
        }
        (Some(_), None) => return ret_code(lua, -2),
    };
    crate::pv::set(&mut call, &spec, Value::Str(text)).map_err(|e| a.err(e))?;
    ret_code(lua, 1)
}
