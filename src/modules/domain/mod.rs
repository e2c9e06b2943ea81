//! domain (OpenSIPS module of the same name): which domains this proxy
//! serves, from OpenSIPS 3.4's `domain` table (version 3: `domain`,
//! `attrs`). `is_from_local`, `is_uri_host_local` and `is_domain_local`
//! ask it, optionally copying the domain's `attrs` into a
//! pseudo-variable. db_mode 0 asks the database each time (the route
//! waits, never the worker); db_mode 1 reads the table into memory at
//! start and on MI `domain_reload`, and answers from there.

mod mi;

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, RwLock};

use mlua::{IntoLua, Lua, MultiValue};

use crate::db::{version, Db, DbError, Ident, Value};
use crate::modules::registrar::coded;
use crate::modules::usrloc::cfg;
use crate::modules::{param, Module, Param, ParamKind};
use crate::proxy::context::Value as PvValue;
use crate::script::exports::{Args, Export, Func, Step};
use crate::script::host::State;
use crate::script::route::RouteMask;

/// The domain module's settings in force.
#[derive(Clone, Default)]
pub struct DomConf {
    pub db_mode: u8,
    pub db_url: Option<String>,
    pub db: Option<Db>,
    pub table: Option<Ident>,
    pub domain_col: Option<Ident>,
    pub attrs_col: Option<Ident>,
}

impl std::fmt::Debug for DomConf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DomConf")
            .field("db_mode", &self.db_mode)
            .field("db_url", &self.db_url.as_deref().map(crate::db::redact))
            .field("table", &self.table)
            .finish()
    }
}

/// The settings in force (the registry of this thread's environment).
pub fn conf() -> Arc<DomConf> {
    crate::state::module::<DomConf>()
}

/// db_mode 1: lower-cased domain → the name as written and its attrs
/// (None: NULL).
type Cache = HashMap<String, (String, Option<String>)>;

/// The cache loaded (the registry's long-lived state: `domain_reload`
/// replaces it between config loads).
#[derive(Default)]
struct Loaded(RwLock<Option<Arc<Cache>>>);

fn cache() -> Option<Arc<Cache>> {
    crate::state::state::<Loaded>()
        .0
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

fn idents(c: &DomConf) -> Result<(Db, &Ident, &Ident, &Ident), DbError> {
    let missing = || DbError::Internal("domain: no db_url".into());
    Ok((
        c.db.clone().ok_or_else(missing)?,
        c.table.as_ref().ok_or_else(missing)?,
        c.domain_col.as_ref().ok_or_else(missing)?,
        c.attrs_col.as_ref().ok_or_else(missing)?,
    ))
}

/// db_mode 1: reads the whole table into a new cache, swapped in whole
/// (start, `domain_reload`); the old one serves until then.
pub fn reload_wait(c: &DomConf) -> Result<usize, DbError> {
    let (db, table, dcol, acol) = idents(c)?;
    version::check_wait(&db, "domain", table)?;
    let rows = db.query_wait(&format!("SELECT {dcol}, {acol} FROM {table}"), vec![])?;
    let mut m = Cache::with_capacity(rows.len());
    for r in &rows {
        if let Some(d) = r.text(dcol.as_str()) {
            m.insert(d.to_ascii_lowercase(), (d, r.text(acol.as_str())));
        }
    }
    let n = m.len();
    *crate::state::state::<Loaded>()
        .0
        .write()
        .unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(m));
    Ok(n)
}

/// Whether `host` is local, with its attrs: Ok(None) not local,
/// Ok(Some(attrs)) local.
async fn lookup(c: &DomConf, host: &str) -> Result<Option<Option<String>>, DbError> {
    if c.db_mode == 1 {
        return Ok(cached(host));
    }
    let (db, table, dcol, acol) = idents(c)?;
    version::check(&db, "domain", table).await?;
    let rows = db
        .query(
            &format!("SELECT {dcol}, {acol} FROM {table} WHERE {dcol} = ?"),
            vec![Value::text(host)],
        )
        .await?;
    Ok(rows.first().map(|r| r.text(acol.as_str())))
}

