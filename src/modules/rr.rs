//! Record-Route and loose routing (OpenSIPS rr, RFC 3261 §16.4, §16.6
//! step 4, §16.12). This is the stateless subset; the tm issue adds double
//! Record-Route, presets and route parameters.

use mlua::{Lua, MultiValue};

use crate::script::exports::{ret, Args, Export, Module};
use crate::script::host::State;
use crate::script::route::RouteMask;
use crate::sip::Uri;

/// The Record-Route URI for the socket the request came in on.
fn rr_uri(st: &State, params: Option<&str>) -> Result<String, String> {
    let call = st.call.borrow();
    let m = call.msg.as_ref().ok_or("no message")?;
    let sock = st
        .env
        .sockets
        .list
        .get(call.src.socket)
        .ok_or("no receiving socket")?;
    let host = st.env.sockets.via_host(sock, call.src.addr.ip());
    let mut uri = format!("<sip:{host}:{}", sock.adv_port);
    if sock.proto.is_stream() {
        uri.push_str(";transport=");
        uri.push_str(sock.proto.as_str());
    }
    uri.push_str(";lr");
    if let Some(tag) = m.from_tag() {
        uri.push_str(";ftag=");
        uri.push_str(tag);
    }
    if let Some(p) = params.filter(|p| !p.is_empty()) {
        if !p.starts_with(';') {
            uri.push(';');
        }
        uri.push_str(p);
    }
    uri.push('>');
    Ok(uri)
}

fn record_route(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let params = match a.opt_str(0)? {
        Some(p) => Some(crate::script::api::pv_fmt(lua, st, &p)?),
        None => None,
    };
    let uri = rr_uri(st, params.as_deref()).map_err(|e| a.err(e))?;
    let mut call = st.call.borrow_mut();
    let m = call.msg.as_mut().ok_or_else(|| a.err("no message"))?;
    m.prepend_header("Record-Route", &uri);
    ret(lua, true)
}

/// RFC 3261 §16.4: drop our own top Route, make the next one the
/// destination. True when the request carried Route headers.
fn loose_route(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let mut call = st.call.borrow_mut();
    let call = &mut *call;
    let m = call.msg.as_mut().ok_or_else(|| a.err("no message"))?;
    let routes: Vec<String> = m.routes().iter().map(|r| r.uri.to_string()).collect();
    let Some(first) = routes.first() else {
        return ret(lua, false);
    };
    let mine = Uri::parse(first).is_ok_and(|u| st.env.sockets.is_myself(u.host, u.port));
    let next = if mine {
        m.remove_first_value("Route");
        routes.get(1)
    } else {
        Some(first)
    };
    if let Some(next) = next {
        match Uri::parse(next) {
            Ok(u) if u.param("lr").is_some() => call.du = Some(next.clone()),
            Ok(_) => {
                // A strict router next: it wants its URI as the R-URI
                // (RFC 3261 §16.6 step 6); the tm issue completes this.
                call.du = Some(next.clone());
            }
            Err(_) => return Err(a.err(format!("bad Route URI '{next}'"))),
        }
    }
    ret(lua, true)
}

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
            doc: "Adds `Record-Route: <sip:ip:port;lr;ftag=…>` naming the socket the request came in on (`;transport=tcp` on TCP); `params` (pseudo-variables expanded) are appended to the URI.",
            func: record_route,
        },
        Export {
            name: "loose_route",
            args: "()",
            returns: "true if the request had Route headers",
            routes: RouteMask::REQUEST,
            doc: "Routes by the Route set (RFC 3261 §16.4): removes the top Route when it names this proxy and sets `$du` to the next one, so `forward()` sends there.",
            func: loose_route,
        },
    ],
};
