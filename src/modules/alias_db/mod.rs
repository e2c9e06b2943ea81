//! alias_db (OpenSIPS module of the same name): aliases of users kept in
//! OpenSIPS 3.4's `dbaliases` table (version 2). `alias_db_lookup`
//! replaces the Request-URI by the user an alias stands for;
//! `alias_db_find` writes it into a pseudo-variable. Flags: `r` reverse
//! (user → alias), `d` the domain is not compared. Each query suspends
//! the route, never the worker.

use std::rc::Rc;
use std::sync::Arc;

use mlua::{IntoLua, Lua, MultiValue};

use crate::db::{self, Ident, Value};
use crate::modules::registrar::coded;
use crate::modules::usrloc::cfg;
use crate::modules::{param, Module, Param, ParamKind};
use crate::proxy::context::{PendingBranch, Value as PvValue};
use crate::script::exports::{Args, Export, Func, Step};
use crate::script::host::State;
use crate::script::route::RouteMask;
use crate::sip::Uri;

/// alias_db's settings in force.
#[derive(Debug, Clone)]
pub struct AliasConf {
    pub db_url: Option<String>,
    pub user_column: Ident,
    pub domain_column: Ident,
    pub alias_user_column: Ident,
    pub alias_domain_column: Ident,
    /// Cut from the front of the host before it is compared.
    pub domain_prefix: Option<String>,
    /// Every row after the first becomes a branch (or another AVP value).
    pub append_branches: bool,
}

fn ident(s: &str) -> Ident {
    Ident::new(s).unwrap_or_else(|_| unreachable!("constant column name"))
}

impl Default for AliasConf {
    fn default() -> AliasConf {
        AliasConf {
            db_url: None,
            user_column: ident("username"),
            domain_column: ident("domain"),
            alias_user_column: ident("alias_username"),
            alias_domain_column: ident("alias_domain"),
            domain_prefix: None,
            append_branches: false,
        }
    }
}

/// The settings in force (the registry of this thread's environment).
pub fn conf() -> Arc<AliasConf> {
    crate::state::module::<AliasConf>()
}

/// The `r` and `d` flags (alias_flags_fixup).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Flags {
    reverse: bool,
    no_domain: bool,
}

fn flags(s: &str) -> Result<Flags, String> {
    let mut f = Flags::default();
    for ch in s.chars() {
        match ch {
            'r' | 'R' => f.reverse = true,
            'd' | 'D' => f.no_domain = true,
            other => return Err(format!("unsupported flag '{other}' (r, d)")),
        }
    }
    Ok(f)
}

/// The query for `user@host` and its parameters.
fn query(c: &AliasConf, table: &Ident, f: Flags, user: String, host: &str) -> (String, Vec<Value>) {
    let (ku, kd, cu, cd) = match f.reverse {
        true => (&c.user_column, &c.domain_column, &c.alias_user_column, &c.alias_domain_column),
        false => (&c.alias_user_column, &c.alias_domain_column, &c.user_column, &c.domain_column),
    };
    let mut sql = format!("SELECT {cu}, {cd} FROM {table} WHERE {ku} = ?");
    let mut params = vec![Value::text(user)];
    if !f.no_domain {
        let mut host = host;
        if let Some(p) = c.domain_prefix.as_deref().filter(|p| !p.is_empty()) {
            if p.len() < host.len() && host.is_char_boundary(p.len()) && host[..p.len()].eq_ignore_ascii_case(p) {
                host = &host[p.len()..];
            }
        }
        sql.push_str(&format!(" AND {kd} = ?"));
        params.push(Value::text(host));
    }
    (sql, params)
}

/// Runs the query for `uri`: the `sip:user@domain` URIs found, in order
/// (Err: the database failed).
fn start(
    a: &Args,
    table: &str,
    f: Flags,
    uri: &str,
) -> mlua::Result<Option<impl std::future::Future<Output = Result<Vec<String>, db::DbError>>>> {
    let table = Ident::new(table).map_err(|e| a.err(e))?;
    let Ok(u) = Uri::parse(uri) else {
        return Ok(None);
    };
    let user = String::from_utf8_lossy(&u.user_unescaped().unwrap_or_default()).into_owned();
    let c = conf();
    let url = c
        .db_url
        .clone()
        .ok_or_else(|| a.err("config.modules.alias_db.db_url is not set"))?;
    let pool = db::open(&url).map_err(|e| a.err(e))?;
    a.require_suspend()?;
    let (sql, params) = query(&c, &table, f, user, u.host);
    let fut = pool.query(&sql, params);
    Ok(Some(async move {
        let rows = fut.await?;
        Ok(rows
            .iter()
            .take_while(|r| !matches!(r.at(0), Value::Null))
            .map(|r| {
                format!(
                    "sip:{}@{}",
                    r.at(0).as_text().unwrap_or_default(),
                    r.at(1).as_text().unwrap_or_default()
                )
            })
            .collect())
    }))
}