/// db_mode 1: the table in memory answers.
fn cached(host: &str) -> Option<Option<String>> {
    cache().and_then(|m| m.get(&host.to_ascii_lowercase()).map(|e| e.1.clone()))
}

/// The three functions: `host` is asked, `out` (a writable spec) gets the
/// attrs; 1 local, -1 not, -3 database error (OpenSIPS's codes).
fn ask(lua: &Lua, st: &Rc<State>, a: &Args, host: String, out: Option<String>) -> mlua::Result<Step> {
    let spec = match out {
        Some(s) => Some(st.pv.borrow_mut().spec(&s).map_err(|e| a.err(e))?),
        None => None,
    };
    let c = conf();
    if c.db.is_none() {
        return Err(a.err("config.modules.domain.db_url is not set"));
    }
    if c.db_mode == 1 {
        return Step::now(answer(lua, st, a.fname, &host, spec.as_ref(), Ok(cached(&host))));
    }
    a.require_suspend()?;
    let (lua, st, fname) = (lua.clone(), st.clone(), a.fname);
    Step::wait(async move {
        let r = lookup(&c, &host).await;
        answer(&lua, &st, fname, &host, spec.as_ref(), r)
    })
}

/// Sets the attrs where asked: 1 local, -1 not, -3 database error.
fn answer(
    lua: &Lua,
    st: &State,
    fname: &str,
    host: &str,
    spec: Option<&Rc<crate::pv::Spec>>,
    r: Result<Option<Option<String>>, DbError>,
) -> mlua::Result<MultiValue> {
    match r {
        Ok(Some(attrs)) => {
            if let (Some(spec), Some(v)) = (spec, attrs) {
                if let Err(e) = crate::pv::set(&mut st.call.borrow_mut(), spec, PvValue::Str(v)) {
                    tracing::error!("{fname}: cannot set the attributes: {e}");
                }
            }
            coded(lua, 1)
        }
        Ok(None) => coded(lua, -1),
        Err(e) => {
            tracing::error!("{fname}: domain {host}: {e}");
            coded(lua, -3)
        }
    }
}

/// A host that is answered without asking (an unparsable URI).
fn ready(lua: &Lua, code: i64) -> mlua::Result<Step> {
    Step::now(Ok(MultiValue::from_iter([(code > 0).into_lua(lua)?, code.into_lua(lua)?])))
}

fn uri_host(uri: &str) -> Option<String> {
    crate::sip::Uri::parse(uri).ok().map(|u| u.host_bare().to_string())
}

fn is_from_local(lua: &Lua, st: &Rc<State>, a: Args) -> mlua::Result<Step> {
    let out = a.opt_str(0)?;
    let host = crate::modules::with_msg(st, a.fname, |m| m.from().and_then(|f| uri_host(f.uri)))?;
    match host {
        Some(h) => ask(lua, st, &a, h, out),
        None => ready(lua, -2),
    }
}

fn is_uri_host_local(lua: &Lua, st: &Rc<State>, a: Args) -> mlua::Result<Step> {
    let out = a.opt_str(0)?;
    let host = crate::modules::with_msg(st, a.fname, |m| uri_host(m.ruri()))?;
    match host {
        Some(h) => ask(lua, st, &a, h, out),
        None => ready(lua, -1),
    }
}

fn is_domain_local(lua: &Lua, st: &Rc<State>, a: Args) -> mlua::Result<Step> {
    let domain = crate::script::api::pv_fmt(lua, st, &a.str(0)?)?;
    let out = a.opt_str(1)?;
    ask(lua, st, &a, domain, out)
}

/// `config.modules.domain`, read and checked.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    conf: Option<DomConf>,
}

const M: &str = "domain";

