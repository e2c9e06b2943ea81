//! `avp_db_load`, `avp_db_store` and `avp_db_delete` on OpenSIPS's
//! `usr_preferences` table (avpops_impl.c ops_db*_avps, avpops_db.c):
//! rows (uuid, username, domain, attribute, type, value) where `type`
//! has bit 0 set for an integer value and bit 1 for an integer name.

use std::rc::Rc;

use mlua::Lua;

use super::AvpConf;
use crate::db::{Ident, Value as DbValue};
use crate::modules::registrar::coded;
use crate::proxy::context::Call;
use crate::pv::{self, Spec, Value};
use crate::script::exports::{Args, Step};
use crate::script::host::State;
use crate::sip::Uri;

/// AVPOPS_DB_VAL_INT and AVPOPS_DB_NAME_INT (avpops_db.h).
const VAL_INT: i64 = 1;
const NAME_INT: i64 = 2;

/// Which columns a source is compared with (`/uuid`, `/uri`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Uuid,
    Uri,
    User,
    Domain,
}

enum SourceVal {
    Const(String),
    Spec(Rc<Spec>),
}

struct Source {
    val: SourceVal,
    mode: Mode,
}

/// avpops.c fixup_db_avp, parameter 1.
fn source(st: &State, a: &Args, s: &str) -> mlua::Result<Source> {
    let (v, flag) = match s.split_once('/') {
        Some((v, f)) => (v, Some(f)),
        None => (s, None),
    };
    let mode = match flag.map(|f| f.to_ascii_lowercase()) {
        None => None,
        Some(f) => Some(match f.as_str() {
            "uuid" => Mode::Uuid,
            "uri" => Mode::Uri,
            "username" => Mode::User,
            "domain" => Mode::Domain,
            _ => return Err(a.err(format!("unknown source flag '{f}' (uuid, uri, username, domain)"))),
        }),
    };
    if !v.starts_with('$') {
        return Ok(Source {
            val: SourceVal::Const(v.to_string()),
            mode: mode.unwrap_or(Mode::Uuid),
        });
    }
    let spec = st.pv.borrow_mut().spec(v).map_err(|e| a.err(e))?;
    let uri_pv = matches!(spec.def.name, "ru" | "fu" | "tu" | "ou");
    let mode = mode.unwrap_or(if uri_pv { Mode::Uri } else { Mode::Uuid });
    Ok(Source {
        val: SourceVal::Spec(spec),
        mode,
    })
}

/// The columns a source is compared with: uuid, or username [and domain].
#[derive(Debug, Clone, Default)]
struct Keys {
    uuid: Option<String>,
    user: Option<String>,
    domain: Option<String>,
}

/// The keys the source stands for in this call; Err with the reason
/// when it has no value or no usable URI.
fn keys(call: &Call, src: &Source, use_domain: bool) -> Result<Keys, String> {
    let v = match &src.val {
        SourceVal::Const(s) => s.clone(),
        SourceVal::Spec(spec) => match pv::get(call, spec).to_text() {
            Some(t) if !t.is_empty() => t.into_owned(),
            _ => return Err(format!("{} has no value", spec.text)),
        },
    };
    if src.mode == Mode::Uuid {
        return Ok(Keys {
            uuid: Some(v),
            ..Keys::default()
        });
    }
    let u = Uri::parse(&v).map_err(|_| format!("'{v}' is not a URI"))?;
    let user = match src.mode {
        Mode::Uri | Mode::User => {
            let user = u.user_unescaped().unwrap_or_default();
            if user.is_empty() {
                return Err(format!("'{v}' has no user"));
            }
            Some(String::from_utf8_lossy(&user).into_owned())
        }
        _ => None,
    };
    let domain = match src.mode {
        Mode::Domain => Some(u.host.to_string()),
        Mode::Uri if use_domain => Some(u.host.to_string()),
        _ => None,
    };
    Ok(Keys {
        uuid: None,
        user,
        domain,
    })
}

/// The attribute parameter: `$avp(x)` or every AVP (`*`, `s`, `a`, `i`),
/// then `/table`.
struct Attr {
    spec: Option<Rc<Spec>>,
    table: Option<Ident>,
}

