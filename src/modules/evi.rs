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
    event::raise(ev, &params).map_err(|e| MiError::new(500, e.to_string()))?;
    Ok(Value::from("OK"))
}

/// The script's params table (name → string, number or boolean), read in
/// place: keys and values are borrowed from Lua and written straight into
/// the payloads, in the table's `pairs` order.
struct LuaParams<'a> {
    lua: &'a Lua,
    table: Option<&'a mlua::Table>,
}

impl event::Params for LuaParams<'_> {
    fn visit(&self, f: &mut dyn FnMut(&str, event::Param<'_>)) -> Result<(), String> {
        use event::Param;
        let Some(t) = self.table else {
            return Ok(());
        };
        for pair in t.pairs::<Lua_, Lua_>() {
            let (k, v) = pair.map_err(|e| e.to_string())?;
            // Number keys go as text, as Lua's tostring writes them.
            let k = match k {
                Lua_::String(s) => s,
                k @ (Lua_::Integer(_) | Lua_::Number(_)) => match self.lua.coerce_string(k) {
                    Ok(Some(s)) => s,
                    _ => return Err("params keys must be strings".into()),
                },
                _ => return Err("params keys must be strings".into()),
            };
            let k = k.to_str().map_err(|_| "params keys must be strings")?;
            match v {
                Lua_::Integer(n) => f(&k, Param::Int(n)),
                Lua_::Number(n) => f(&k, Param::Num(n)),
                Lua_::Boolean(b) => f(&k, Param::Bool(b)),
                Lua_::String(s) => match s.to_str() {
                    Ok(v) => f(&k, Param::Str(&v)),
                    Err(_) => f(&k, Param::Str(&s.to_string_lossy())),
                },
                _ => return Err(format!("param {}: not a string or number", &*k)),
            }
        }
        Ok(())
    }
}

/// `raise_event(name [, params])` (OpenSIPS core): the script's own events
/// are declared by raising them. A bad name or parameter is an error.
fn raise_event(lua: &Lua, _: &State, a: Args) -> mlua::Result<MultiValue> {
    let name = a.str(0)?;
    let table = match a.vals.get(1) {
        None | Some(Lua_::Nil) => None,
        Some(Lua_::Table(t)) => Some(t),
        Some(_) => return Err(a.err("params must be a table")),
    };
    let params = LuaParams { lua, table };
    match event::raise_script(&name, &params) {
        Ok(()) => ret(lua, true),
        Err(e) => Err(a.err(e)),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::format;

    /// The map the script's table went through before it was read in
    /// place (keys and values converted as `sip.raise_event` did).
    fn as_map(t: &mlua::Table) -> Map<String, Value> {
        let mut m = Map::new();
        for pair in t.pairs::<String, Lua_>() {
            let (k, v) = pair.expect("pair");
            let v = match v {
                Lua_::Integer(n) => Value::from(n),
                Lua_::Number(n) => Value::from(n),
                Lua_::Boolean(b) => Value::from(b),
                Lua_::String(s) => Value::from(s.to_string_lossy()),
                other => panic!("{other:?}"),
            };
            m.insert(k, v);
        }
        m
    }

    /// Payloads written from the Lua table are byte for byte those of the
    /// map (and of serde_json's notification): escapes, UTF-8 and broken
    /// UTF-8, integers, floats, non-finite numbers, booleans, number keys.
    #[test]
    fn lua_tables_are_written_as_their_maps_were() {
        let lua = Lua::new();
        let t: mlua::Table = lua
            .load(
                r#"return { callid = "a\"b\\c\n\1\t", from = "sip:ü@x", n = 42, f = 1.5,
                  big = 1e300, tiny = -2.5e-8, inf = 1/0, nan = 0/0, yes = true, no = false,
                  [7] = "seven", [2.5] = "x", e = "", bad = "\255\254ok" }"#,
            )
            .eval()
            .expect("table");
        let p = LuaParams {
            lua: &lua,
            table: Some(&t),
        };
        let m = as_map(&t);
        assert_eq!(m.len(), 14);
        let ours = format::json("E_X", &p).expect("json");
        assert_eq!(ours, format::json("E_X", &m).expect("json"));
        let serde = serde_json::to_vec(&json!({"jsonrpc": "2.0", "method": "E_X", "params": m}))
            .expect("serde");
        assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&serde));
        assert_eq!(
            format::text("E_X", &p).expect("text"),
            format::text("E_X", &m).expect("text")
        );
        assert_eq!(
            format::flat_line("E_X", &p, ",", false).expect("flat"),
            format::flat_line("E_X", &m, ",", false).expect("flat")
        );
        let none = LuaParams {
            lua: &lua,
            table: None,
        };
        assert_eq!(
            format::json("E_Y", &none).expect("json"),
            br#"{"jsonrpc":"2.0","method":"E_Y","params":{}}"#
        );
    }

    #[test]
    fn lua_params_that_cannot_be_sent_are_errors() {
        let lua = Lua::new();
        for (src, want) in [
            ("return { f = print }", "param f: not a string or number"),
            ("return { [{}] = 1 }", "params keys must be strings"),
            ("return { [true] = 1 }", "params keys must be strings"),
        ] {
            let t: mlua::Table = lua.load(src).eval().expect("table");
            let p = LuaParams {
                lua: &lua,
                table: Some(&t),
            };
            let e = format::json("E_X", &p).expect_err(src);
            assert_eq!(e, want, "{src}");
        }
    }
}
