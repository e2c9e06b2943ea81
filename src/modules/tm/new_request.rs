//! `t_new_request(method, ruri, from, to [, body [, ctx]])` (OpenSIPS 3.4
//! tm.c `w_t_new_request`): a new request, unrelated to the current
//! message, sent statefully by tm's task on the first worker after this
//! route call returns. `ctx` is the new transaction's `$avp(uac_ctx)`.

use mlua::{Lua, MultiValue};

use super::jobs::{self, Job};
use crate::proxy::tm::uac::LocalRequest;
use crate::script::api::pv_fmt;
use crate::script::exports::{ret, Args};
use crate::script::host::State;

/// `"Display Name sip:a@b"`: the display name is what comes before the
/// last space (tm.c splits there), the URI the rest.
fn party(s: &str) -> String {
    match s.rsplit_once(' ') {
        Some((d, uri)) if !d.trim().is_empty() => format!("{} <{uri}>", d.trim()),
        Some((_, uri)) => uri.to_string(),
        None => s.to_string(),
    }
}

pub(super) fn t_new_request(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let mut v = Vec::with_capacity(5);
    for i in 0..4 {
        v.push(pv_fmt(lua, st, &a.str(i)?)?);
    }
    let body = match a.opt_str(4)? {
        Some(b) => Some(pv_fmt(lua, st, &b)?),
        None => None,
    };
    // tm.c: the context becomes the new transaction's AVP `uac_ctx`.
    let ctx = match a.opt_str(5)? {
        Some(c) => Some(pv_fmt(lua, st, &c)?),
        None => None,
    };
    let [method, ruri, from, to] = [&v[0], &v[1], &v[2], &v[3]];
    if method.is_empty()
        || !method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.!%*+`'~".contains(&b))
    {
        return Err(a.err(format!("'{method}' is not a method")));
    }
    for (what, s) in [("ruri", ruri.as_str()), ("from", from), ("to", to)] {
        let uri = s.rsplit(' ').next().unwrap_or(s);
        if crate::sip::Uri::parse(uri).is_err() || s.contains(['\r', '\n', '<', '>']) {
            return Err(a.err(format!("{what} '{s}' is not a URI (with an optional display name before it)")));
        }
    }
    // tm.c: the body starts with its content type and a space.
    let (headers, body) = match body {
        None => (String::new(), String::new()),
        Some(b) => match b.split_once(' ') {
            Some((ctype, body)) if !ctype.is_empty() && !ctype.contains(['\r', '\n']) => {
                (format!("Content-Type: {ctype}\r\n"), body.to_string())
            }
            _ => {
                tracing::error!("{}: no content type before the body '{b}'", a.fname);
                return ret(lua, false);
            }
        },
    };
    let req = LocalRequest {
        method: method.clone(),
        ruri: ruri.clone(),
        from: party(from),
        to: party(to),
        headers,
        body,
        ctx,
        ..Default::default()
    };
    ret(lua, jobs::push(Job::Uac(Box::new(req), None)))
}

#[cfg(test)]
mod tests {
    use super::party;

    #[test]
    fn display_name_before_the_last_space() {
        assert_eq!(party("sip:a@b"), "sip:a@b");
        assert_eq!(party("Alice Smith sip:a@b"), "Alice Smith <sip:a@b>");
    }
}