fn ready(lua: &Lua, code: i64) -> mlua::Result<Step> {
    Step::now(Ok(MultiValue::from_iter([(code > 0).into_lua(lua)?, code.into_lua(lua)?])))
}

/// `alias_db_lookup(table [, flags])`: the R-URI becomes the first user
/// found (with `append_branches`, the others become branches). 1, or -1
/// when no alias is found, the R-URI does not parse or the database fails.
fn alias_db_lookup(lua: &Lua, st: &Rc<State>, a: Args) -> mlua::Result<Step> {
    let table = a.str(0)?;
    let f = flags(&a.opt_str(1)?.unwrap_or_default()).map_err(|e| a.err(e))?;
    let ruri = crate::modules::with_msg(st, a.fname, |m| m.ruri().to_string())?;
    let Some(fut) = start(&a, &table, f, &ruri)? else {
        return ready(lua, -1);
    };
    let (lua, st, fname) = (lua.clone(), st.clone(), a.fname);
    Step::wait(async move {
        let uris = match fut.await {
            Ok(u) => u,
            Err(e) => {
                tracing::error!("{fname}: {e}");
                return coded(&lua, -1);
            }
        };
        let Some((first, rest)) = uris.split_first() else {
            return coded(&lua, -1);
        };
        let mut call = st.call.borrow_mut();
        match call.msg.as_mut() {
            Some(m) => m.set_ruri(first),
            None => return coded(&lua, -1),
        }
        if conf().append_branches {
            for u in rest {
                call.tm.branches.push(PendingBranch {
                    uri: u.clone(),
                    q: Some(0),
                    ..Default::default()
                });
            }
        }
        coded(&lua, 1)
    })
}

/// `alias_db_find(table, uri, out_pv [, flags])`: the user `uri` stands
/// for (or, with `r`, its alias) into `out_pv`; with `append_branches`
/// every row is added (an AVP gets them all). 1 or -1.
fn alias_db_find(lua: &Lua, st: &Rc<State>, a: Args) -> mlua::Result<Step> {
    let table = a.str(0)?;
    let uri = crate::script::api::pv_fmt(lua, st, &a.str(1)?)?;
    let spec = st.pv.borrow_mut().spec(&a.str(2)?).map_err(|e| a.err(e))?;
    let f = flags(&a.opt_str(3)?.unwrap_or_default()).map_err(|e| a.err(e))?;
    let Some(fut) = start(&a, &table, f, &uri)? else {
        tracing::error!("{}: failed to parse uri {uri}", a.fname);
        return ready(lua, -1);
    };
    let (lua, st, fname) = (lua.clone(), st.clone(), a.fname);
    Step::wait(async move {
        let uris = match fut.await {
            Ok(u) if !u.is_empty() => u,
            Ok(_) => return coded(&lua, -1),
            Err(e) => {
                tracing::error!("{fname}: {e}");
                return coded(&lua, -1);
            }
        };
        let take = if conf().append_branches { uris.len() } else { 1 };
        let mut call = st.call.borrow_mut();
        for (i, u) in uris.into_iter().take(take).enumerate() {
            let op = if i == 0 { ":=" } else { "=" };
            if let Err(e) = crate::pv::vars::assign(&mut call, &spec, op, PvValue::Str(u)) {
                tracing::error!("{fname}: {e}");
                return coded(&lua, -1);
            }
        }
        coded(&lua, 1)
    })
}

/// `config.modules.alias_db`, read and checked.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    conf: AliasConf,
}

const M: &str = "alias_db";

