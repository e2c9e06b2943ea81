//! Everyday message functions (OpenSIPS sipmsgops, checked against
//! modules/sipmsgops/*.c of OpenSIPS 3.4). They sit on `sip` itself.
//!
//! Changes are recorded as edits and written when the message is sent;
//! later reads in the route see the message as received (as OpenSIPS's
//! lumps), except the R-URI. `sip.msg_apply_changes()` makes every change
//! visible (docs/message-changes.md).
//!
//! Files: `hf.rs` headers and replies (the argument checks are in
//! `sip::args`, shared with `lunasip check`), `uri.rs` R-URI parameters,
//! `body.rs` body and SDP streams, `codecs.rs` SDP payload types,
//! `parts.rs` body parts, `misc.rs` the rest (append_time, list headers…),
//! `validate.rs` sipmsg_validate.

use mlua::{IntoLua, Lua, MultiValue};

use crate::modules::Module;
use crate::proxy::context::Call;
use crate::script::exports::{ret, Args, Export, Func};
use crate::script::host::State;
use crate::script::route::RouteMask;
use crate::sip::Message;

pub mod body;
mod codecs;
pub mod hf;
mod misc;
mod parts;
pub mod uri;
mod validate;

/// The message of the call, or an error naming the function.
pub(crate) fn msg_mut<'c>(call: &'c mut Call, a: &Args) -> mlua::Result<&'c mut Message> {
    call.msg
        .as_mut()
        .ok_or_else(|| a.err("no message in this route"))
}

/// `true`/`false` by the sign of OpenSIPS's code, and the code.
pub(crate) fn ret_code(lua: &Lua, code: i64) -> mlua::Result<MultiValue> {
    Ok(MultiValue::from_iter([
        (code > 0).into_lua(lua)?,
        code.into_lua(lua)?,
    ]))
}

/// Re-reads the message with every change made so far applied: later
/// header, body and pseudo-variable reads see the new text.
fn msg_apply_changes(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let mut call = st.call.borrow_mut();
    let m = msg_mut(&mut call, &a)?;
    if !m.has_edits() {
        return ret(lua, true);
    }
    match m.applied() {
        Ok(new) => {
            *m = new;
            ret(lua, true)
        }
        Err(e) => Err(a.err(format!("the changed message does not parse: {e}"))),
    }
}

const MSG: RouteMask = RouteMask::MSG;
const RURI: RouteMask = RouteMask::REQ;

macro_rules! export {
    ($name:literal, $args:literal, $ret:literal, $routes:expr, $doc:literal, $f:expr) => {
        Export {
            name: $name,
            args: $args,
            returns: $ret,
            routes: $routes,
            doc: $doc,
            func: Func::Sync($f),
        }
    };
}

