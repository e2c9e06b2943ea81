//! Core functions about how a message leaves and what the script traces
//! (OpenSIPS 3.4 `core_cmds.c`): `send`, `set_advertised_address`,
//! `set_advertised_port`, `force_send_socket`, `force_tcp_alias`, `script_trace`,
//! `get_timestamp`.

use mlua::{IntoLua, Lua, MultiValue};

use crate::modules::Module;
use crate::proxy::context::{Dest, OutKind, Outgoing, Value};
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

/// `force_send_socket(socket)` (OpenSIPS core_cmds.c `w_f_send_sock`):
/// what this message sends leaves from `[proto:]host[:port]`, one of our
/// listeners; the same as writing `$socket_out`.
fn force_send_socket(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let spec = pv_fmt(lua, st, &a.str(0)?)?;
    let id = st
        .env
        .sockets
        .by_spec(&spec)
        .map(|s| s.id)
        .ok_or_else(|| a.err(format!("'{spec}' is not a listening socket")))?;
    st.call.borrow_mut().socket_out = Some(id);
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

/// `send(destination [, headers])` (OpenSIPS core `w_send`): the message
/// as received, with `headers` put after its first line, sent statelessly
/// to `[proto:]host[:port]` with nothing else changed (no Via of ours):
/// what the script edited is not in it.
fn send(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let target = pv_fmt(lua, st, &a.str(0)?)?;
    let headers = match a.opt_str(1)? {
        Some(h) => pv_fmt(lua, st, &h)?,
        None => String::new(),
    };
    let headers = header_block(&headers).map_err(|e| a.err(e))?;
    let (proto, dest) = destination(&target).map_err(|e| a.err(e))?;
    let mut call = st.call.borrow_mut();
    let call = &mut *call;
    let m = call.msg.as_ref().ok_or_else(|| a.err("no message"))?;
    let raw = m.as_bytes();
    let line_end = raw
        .windows(2)
        .position(|w| w == b"\r\n")
        .map_or(raw.len(), |i| i + 2);
    let mut bytes = Vec::with_capacity(raw.len() + headers.len());
    bytes.extend_from_slice(&raw[..line_end]);
    bytes.extend_from_slice(headers.as_bytes());
    bytes.extend_from_slice(&raw[line_end..]);
    let towards = match &dest {
        Dest::Addr(addr) => addr.ip(),
        Dest::Name(_) => call.src.addr.ip(),
    };
    let Some(sock) = st
        .env
        .sockets
        .choose(proto, towards, call.socket_out, Some(call.src.socket))
    else {
        tracing::warn!("{}: no {} socket towards {towards}", a.fname, proto.as_str());
        return ret(lua, false);
    };
    let kind = match m.is_request() {
        true => OutKind::Request,
        false => OutKind::Reply,
    };
    call.outbox.push(Outgoing {
        bytes: bytes.into(),
        proto,
        dest,
        socket: sock.id,
        kind,
    });
    ret(lua, true)
}

/// `[proto:]host[:port]` (OpenSIPS `parse_phostport`) as transport and
/// destination; a name is located when sending.
fn destination(target: &str) -> Result<(crate::transport::Proto, Dest), String> {
    let t = target.trim();
    let (proto, rest) = match t.split_once(':') {
        Some((p, rest)) if crate::transport::Proto::parse(p).is_some() && !p.is_empty() => {
            (Some(p), rest)
        }
        _ => (None, t),
    };
    if rest.is_empty() || rest.contains(['<', '>', ';', '@', ' ', '\r', '\n']) {
        return Err(format!("'{target}' is not [proto:]host[:port]"));
    }
    let uri = match proto {
        Some(p) => format!("sip:{rest};transport={p}"),
        None => format!("sip:{rest}"),
    };
    crate::proxy::dest::next_hop(&uri).map_err(|e| e.to_string())
}

/// Header lines to insert: each `Name: value`, ending in CRLF (one is
/// added when missing), no stray line break.
fn header_block(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Ok(String::new());
    }
    let mut out = String::with_capacity(text.len() + 2);
    for line in text.trim_end_matches("\r\n").split("\r\n") {
        let name = line.split(':').next().unwrap_or("");
        if !line.contains(':')
            || name.trim().is_empty()
            || name.contains(char::is_whitespace)
            || line.contains(['\r', '\n'])
        {
            return Err(format!("'{line}' is not a header line (Name: value)"));
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    Ok(out)
}

/// `get_timestamp(sec_var, usec_var)`: the time now as seconds and
/// microseconds since the epoch, returned and written to the variables
/// when given (OpenSIPS writes two AVPs).
fn get_timestamp(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let (sec, usec) = (now.as_secs() as i64, i64::from(now.subsec_micros()));
    for (i, v) in [(0, sec), (1, usec)] {
        if let Some(out) = a.opt_str(i)? {
            let spec = st.pv.borrow_mut().spec(&out).map_err(|e| a.err(e))?;
            crate::pv::set(&mut st.call.borrow_mut(), &spec, Value::Int(v))
                .map_err(|e| a.err(e))?;
        }
    }
    Ok(MultiValue::from_iter([
        sec.into_lua(lua)?,
        usec.into_lua(lua)?,
    ]))
}

pub static SENDING: Module = Module {
    name: "core (sending)",
    table: None,
    doc: "Core functions about what goes out for a message: `send`, the advertised address and port, TCP aliases; and script tracing and timestamps.",
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
            name: "force_send_socket",
            args: "(socket)",
            returns: "true",
            routes: RouteMask::ANY,
            doc: "What this message sends (stateless, `t_relay`, `send`) leaves from the listener `[proto:]host[:port]` (`\"tcp:10.0.0.2:5060\"`, pseudo-variables expanded; udp and 5060 when absent), as writing `$socket_out` does. A URI without `transport=` then goes over that listener's transport; a copy of another transport leaves from the listener of that transport on the same address and port, if any. Not a listener: an error naming the script line.",
            func: Func::Sync(force_send_socket),
        },
        Export {
            name: "send",
            args: "(destination [, headers])",
            returns: "true if queued",
            routes: RouteMask::ANY,
            doc: "Sends a copy of the message as received to `[proto:]host[:port]` (e.g. `\"udp:10.0.0.5:5060\"`, a name is located first), statelessly and without a Via of ours; `headers` (`\"X-Copy: 1\\r\\n\"`, pseudo-variables expanded) go after the first line. What the script changed in the message is not in the copy, as in OpenSIPS. The message itself goes on as before.",
            func: Func::Sync(send),
        },
        Export {
            name: "get_timestamp",
            args: "([sec_var, usec_var])",
            returns: "seconds, microseconds",
            routes: RouteMask::ANY,
            doc: "The time now since the epoch as seconds and microseconds; also written to `sec_var` and `usec_var` when given (`\"$avp(s)\"`), as OpenSIPS writes its two AVPs.",
            func: Func::Sync(get_timestamp),
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
