//! The R-URI and `$du` functions of OpenSIPS's core (3.4 `core_cmds.c`):
//! `seturi`, `sethost`, `sethostport`, `setuser`, `setuserpass`,
//! `setport`, `prefix`, `strip`, `strip_tail`, `revert_uri`,
//! `setdsturi`, `resetdsturi`, `isdsturiset`, plus `construct_uri` and
//! `pv_printf`. The parts are rewritten as OpenSIPS's `rewrite_ruri`
//! (`parser/msg_parser.c`) does: the scheme, parameters and headers stay;
//! a new host drops a `maddr` parameter; `setuser` keeps a password,
//! `setuserpass` replaces both; a strip longer than the user removes it.

use mlua::{IntoLua, Lua, MultiValue};

use crate::modules::Module;
use crate::proxy::context::Value;
use crate::script::api::pv_fmt;
use crate::script::exports::{ret, Args, Export, Func};
use crate::script::host::State;
use crate::script::route::RouteMask;
use crate::sip::Uri;

/// Which part a rewrite replaces (OpenSIPS `enum rw_ruri_part`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Host,
    HostPort,
    User,
    UserPass,
    Port,
    Prefix,
    Strip(usize),
    StripTail(usize),
}

/// `uri` with `part` replaced by `new`; None when `uri` does not parse.
pub fn rewrite(uri: &str, part: Part, new: &str) -> Option<String> {
    let u = Uri::parse(uri).ok()?;
    let head_end = u
        .user_span
        .as_ref()
        .map_or(u.host_span.start, |s| s.start);
    let mut out = String::with_capacity(uri.len() + new.len());
    out.push_str(&uri[..head_end]);
    if part == Part::Prefix {
        out.push_str(new);
    }
    let old_user = u.user.unwrap_or("");
    let user = match part {
        Part::User | Part::UserPass => new,
        Part::Strip(n) => old_user.get(n..).unwrap_or(""),
        Part::StripTail(n) => old_user
            .get(..old_user.len().saturating_sub(n))
            .filter(|_| n < old_user.len())
            .unwrap_or(""),
        _ => old_user,
    };
    out.push_str(user);
    let pass = match part {
        Part::UserPass => None,
        _ => u.password,
    };
    if let Some(p) = pass {
        out.push(':');
        out.push_str(p);
    }
    if part == Part::Prefix || !user.is_empty() || pass.is_some() {
        out.push('@');
    }
    let new_host = matches!(part, Part::Host | Part::HostPort);
    out.push_str(if new_host { new } else { u.host });
    let port = match part {
        Part::HostPort => None,
        Part::Port => Some(new.to_string()),
        _ => u.port.map(|p| p.to_string()),
    };
    if let Some(p) = port.filter(|p| !p.is_empty()) {
        out.push(':');
        out.push_str(&p);
    }
    for p in u.params.split(';').filter(|p| !p.is_empty()) {
        let name = p.split('=').next().unwrap_or("").trim();
        if new_host && name.eq_ignore_ascii_case("maddr") {
            continue;
        }
        out.push(';');
        out.push_str(p);
    }
    if let Some(h) = u.headers {
        out.push('?');
        out.push_str(h);
    }
    Some(out)
}

/// Rewrites a part of the R-URI; false (OpenSIPS -1) when the result is
/// not a URI.
fn rewrite_ruri(lua: &Lua, st: &State, a: &Args, part: Part, new: &str) -> mlua::Result<MultiValue> {
    if new.contains(['\r', '\n', ' ', '<', '>']) {
        return Err(a.err(format!("'{new}' cannot go into a URI")));
    }
    let mut call = st.call.borrow_mut();
    let m = call
        .msg
        .as_mut()
        .filter(|m| m.is_request())
        .ok_or_else(|| a.err("needs a request"))?;
    let Some(uri) = rewrite(m.ruri(), part, new).filter(|u| Uri::parse(u).is_ok()) else {
        return ret(lua, false);
    };
    m.set_ruri(&uri);
    ret(lua, true)
}

fn str_arg(lua: &Lua, st: &State, a: &Args) -> mlua::Result<String> {
    pv_fmt(lua, st, &a.str(0)?)
}

fn count_arg(a: &Args) -> mlua::Result<usize> {
    let n = a.int(0)?;
    usize::try_from(n).map_err(|_| a.err(format!("{n} is not a count (0 or more)")))
}

fn seturi(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let uri = str_arg(lua, st, &a)?;
    if Uri::parse(&uri).is_err() || uri.contains(['\r', '\n']) {
        return Err(a.err(format!("'{uri}' is not a valid URI")));
    }
    let mut call = st.call.borrow_mut();
    let m = call
        .msg
        .as_mut()
        .filter(|m| m.is_request())
        .ok_or_else(|| a.err("needs a request"))?;
    m.set_ruri(&uri);
    ret(lua, true)
}

