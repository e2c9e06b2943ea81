//! rabbitmq (OpenSIPS 3.4 module of the same name): `rabbitmq_publish`
//! from any route to the brokers named by `server_id`. Publishing is
//! queued to the delivery thread (`crate::event::rabbit`): a route never
//! waits for the broker, and a broker that is down makes the call return
//! false at once, as OpenSIPS's failed reconnect does.

mod servers;

use mlua::{Lua, MultiValue, Value as Lua_};

use crate::event::rabbit::{HeaderValue, Message};
use crate::modules::{cfg, param, Module, ParamKind};
use crate::pv::Value;
use crate::script::api::pv_fmt;
use crate::script::exports::{ret, Args, Export, Func};
use crate::script::host::State;
use crate::script::route::RouteMask;
use crate::stats::{stat_group, StatDecl};

const M: &str = "rabbitmq";

stat_group! {
    /// Messages of `rabbitmq_publish`, declared in [`MODULE`]'s `stats`.
    pub struct Rabbitmq: "rabbitmq" {
        published,
        dropped,
    }
}

pub static RABBITMQ: Rabbitmq = Rabbitmq::new();

/// `config.modules.rabbitmq`, read and checked, not applied.
#[derive(Debug, Clone, Default)]
pub struct Prepared(Vec<servers::Server>);

/// Reads `server_id` (one definition or a list) and `use_tls`.
pub fn prepare(modules: &mlua::Table) -> Result<Prepared, String> {
    let Some(t) = cfg::table(modules, M)? else {
        return Ok(Prepared::default());
    };
    if cfg::int(&t, M, "use_tls")?.unwrap_or(0) != 0 {
        return Err(format!("config.modules.{M}.use_tls: TLS to the broker is not supported"));
    }
    let specs: Vec<String> = match t.get::<Lua_>("server_id").map_err(|e| e.to_string())? {
        Lua_::Nil => Vec::new(),
        Lua_::String(s) => vec![s.to_string_lossy()],
        Lua_::Table(list) => list
            .sequence_values::<String>()
            .collect::<Result<_, _>>()
            .map_err(|_| format!("config.modules.{M}.server_id must be a list of strings"))?,
        other => {
            return Err(format!(
                "config.modules.{M}.server_id must be a string or a list, not {}",
                other.type_name()
            ))
        }
    };
    let mut list: Vec<servers::Server> = Vec::new();
    for s in specs {
        let s = servers::parse(&s).map_err(|e| format!("config.modules.{M}.{e}"))?;
        if list.iter().any(|x| x.id == s.id) {
            return Err(format!(
                "config.modules.{M}.server_id: [{}] is defined twice",
                s.id
            ));
        }
        list.push(s);
    }
    Ok(Prepared(list))
}

impl Prepared {
    /// Starts (or keeps) a publisher per server.
    pub fn commit(self) {
        servers::install(self.0);
    }
}

/// Header names or values: an `"$avp(name)"` spec (all its values, newest
/// first, as OpenSIPS walks them) or a Lua list.
fn header_list(st: &State, a: &Args, i: usize) -> mlua::Result<Option<Vec<HeaderValue>>> {
    let conv = |v: &Value| match v {
        Value::Int(n) => i32::try_from(*n)
            .map(HeaderValue::Int)
            .unwrap_or_else(|_| HeaderValue::Str(n.to_string())),
        other => HeaderValue::Str(other.to_string()),
    };
    match a.vals.get(i) {
        None | Some(Lua_::Nil) => Ok(None),
        Some(Lua_::Table(t)) => {
            let mut out = Vec::new();
            for v in t.clone().sequence_values::<Lua_>() {
                out.push(match v? {
                    Lua_::Integer(n) => conv(&Value::Int(n)),
                    Lua_::String(s) => HeaderValue::Str(s.to_string_lossy()),
                    Lua_::Number(n) => HeaderValue::Str(n.to_string()),
                    other => {
                        return Err(a.err(format!("header lists hold strings or integers, not {}", other.type_name())))
                    }
                });
            }
            Ok(Some(out))
        }
        Some(_) => {
            let spec = a.str(i)?;
            let name = spec
                .trim()
                .strip_prefix("$avp(")
                .and_then(|s| s.strip_suffix(')'))
                .ok_or_else(|| a.err(format!("argument {}: {spec:?} is not an $avp", i + 1)))?;
            let call = st.call.borrow();
            Ok(Some(
                call.avps
                    .get(name)
                    .map(|l| l.iter().map(conv).collect())
                    .unwrap_or_default(),
            ))
        }
    }
}

