//! The event interface's surface (OpenSIPS core `evi`): MI
//! `event_subscribe`, `events_list`, `subscribers_list`, `raise_event`,
//! script `sip.raise_event` / `sip.subscribe_event`, and the `evi`
//! statistics. The registry and delivery are `crate::event`.

use mlua::{Lua, MultiValue, Value as Lua_};
use serde_json::{json, Map, Value};

use crate::event;
use crate::mi::{opt, req, Command, Ctx, Kind, MiError, Params};
use crate::modules::Module;
use crate::script::exports::{ret, Args, Export, Func};
use crate::script::host::State;
use crate::script::route::RouteMask;
use crate::stats::StatDecl;

/// `event_subscribe(event, socket [, expire])` (OpenSIPS
/// evi/event_interface.c `mi_event_subscribe`): expire defaults to 3600 s,
/// 0 unsubscribes.
fn mi_subscribe(_: &Ctx, p: &Params) -> Result<Value, MiError> {
    let ev = p.str("event").unwrap_or_default();
    let sock = p.str("socket").unwrap_or_default();
    let expire = p.int("expire").unwrap_or(event::DEFAULT_EXPIRE as i64);
    let expire = u64::try_from(expire).map_err(|_| MiError::params("expire must be >= 0"))?;
    event::subscribe(ev, sock, expire).map_err(|e| MiError::new(500, e))?;
    Ok(Value::from("OK"))
}

fn mi_events_list(_: &Ctx, _: &Params) -> Result<Value, MiError> {
    let list: Vec<Value> = event::declared()
        .into_iter()
        .enumerate()
        .map(|(i, n)| json!({"name": n, "id": i}))
        .collect();
    Ok(json!({ "Events": list }))
}

fn mi_subscribers_list(_: &Ctx, p: &Params) -> Result<Value, MiError> {
    let want = p.str("event");
    let mut by: Vec<(String, Vec<Value>)> = Vec::new();
    for (ev, sock, left) in event::subscribers() {
        if want.is_some_and(|w| w != ev) {
            continue;
        }
        let s = json!({"socket": sock, "expire": left.unwrap_or(0)});
        match by.iter_mut().find(|(e, _)| *e == ev) {
            Some((_, v)) => v.push(s),
            None => by.push((ev, vec![s])),
        }
    }
    let list: Vec<Value> = by
        .into_iter()
        .map(|(e, s)| json!({"name": e, "subscribers": s}))
        .collect();
    Ok(json!({ "Events": list }))
}