fn sethost(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let v = str_arg(lua, st, &a)?;
    rewrite_ruri(lua, st, &a, Part::Host, &v)
}

fn sethostport(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let v = str_arg(lua, st, &a)?;
    rewrite_ruri(lua, st, &a, Part::HostPort, &v)
}

fn setuser(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let v = str_arg(lua, st, &a)?;
    rewrite_ruri(lua, st, &a, Part::User, &v)
}

fn setuserpass(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let v = str_arg(lua, st, &a)?;
    rewrite_ruri(lua, st, &a, Part::UserPass, &v)
}

fn setport(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let v = str_arg(lua, st, &a)?;
    if !v.is_empty() && v.parse::<u16>().is_err() {
        return Err(a.err(format!("'{v}' is not a port")));
    }
    rewrite_ruri(lua, st, &a, Part::Port, &v)
}

fn prefix(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let v = str_arg(lua, st, &a)?;
    rewrite_ruri(lua, st, &a, Part::Prefix, &v)
}

fn strip(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let n = count_arg(&a)?;
    rewrite_ruri(lua, st, &a, Part::Strip(n), "")
}

fn strip_tail(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let n = count_arg(&a)?;
    rewrite_ruri(lua, st, &a, Part::StripTail(n), "")
}

/// `revert_uri()`: the R-URI as received again.
fn revert_uri(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let mut call = st.call.borrow_mut();
    let m = call
        .msg
        .as_mut()
        .filter(|m| m.is_request())
        .ok_or_else(|| a.err("needs a request"))?;
    let original = m.original_ruri().to_string();
    m.set_ruri(&original);
    ret(lua, true)
}

fn setdsturi(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let uri = str_arg(lua, st, &a)?;
    if Uri::parse(&uri).is_err() || uri.contains(['\r', '\n']) {
        return ret(lua, false);
    }
    st.call.borrow_mut().du = Some(uri);
    ret(lua, true)
}

fn resetdsturi(lua: &Lua, st: &State, _a: Args) -> mlua::Result<MultiValue> {
    st.call.borrow_mut().du = None;
    ret(lua, true)
}

fn isdsturiset(lua: &Lua, st: &State, _a: Args) -> mlua::Result<MultiValue> {
    let set = st.call.borrow().du.as_ref().is_some_and(|d| !d.is_empty());
    ret(lua, set)
}

/// `construct_uri(proto, user, domain, port, extra [, out_var])`
/// (OpenSIPS `msg_translator.c`): `proto:user@domain:port;extra`, the
/// empty parts left out.
fn construct_uri(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let part = |i: usize| -> mlua::Result<String> {
        match a.opt_str(i)? {
            Some(s) => pv_fmt(lua, st, &s),
            None => Ok(String::new()),
        }
    };
    let (proto, user, domain, port, extra) = (part(0)?, part(1)?, part(2)?, part(3)?, part(4)?);
    if proto.is_empty() || domain.is_empty() {
        return Ok(MultiValue::from_iter([
            mlua::Value::Nil,
            (-1).into_lua(lua)?,
        ]));
    }
    let mut uri = format!("{proto}:");
    if !user.is_empty() {
        uri.push_str(&user);
        uri.push('@');
    }
    uri.push_str(&domain);
    if !port.is_empty() {
        uri.push(':');
        uri.push_str(&port);
    }
    if !extra.is_empty() {
        uri.push(';');
        uri.push_str(&extra);
    }
    if let Some(out) = a.opt_str(5)? {
        let spec = st.pv.borrow_mut().spec(&out).map_err(|e| a.err(e))?;
        crate::pv::set(&mut st.call.borrow_mut(), &spec, Value::Str(uri.clone()))
            .map_err(|e| a.err(e))?;
    }
    ret(lua, uri)
}

/// `pv_printf(var, format)`: the expanded format into a writable variable.
fn pv_printf(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let out = a.str(0)?;
    let text = pv_fmt(lua, st, &a.str(1)?)?;
    let spec = st.pv.borrow_mut().spec(&out).map_err(|e| a.err(e))?;
    crate::pv::set(&mut st.call.borrow_mut(), &spec, Value::Str(text)).map_err(|e| a.err(e))?;
    ret(lua, true)
}

const fn rewrite_export(
    name: &'static str,
    args: &'static str,
    doc: &'static str,
    func: crate::script::exports::LuaFn,
) -> Export {
    Export {
        name,
        args,
        returns: "true; false when the result is not a URI",
        routes: RouteMask::ANY,
        doc,
        func: Func::Sync(func),
    }
}

