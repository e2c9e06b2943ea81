//! Record-Route and loose routing (OpenSIPS rr, RFC 3261 §16.4, §16.6
//! step 4, §16.12, RFC 5658 double Record-Route).
//!
//! `record_route()` only notes that the request is to be record-routed;
//! the header is written into each copy when it is sent, because only then
//! is the outgoing socket known: when it differs from the incoming one
//! (another transport or interface) two entries go in, one per side.

use mlua::{Lua, MultiValue};

pub use crate::proxy::rr::PendingRr;
use crate::script::exports::{ret, Args, Export, Func};
use crate::modules::{param, Module, Param, ParamKind};
use crate::script::host::State;
use crate::script::route::RouteMask;
use crate::sip::Uri;

fn record_route(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let params = match a.opt_str(0)? {
        Some(p) => crate::script::api::pv_fmt(lua, st, &p)?,
        None => String::new(),
    };
    let mut call = st.call.borrow_mut();
    if call.msg.is_none() {
        return Err(a.err("no message"));
    }
    let rr = call.rr.get_or_insert_with(PendingRr::default);
    rr.params.push_str(&params);
    rr.recorded = true;
    ret(lua, true)
}

fn record_route_preset(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let first = crate::script::api::pv_fmt(lua, st, &a.str(0)?)?;
    let second = match a.opt_str(1)? {
        Some(s) => Some(crate::script::api::pv_fmt(lua, st, &s)?),
        None => None,
    };
    for p in std::iter::once(&first).chain(second.as_ref()) {
        let uri = format!("sip:{}", p.trim_start_matches("sip:"));
        if Uri::parse(&uri).is_err() || p.contains(['<', '>', '\r', '\n']) {
            return Err(a.err(format!("'{p}' is not host[:port][;params]")));
        }
    }
    let mut call = st.call.borrow_mut();
    let rr = call.rr.get_or_insert_with(PendingRr::default);
    rr.preset = Some((first, second));
    rr.recorded = true;
    ret(lua, true)
}

fn add_rr_param(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let p = crate::script::api::pv_fmt(lua, st, &a.str(0)?)?;
    if p.contains(['<', '>', ',', '\r', '\n', ' ']) {
        return Err(a.err(format!("'{p}' is not a URI parameter")));
    }
    let mut call = st.call.borrow_mut();
    // OpenSIPS lets add_rr_param run before or after record_route.
    let rr = call.rr.get_or_insert_with(PendingRr::default);
    if !p.starts_with(';') {
        rr.params.push(';');
    }
    rr.params.push_str(&p);
    ret(lua, true)
}

/// RFC 3261 §16.4: drop our own top Route (both, after a double
/// Record-Route), make the next one the destination. A request whose
/// R-URI is one of our Record-Route URIs came through a strict router:
/// the last Route becomes the R-URI again. True when Route headers were
/// present.
fn loose_route(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let (found, ours) = route_by_route_set(st, &a)?;
    if let Some(params) = ours {
        // In-dialog request through this proxy: dialog tracking and the
        // like (OpenSIPS rr callbacks) see it now, as OpenSIPS runs them.
        crate::modules::after_loose_route(st, &params);
    }
    ret(lua, found)
}