/// avpops_parse.c parse_avp_db.
fn attr(st: &State, a: &Args, s: &str) -> mlua::Result<Attr> {
    let (name, table) = match s.split_once('/') {
        Some((n, t)) => (n, Some(t)),
        None => (s, None),
    };
    let table = match table {
        None => None,
        Some(t) if t.starts_with('$') => {
            return Err(a.err("DB schemes (`/$scheme`) are not supported yet"))
        }
        Some(t) => Some(Ident::new(t).map_err(|e| a.err(e))?),
    };
    let spec = if name.starts_with('$') {
        let spec = st.pv.borrow_mut().spec(name).map_err(|e| a.err(e))?;
        if spec.def.name != "avp" {
            return Err(a.err(format!("'{name}' is not an $avp(name)")));
        }
        Some(spec)
    } else {
        match name.chars().next() {
            Some('*' | 's' | 'S' | 'i' | 'I' | 'a' | 'A') => None,
            _ => return Err(a.err(format!("bad name '{name}' (expected $avp(name), *, s or i)"))),
        }
    };
    Ok(Attr { spec, table })
}

/// The WHERE clause and parameters (avpops_db.c prepare_selection).
fn selection(c: &AvpConf, k: &Keys, attr: Option<&str>) -> (String, Vec<DbValue>) {
    let mut conds = Vec::new();
    let mut params = Vec::new();
    if let Some(uuid) = &k.uuid {
        conds.push(format!("{} = ?", c.uuid_column));
        params.push(DbValue::text(uuid.as_str()));
    } else {
        if let Some(u) = &k.user {
            conds.push(format!("{} = ?", c.username_column));
            params.push(DbValue::text(u.as_str()));
        }
        if let Some(d) = &k.domain {
            conds.push(format!("{} = ?", c.domain_column));
            params.push(DbValue::text(d.as_str()));
        }
    }
    if let Some(n) = attr {
        conds.push(format!("{} = ?", c.attribute_column));
        params.push(DbValue::text(n));
    }
    (conds.join(" AND "), params)
}

/// The name of an AVP spec for this call.
fn name_of(call: &Call, spec: &Spec) -> Result<String, String> {
    spec.name(call)
        .map(|n| n.into_owned())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| format!("{}: the AVP name has no value", spec.text))
}

/// What the synchronous part of a DB call found.
struct Target {
    keys: Keys,
    attr: Option<String>,
    table: Ident,
}

fn target(st: &State, a: &Args, c: &AvpConf) -> mlua::Result<Result<Target, String>> {
    let src = source(st, a, &a.str(0)?)?;
    let at = attr(st, a, &a.str(1)?)?;
    let call = st.call.borrow();
    let keys = match keys(&call, &src, c.use_domain) {
        Ok(k) => k,
        Err(e) => return Ok(Err(e)),
    };
    let attr = match &at.spec {
        Some(s) => match name_of(&call, s) {
            Ok(n) => Some(n),
            Err(e) => return Ok(Err(e)),
        },
        None => None,
    };
    Ok(Ok(Target {
        keys,
        attr,
        table: at.table.unwrap_or_else(|| c.table.clone()),
    }))
}

fn failed(lua: &Lua, fname: &str, e: impl std::fmt::Display) -> mlua::Result<Step> {
    tracing::error!("{fname}: {e}");
    Step::now(coded(lua, -1))
}

/// `avp_db_load(source, name [, db_id [, prefix]])`: 1 when an AVP was
/// loaded, else -1.
pub fn avp_db_load(lua: &Lua, st: &Rc<State>, a: Args) -> mlua::Result<Step> {
    let c = super::conf();
    let t = target(st, &a, &c)?;
    let prefix = a.opt_str(3)?.unwrap_or_default();
    let pool = super::pool(&a, &c, a.opt_int(2)?)?;
    a.require_suspend()?;
    let t = match t {
        Ok(t) => t,
        Err(e) => return failed(lua, a.fname, e),
    };
    let (cond, params) = selection(&c, &t.keys, t.attr.as_deref());
    let sql = format!(
        "SELECT {}, {}, {} FROM {} WHERE {cond}",
        c.value_column, c.attribute_column, c.type_column, t.table
    );
    let fut = pool.query(&sql, params);
    let (lua, st, fname) = (lua.clone(), st.clone(), a.fname);
    Step::wait(async move {
        let rows = match fut.await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("{fname}: {e}");
                return coded(&lua, -1);
            }
        };
        let mut call = st.call.borrow_mut();
        let mut n = 0;
        for r in &rows {
            // avpops_impl.c dbrow2avp: NULL fields skip the row.
            let (Some(val), Some(name), Some(ty)) = (r.at(0).as_text(), r.at(1).as_text(), r.at(2).as_int()) else {
                tracing::warn!("{fname}: a row with NULL fields skipped");
                continue;
            };
            let name = match &t.attr {
                Some(n) => n.clone(),
                None => format!("{prefix}{name}"),
            };
            let v = if ty & VAL_INT != 0 {
                match val.trim().parse::<i64>() {
                    Ok(i) => Value::Int(i),
                    Err(_) => {
                        tracing::warn!("{fname}: value '{val}' of {name} is not an integer as its type says");
                        continue;
                    }
                }
            } else {
                Value::Str(val)
            };
            call.avps.entry(name).or_default().insert(0, v);
            n += 1;
        }
        coded(&lua, if n > 0 { 1 } else { -1 })
    })
}

