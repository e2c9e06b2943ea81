//! Request-URI parameters and E.164 users (OpenSIPS
//! modules/sipmsgops/uri.c): ruri_has_param, ruri_add_param,
//! ruri_del_param, is_uri_user_e164. They work on the current R-URI (a
//! rewrite earlier in the route counts) and rewrite it as `$ru = …` does.

use mlua::{Lua, MultiValue};

use super::msg_mut;
use crate::modules::with_msg;
use crate::script::api::pv_fmt;
use crate::script::exports::{ret, Args};
use crate::script::host::State;
use crate::sip::Uri;

/// The `name[=value]` pieces of a raw parameter list (the text after the
/// first ';'), with their byte ranges in it.
fn params(list: &str) -> Vec<(&str, Option<&str>, std::ops::Range<usize>)> {
    let mut out = Vec::new();
    let mut pos = 0;
    for piece in list.split(';') {
        let start = pos;
        pos += piece.len() + 1;
        if piece.is_empty() {
            continue;
        }
        let (name, value) = match piece.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (piece, None),
        };
        out.push((name, value, start..start + piece.len()));
    }
    out
}

/// uri.c `ruri_has_param`: the name compared exactly; without `value`
/// the parameter must have none (or an empty one).
pub fn ruri_has_param(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let name = pv_fmt(lua, st, &a.str(0)?)?;
    let value = match a.opt_str(1)? {
        Some(v) => Some(pv_fmt(lua, st, &v)?),
        None => None,
    };
    let hit = with_msg(st, a.fname, |m| {
        let Ok(u) = Uri::parse(m.ruri()) else {
            return false;
        };
        params(u.params)
            .into_iter()
            .find(|(n, _, _)| *n == name)
            .is_some_and(|(_, v, _)| match &value {
                Some(want) => v == Some(want.as_str()),
                None => v.unwrap_or("").is_empty(),
            })
    })?;
    ret(lua, hit)
}

/// uri.c `ruri_add_param`: `;param` after the parameters (before any
/// `?headers`); an empty param is a success that changes nothing.
pub fn ruri_add_param(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let param = pv_fmt(lua, st, &a.str(0)?)?;
    if param.contains(['\r', '\n', ' ', '?']) {
        return Err(a.err(format!("'{}' is not a URI parameter", param.escape_debug())));
    }
    if param.is_empty() {
        return ret(lua, true);
    }
    let mut call = st.call.borrow_mut();
    let m = msg_mut(&mut call, &a)?;
    let cur = m.ruri().to_string();
    let Ok(u) = Uri::parse(&cur) else {
        return ret(lua, false);
    };
    let new = match u.headers {
        Some(h) => {
            let at = cur.len() - h.len() - 1;
            format!("{};{param}{}", &cur[..at], &cur[at..])
        }
        None => format!("{cur};{param}"),
    };
    m.set_ruri(&new);
    ret(lua, true)
}

/// uri.c `ruri_del_param`: removes the first parameter with this exact
/// name, `;` included.
pub fn ruri_del_param(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let name = pv_fmt(lua, st, &a.str(0)?)?;
    if name.is_empty() {
        return ret(lua, true);
    }
    let mut call = st.call.borrow_mut();
    let m = msg_mut(&mut call, &a)?;
    let cur = m.ruri().to_string();
    let Ok(u) = Uri::parse(&cur) else {
        return ret(lua, false);
    };
    let Some((_, _, r)) = params(u.params).into_iter().find(|(n, _, _)| *n == name) else {
        return ret(lua, false);
    };
    // A parameter was found, so `u.params` is a slice of `cur`.
    let base = (u.params.as_ptr() as usize).saturating_sub(cur.as_ptr() as usize);
    // The ';' before the parameter goes with it.
    let (s, e) = (base + r.start - 1, base + r.end);
    let new = format!("{}{}", &cur[..s], &cur[e..]);
    m.set_ruri(&new);
    ret(lua, true)
}

/// uri.c `e164_check`: `+` then 2 to 15 digits.
pub fn is_e164(user: &str) -> bool {
    let Some(digits) = user.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

pub fn is_uri_user_e164(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let uri = pv_fmt(lua, st, &a.str(0)?)?;
    let hit = Uri::parse(&uri)
        .ok()
        .and_then(|u| u.user)
        .is_some_and(is_e164);
    ret(lua, hit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn param_pieces() {
        let p = params("transport=udp;lr;bnat=yes");
        assert_eq!(p.len(), 3);
        assert_eq!(p[1].0, "lr");
        assert_eq!(&"transport=udp;lr;bnat=yes"[p[2].2.clone()], "bnat=yes");
        assert!(is_e164("+4930123456"));
        assert!(!is_e164("+4"));
        assert!(!is_e164("4930123"));
        assert!(!is_e164("+49301234567890123"));
        assert!(!is_e164("+49a"));
    }
}