/// What `loose_route` does to the message: (Route headers present, the
/// parameters of our entry it consumed).
fn route_by_route_set(st: &State, a: &Args) -> mlua::Result<(bool, Option<String>)> {
    let sockets = &st.env.sockets;
    let mut call = st.call.borrow_mut();
    let call = &mut *call;
    let m = call.msg.as_mut().ok_or_else(|| a.err("no message"))?;
    let mut routes: Vec<String> = m.routes().iter().map(|r| r.uri.to_string()).collect();
    if routes.is_empty() {
        return Ok((false, None));
    }
    let ours = |u: &str| {
        Uri::parse(u).is_ok_and(|u| u.user.is_none() && sockets.is_myself(u.host, u.port))
    };
    // Strict-router compatibility: the R-URI is one of our Record-Route
    // URIs, the real target is the last Route.
    let params_of = |u: &str| Uri::parse(u).ok().map(|u| u.params.to_string());
    let mut mine = None;
    if ours(m.ruri()) && Uri::parse(m.ruri()).is_ok_and(|u| u.param("lr").is_some()) {
        mine = params_of(m.ruri());
        if let Some(last) = routes.pop() {
            m.set_ruri(&last);
            if m.remove_last_value("Route") && routes.is_empty() {
                return Ok((true, mine));
            }
        }
    }
    if ours(routes.first().map_or("", String::as_str)) {
        mine = params_of(&routes[0]);
    }
    let mut i = 0;
    while i < routes.len() && i < 2 && ours(&routes[i]) {
        m.remove_first_value("Route");
        i += 1;
    }
    // OpenSIPS rr loose.c after_loose: the request leaves from the
    // socket the second entry of a double Record-Route names (its
    // transport then stands for a URI without `transport=`); after a
    // single entry of ours, from the one it came in on (not for a
    // preloaded initial request).
    let in_dialog = m.to_tag().is_some();
    match i {
        2 => call.socket_out = route_socket(sockets, &routes[1]),
        1 if in_dialog => call.socket_out = Some(call.src.socket),
        _ => {}
    }
    let m = call.msg.as_mut().ok_or_else(|| a.err("no message"))?;
    if let Some(next) = routes.get(i) {
        match Uri::parse(next) {
            Ok(u) if u.param("lr").is_some() => call.du = Some(next.clone()),
            Ok(_) => {
                // The next hop is a strict router (RFC 3261 §16.6 step 6):
                // it gets the R-URI position, the R-URI goes to the end.
                let ruri = m.ruri().to_string();
                m.remove_first_value("Route");
                m.append_header_raw(&format!("Route: <{ruri}>\r\n"));
                m.set_ruri(next);
            }
            Err(_) => {
                // Peer data: false as OpenSIPS's rr (loose.c returns -1),
                // never a script error a sender could trigger at will.
                tracing::info!("loose_route: bad Route URI '{next}'");
                return Ok((false, mine));
            }
        }
    }
    Ok((true, mine))
}

/// OpenSIPS `grep_sock_info` on a Route URI of ours: its transport
/// (udp when absent), host and port (5060 when absent).
fn route_socket(sockets: &crate::transport::Sockets, route: &str) -> Option<usize> {
    let u = Uri::parse(route).ok()?;
    let proto = match u.param("transport") {
        Some(Some(t)) => crate::transport::Proto::parse(t)?,
        _ => crate::transport::Proto::Udp,
    };
    let found = sockets.find(proto, u.host, u.port.unwrap_or(5060));
    if found.is_none() {
        tracing::warn!("loose_route: no socket matches the second Record-Route '{route}'");
    }
    found.map(|s| s.id)
}

/// `check_route_param(re)`: whether the parameters of our Route entry (the
/// one `loose_route` consumes, as received) match `re` (POSIX-style
/// extended regex, as OpenSIPS).
fn check_route_param(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let re = a.str(0)?;
    let sockets = &st.env.sockets;
    let params = {
        let call = st.call.borrow();
        let m = call.msg.as_ref().ok_or_else(|| a.err("no message"))?;
        m.routes().iter().find_map(|r| {
            Uri::parse(r.uri)
                .ok()
                .filter(|u| u.user.is_none() && sockets.is_myself(u.host, u.port))
                .map(|u| u.params.to_string())
        })
    };
    let Some(params) = params else {
        return ret(lua, false);
    };
    let hit = crate::pv::re::is_match(&params, &re, "").map_err(|e| a.err(e))?;
    ret(lua, hit)
}

/// `is_direction("downstream"|"upstream")` (OpenSIPS rr `loose.c`): a
/// request goes upstream when the `ftag` parameter of our Route entry
/// (the caller's From tag, which `record_route` writes) differs from its
/// From tag; without a Route entry of ours, an `ftag` or a From tag it
/// counts as downstream.
fn is_direction(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let dir = a.str(0)?;
    let want_up = match dir.to_ascii_lowercase().as_str() {
        "downstream" => false,
        "upstream" => true,
        _ => return Err(a.err(format!("unknown direction '{dir}' (downstream, upstream)"))),
    };
    let upstream = upstream(&st.call.borrow());
    ret(lua, upstream == want_up)
}

/// Whether the current request goes upstream (callee to caller): the
/// `ftag` of our Route entry is not its From tag (`is_direction`; acc's
/// `detect_direction`).
pub fn upstream(call: &crate::proxy::context::Call) -> bool {
    let ftag = call.rr_params().and_then(|p| {
        p.split(';').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k.trim() == "ftag").then(|| v.trim().trim_matches('"').to_string())
        })
    });
    let from_tag = call
        .msg
        .as_ref()
        .and_then(|m| m.from_tag().map(str::to_string));
    match (ftag, from_tag) {
        (Some(f), Some(t)) if !f.is_empty() && !t.is_empty() => f != t,
        _ => false,
    }
}