pub static MODULE: Module = Module {
    name: "sipmsgops",
    table: None,
    doc: "Message inspection and edits (OpenSIPS sipmsgops). Changes reach the wire when the message is sent; later reads see the message as received until `sip.msg_apply_changes()` (see docs/message-changes.md).",
    exports: &[
        export!("is_method", "(methods)", "boolean", MSG,
            "Whether the method (for a reply, the CSeq method) is one of `methods`, `|`-separated (`\"INVITE|ACK\"`). Known methods compare by id and case-insensitively; a single unknown name by name; a list may hold known methods only (an error otherwise).",
            hf::is_method),
        export!("has_totag", "()", "boolean", MSG,
            "Whether the To header has a tag (an in-dialog request).",
            hf::has_totag),
        export!("append_hf", "(text [, header])", "true if added", MSG,
            "Adds `text` (header lines, pseudo-variables expanded) after the last header, or after the first `header` when given and present. A missing final CRLF is added; text that is not header lines is an error.",
            hf::append_hf),
        export!("insert_hf", "(text [, header])", "true if added", MSG,
            "Adds `text` (header lines, pseudo-variables expanded) before the first header, or before the first `header` when given and present.",
            hf::insert_hf),
        export!("remove_hf", "(name)", "true if at least one was removed", MSG,
            "Removes every header with this name (full or compact form).",
            hf::remove_hf),
        export!("remove_hf_re", "(regex)", "true if at least one was removed", MSG,
            "Removes every header whose name matches the POSIX regular expression (case-insensitive, unanchored).",
            hf::remove_hf_re),
        export!("remove_hf_glob", "(pattern)", "true if at least one was removed", MSG,
            "Removes every header whose name matches the shell pattern (`*`, `?`, `[...]`), case-insensitive.",
            hf::remove_hf_glob),
        export!("is_present_hf", "(name)", "boolean", MSG,
            "Whether a header with this name (full or compact form) is present.",
            hf::is_present_hf),
        export!("append_to_reply", "(text)", "true", RouteMask::REQUEST.or(RouteMask::FAILURE).or(RouteMask::BRANCH).or(RouteMask::ERROR),
            "Adds header lines (pseudo-variables expanded) to every reply lunasip itself sends for this request (sl, tm).",
            hf::append_to_reply),
        export!("change_reply_status", "(code, reason)", "boolean, code", RouteMask::ONREPLY,
            "Changes the status of the reply being relayed; the class of a 1xx or 2xx reply cannot change, and a negative one cannot become 1xx/2xx. Later reads of `$rs` see the new code.",
            hf::change_reply_status),
        export!("ruri_has_param", "(name [, value])", "boolean", RURI,
            "Whether the current R-URI has the parameter; without `value` it must have no value, with it that value (exact).",
            uri::ruri_has_param),
        export!("ruri_add_param", "(param)", "true", RURI,
            "Appends `;param` to the current R-URI's parameters.",
            uri::ruri_add_param),
        export!("ruri_del_param", "(name)", "true if removed", RURI,
            "Removes the parameter from the current R-URI.",
            uri::ruri_del_param),
        export!("is_uri_user_e164", "(uri)", "boolean", RouteMask::REQUEST.or(RouteMask::FAILURE).or(RouteMask::LOCAL),
            "Whether the user of `uri` (pseudo-variables expanded, `\"$fu\"`) is E.164: `+` and 2 to 15 digits.",
            uri::is_uri_user_e164),
        export!("has_body", "([mime])", "boolean", MSG,
            "Whether the message has a body; with `mime` (`\"application/sdp\"`), a body part of that type.",
            body::has_body),
        export!("has_body_part", "([mime])", "boolean", MSG,
            "The same as `has_body` (OpenSIPS's alias).",
            body::has_body),
        export!("is_audio_on_hold", "()", "boolean, kind", MSG,
            "Whether an audio stream of the SDP is on hold; the kind is 1 for `c=0.0.0.0` (RFC 2543), 2 for `a=sendonly`/`a=inactive` (RFC 3264).",
            body::is_audio_on_hold),
        export!("stream_exists", "(media [, transport])", "boolean", MSG,
            "Whether an SDP stream's media (and transport) match the regular expressions (case-insensitive).",
            body::stream_exists),
        export!("stream_delete", "(media [, transport])", "true if deleted", MSG,
            "Removes the last SDP stream whose media (and transport) match, `m=` line to the next; Content-Length follows.",
            body::stream_delete),
        export!("codec_exists", "(name [, clock])", "boolean, code", MSG,
            "Whether a stream of the SDP offers a payload type with this encoding name (case-insensitive; OpenSIPS 3.4 compares the name only, the clock just skips payload types without one).",
            codecs::codec_exists),
        export!("codec_exists_re", "(regex)", "boolean, code", MSG,
            "Whether a payload type's encoding name matches the regular expression (case-insensitive).",
            codecs::codec_exists_re),
        export!("codec_delete", "(name [, clock])", "boolean, code", MSG,
            "Removes the payload types with this name (and clock) from every stream, with their `a=rtpmap`/`a=fmtp`/`a=name:PT` lines; a stream left empty gets port 0.",
            codecs::codec_delete),
        export!("codec_delete_re", "(regex)", "boolean, code", MSG,
            "Removes the payload types whose encoding name matches.",
            codecs::codec_delete_re),
        export!("codec_delete_except_re", "(regex)", "boolean, code", MSG,
            "Removes the payload types whose encoding name does not match.",
            codecs::codec_delete_except_re),
        export!("codec_move_up", "(name [, clock])", "boolean, code", MSG,
            "Moves the payload types with this name (and clock) to the front of their stream's list.",
            codecs::codec_move_up),
        export!("codec_move_up_re", "(regex)", "boolean, code", MSG,
            "Moves the payload types whose encoding name matches to the front.",
            codecs::codec_move_up_re),
        export!("codec_move_down", "(name [, clock])", "boolean, code", MSG,
            "Moves the payload types with this name (and clock) to the end of their stream's list.",
            codecs::codec_move_down),
        export!("codec_move_down_re", "(regex)", "boolean, code", MSG,
            "Moves the payload types whose encoding name matches to the end.",
            codecs::codec_move_down_re),
        export!("add_body_part", "(body, mime [, headers])", "boolean, code", MSG,
            "Adds a body part (pseudo-variables expanded): the body when there was none (Content-Type set, `headers` added with it), else a part of a `multipart/mixed` body (boundary `OSS-unique-boundary-42`, as OpenSIPS). Content-Length follows.",
            parts::add_body_part),
        export!("remove_body_part", "([mime [, \"revert\"]])", "boolean, code", MSG,
            "Removes the body parts of this type (all without one; with `\"revert\"` those of another type). A body left with one part of a multipart becomes that part; one left empty loses Content-Type.",
            parts::remove_body_part),
        export!("append_time", "()", "true", RouteMask::REQUEST.or(RouteMask::FAILURE).or(RouteMask::BRANCH).or(RouteMask::LOCAL),
            "Adds a `Date:` header (now, GMT) to every reply lunasip builds for this request.",
            misc::append_time),
        export!("append_urihf", "(prefix, suffix)", "true if added", RouteMask::REQUEST.or(RouteMask::FAILURE).or(RouteMask::BRANCH),
            "Adds the header `prefix` + the R-URI as received + `suffix` after the last header.",
            misc::append_urihf),
        export!("ruri_tel2sip", "()", "boolean, code", RURI,
            "Turns a `tel:` R-URI into `sip:NUMBER@<From host>;user=phone`; other R-URIs stay (true).",
            misc::ruri_tel2sip),
        export!("is_privacy", "(value)", "boolean", MSG,
            "Whether the Privacy header holds `value` (user, header, session, none, critical, id, history).",
            misc::is_privacy),
        export!("list_hdr_has_option", "(header, option)", "boolean", MSG,
            "Whether a comma-list header (`Supported`, `Allow`…) holds `option`, case-insensitive.",
            misc::list_hdr_has_option),
        export!("list_hdr_add_option", "(header, option)", "true if added", MSG,
            "Adds `option` to the first instance of the header (a missing header is not added, as OpenSIPS).",
            misc::list_hdr_add_option),
        export!("list_hdr_remove_option", "(header, option)", "true if removed", MSG,
            "Removes `option` from every instance of the header; an instance left empty is removed.",
            misc::list_hdr_remove_option),
        export!("get_glob_headers_values", "(pattern, names_avp, values_avp)", "true if one matched", MSG,
            "Adds the name and value of every header whose name matches the shell pattern to the two `$avp`s.",
            misc::get_glob_headers_values),
        export!("get_updated_body_part", "([mime,] var)", "boolean, code", MSG,
            "Writes the body with every change made so far (or only its part of type `mime`; code -2 when there is none) into `var`.",
            misc::get_updated_body_part),
        export!("sipmsg_validate", "([flags [, reason_pv]])", "boolean, code", RouteMask::REQUEST.or(RouteMask::ONREPLY).or(RouteMask::FAILURE).or(RouteMask::BRANCH),
            "Checks the message against RFC 3261 (Call-ID, CSeq, From, To, Via, Max-Forwards, Content-Length and Content-Type, reply headers such as Allow on a 405). Flags: `s` SDP, `h` every header, `m` no Max-Forwards check, `r` R-URI, `t` To, `f` From, `c` Contact. The code is OpenSIPS's (-3 no Call-ID … -30 bad `Contact: *`); the reason goes to `reason_pv`.",
            validate::sipmsg_validate),
        export!("msg_apply_changes", "()", "true", MSG,
            "Applies every change made so far: later reads (headers, body, pseudo-variables, textops searches) see the new message. Not in OpenSIPS 3.4 (Kamailio textopsx has it); see docs/message-changes.md.",
            msg_apply_changes),
    ],
    ..Module::NONE
};
