//! Core functions about how a message leaves and what the script traces
//! (OpenSIPS 3.4 `core_cmds.c`): `set_advertised_address`,
//! `set_advertised_port`, `force_tcp_alias`, `script_trace`.

use mlua::{Lua, MultiValue};

use crate::modules::Module;
use crate::script::api::pv_fmt;
use crate::script::exports::{ret, Args, Export, Func};
use crate::script::host::State;
use crate::script::route::RouteMask;

/// `set_advertised_address(addr)`: the host our Via and Record-Route name
/// for this message instead of the sending socket's (OpenSIPS keeps it in
/// the message as `set_global_address`). An empty value goes back to the
/// socket's.
fn set_advertised_address(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let addr = pv_fmt(lua, st, &a.str(0)?)?;
    let addr = addr.trim();
    if addr.contains(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | ';' | ',' | '@')) {
        return Err(a.err(format!("'{addr}' is not a host")));
    }
    st.call.borrow_mut().adv_address = (!addr.is_empty()).then(|| addr.to_string());
    ret(lua, true)
}

/// `set_advertised_port(port)`: the port they name instead.
fn set_advertised_port(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let text = pv_fmt(lua, st, &a.str(0)?)?;
    let text = text.trim();
    let port = match text {
        "" => None,
        t => Some(
            t.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| a.err(format!("'{t}' is not a port")))?,
        ),
    };
    st.call.borrow_mut().adv_port = port;
    ret(lua, true)
}

/// `force_tcp_alias([port])`: accepted and true. OpenSIPS makes the TCP
/// connection of the request reachable under the Via's port too, so that
/// requests towards the client's advertised address reuse it; lunasip
/// answers over the connection a request came on and keeps no such alias.
fn force_tcp_alias(lua: &Lua, _st: &State, a: Args) -> mlua::Result<MultiValue> {
    if let Some(p) = a.opt_int(0)? {
        if !(1..=65535).contains(&p) {
            return Err(a.err(format!("{p} is not a port")));
        }
    }
    ret(lua, true)
}

/// `script_trace([level, format [, info]])`: logs `format` (expanded) at
/// `level` once, tagged with `info`; without arguments it does nothing.
/// OpenSIPS then also logs every script action it runs; a Lua route has no
/// such actions, so lunasip logs this one line (use `xlog` for more).
fn script_trace(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    if a.is_empty() {
        return ret(lua, true);
    }
    let n = a.int(0)?;
    let Some(level) = crate::logging::xlog_level(crate::logging::opensips_level_name(n)) else {
        return Err(a.err(format!("unknown log level {n}")));
    };
    let Some(fmt) = a.opt_str(1)? else {
        return Err(a.err("the format is missing"));
    };
    let text = pv_fmt(lua, st, &fmt)?;
    let info = a.opt_str(2)?.unwrap_or_default();
    super::emit(st, level, &format!("script_trace: {info} {text}"));
    ret(lua, true)
}

pub static SENDING: Module = Module {
    name: "core (sending)",
    table: None,
    doc: "Core functions about what goes out for a message: advertised address and port, TCP aliases, script tracing.",
    exports: &[
        Export {
            name: "set_advertised_address",
            args: "(address)",
            returns: "true",
            routes: RouteMask::ANY,
            doc: "Names `address` (pseudo-variables expanded) instead of the sending socket's address in the Via and Record-Route of what this message sends (the inbound entry of a double Record-Route keeps the receiving socket's). Replies and in-dialog requests come back to that name: list it in `config.alias` so lunasip knows it is itself.",
            func: Func::Sync(set_advertised_address),
        },
        Export {
            name: "set_advertised_port",
            args: "(port)",
            returns: "true",
            routes: RouteMask::ANY,
            doc: "Names `port` instead of the sending socket's port in the Via and Record-Route of what this message sends.",
            func: Func::Sync(set_advertised_port),
        },
        Export {
            name: "force_tcp_alias",
            args: "([port])",
            returns: "true",
            routes: RouteMask::ANY,
            doc: "Accepted for OpenSIPS scripts, does nothing: lunasip answers over the TCP connection a request came on, and does not map the client's Via port onto that connection.",
            func: Func::Sync(force_tcp_alias),
        },
        Export {
            name: "script_trace",
            args: "([level, format [, info]])",
            returns: "true",
            routes: RouteMask::ANY,
            doc: "Logs `format` (pseudo-variables expanded) once at OpenSIPS log level `level`, prefixed with `info`; without arguments it does nothing. OpenSIPS goes on to log each script action; a Lua route has none, so use `xlog` where more is wanted.",
            func: Func::Sync(script_trace),
        },
    ],
    ..Module::NONE
};