pub static URI: Module = Module {
    name: "core (R-URI)",
    table: None,
    doc: "R-URI and destination URI functions of OpenSIPS's core; each is also reachable by writing a pseudo-variable (`$ru`, `$rU`, `$rd`, `$rp`, `$du`).",
    exports: &[
        rewrite_export("seturi", "(uri)", "Replaces the R-URI (`$ru = uri`); pseudo-variables are expanded.", seturi),
        rewrite_export("sethost", "(host)", "Replaces the host of the R-URI, keeping user, port, parameters (but a `maddr`) and headers.", sethost),
        rewrite_export("sethostport", "(hostport)", "Replaces `host[:port]` of the R-URI; without a port the old one is dropped.", sethostport),
        rewrite_export("setuser", "(user)", "Replaces the user of the R-URI (a password stays); an empty one removes it.", setuser),
        rewrite_export("setuserpass", "(userpass)", "Replaces `user[:password]` of the R-URI.", setuserpass),
        rewrite_export("setport", "(port)", "Replaces the port of the R-URI; an empty one removes it.", setport),
        rewrite_export("prefix", "(prefix)", "Puts `prefix` before the user of the R-URI (a user is created when there was none).", prefix),
        rewrite_export("strip", "(n)", "Removes the first `n` characters of the R-URI user (all of it when `n` is longer).", strip),
        rewrite_export("strip_tail", "(n)", "Removes the last `n` characters of the R-URI user.", strip_tail),
        Export {
            name: "revert_uri",
            args: "()",
            returns: "true",
            routes: RouteMask::ANY,
            doc: "Puts back the R-URI as received (`$ou`).",
            func: Func::Sync(revert_uri),
        },
        rewrite_export("setdsturi", "(uri)", "Sets the destination URI (`$du`), the next hop that overrides the R-URI.", setdsturi),
        Export {
            name: "resetdsturi",
            args: "()",
            returns: "true",
            routes: RouteMask::ANY,
            doc: "Clears the destination URI (`$du = nil`).",
            func: Func::Sync(resetdsturi),
        },
        Export {
            name: "isdsturiset",
            args: "()",
            returns: "boolean",
            routes: RouteMask::ANY,
            doc: "Whether a destination URI (`$du`) is set.",
            func: Func::Sync(isdsturiset),
        },
        Export {
            name: "construct_uri",
            args: "(proto, [user], domain, [port], [extra], [out_var])",
            returns: "the URI; nil, -1 without proto or domain",
            routes: RouteMask::ANY,
            doc: "Builds `proto:user@domain:port;extra` (empty parts left out; pseudo-variables expanded); also written to `out_var` when given, as OpenSIPS writes its AVP.",
            func: Func::Sync(construct_uri),
        },
        Export {
            name: "pv_printf",
            args: "(var, format)",
            returns: "true",
            routes: RouteMask::ANY,
            doc: "Writes the expanded `format` into the writable pseudo-variable `var` (`sip.pv_printf(\"$ru\", \"sip:$rU@$var(gw)\")`).",
            func: Func::Sync(pv_printf),
        },
    ],
    ..Module::NONE
};

#[cfg(test)]
mod tests {
    use super::*;

    /// The cases of OpenSIPS `rewrite_ruri` (parser/msg_parser.c).
    #[test]
    fn parts_rewrite_as_opensips() {
        let u = "sip:alice:pw@example.com:5070;transport=tcp;maddr=10.0.0.1?h=1";
        assert_eq!(
            rewrite(u, Part::Host, "b.example").unwrap(),
            "sip:alice:pw@b.example:5070;transport=tcp?h=1"
        );
        assert_eq!(
            rewrite(u, Part::HostPort, "b.example").unwrap(),
            "sip:alice:pw@b.example;transport=tcp?h=1"
        );
        assert_eq!(
            rewrite(u, Part::User, "bob").unwrap(),
            "sip:bob:pw@example.com:5070;transport=tcp;maddr=10.0.0.1?h=1"
        );
        assert_eq!(
            rewrite(u, Part::UserPass, "bob:x").unwrap(),
            "sip:bob:x@example.com:5070;transport=tcp;maddr=10.0.0.1?h=1"
        );
        assert_eq!(rewrite("sip:a@h:1", Part::Port, "").unwrap(), "sip:a@h");
        assert_eq!(rewrite("sip:a@h", Part::Port, "5080").unwrap(), "sip:a@h:5080");
        assert_eq!(rewrite("sip:h", Part::Prefix, "00").unwrap(), "sip:00@h");
        assert_eq!(rewrite("sip:123@h", Part::Prefix, "+49").unwrap(), "sip:+49123@h");
        assert_eq!(rewrite("sip:+49123@h", Part::Strip(3), "").unwrap(), "sip:123@h");
        assert_eq!(rewrite("sip:12@h", Part::Strip(5), "").unwrap(), "sip:h");
        assert_eq!(rewrite("sip:12345@h", Part::StripTail(2), "").unwrap(), "sip:123@h");
        assert_eq!(rewrite("sip:12@h", Part::StripTail(2), "").unwrap(), "sip:h");
        assert_eq!(rewrite("sip:a@h", Part::User, "").unwrap(), "sip:h");
        assert!(rewrite("not a uri", Part::User, "x").is_none());
    }
}