/// `raise_event(event [, params])`: params a JSON object .
fn mi_raise(_: &Ctx, p: &Params) -> Result<Value, MiError> {
    let ev = p.str("event").unwrap_or_default();
    let params = match p.value("params") {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    event::raise(ev, params).map_err(|e| MiError::new(500, e))?;
    Ok(Value::from("OK"))
}

/// A Lua table of name → string/number/boolean as event params.
fn lua_params(a: &Args, i: usize) -> mlua::Result<Map<String, Value>> {
    let mut m = Map::new();
    match a.vals.get(i) {
        None | Some(Lua_::Nil) => {}
        Some(Lua_::Table(t)) => {
            for pair in t.pairs::<String, Lua_>() {
                let (k, v) = pair.map_err(|_| a.err("params keys must be strings"))?;
                let v = match v {
                    Lua_::Integer(n) => Value::from(n),
                    Lua_::Number(n) => Value::from(n),
                    Lua_::Boolean(b) => Value::from(b),
                    Lua_::String(s) => Value::from(s.to_string_lossy()),
                    _ => return Err(a.err(format!("param {k}: not a string or number"))),
                };
                m.insert(k, v);
            }
        }
        Some(_) => return Err(a.err("params must be a table")),
    }
    Ok(m)
}

/// `raise_event(name [, params])` (OpenSIPS core): the script's own events
/// are declared by raising them; false when the name is bad.
fn raise_event(lua: &Lua, _: &State, a: Args) -> mlua::Result<MultiValue> {
    let name = a.str(0)?;
    let params = lua_params(&a, 1)?;
    if let Err(e) = event::declare_script_event(&name) {
        return Err(a.err(e));
    }
    let ok = event::raise(&name, params).is_ok();
    ret(lua, ok)
}

/// `subscribe_event(name, socket [, expire])` (OpenSIPS core, used from
/// startup_route); false with a log line for a bad socket or event.
fn subscribe_event(lua: &Lua, _: &State, a: Args) -> mlua::Result<MultiValue> {
    let name = a.str(0)?;
    let sock = a.str(1)?;
    let expire = a.opt_int(2)?.unwrap_or(0);
    let expire = u64::try_from(expire).map_err(|_| a.err("expire must be >= 0"))?;
    // OpenSIPS: a script subscription without expire never expires.
    let expire = if a.opt_int(2)?.is_none() {
        u64::MAX
    } else {
        expire
    };
    match event::subscribe(&name, &sock, expire) {
        Ok(()) => ret(lua, true),
        Err(e) => {
            tracing::warn!("subscribe_event: {e}");
            ret(lua, false)
        }
    }
}

pub static MODULE: Module = Module {
    name: "evi",
    table: None,
    doc: "The event interface (OpenSIPS core `evi`): raise and subscribe to events; subscribers get the OpenSIPS 3.x JSON-RPC notification on `udp:host:port`, `unix:/path` (datagram), `rabbitmq:[user[:password]@]host[:port]/[exchange=NAME?]routing_key`, `route:NAME` (runs `event_route.NAME`, `$param(name)`) or `flatstore:/path/file` (one line per event); `;format=text` at the end of a socket sends OpenSIPS 2.x's `name::value` text instead.",
    exports: &[
        Export {
            name: "raise_event",
            args: "(name [, params])",
            returns: "true if raised",
            routes: RouteMask::ANY,
            doc: "Raises the event `name` (a declared one, or the script's own, declared by raising it) with `params`, a table of names to strings or numbers. Subscribers and `event_route[name]` get it later, off this route: it never waits.",
            func: Func::Sync(raise_event),
        },
        Export {
            name: "subscribe_event",
            args: "(name, socket [, expire])",
            returns: "true if subscribed",
            routes: RouteMask::ANY,
            doc: "Subscribes `socket` (`udp:host:port`, `rabbitmq:…`) to the event `name` for `expire` seconds (for ever without it); false for an unknown event or a bad socket. Usually called from `startup_route`.",
            func: Func::Sync(subscribe_event),
        },
    ],
    mi: &[
        Command {
            name: "event_subscribe",
            help: "Subscribes a socket to an event",
            module: "evi",
            params: &[req("event", Kind::Str), req("socket", Kind::Str), opt("expire", Kind::Int)],
            result: "\"OK\"",
            handler: mi_subscribe,
        },
        Command {
            name: "events_list",
            help: "Lists the events that can be raised",
            module: "evi",
            params: &[],
            result: "{\"Events\": [{\"name\", \"id\"}]}",
            handler: mi_events_list,
        },
        Command {
            name: "subscribers_list",
            help: "Lists the subscribers of every event, or of one",
            module: "evi",
            params: &[opt("event", Kind::Str)],
            result: "{\"Events\": [{\"name\", \"subscribers\": [{\"socket\", \"expire\"}]}]}",
            handler: mi_subscribers_list,
        },
        Command {
            name: "raise_event",
            help: "Raises an event with parameters",
            module: "evi",
            params: &[req("event", Kind::Str), opt("params", Kind::Object)],
            result: "\"OK\"",
            handler: mi_raise,
        },
    ],
    stats: &[
        StatDecl::counter("sent", &event::SENT, "Events delivered to subscribers."),
        StatDecl::counter(
            "dropped",
            &event::DROPPED,
            "Events not delivered or not confirmed: a full queue, a broker that is down, a send error (a message whose broker ack was lost with its connection counts here).",
        ),
    ],
    ..Module::NONE
};
