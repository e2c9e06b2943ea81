//! The URI checks of auth_db (OpenSIPS 3.4 modules/auth_db/checks.c,
//! the `uri` module of OpenSIPS 2.x): whether the To/From user may be
//! used by the authenticated user (`uri` table), whether a URI names a
//! subscriber, and which authentication id a URI belongs to. Each query
//! suspends the route.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use mlua::Lua;

use super::conf;
use crate::db::{self, Ident, Value};
use crate::modules::registrar::coded;
use crate::proxy::context::Value as PvValue;
use crate::script::exports::{Args, Step};
use crate::script::host::State;
use crate::sip::Uri;

/// checks.c return codes.
mod code {
    pub const OK: i64 = 1;
    pub const INTERNAL: i64 = -1;
    pub const CREDENTIALS: i64 = -2;
    pub const USER_NOT_FOUND: i64 = -4;
    pub const EMPTY_RESULT: i64 = -5;
    pub const QUERY: i64 = -8;
    pub const SPOOFED: i64 = -9;
}

thread_local! {
    /// Messages of this worker whose credentials an authorize function
    /// accepted: (message id, digest user, its domain or the realm).
    /// Bounded: only routes still running need theirs.
    static AUTHORIZED: RefCell<VecDeque<(u64, String, String)>> = const { RefCell::new(VecDeque::new()) };
}

/// Called by `www_authorize`/`proxy_authorize` on success (OpenSIPS marks
/// the credentials header `authorized`).
pub fn mark_authorized(st: &State, user: &str, domain: &str) {
    let id = st.call.borrow().msg_id;
    AUTHORIZED.with(|a| {
        let mut a = a.borrow_mut();
        // A message authorized twice keeps both entries: lookups take the
        // newest, and scanning here cost more than the whole check.
        if a.len() >= 1024 {
            a.pop_front();
        }
        a.push_back((id, user.to_string(), domain.to_string()));
    });
}

fn authorized(st: &State) -> Option<(String, String)> {
    let id = st.call.borrow().msg_id;
    AUTHORIZED.with(|a| {
        a.borrow()
            .iter()
            .rev()
            .find(|e| e.0 == id)
            .map(|e| (e.1.clone(), e.2.clone()))
    })
}

fn pool(a: &Args) -> mlua::Result<db::Db> {
    let url = conf()
        .db_url
        .clone()
        .ok_or_else(|| a.err("config.modules.auth_db.db_url is not set"))?;
    db::open(&url).map_err(|e| a.err(e))
}

fn ready(lua: &Lua, code: i64) -> mlua::Result<Step> {
    Step::now(coded(lua, code))
}

/// The unescaped user and the host of a SIP URI.
fn user_host(uri: &str) -> Option<(String, String)> {
    let u = Uri::parse(uri).ok()?;
    let user = u
        .user
        .map(|_| String::from_utf8_lossy(&u.user_unescaped().unwrap_or_default()).into_owned())
        .unwrap_or_default();
    Some((user, u.host.to_string()))
}

/// `db_is_to_authorized` / `db_is_from_authorized`: the `uri` table
/// `table` must have a row (digest user, its realm, the URI's user).
fn check_user(lua: &Lua, st: &Rc<State>, a: Args, to: bool) -> mlua::Result<Step> {
    let table = Ident::new(&a.str(0)?).map_err(|e| a.err(e))?;
    let uri = crate::modules::with_msg(st, a.fname, |m| {
        let h = if to { m.to() } else { m.from() };
        h.map(|na| na.uri.to_string())
    })?;
    let Some(uri) = uri else {
        return ready(lua, code::INTERNAL);
    };
    let Some((auth_user, realm)) = authorized(st) else {
        tracing::error!("{}: no authorized credentials (call www/proxy_authorize first)", a.fname);
        return ready(lua, code::CREDENTIALS);
    };
    let Some((user, _)) = user_host(&uri) else {
        return ready(lua, code::INTERNAL);
    };
    if user.is_empty() {
        return ready(lua, code::USER_NOT_FOUND);
    }
    a.require_suspend()?;
    let c = conf();
    let sql = format!(
        "SELECT {u} FROM {table} WHERE {u} = ? AND {d} = ? AND {uu} = ?",
        u = c.uri_user_column,
        d = c.uri_domain_column,
        uu = c.uri_uriuser_column
    );
    let fut = pool(&a)?.query(&sql, vec![Value::text(auth_user), Value::text(realm), Value::text(&user)]);
    let (lua, fname) = (lua.clone(), a.fname);
    Step::wait(async move {
        match fut.await {
            Ok(rows) if rows.is_empty() => coded(&lua, code::SPOOFED),
            Ok(_) => coded(&lua, code::OK),
            Err(e) => {
                tracing::error!("{fname}: {e}");
                coded(&lua, code::QUERY)
            }
        }
    })
}

