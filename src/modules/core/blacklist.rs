//! The core's blacklist functions and MI commands (OpenSIPS `core_cmds.c`
//! `use_blacklist`…`del_blacklist_rule`, `blacklists.c` MI). The lists
//! live in `transport::blacklist`; `t_relay` and `forward` check them.

use mlua::{Lua, MultiValue};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

use crate::mi::{opt, req, Command, Ctx, Kind, MiError, Params};
use crate::modules::Module;
use crate::script::exports::{ret, Args, Export, Func};
use crate::script::host::State;
use crate::script::route::RouteMask;
use crate::transport::blacklist::{self as bl, List, Marker, Net, ProtoSel, Rule};

/// A list by name, or None for "all" (OpenSIPS `fixup_blacklist`).
fn list_or_all(a: &Args, name: &str) -> mlua::Result<Option<usize>> {
    if name.eq_ignore_ascii_case("all") {
        return Ok(None);
    }
    Ok(Some(named(a, name)?.0))
}

fn named(a: &Args, name: &str) -> mlua::Result<(usize, Arc<List>)> {
    bl::by_name(name).ok_or_else(|| a.err(format!("blacklist {name:?} is not configured")))
}

fn mark(lua: &Lua, st: &State, a: Args, on: bool) -> mlua::Result<MultiValue> {
    let list = list_or_all(&a, &a.str(0)?)?;
    st.call.borrow_mut().slot::<Marker>().set(list, on);
    ret(lua, true)
}

fn use_blacklist(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    mark(lua, st, a, true)
}

fn unuse_blacklist(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    mark(lua, st, a, false)
}

/// The rule the `(name, net, [port], [proto], [pattern])` arguments
/// describe (`!net` is a contrary rule).
fn rule_of(a: &Args) -> mlua::Result<Rule> {
    let net = a.str(1)?;
    let net = net.trim();
    let (contrary, net) = match net.strip_prefix('!') {
        Some(n) => (true, n.trim()),
        None => (false, net),
    };
    let port = a.opt_int(2)?.unwrap_or(0);
    let port = u16::try_from(port).map_err(|_| a.err(format!("bad port {port}")))?;
    Ok(Rule {
        contrary,
        proto: ProtoSel::from_arg(a.opt_str(3)?.as_deref()).map_err(|e| a.err(e))?,
        net: Net::parse(net).map_err(|e| a.err(e))?,
        port,
        pattern: a.opt_str(4)?.filter(|p| !p.is_empty()),
    })
}

/// `check_blacklist_rule(name, ip, [port], [proto], [pattern])`: true when
/// a rule of the list (or of the lists in use, for "all") matches.
fn check_blacklist_rule(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let list = list_or_all(&a, &a.str(0)?)?;
    let ip: std::net::IpAddr = a
        .str(1)?
        .trim()
        .parse()
        .map_err(|_| a.err("argument 2 must be an IP address"))?;
    let port = a.opt_int(2)?.unwrap_or(0);
    let port = u16::try_from(port).map_err(|_| a.err(format!("bad port {port}")))?;
    let proto = match ProtoSel::from_arg(a.opt_str(3)?.as_deref()).map_err(|e| a.err(e))? {
        ProtoSel::Is(p) => p,
        // Any (or one lunasip lacks) is checked as UDP; a rule naming a
        // transport then matches only that one, as in OpenSIPS.
        _ => crate::transport::Proto::Udp,
    };
    let text = a.opt_str(4)?.unwrap_or_default();
    let dst = std::net::SocketAddr::new(ip, port);
    let hit = match list {
        Some(i) => bl::lists()
            .get(i)
            .is_some_and(|l| l.matching(proto, dst, text.as_bytes()).is_some()),
        None => {
            let marker = crate::proxy::stateless::blacklists(&st.call.borrow());
            bl::blocked(marker, proto, dst, text.as_bytes()).is_some()
        }
    };
    ret(lua, hit)
}

fn add_blacklist_rule(lua: &Lua, _st: &State, a: Args) -> mlua::Result<MultiValue> {
    let (_, list) = named(&a, &a.str(0)?)?;
    let rule = rule_of(&a)?;
    let expire = match a.opt_int(5)? {
        None | Some(0) => None,
        Some(n) if n > 0 => Some(Duration::from_secs(n as u64)),
        Some(n) => return Err(a.err(format!("bad expire {n}"))),
    };
    match list.add(rule, expire) {
        Ok(()) => ret(lua, true),
        Err(e) => {
            tracing::error!("{}: {e}", a.fname);
            ret(lua, false)
        }
    }
}

