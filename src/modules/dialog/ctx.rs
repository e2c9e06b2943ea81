//! The dialog as a script's context beyond its own requests (OpenSIPS 3.4
//! dialog.c): `load_dialog_ctx` / `unload_dialog_ctx` make another
//! dialog the current one; `dlg_on_answer`, `dlg_on_timeout` and
//! `dlg_on_hangup` name a `route` run with the dialog as context on
//! those events (by the dialog timer task of the first worker, with no
//! message); `dlg_send_sequential` sends an in-dialog request.

use mlua::{Lua, MultiValue};

use super::lua::current;
use super::machine::CallDlg;
use super::store::{self, lock, CALLEE, CALLER};
use super::timer::{self, Job};
use crate::script::exports::{ret, Args};
use crate::script::host::State;
use crate::script::route::RouteType;

/// load_dialog_ctx(id, [mode]): `mode` `callid` (default) or `did`.
pub(super) fn load_dialog_ctx(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let id = crate::script::api::pv_fmt(lua, st, &a.str(0)?)?;
    let by_did = match a.opt_str(1)? {
        None => false,
        Some(m) if m.eq_ignore_ascii_case("callid") => false,
        Some(m) if m.eq_ignore_ascii_case("did") => true,
        Some(m) => return Err(a.err(format!("dialog identifier '{m}' is not callid or did"))),
    };
    let mut call = st.call.borrow_mut();
    let slot = call.slot::<CallDlg>();
    if slot.loaded.is_some() {
        tracing::error!("{}: nested call (unload_dialog_ctx first)", a.fname);
        return ret(lua, false);
    }
    let t = store::table();
    let found = if by_did {
        t.by_did(&id)
    } else {
        t.by_callid(&id).into_iter().next()
    };
    let Some(d) = found else {
        return ret(lua, false);
    };
    slot.loaded = Some((slot.dlg.take(), slot.created));
    slot.dlg = Some(d);
    // Not this request's own: it must not end with the request.
    slot.created = false;
    ret(lua, true)
}

pub(super) fn unload_dialog_ctx(lua: &Lua, st: &State, _: Args) -> mlua::Result<MultiValue> {
    let mut call = st.call.borrow_mut();
    let slot = call.slot::<CallDlg>();
    let Some((dlg, created)) = slot.loaded.take() else {
        return ret(lua, false);
    };
    slot.dlg = dlg;
    slot.created = created;
    ret(lua, true)
}

/// Which of a dialog's routes a `dlg_on_*` sets.
#[derive(Clone, Copy)]
enum On {
    Answer,
    Timeout,
    Hangup,
}

/// Sets (with a name) or clears (without) one of the current dialog's
/// routes; false without a dialog or once it was answered.
fn set_route(lua: &Lua, st: &State, a: &Args, on: On) -> mlua::Result<MultiValue> {
    let name = a.opt_str(0)?;
    if let Some(n) = &name {
        let defined = crate::script::phases::phases_of(st)
            .is_some_and(|h| h.route(RouteType::Request, n).is_some());
        if !defined {
            return Err(a.err(format!("route.{n} is not defined")));
        }
    }
    let Some(d) = current(st) else {
        tracing::warn!("{}: no current dialog (create_dialog first)", a.fname);
        return ret(lua, false);
    };
    let mut d = lock(&d);
    if d.state > store::EARLY {
        tracing::warn!("{}: too late, the dialog is already established", a.fname);
        return ret(lua, false);
    }
    let slot = match on {
        On::Answer => &mut d.routes.answer,
        On::Timeout => &mut d.routes.timeout,
        On::Hangup => &mut d.routes.hangup,
    };
    *slot = name;
    ret(lua, true)
}

pub(super) fn dlg_on_answer(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    set_route(lua, st, &a, On::Answer)
}

pub(super) fn dlg_on_timeout(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    set_route(lua, st, &a, On::Timeout)
}

pub(super) fn dlg_on_hangup(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    set_route(lua, st, &a, On::Hangup)
}

/// dlg_send_sequential(method, leg, [body], [content_type], [headers]):
/// queued for the dialog timer task, which sends it as a local request
/// of tm (true when queued).
pub(super) fn dlg_send_sequential(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let method = a.str(0)?;
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(a.err(format!("'{method}' is not a SIP method")));
    }
    let leg = a.str(1)?;
    let leg = if leg.eq_ignore_ascii_case("caller") {
        CALLER
    } else if leg.eq_ignore_ascii_case("callee") {
        CALLEE
    } else {
        return Err(a.err(format!("leg '{leg}' is not caller or callee")));
    };
    let body = a.opt_str(2)?.unwrap_or_default();
    let ct = a.opt_str(3)?;
    let mut headers = a.opt_str(4)?.unwrap_or_default();
    if !headers.is_empty() && !headers.ends_with("\r\n") {
        headers.push_str("\r\n");
    }
    if !body.is_empty() && ct.is_none() {
        tracing::warn!("{}: a body without a content type", a.fname);
    }
    if let Some(ct) = &ct {
        headers.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    let Some(d) = current(st) else {
        tracing::warn!("{}: no current dialog", a.fname);
        return ret(lua, false);
    };
    if lock(&d).state == store::DELETED {
        return ret(lua, false);
    }
    let queued = timer::push(Job::Send {
        dlg: d,
        leg,
        method: method.to_ascii_uppercase(),
        headers,
        body,
    });
    ret(lua, queued)
}
