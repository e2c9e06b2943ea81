//! Body functions (OpenSIPS modules/sipmsgops/sipmsgops.c and codecs.c):
//! has_body/has_body_part, is_audio_on_hold, stream_exists,
//! stream_delete. They read the body as received.

use mlua::{Lua, MultiValue};

use super::{msg_mut, ret_code};
use crate::modules::with_msg;
use crate::pv::re::{posix, Posix};
use crate::script::exports::{ret, Args};
use crate::script::host::State;
use crate::sip::{sdp, Message};

/// A MIME type argument: `type/subtype` (sipmsgops.c `fixup_mime_type`
/// refuses anything else, and a list).
pub fn check_mime(mime: &str) -> Result<String, String> {
    let m = mime.trim().to_ascii_lowercase();
    let ok = m.split_once('/').is_some_and(|(t, s)| {
        let tok = |x: &str| {
            !x.is_empty()
                && x.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.+_*".contains(c))
        };
        tok(t) && tok(s)
    });
    if !ok {
        return Err(format!("'{mime}' is not a MIME type (type/subtype)"));
    }
    Ok(m)
}

fn content_type(m: &Message) -> &str {
    m.header("Content-Type").unwrap_or("")
}

/// sipmsgops.c `has_body_f`: any body; with a MIME type, a body part of
/// that type (a `multipart/…` type is compared with the Content-Type
/// itself). OpenSIPS 3.4 answers true without a type for any UDP message
/// whose Content-Length was not parsed yet; lunasip asks for a non-empty
/// body, as its documentation says.
pub fn has_body(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let mime = match a.opt_str(0)? {
        Some(t) if !t.is_empty() => Some(check_mime(&t).map_err(|e| a.err(e))?),
        _ => None,
    };
    let hit = with_msg(st, a.fname, |m| {
        if m.body().is_empty() {
            return false;
        }
        let Some(want) = &mime else { return true };
        let ct = content_type(m);
        if want.starts_with("multipart/") {
            return sdp::mime_of(ct) == *want;
        }
        sdp::part_types(ct, m.body()).iter().any(|t| t == want)
    })?;
    ret(lua, hit)
}

/// The SDP of the message: the body when it is `application/sdp` (or has
/// no Content-Type), else none (multipart SDP is not looked into).
pub(super) fn sdp_text(m: &Message) -> Option<&str> {
    let ct = sdp::mime_of(content_type(m));
    if !(ct == "application/sdp" || ct.is_empty()) || m.body().is_empty() {
        return None;
    }
    m.text_at(m.body_range())
}

/// sipmsgops.c `is_audio_on_hold_f`: the first audio stream on hold; its
/// kind is the second result (1: c=0.0.0.0, RFC 2543; 2: sendonly or
/// inactive, RFC 3264).
pub fn is_audio_on_hold(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let code = with_msg(st, a.fname, |m| {
        sdp_text(m)
            .map(sdp::streams)
            .unwrap_or_default()
            .iter()
            .find(|s| s.media == "audio" && s.hold() > 0)
            .map_or(-1, |s| s.hold() as i64)
    })?;
    ret_code(lua, code)
}

/// codecs.c `handle_streams`: the streams are looked at last first (the
/// order of OpenSIPS's SDP list), media and optionally transport matched
/// as `CMD_PARAM_REGEX` (case-insensitive).
fn find_stream(m: &Message, a: &Args) -> mlua::Result<Option<std::ops::Range<usize>>> {
    let media = posix(&a.str(0)?, Posix::PARAM).map_err(|e| a.err(e))?;
    let transport = match a.opt_str(1)? {
        Some(t) => Some(posix(&t, Posix::PARAM).map_err(|e| a.err(e))?),
        None => None,
    };
    let Some(text) = sdp_text(m) else {
        return Ok(None);
    };
    let base = m.body_range().start;
    Ok(sdp::streams(text)
        .into_iter()
        .rev()
        .filter(|s| !m.is_removed(base + s.range.start..base + s.range.end))
        .find(|s| {
            media.is_match(&s.media) && transport.as_ref().is_none_or(|t| t.is_match(&s.transport))
        })
        .map(|s| base + s.range.start..base + s.range.end))
}

pub fn stream_exists(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let found = {
        let call = st.call.borrow();
        let m = call
            .msg
            .as_ref()
            .ok_or_else(|| a.err("no message in this route"))?;
        find_stream(m, &a)?.is_some()
    };
    ret(lua, found)
}

/// Deletes the stream's lines, `m=` to the next `m=` (Content-Length
/// follows when the message is written).
pub fn stream_delete(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let mut call = st.call.borrow_mut();
    let m = msg_mut(&mut call, &a)?;
    let Some(r) = find_stream(m, &a)? else {
        return ret(lua, false);
    };
    ret(lua, m.replace_at(r, String::new()).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mime_args() {
        assert_eq!(check_mime("Application/SDP").unwrap(), "application/sdp");
        assert!(check_mime("multipart/mixed").is_ok());
        assert!(check_mime("sdp").is_err());
        assert!(check_mime("application/sdp,text/plain").is_err());
    }
}