fn del_blacklist_rule(lua: &Lua, _st: &State, a: Args) -> mlua::Result<MultiValue> {
    let (_, list) = named(&a, &a.str(0)?)?;
    let rule = rule_of(&a)?;
    match list.del(&rule) {
        Ok(found) => ret(lua, found),
        Err(e) => {
            tracing::error!("{}: {e}", a.fname);
            ret(lua, false)
        }
    }
}

/// One rule as OpenSIPS's MI prints it.
fn rule_json(e: &bl::Entry) -> Value {
    let r = &e.rule;
    let mut o = json!({
        "flags": u8::from(r.contrary),
        "IP": r.net.addr.to_string(),
        "Mask": r.net.mask().to_string(),
        "Proto": r.proto.name(),
        "Port": r.port,
    });
    if let Some(p) = &r.pattern {
        o["Match"] = json!(p);
    }
    if let Some(u) = e.until {
        o["Expire"] = json!(u.saturating_duration_since(std::time::Instant::now()).as_secs());
    }
    o
}

fn list_json(l: &List) -> Value {
    json!({
        "name": l.def.name,
        "owner": "script",
        "flags": l.def.flags.names(),
        "Rules": l.rules().iter().map(rule_json).collect::<Vec<_>>(),
    })
}

fn mi_head(p: &Params) -> Result<Arc<List>, MiError> {
    p.str("name")
        .and_then(bl::by_name)
        .map(|(_, l)| l)
        .ok_or_else(|| MiError::new(400, "Missing or bad blacklist name"))
}

fn mi_list_blacklists(_: &Ctx, p: &Params) -> Result<Value, MiError> {
    match p.str("name") {
        Some(n) => bl::by_name(n)
            .map(|(_, l)| list_json(&l))
            .ok_or_else(|| MiError::new(404, "Unknown name")),
        None => Ok(json!({ "Lists": bl::lists().iter().map(|l| list_json(l)).collect::<Vec<_>>() })),
    }
}

/// The copy `check_blacklist(s)` asks about: ip, proto, port, pattern.
fn mi_probe(p: &Params) -> Result<(crate::transport::Proto, std::net::SocketAddr, String), MiError> {
    let ip: std::net::IpAddr = p
        .str("ip")
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| MiError::new(400, "Missing or bad IP"))?;
    let proto = match ProtoSel::from_arg(p.str("proto")).map_err(|_| MiError::new(404, "Bad params"))? {
        ProtoSel::Is(p) => p,
        _ => crate::transport::Proto::Udp,
    };
    let port = u16::try_from(p.int("port").unwrap_or(0)).map_err(|_| MiError::new(404, "Bad params"))?;
    Ok((proto, std::net::SocketAddr::new(ip, port), p.str("pattern").unwrap_or("").to_string()))
}

fn mi_check_blacklist(_: &Ctx, p: &Params) -> Result<Value, MiError> {
    let (proto, dst, text) = mi_probe(p)?;
    let head = mi_head(p)?;
    head.matching(proto, dst, text.as_bytes())
        .map(|e| rule_json(&e))
        .ok_or_else(|| MiError::new(404, "Not Matched"))
}

fn mi_check_blacklists(_: &Ctx, p: &Params) -> Result<Value, MiError> {
    let (proto, dst, text) = mi_probe(p)?;
    Ok(Value::Array(
        bl::lists()
            .iter()
            .filter(|l| l.matching(proto, dst, text.as_bytes()).is_some())
            .map(|l| json!(l.def.name))
            .collect(),
    ))
}

fn mi_rule(head: &List, p: &Params) -> Result<Rule, MiError> {
    if head.def.flags.readonly {
        return Err(MiError::new(403, "Cannot modify read-only blacklist"));
    }
    Rule::parse(p.str("rule").unwrap_or("")).map_err(|e| MiError::new(404, "Bad rule").with_data(e))
}

fn mi_add_blacklist_rule(_: &Ctx, p: &Params) -> Result<Value, MiError> {
    let head = mi_head(p)?;
    let rule = mi_rule(&head, p)?;
    let expire = match p.int("expire") {
        None => None,
        Some(n) if n <= 0 => return Err(MiError::new(404, "Bad expire value")),
        Some(_) if !head.def.flags.expire => {
            return Err(MiError::new(404, "Blacklist without expire support"))
        }
        Some(n) => Some(Duration::from_secs(n as u64)),
    };
    head.add(rule, expire).map_err(|e| MiError::new(500, e))?;
    Ok(json!("OK"))
}

fn mi_del_blacklist_rule(_: &Ctx, p: &Params) -> Result<Value, MiError> {
    let head = mi_head(p)?;
    let rule = mi_rule(&head, p)?;
    match head.del(&rule) {
        Ok(true) => Ok(json!("OK")),
        Ok(false) => Err(MiError::new(404, "Rule not found")),
        Err(e) => Err(MiError::new(500, e)),
    }
}