/// `config.modules.rr`, read before anything is applied.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    append_fromtag: Option<bool>,
}

/// Reads `config.modules.rr`.
pub fn prepare(modules: &mlua::Table) -> Result<Prepared, String> {
    let Some(t) = crate::modules::cfg::table(modules, "rr")? else {
        return Ok(Prepared::default());
    };
    Ok(Prepared {
        append_fromtag: crate::modules::cfg::bool(&t, "rr", "append_fromtag")?,
    })
}

impl crate::modules::Settings for Prepared {
    /// Applies the settings (the defaults when absent, so a reload that
    /// drops a key goes back to OpenSIPS's default).
    fn commit(
        self: Box<Self>,
        _: &[crate::config::Listen],
        _: &mut crate::state::Staged,
    ) -> Result<(), crate::modules::SettingsError> {
        crate::proxy::rr::set_append_fromtag(self.append_fromtag.unwrap_or(true));
        Ok(())
    }
}

static PARAMS: &[Param] = &[param(
    "append_fromtag",
    ParamKind::Bool,
    "true",
    "Record-Route carries the caller's From tag as `;ftag=` (what `is_direction` compares); `false` leaves it out (OpenSIPS rr `append_fromtag`).",
)];

pub static MODULE: Module = Module {
    name: "rr",
    table: Some("rr"),
    doc: "Record-Route and loose routing (OpenSIPS rr).",
    exports: &[
        Export {
            name: "record_route",
            args: "([params])",
            returns: "true",
            routes: RouteMask::REQUEST.or(RouteMask::BRANCH).or(RouteMask::FAILURE),
            doc: "Record-routes the request: `Record-Route: <sip:ip:port;lr;ftag=…>` naming the socket it came in on (`;transport=tcp` on TCP); when it leaves on another transport or interface, two entries with `r2=on` (RFC 5658). `params` (pseudo-variables expanded) are appended to the URI. Written when the request is sent.",
            func: Func::Sync(record_route),
        },
        Export {
            name: "record_route_preset",
            args: "(inbound [, outbound])",
            returns: "true",
            routes: RouteMask::REQUEST.or(RouteMask::BRANCH).or(RouteMask::FAILURE),
            doc: "Record-routes with a given `host[:port][;params]` instead of a socket's address; with two, a double Record-Route (the first is the side the caller reaches).",
            func: Func::Sync(record_route_preset),
        },
        Export {
            name: "add_rr_param",
            args: "(param)",
            returns: "true",
            routes: RouteMask::REQUEST.or(RouteMask::BRANCH).or(RouteMask::FAILURE),
            doc: "Adds `;param` to the Record-Route this request gets (before or after `record_route`).",
            func: Func::Sync(add_rr_param),
        },
        Export {
            name: "check_route_param",
            args: "(re)",
            returns: "boolean",
            routes: RouteMask::REQUEST,
            doc: "Whether the parameters of this proxy's Route entry (as received, e.g. those `add_rr_param` put there) match the regular expression.",
            func: Func::Sync(check_route_param),
        },
        Export {
            name: "is_direction",
            args: "(\"downstream\"|\"upstream\")",
            returns: "boolean",
            routes: RouteMask::REQUEST,
            doc: "Whether an in-dialog request flows from the caller (`downstream`) or from the callee (`upstream`): the `ftag` of this proxy's Route entry (the caller's From tag, written by `record_route`) is compared with the request's From tag. Without a Route entry of ours the request counts as downstream.",
            func: Func::Sync(is_direction),
        },
        Export {
            name: "loose_route",
            args: "()",
            returns: "true if the request had Route headers",
            routes: RouteMask::REQUEST,
            doc: "Routes by the Route set (RFC 3261 §16.4): removes the top Route (both after a double Record-Route) when it names this proxy and sets `$du` to the next one; a request from a strict router (its R-URI is ours) gets the last Route back as R-URI; a strict next hop gets the R-URI position (§16.6 step 6). As OpenSIPS's rr, the request then leaves from the socket the second entry of a double Record-Route names (its transport serving a next hop without `transport=`, so a UDP caller's ACK and BYE reach a TCP-only callee), and after a single entry of ours in a dialog from the socket it came in on (`$socket_out`).",
            func: Func::Sync(loose_route),
        },
    ],
    params: PARAMS,
    setup: Some(|m| crate::modules::settings(prepare(m))),
    ..Module::NONE
};
