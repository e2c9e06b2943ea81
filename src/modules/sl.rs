//! Stateless replies (OpenSIPS sl): `sip.sl.sl_send_reply`, `sl_reply_error`.

use mlua::{Lua, MultiValue};

use crate::proxy::reply;
use crate::script::exports::{ret, Args, Export, Func};
use crate::modules::{Module};
use crate::script::host::State;
use crate::script::route::RouteMask;
use crate::stats::{StatDecl, SL};

fn sl_send_reply(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let code = a.int(0)?;
    let reason = a.str(1)?;
    if !(100..=699).contains(&code) {
        return Err(a.err(format!("code {code} is not a SIP status code (100-699)")));
    }
    if reason.contains(['\r', '\n']) {
        return Err(a.err("the reason phrase cannot contain line breaks"));
    }
    let reason = crate::script::api::pv_fmt(lua, st, &reason)?;
    let sent = reply::send_local_reply(st, code as u16, &reason);
    ret(lua, sent)
}

fn sl_reply_error(lua: &Lua, st: &State, _a: Args) -> mlua::Result<MultiValue> {
    let (code, reason) = st
        .call
        .borrow()
        .last_error
        .unwrap_or((500, "Server Internal Error"));
    let sent = reply::send_local_reply(st, code, reason);
    ret(lua, sent)
}

pub static MODULE: Module = Module {
    name: "sl",
    table: Some("sl"),
    doc: "Stateless replies (OpenSIPS sl).",
    exports: &[
        Export {
            name: "sl_send_reply",
            args: "(code, reason)",
            returns: "true if sent",
            routes: RouteMask::REQUEST.or(RouteMask::FAILURE).or(RouteMask::ERROR),
            doc: "Sends a reply to the current request without keeping state (RFC 3261 §8.2.6). A reply from 180 on gets a To tag derived from the request, so a retransmission gets the same tag; 101–179 get none (as OpenSIPS). Never answers an ACK.",
            func: Func::Sync(sl_send_reply),
        },
        Export {
            name: "sl_reply_error",
            args: "()",
            returns: "true if sent",
            routes: RouteMask::REQUEST.or(RouteMask::FAILURE).or(RouteMask::ERROR),
            doc: "Replies with the code of the last internal error (e.g. 483 when Max-Forwards ran out, 482 on a loop, 400 for a bad destination), or 500.",
            func: Func::Sync(sl_reply_error),
        },
    ],
    stats: STATS,    ..Module::NONE
};

/// Replies this proxy sent itself (sl_send_reply, t_reply, automatic replies).
static STATS: &[StatDecl] = &[
    StatDecl::counter("sent_replies", &SL.sent_replies, "Replies sent by this proxy itself."),
    StatDecl::counter(
        "sent_err_replies",
        &SL.sent_err_replies,
        "Of those, replies with a code of 300 or more.",
    ),
    StatDecl::counter("1xx_replies", &SL.r1xx_replies, "Of those, provisional replies."),
    StatDecl::counter("2xx_replies", &SL.r2xx_replies, "Of those, 2xx replies."),
    StatDecl::counter("3xx_replies", &SL.r3xx_replies, "Of those, 3xx replies."),
    StatDecl::counter("4xx_replies", &SL.r4xx_replies, "Of those, 4xx replies."),
    StatDecl::counter("5xx_replies", &SL.r5xx_replies, "Of those, 5xx replies."),
    StatDecl::counter("6xx_replies", &SL.r6xx_replies, "Of those, 6xx replies."),
    StatDecl::counter(
        "received_ACKs",
        &SL.received_acks,
        "ACKs of replies sent statelessly, dropped before the script (OpenSIPS sl `sl_filter_ACK`).",
    ),
];