/// `avp_db_store(source, name [, db_id])`: 1 when a row was written.
pub fn avp_db_store(lua: &Lua, st: &Rc<State>, a: Args) -> mlua::Result<Step> {
    let c = super::conf();
    let t = target(st, &a, &c)?;
    let pool = super::pool(&a, &c, a.opt_int(2)?)?;
    a.require_suspend()?;
    let t = match t {
        Ok(t) => t,
        Err(e) => return failed(lua, a.fname, e),
    };
    // Every value of the AVP, or of every AVP, newest first.
    let values: Vec<(String, Value)> = {
        let call = st.call.borrow();
        match &t.attr {
            Some(n) => call
                .avps
                .get(n)
                .map(|l| l.iter().map(|v| (n.clone(), v.clone())).collect())
                .unwrap_or_default(),
            None => {
                let mut all: Vec<_> = call
                    .avps
                    .iter()
                    .flat_map(|(n, l)| l.iter().map(move |v| (n.clone(), v.clone())))
                    .collect();
                all.sort_by(|x, y| x.0.cmp(&y.0));
                all
            }
        }
    };
    if values.is_empty() {
        return Step::now(coded(lua, -1));
    }
    let Keys { uuid, user, domain } = &t.keys;
    let mut params = Vec::new();
    let mut rows = Vec::new();
    for (name, v) in &values {
        // avpops_impl.c ops_dbstore_avps: the type bits of the value and name.
        let int_val = if matches!(v, Value::Int(_)) { VAL_INT } else { 0 };
        let int_name = if name.bytes().all(|b| b.is_ascii_digit()) { NAME_INT } else { 0 };
        let ty = int_val | int_name;
        rows.push("(?, ?, ?, ?, ?, ?)");
        params.extend([
            DbValue::text(uuid.clone().unwrap_or_default()),
            DbValue::text(user.clone().unwrap_or_default()),
            DbValue::text(domain.clone().unwrap_or_default()),
            DbValue::text(name.as_str()),
            DbValue::Int(ty),
            DbValue::text(v.to_text().unwrap_or_default()),
        ]);
    }
    let sql = format!(
        "INSERT INTO {} ({}, {}, {}, {}, {}, {}) VALUES {}",
        t.table,
        c.uuid_column,
        c.username_column,
        c.domain_column,
        c.attribute_column,
        c.type_column,
        c.value_column,
        rows.join(", ")
    );
    let fut = pool.exec(&sql, params);
    let (lua, fname) = (lua.clone(), a.fname);
    Step::wait(async move {
        match fut.await {
            Ok(n) if n > 0 => coded(&lua, 1),
            Ok(_) => coded(&lua, -1),
            Err(e) => {
                tracing::error!("{fname}: {e}");
                coded(&lua, -1)
            }
        }
    })
}

/// `avp_db_delete(source, name [, db_id])`: 1 unless the database fails.
pub fn avp_db_delete(lua: &Lua, st: &Rc<State>, a: Args) -> mlua::Result<Step> {
    let c = super::conf();
    let t = target(st, &a, &c)?;
    let pool = super::pool(&a, &c, a.opt_int(2)?)?;
    a.require_suspend()?;
    let t = match t {
        Ok(t) => t,
        Err(e) => return failed(lua, a.fname, e),
    };
    let (cond, params) = selection(&c, &t.keys, t.attr.as_deref());
    let sql = format!("DELETE FROM {} WHERE {cond}", t.table);
    let fut = pool.exec(&sql, params);
    let (lua, fname) = (lua.clone(), a.fname);
    Step::wait(async move {
        match fut.await {
            Ok(_) => coded(&lua, 1),
            Err(e) => {
                tracing::error!("{fname}: {e}");
                coded(&lua, -1)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selections() {
        let c = AvpConf::default();
        let k = Keys {
            uuid: None,
            user: Some("alice".into()),
            domain: Some("example.com".into()),
        };
        let (w, p) = selection(&c, &k, Some("fwd"));
        assert_eq!(w, "username = ? AND domain = ? AND attribute = ?");
        assert_eq!(p.len(), 3);
        let k = Keys {
            uuid: Some("u1".into()),
            ..Keys::default()
        };
        assert_eq!(selection(&c, &k, None).0, "uuid = ?");
    }
}