pub fn prepare(modules: &mlua::Table) -> Result<Prepared, String> {
    let mut c = AliasConf::default();
    let Some(t) = cfg::table(modules, M)? else {
        return Ok(Prepared { conf: c });
    };
    if let Some(u) = cfg::str(&t, M, "db_url")? {
        db::check_url(&u).map_err(|e| format!("config.modules.alias_db.db_url: {e}"))?;
        c.db_url = Some(u);
    }
    for (key, into) in [
        ("user_column", &mut c.user_column),
        ("domain_column", &mut c.domain_column),
        ("alias_user_column", &mut c.alias_user_column),
        ("alias_domain_column", &mut c.alias_domain_column),
    ] {
        if let Some(v) = cfg::str(&t, M, key)? {
            *into = Ident::new(&v).map_err(|e| format!("config.modules.alias_db.{key}: {e}"))?;
        }
    }
    c.domain_prefix = cfg::str(&t, M, "domain_prefix")?;
    c.append_branches = cfg::bool(&t, M, "append_branches")?.unwrap_or(false);
    Ok(Prepared { conf: c })
}

impl Prepared {
    pub fn commit(self, staged: &mut crate::state::Staged) {
        staged.put(self.conf);
    }
}

const S: ParamKind = ParamKind::Str;

static PARAMS: &[Param] = &[
    param("db_url", S, "none", "The database with the `dbaliases` table (mysql://, postgres://, sqlite:///path). Each SIP worker queries it on connections of its own (MySQL: up to 8 per worker, 2 kept idle; PostgreSQL: up to 4), opened when first needed; docs/ARCHITECTURE.md, \"The database layer\"."),
    param("user_column", S, "username", "Column of the user an alias stands for."),
    param("domain_column", S, "domain", "Column of that user's domain."),
    param("alias_user_column", S, "alias_username", "Column of the alias user."),
    param("alias_domain_column", S, "alias_domain", "Column of the alias domain."),
    param("domain_prefix", S, "none", "A prefix (`\"sip.\"`) cut from the host before it is compared."),
    param("append_branches", ParamKind::Bool, "false", "Every row found after the first becomes a branch (`alias_db_lookup`) or another AVP value (`alias_db_find`)."),
];

static EXPORTS: &[Export] = &[
    Export {
        name: "alias_db_lookup",
        args: "(table [, flags])",
        returns: "ok, code (1 the R-URI was replaced; -1 no alias, or an error)",
        routes: RouteMask::REQUEST.or(RouteMask::FAILURE),
        doc: "Looks the R-URI's user and host up as an alias in `table` (`dbaliases`) and makes the R-URI `sip:user@domain` of the row found. Flags: `r` the other way (a user to its alias), `d` the domain is not compared. The route waits for the database.",
        func: Func::Async(alias_db_lookup),
    },
    Export {
        name: "alias_db_find",
        args: "(table, uri, out_pv [, flags])",
        returns: "ok, code (1 found; -1 not, or an error)",
        routes: RouteMask::REQUEST
            .or(RouteMask::FAILURE)
            .or(RouteMask::ONREPLY)
            .or(RouteMask::BRANCH)
            .or(RouteMask::LOCAL),
        doc: "As `alias_db_lookup` for `uri` (pseudo-variables expanded), writing the result into `out_pv` (`\"$avp(user)\"`) instead of the R-URI. OpenSIPS also allows it in startup_route; here it waits, which startup cannot.",
        func: Func::Async(alias_db_find),
    },
];

crate::modules::staged_settings!(Prepared);

pub static MODULE: Module = Module {
    name: "alias_db",
    table: Some("alias_db"),
    doc: "User aliases from the `dbaliases` table (OpenSIPS alias_db).",
    exports: EXPORTS,
    params: PARAMS,
    setup: Some(|m| crate::modules::settings(prepare(m))),
    ..Module::NONE
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_queries() {
        assert_eq!(flags("rd"), Ok(Flags { reverse: true, no_domain: true }));
        assert!(flags("x").is_err());
        let mut c = AliasConf::default();
        let t = ident("dbaliases");
        let (sql, p) = query(&c, &t, Flags::default(), "100".into(), "example.com");
        assert_eq!(sql, "SELECT username, domain FROM dbaliases WHERE alias_username = ? AND alias_domain = ?");
        assert_eq!(p.len(), 2);
        let (sql, p) = query(&c, &t, Flags { reverse: true, no_domain: true }, "bob".into(), "h");
        assert_eq!(sql, "SELECT alias_username, alias_domain FROM dbaliases WHERE username = ?");
        assert_eq!(p.len(), 1);
        c.domain_prefix = Some("sip.".into());
        let (_, p) = query(&c, &t, Flags::default(), "u".into(), "SIP.example.com");
        assert_eq!(p[1], Value::text("example.com"));
    }
}
