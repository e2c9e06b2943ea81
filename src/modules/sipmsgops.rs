//! Everyday message functions (OpenSIPS sipmsgops): is_method, has_totag,
//! append_hf, remove_hf, is_present_hf. They sit on `sip` itself.

use mlua::{Lua, MultiValue};

use super::with_msg;
use crate::script::api::pv_fmt;
use crate::script::exports::{ret, Args, Export, Func};
use crate::modules::{Module};
use crate::script::host::State;
use crate::script::route::RouteMask;

fn is_method(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let want = a.str(0)?;
    let hit = with_msg(st, a.fname, |m| {
        let method = m.method();
        want.split('|')
            .any(|w| w.trim().eq_ignore_ascii_case(method))
    })?;
    ret(lua, hit)
}

fn has_totag(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let hit = with_msg(st, a.fname, |m| m.to_tag().is_some_and(|t| !t.is_empty()))?;
    ret(lua, hit)
}

fn append_hf(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let fmt = a.str(0)?;
    if a.len() > 1 {
        return Err(a.err("the second argument (header to append after) is not supported yet"));
    }
    let mut text = pv_fmt(lua, st, &fmt)?;
    if text.is_empty() {
        return ret(lua, false);
    }
    if !text.ends_with("\r\n") {
        // A header without its CRLF would glue onto the blank line.
        if text.ends_with('\n') {
            text.pop();
        }
        text.push_str("\r\n");
    }
    let mut call = st.call.borrow_mut();
    let m = call
        .msg
        .as_mut()
        .ok_or_else(|| a.err("no message in this route"))?;
    m.append_header_raw(&text);
    ret(lua, true)
}

fn remove_hf(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let name = a.str(0)?;
    if a.len() > 1 {
        return Err(a.err("flags (regex/glob matching) are not supported yet"));
    }
    let mut call = st.call.borrow_mut();
    let m = call
        .msg
        .as_mut()
        .ok_or_else(|| a.err("no message in this route"))?;
    let n = m.remove_headers(&name);
    ret(lua, n > 0)
}

fn is_present_hf(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let name = a.str(0)?;
    let hit = with_msg(st, a.fname, |m| m.header(&name).is_some())?;
    ret(lua, hit)
}

pub static MODULE: Module = Module {
    name: "sipmsgops",
    table: None,
    doc: "Message inspection and header edits (OpenSIPS sipmsgops).",
    exports: &[
        Export {
            name: "is_method",
            args: "(methods)",
            returns: "boolean",
            routes: RouteMask::MSG,
            doc: "Whether the method is one of `methods`, `|`-separated (`\"INVITE|ACK\"`), case-insensitive. For a reply, the CSeq method.",
            func: Func::Sync(is_method),
        },
        Export {
            name: "has_totag",
            args: "()",
            returns: "boolean",
            routes: RouteMask::MSG,
            doc: "Whether the To header has a tag (an in-dialog request).",
            func: Func::Sync(has_totag),
        },
        Export {
            name: "append_hf",
            args: "(text)",
            returns: "true if added",
            routes: RouteMask::MSG,
            doc: "Appends `text` (pseudo-variables expanded) after the last header; a missing CRLF is added. Seen on the wire, not by later header reads.",
            func: Func::Sync(append_hf),
        },
        Export {
            name: "remove_hf",
            args: "(name)",
            returns: "true if at least one was removed",
            routes: RouteMask::MSG,
            doc: "Removes every header with this name (full or compact form).",
            func: Func::Sync(remove_hf),
        },
        Export {
            name: "is_present_hf",
            args: "(name)",
            returns: "boolean",
            routes: RouteMask::MSG,
            doc: "Whether a header with this name (full or compact form) is present.",
            func: Func::Sync(is_present_hf),
        },
    ],    ..Module::NONE
};