pub fn db_is_to_authorized(lua: &Lua, st: &Rc<State>, a: Args) -> mlua::Result<Step> {
    check_user(lua, st, a, true)
}

pub fn db_is_from_authorized(lua: &Lua, st: &Rc<State>, a: Args) -> mlua::Result<Step> {
    check_user(lua, st, a, false)
}

/// `db_does_uri_exist(uri, table)`: a subscriber row for the URI's user
/// (and host, with use_domain).
pub fn db_does_uri_exist(lua: &Lua, st: &Rc<State>, a: Args) -> mlua::Result<Step> {
    let uri = crate::script::api::pv_fmt(lua, st, &a.str(0)?)?;
    let table = Ident::new(&a.str(1)?).map_err(|e| a.err(e))?;
    let Some((user, host)) = user_host(&uri).filter(|_| !uri.is_empty()) else {
        return ready(lua, code::INTERNAL);
    };
    a.require_suspend()?;
    let c = conf();
    let mut sql = format!("SELECT {u} FROM {table} WHERE {u} = ?", u = c.user_column);
    let mut params = vec![Value::text(user)];
    if c.use_domain {
        sql.push_str(&format!(" AND {} = ?", c.domain_column));
        params.push(Value::text(host));
    }
    let fut = pool(&a)?.query(&sql, params);
    let (lua, fname) = (lua.clone(), a.fname);
    Step::wait(async move {
        match fut.await {
            Ok(rows) if rows.is_empty() => coded(&lua, code::EMPTY_RESULT),
            Ok(_) => coded(&lua, code::OK),
            Err(e) => {
                tracing::error!("{fname}: {e}");
                coded(&lua, code::USER_NOT_FOUND)
            }
        }
    })
}

/// `db_get_auth_id(table, uri, user_pv, realm_pv)`: the authentication
/// user and realm the `uri` table maps the URI's user (and host, with
/// use_domain) to.
pub fn db_get_auth_id(lua: &Lua, st: &Rc<State>, a: Args) -> mlua::Result<Step> {
    let table = Ident::new(&a.str(0)?).map_err(|e| a.err(e))?;
    let uri = crate::script::api::pv_fmt(lua, st, &a.str(1)?)?;
    let (user_pv, realm_pv) = {
        let mut pv = st.pv.borrow_mut();
        (
            pv.spec(&a.str(2)?).map_err(|e| a.err(e))?,
            pv.spec(&a.str(3)?).map_err(|e| a.err(e))?,
        )
    };
    let Some((user, host)) = user_host(&uri) else {
        tracing::error!("{}: '{uri}' is not a URI with a user", a.fname);
        return ready(lua, code::INTERNAL);
    };
    a.require_suspend()?;
    let c = conf();
    let mut sql = format!(
        "SELECT {u}, {d} FROM {table} WHERE {uu} = ?",
        u = c.uri_user_column,
        d = c.uri_domain_column,
        uu = c.uri_uriuser_column
    );
    let mut params = vec![Value::text(user)];
    if c.use_domain {
        sql.push_str(&format!(" AND {} = ?", c.uri_domain_column));
        params.push(Value::text(host));
    }
    let fut = pool(&a)?.query(&sql, params);
    let (lua, st, fname) = (lua.clone(), st.clone(), a.fname);
    Step::wait(async move {
        let rows = match fut.await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("{fname}: {e}");
                return coded(&lua, code::QUERY);
            }
        };
        let Some(r) = rows.first() else {
            return coded(&lua, code::USER_NOT_FOUND);
        };
        if rows.len() > 1 {
            tracing::warn!("{fname}: several rows match '{uri}' (set use_domain?)");
        }
        let (u, d) = (r.at(0).as_text().unwrap_or_default(), r.at(1).as_text().unwrap_or_default());
        let mut call = st.call.borrow_mut();
        for (spec, v) in [(&user_pv, u), (&realm_pv, d)] {
            if let Err(e) = crate::pv::set(&mut call, spec, PvValue::Str(v)) {
                tracing::error!("{fname}: {e}");
            }
        }
        coded(&lua, code::OK)
    })
}