pub fn prepare(modules: &mlua::Table) -> Result<Prepared, String> {
    let Some(t) = cfg::table(modules, M)? else {
        return Ok(Prepared::default());
    };
    let db_mode = match cfg::int(&t, M, "db_mode")?.unwrap_or(0) {
        0 => 0,
        1 => 1,
        n => return Err(format!("config.modules.domain.db_mode: {n} is not 0 or 1")),
    };
    let db_url = cfg::str(&t, M, "db_url")?;
    if let Some(u) = &db_url {
        crate::db::check_url(u).map_err(|e| format!("config.modules.domain.db_url: {e}"))?;
    }
    let ident = |key: &str, default: &str| -> Result<Ident, String> {
        let name = cfg::str(&t, M, key)?.unwrap_or_else(|| default.to_string());
        Ident::new(&name).map_err(|e| format!("config.modules.domain.{key}: {e}"))
    };
    Ok(Prepared {
        conf: Some(DomConf {
            db_mode,
            db_url,
            db: None,
            table: Some(ident("domain_table", "domain")?),
            domain_col: Some(ident("domain_col", "domain")?),
            attrs_col: Some(ident("attrs_col", "attrs")?),
        }),
    })
}

impl Prepared {
    /// Opens the pool and, in db_mode 1, reads the table (a failure stops
    /// the start or the reload, as in OpenSIPS).
    pub fn commit(self, staged: &mut crate::state::Staged) -> Result<(), String> {
        let Some(mut c) = self.conf else {
            staged.put(DomConf::default());
            return Ok(());
        };
        if let Some(u) = &c.db_url {
            c.db = Some(crate::db::open(u).map_err(|e| format!("domain: {e}"))?);
        }
        if c.db_mode == 1 {
            let n = reload_wait(&c).map_err(|e| format!("domain: loading the table: {e}"))?;
            tracing::info!("domain: {n} domains loaded");
        }
        staged.put(c);
        Ok(())
    }
}

const S: ParamKind = ParamKind::Str;
const I: ParamKind = ParamKind::Int;

static PARAMS: &[Param] = &[
    param("db_url", S, "none", "`mysql://…`, `postgres://…` or `sqlite:///path` holding OpenSIPS 3.4's `domain` table (version 3). Each SIP worker queries it on connections of its own (MySQL: up to 8 per worker, 2 kept idle; PostgreSQL: up to 4), opened when first needed; docs/ARCHITECTURE.md, \"The database layer\"."),
    param("db_mode", I, "0", "0: every check queries the table (the route waits); 1: the table is read into memory at start and by MI `domain_reload`."),
    param("domain_table", S, "domain", "The table's name."),
    param("domain_col", S, "domain", "The column holding the domain name."),
    param("attrs_col", S, "attrs", "The column holding the domain's attributes."),
];

const ROUTES: RouteMask = RouteMask::REQUEST
    .or(RouteMask::BRANCH)
    .or(RouteMask::FAILURE)
    .or(RouteMask::LOCAL);

static EXPORTS: &[Export] = &[
    Export {
        name: "is_from_local",
        args: "([attrs_pv])",
        returns: "ok, code (1 local; -1 not; -2 bad From URI; -3 database error)",
        routes: ROUTES,
        doc: "Whether the host of the From URI is a domain of the `domain` table (case-insensitive); `attrs_pv` (`\"$var(attrs)\"`) gets its `attrs` when set. db_mode 0 waits for the database.",
        func: Func::Async(is_from_local),
    },
    Export {
        name: "is_uri_host_local",
        args: "([attrs_pv])",
        returns: "ok, code (1 local; -1 not or bad R-URI; -3 database error)",
        routes: ROUTES,
        doc: "Whether the host of the Request-URI (as rewritten so far) is a local domain; `attrs_pv` as for `is_from_local`.",
        func: Func::Async(is_uri_host_local),
    },
    Export {
        name: "is_domain_local",
        args: "(domain [, attrs_pv])",
        returns: "ok, code (1 local; -1 not; -3 database error)",
        routes: ROUTES,
        doc: "Whether `domain` (pseudo-variables expanded: `\"$fd\"`) is a local domain; `attrs_pv` as for `is_from_local`.",
        func: Func::Async(is_domain_local),
    },
];

crate::modules::staged_settings!(Prepared);

pub static MODULE: Module = Module {
    name: "domain",
    table: Some("domain"),
    doc: "Local domains (OpenSIPS domain): the `domain` table, asked each time or cached. See docs/domain.md.",
    exports: EXPORTS,
    mi: mi::COMMANDS,
    params: PARAMS,
    setup: Some(|m| crate::modules::settings(prepare(m))),
    ..Module::NONE
};