const PROBE: &[crate::mi::Param] = &[
    req("ip", Kind::Str),
    opt("proto", Kind::Str),
    opt("port", Kind::Int),
    opt("pattern", Kind::Str),
];

pub static BLACKLISTS: Module = Module {
    name: "core (blacklists)",
    table: None,
    doc: "Destination blacklists (OpenSIPS core `dst_blacklist` and its functions): lists of rules defined in `config.blacklists` (docs/config.md); a request copy to an address on a list in use is not sent (`t_relay`/`forward` fail, `sl_reply_error` answers 473 Filtered destination).",
    exports: &[
        Export {
            name: "use_blacklist",
            args: "(name)",
            returns: "true",
            routes: RouteMask::ANY,
            doc: "Checks this message's copies against the list `name` too (`\"all\"`: every list). Lists flagged `default` are in use from the start of each message.",
            func: Func::Sync(use_blacklist),
        },
        Export {
            name: "unuse_blacklist",
            args: "(name)",
            returns: "true",
            routes: RouteMask::ANY,
            doc: "Stops checking this message's copies against the list `name` (`\"all\"`: against any list).",
            func: Func::Sync(unuse_blacklist),
        },
        Export {
            name: "check_blacklist_rule",
            args: "(name, ip, [port], [proto], [text])",
            returns: "true if a rule matches",
            routes: RouteMask::ANY,
            doc: "Whether a copy to `ip`:`port` over `proto` whose text is `text` would be blocked by the list `name` (`\"all\"`: by the lists in use for this message). A rule's glob pattern is matched against `text`.",
            func: Func::Sync(check_blacklist_rule),
        },
        Export {
            name: "add_blacklist_rule",
            args: "(name, net, [port], [proto], [pattern], [expire])",
            returns: "true, false if the list is read-only or has no `expire` flag for an `expire`",
            routes: RouteMask::ANY,
            doc: "Adds a rule to the list `name`: `net` is `ip`, `ip/bits` or `ip/mask` (`!net`: everything else), `port` 0 any, `proto` any when left out, `pattern` a glob on the copy's text; `expire` seconds on a list flagged `expire`. Every worker sees it at once.",
            func: Func::Sync(add_blacklist_rule),
        },
        Export {
            name: "del_blacklist_rule",
            args: "(name, net, [port], [proto], [pattern])",
            returns: "true if the rule was found and removed",
            routes: RouteMask::ANY,
            doc: "Removes the rule given as `add_blacklist_rule` took it.",
            func: Func::Sync(del_blacklist_rule),
        },
    ],
    mi: &[
        Command {
            name: "list_blacklists",
            help: "Lists the blacklists (or the one named) with their rules.",
            module: "core",
            params: &[opt("name", Kind::Str)],
            result: "`{\"Lists\": [{\"name\", \"owner\", \"flags\", \"Rules\": [{\"flags\", \"IP\", \"Mask\", \"Proto\", \"Port\", \"Match\"?, \"Expire\"?}]}]}` (one list object when `name` is given)",
            handler: mi_list_blacklists,
        },
        Command {
            name: "check_blacklist",
            help: "The first rule of blacklist `name` matching a copy to ip[:port] over proto whose text is pattern; error 404 Not Matched.",
            module: "core",
            params: &[
                req("name", Kind::Str),
                req("ip", Kind::Str),
                opt("proto", Kind::Str),
                opt("port", Kind::Int),
                opt("pattern", Kind::Str),
            ],
            result: "the matching rule, as `list_blacklists` prints rules",
            handler: mi_check_blacklist,
        },
        Command {
            name: "check_blacklists",
            help: "The names of the blacklists with a rule matching a copy to ip[:port] over proto whose text is pattern.",
            module: "core",
            params: PROBE,
            result: "an array of list names",
            handler: mi_check_blacklists,
        },
        Command {
            name: "add_blacklist_rule",
            help: "Adds `rule` (`[!][proto,]ip[/mask][,port[,pattern]]`) to blacklist `name`, for `expire` seconds on an expiring list.",
            module: "core",
            params: &[req("name", Kind::Str), req("rule", Kind::Str), opt("expire", Kind::Int)],
            result: "`\"OK\"`",
            handler: mi_add_blacklist_rule,
        },
        Command {
            name: "del_blacklist_rule",
            help: "Removes `rule` from blacklist `name`.",
            module: "core",
            params: &[req("name", Kind::Str), req("rule", Kind::Str)],
            result: "`\"OK\"`",
            handler: mi_del_blacklist_rule,
        },
    ],
    ..Module::NONE
};
