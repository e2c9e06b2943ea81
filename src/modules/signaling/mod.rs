//! signaling (OpenSIPS module of the same name): `send_reply`, a reply
//! that is stateful when the request has a transaction and stateless
//! otherwise, so a script need not know whether tm took the request.
//!
//! OpenSIPS 3.4 `modules/signaling/signaling.c`: `sig_send_reply_mod`
//! asks tm for the transaction of the message (`t_gett`); with one it
//! answers through `t_reply` (the transaction keeps the reply and sends it
//! again to a retransmission), without one (none created yet, `T_UNDEFINED`)
//! through sl. The code must be 100..699 (its fixup refuses others at
//! startup); the result is 1 when sent, -1 otherwise.

use mlua::{Lua, MultiValue};

use crate::modules::Module;
use crate::proxy::{reply, tm::relay};
use crate::script::exports::{ret, Args, Export, Func};
use crate::script::host::State;
use crate::script::route::RouteMask;

/// `send_reply(code, reason)`: the code and reason are checked as
/// `sl_send_reply` checks them; the reason expands pseudo-variables.
fn send_reply(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let code = a.int(0)?;
    let reason = a.str(1)?;
    if !(100..=699).contains(&code) {
        return Err(a.err(format!("code {code} is not a SIP status code (100-699)")));
    }
    if reason.contains(['\r', '\n']) {
        return Err(a.err("the reason phrase cannot contain line breaks"));
    }
    let reason = crate::script::api::pv_fmt(lua, st, &reason)?;
    if reason.contains(['\r', '\n']) {
        return Err(a.err("the reason phrase cannot contain line breaks"));
    }
    let code = code as u16;
    let stateful = st.call.borrow().tm.txn.is_some();
    let sent = if stateful {
        relay::t_reply(st, code, &reason).map_err(|e| a.err(e))?
    } else {
        reply::send_local_reply(st, code, &reason)
    };
    ret(lua, sent)
}

pub static MODULE: Module = Module {
    name: "signaling",
    table: Some("signaling"),
    doc: "Replies that are stateful when a transaction exists, stateless otherwise (OpenSIPS signaling).",
    exports: &[Export {
        name: "send_reply",
        args: "(code, reason)",
        returns: "true if sent",
        routes: RouteMask::REQUEST.or(RouteMask::ERROR).or(RouteMask::FAILURE),
        doc: "Replies to the current request: through its transaction when it has one (after `t_newtran`, a route that waited, a failure route), so a retransmission gets the same reply again from the transaction; statelessly as `sl.sl_send_reply` otherwise. `code` must be 100..699; `reason` may hold pseudo-variables (`\"Busy $fU\"`), no line breaks. Never answers an ACK.",
        func: Func::Sync(send_reply),
    }],
    ..Module::NONE
};
