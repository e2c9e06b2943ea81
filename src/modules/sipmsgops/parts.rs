//! Body parts (OpenSIPS 3.4 modules/sipmsgops/sipmsgops.c
//! `add_body_part_f`/`remove_body_part_f`, with the packing of
//! msg_translator.c `prep_reassemble_body_parts`): a body that gets a
//! second part becomes `multipart/mixed` with OpenSIPS's boundary; one
//! left with a single part of a multipart body becomes that part (its
//! headers replace Content-Type); one left with none loses Content-Type.
//! Edits made inside a kept part stay.

use mlua::{Lua, MultiValue};
use std::ops::Range;

use super::body::check_mime;
use super::{msg_mut, ret_code};
use crate::script::api::pv_fmt;
use crate::script::exports::Args;
use crate::script::host::State;
use crate::sip::args::header_lines;
use crate::sip::{sdp, HeaderKind, Message};

/// msg_translator.h OSS_BOUNDARY.
pub const BOUNDARY: &str = "OSS-unique-boundary-42";

fn content_type_line(m: &Message) -> Option<Range<usize>> {
    let h = m.headers().find(|h| h.kind == HeaderKind::ContentType)?;
    m.header_line(h.index)
}

/// Replaces the Content-Type line with `lines` (added at the end of the
/// headers when there is none).
fn set_content_type(m: &mut Message, lines: String) -> bool {
    let at = content_type_line(m).unwrap_or_else(|| m.headers_end()..m.headers_end());
    m.replace_at(at, lines).is_ok()
}

pub fn remove_body_part(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let mime = match a.opt_str(0)? {
        Some(t) if !t.is_empty() => Some(check_mime(&t).map_err(|e| a.err(e))?),
        _ => None,
    };
    let revert = a.opt_str(1)?.as_deref() == Some("revert");
    let mut call = st.call.borrow_mut();
    let m = msg_mut(&mut call, &a)?;
    let body = m.body_range();
    if body.is_empty() {
        return ret_code(lua, -1);
    }
    let sel = |pm: &str| match &mime {
        None => true,
        Some(w) => (pm == w) != revert,
    };
    let ct = m.header("Content-Type").unwrap_or("").to_string();
    let abs = |r: &Range<usize>| body.start + r.start..body.start + r.end;
    let mark = m.edit_count();
    let ok = match sdp::parts(&ct, m.body()) {
        None => {
            if !sel(&sdp::mime_of(&ct)) {
                return ret_code(lua, -1);
            }
            clear(m, body)
        }
        Some(parts) => {
            let (gone, keep): (Vec<_>, Vec<_>) = parts.into_iter().partition(|p| sel(&p.mime));
            match (gone.is_empty(), keep.as_slice()) {
                (true, _) => return ret_code(lua, -1),
                (false, []) => clear(m, body),
                (false, [only]) => {
                    // n -> 1: the part alone, its headers (but
                    // Content-Length) in place of Content-Type.
                    let head = m
                        .text_at(abs(&only.headers))
                        .unwrap_or("")
                        .split_inclusive("\r\n")
                        .filter(|l| {
                            let n = l.split(':').next().unwrap_or("").trim();
                            HeaderKind::of(n.as_bytes()) != HeaderKind::ContentLength
                        })
                        .collect::<String>();
                    let inner = abs(&only.body);
                    m.replace_at(body.start..inner.start, String::new()).is_ok()
                        && m.replace_at(inner.end..body.end, String::new()).is_ok()
                        && set_content_type(m, head)
                }
                (false, _) => gone
                    .iter()
                    .all(|p| m.replace_at(abs(&p.whole), String::new()).is_ok()),
            }
        }
    };
    if !ok {
        m.truncate_edits(mark);
    }
    ret_code(lua, if ok { 1 } else { -1 })
}

/// The whole body out, and its Content-Type.
fn clear(m: &mut Message, body: Range<usize>) -> bool {
    let ok = m.replace_at(body, String::new()).is_ok();
    if let Some(line) = content_type_line(m) {
        return ok && m.replace_at(line, String::new()).is_ok();
    }
    ok
}

pub fn add_body_part(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let new = pv_fmt(lua, st, &a.str(0)?)?;
    let mime = pv_fmt(lua, st, &a.str(1)?)?;
    let extra = match a.opt_str(2)? {
        Some(h) => pv_fmt(lua, st, &h)?,
        None => String::new(),
    };
    if new.is_empty() || mime.is_empty() {
        return ret_code(lua, -1);
    }
    let mime = mime.trim().to_string();
    check_mime(&mime).map_err(|e| a.err(e))?;
    let extra = match extra.is_empty() {
        true => extra,
        false => header_lines(&extra).map_err(|e| a.err(e))?,
    };
    let mut call = st.call.borrow_mut();
    let m = msg_mut(&mut call, &a)?;
    let body = m.body_range();
    let mark = m.edit_count();
    let ct = m.header("Content-Type").unwrap_or("").to_string();
    let part = format!("Content-Type: {mime}\r\n{extra}\r\n{new}\r\n");
    let ok = if body.is_empty() {
        // 0 -> 1: the part is the body.
        m.replace_at(body.start..body.start, new).is_ok()
            && set_content_type(m, format!("Content-Type: {mime}\r\n{extra}"))
    } else if let Some(close) = closing_delimiter(m, &ct) {
        // n -> n+1: before the closing delimiter.
        let boundary = close.1;
        m.replace_at(close.0..close.0, format!("--{boundary}\r\n{part}"))
            .is_ok()
    } else {
        // 1 -> 2: the body becomes multipart/mixed.
        let old_ct = match ct.is_empty() {
            true => String::new(),
            false => format!("Content-Type: {ct}\r\n"),
        };
        m.replace_at(
            body.start..body.start,
            format!("--{BOUNDARY}\r\n{old_ct}\r\n"),
        )
        .is_ok()
            && m.replace_at(
                body.end..body.end,
                format!("\r\n--{BOUNDARY}\r\n{part}--{BOUNDARY}--\r\n"),
            )
            .is_ok()
            && set_content_type(
                m,
                format!("Content-Type: multipart/mixed;boundary={BOUNDARY}\r\n"),
            )
    };
    if !ok {
        m.truncate_edits(mark);
    }
    ret_code(lua, if ok { 1 } else { -1 })
}

/// Where the closing delimiter (`--boundary--`) of a multipart body
/// starts, and the boundary.
fn closing_delimiter(m: &Message, ct: &str) -> Option<(usize, String)> {
    sdp::parts(ct, m.body())?;
    let b = ct.split(';').skip(1).find_map(|p| {
        let (n, v) = p.split_once('=')?;
        n.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_string())
    })?;
    let close = format!("--{b}--");
    let body = m.body();
    let at = (0..body.len())
        .rev()
        .find(|&i| body[i..].starts_with(close.as_bytes()) && (i == 0 || body[i - 1] == b'\n'))?;
    Some((m.body_range().start + at, b))
}