/// `rabbitmq_publish(server_id, routing_key, message [, content_type
/// [, headers, headers_vals]])` (rabbitmq.c `rmq_publish`): 1 when queued,
/// -1 for an unknown server, headers without values (or the reverse), a
/// broker that is down or a full queue.
fn rabbitmq_publish(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let id = a.str(0)?;
    let Some(p) = servers::get(&id) else {
        tracing::error!("rabbitmq_publish: no server_id [{id}]");
        return ret(lua, false);
    };
    let routing_key = pv_fmt(lua, st, &a.str(1)?)?;
    let body = pv_fmt(lua, st, &a.str(2)?)?;
    let content_type = match a.opt_str(3)? {
        Some(c) if !c.is_empty() => Some(pv_fmt(lua, st, &c)?),
        _ => None,
    };
    let headers = match (header_list(st, &a, 4)?, header_list(st, &a, 5)?) {
        (None, None) => Vec::new(),
        (Some(names), Some(vals)) => {
            if names.len() != vals.len() {
                tracing::error!("rabbitmq_publish: names and values number mismatch");
            }
            names
                .into_iter()
                .zip(vals)
                .map(|(n, v)| {
                    let n = match n {
                        HeaderValue::Str(s) => s,
                        HeaderValue::Int(i) => i.to_string(),
                    };
                    (n, v)
                })
                .collect()
        }
        _ => {
            tracing::error!("rabbitmq_publish: header names and values go together");
            return ret(lua, false);
        }
    };
    if !p.is_up() {
        tracing::warn!("rabbitmq_publish: [{id}] is not connected; message dropped");
        RABBITMQ.dropped.inc();
        return ret(lua, false);
    }
    let ok = p.publish(Message {
        routing_key: routing_key.into(),
        body: body.into(),
        content_type: content_type.map(std::borrow::Cow::Owned),
        headers,
    });
    ret(lua, ok)
}

pub static MODULE: Module = Module {
    name: M,
    table: Some(M),
    doc: "Publishes AMQP messages to RabbitMQ from any route (OpenSIPS rabbitmq). Messages are queued and sent off the workers; a broker outage costs dropped messages, counted, never a wait.",
    exports: &[Export {
        name: "rabbitmq_publish",
        args: "(server_id, routing_key, message [, content_type [, headers, headers_vals]])",
        returns: "true if queued",
        routes: RouteMask::ANY,
        doc: "Publishes `message` (pseudo-variables expanded) with `routing_key` to the exchange of the server `server_id`. `headers`/`headers_vals`: AMQP headers as two `\"$avp(name)\"` specs (all values, newest first, as OpenSIPS) or two Lua lists; an integer value goes as a 32-bit integer. False for an unknown server, a broker that is not connected, or a full queue.",
        func: Func::Sync(rabbitmq_publish),
    }],
    stats: &[
        StatDecl::counter("published", &RABBITMQ.published, "Messages the broker took."),
        StatDecl::counter("dropped", &RABBITMQ.dropped, "Messages not published: broker down, queue full, publish failed."),
    ],
    params: &[
        param("server_id", ParamKind::Table, "none", "Brokers, one string each as OpenSIPS's modparam: `\"[ID1] uri = amqp://user:pass@host:port/vhost; exchange = x; heartbeat = 5; frames = 131072; retries = 2; immediate; mandatory; non-persistent\"`."),
        param("use_tls", ParamKind::Int, "0", "Must stay 0: TLS to the broker (amqps) is not supported."),
    ],
    setup: Some(|m| crate::modules::settings(prepare(m))),
    ..Module::NONE
};

impl crate::modules::Settings for Prepared {
    fn commit(
        self: Box<Self>,
        _: &[crate::config::Listen],
        _: &mut crate::state::Staged,
    ) -> Result<(), crate::modules::SettingsError> {
        Prepared::commit(*self);
        Ok(())
    }
}
