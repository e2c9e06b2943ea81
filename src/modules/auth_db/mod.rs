//! auth_db (OpenSIPS module of the same name): `www_authorize` and
//! `proxy_authorize` check digest credentials against OpenSIPS 3.4's
//! `subscriber` table (modules/auth_db/authorize.c). The nonce checks run
//! on the worker (auth's pre_auth); the password lookup suspends the route.

mod checks;

use std::rc::Rc;
use std::sync::Arc;

use mlua::Lua;

use crate::db::{self, Ident, Value};
use crate::modules::auth::{self, code, digest::Alg, Kind};
use crate::modules::registrar::coded;
use crate::modules::usrloc::cfg;
use crate::modules::{param, Module, Param, ParamKind};
use crate::proxy::reply;
use crate::script::exports::{Args, Export, Func, Step};
use crate::script::host::State;
use crate::script::route::RouteMask;

/// auth_db's settings in force.
#[derive(Debug, Clone)]
pub struct Conf {
    pub db_url: Option<String>,
    pub user_column: Ident,
    pub domain_column: Ident,
    pub password_column: Ident,
    pub hash_column_sha256: Ident,
    pub hash_column_sha512t256: Ident,
    pub calculate_ha1: bool,
    pub use_domain: bool,
    /// Columns of the `uri` table (db_is_to/from_authorized, db_get_auth_id).
    pub uri_user_column: Ident,
    pub uri_domain_column: Ident,
    pub uri_uriuser_column: Ident,
    /// `load_credentials`: (AVP name, subscriber column) loaded on a
    /// successful authorize.
    pub credentials: Vec<(String, Ident)>,
}

fn ident(s: &str) -> Ident {
    Ident::new(s).unwrap_or_else(|_| unreachable!("constant column name"))
}

impl Default for Conf {
    fn default() -> Conf {
        Conf {
            db_url: None,
            user_column: ident("username"),
            domain_column: ident("domain"),
            password_column: ident("ha1"),
            hash_column_sha256: ident("ha1_sha256"),
            hash_column_sha512t256: ident("ha1_sha512t256"),
            calculate_ha1: false,
            use_domain: false,
            uri_user_column: ident("username"),
            uri_domain_column: ident("domain"),
            uri_uriuser_column: ident("uri_user"),
            credentials: vec![("rpid".into(), ident("rpid"))],
        }
    }
}

/// The settings in force (the registry of this thread's environment).
pub fn conf() -> Arc<Conf> {
    crate::state::module::<Conf>()
}

/// `config.modules.auth_db`, read and checked.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    conf: Conf,
}

pub fn prepare(modules: &mlua::Table) -> Result<Prepared, String> {
    let mut c = Conf::default();
    let Some(t) = cfg::table(modules, "auth_db")? else {
        return Ok(Prepared { conf: c });
    };
    if let Some(u) = cfg::str(&t, "auth_db", "db_url")? {
        db::check_url(&u).map_err(|e| format!("config.modules.auth_db.db_url: {e}"))?;
        c.db_url = Some(u);
    }
    let col = |key: &str, into: &mut Ident| -> Result<(), String> {
        if let Some(v) = cfg::str(&t, "auth_db", key)? {
            *into = Ident::new(&v).map_err(|e| format!("config.modules.auth_db.{key}: {e}"))?;
        }
        Ok(())
    };
    col("user_column", &mut c.user_column)?;
    col("domain_column", &mut c.domain_column)?;
    col("password_column", &mut c.password_column)?;
    col("hash_column_sha256", &mut c.hash_column_sha256)?;
    col("hash_column_sha512t256", &mut c.hash_column_sha512t256)?;
    col("uri_user_column", &mut c.uri_user_column)?;
    col("uri_domain_column", &mut c.uri_domain_column)?;
    col("uri_uriuser_column", &mut c.uri_uriuser_column)?;
    // OpenSIPS takes 0/1 integers; Lua booleans too.
    let flag = |key: &str| -> Result<Option<bool>, String> {
        match cfg::int(&t, "auth_db", key) {
            Ok(v) => Ok(v.map(|n| n != 0)),
            Err(_) => cfg::bool(&t, "auth_db", key),
        }
    };
    if let Some(l) = cfg::str(&t, "auth_db", "load_credentials")? {
        c.credentials = parse_credentials(&l)
            .map_err(|e| format!("config.modules.auth_db.load_credentials: {e}"))?;
    }
    if let Some(b) = flag("calculate_ha1")? {
        c.calculate_ha1 = b;
    }
    if let Some(b) = flag("use_domain")? {
        c.use_domain = b;
    }
    Ok(Prepared { conf: c })
}

/// The `load_credentials` syntax (OpenSIPS auth_db/aaa_avps.h):
/// `credential (';' credential)*`, each `$avp(name)=column` or `column`
/// (loaded into `$avp(column)`).
pub fn parse_credentials(list: &str) -> Result<Vec<(String, Ident)>, String> {
    let mut v = Vec::new();
    for item in list.split(';') {
        let item = item.trim();
        if item.is_empty() {
            // aaa_avps.h stops at a trailing ';' and refuses an empty one inside.
            continue;
        }
        let (avp, col) = match item.split_once('=') {
            Some((a, c)) => (Some(auth::avp_name(item, a.trim())?), c.trim()),
            None => (None, item),
        };
        let col = Ident::new(col).map_err(|e| format!("'{item}': {e}"))?;
        v.push((avp.unwrap_or_else(|| col.as_str().to_string()), col));
    }
    Ok(v)
}

impl Prepared {
    pub fn commit(self, staged: &mut crate::state::Staged) {
        staged.put(self.conf);
    }
}

/// The column holding what checks `alg` (OpenSIPS get_cred_column): the
/// password with calculate_ha1, else the HA1 of that algorithm.
fn cred_column(c: &Conf, alg: Alg) -> &Ident {
    match (c.calculate_ha1, alg) {
        (true, _) | (false, Alg::Md5) => &c.password_column,
        (false, Alg::Sha256) => &c.hash_column_sha256,
        (false, Alg::Sha512t256) => &c.hash_column_sha512t256,
    }
}

/// A worker's pool and credential SELECTs for the settings in force (a
/// reload brings a new `Conf`, which empties it).
#[derive(Default)]
struct Selects {
    conf: Option<Arc<Conf>>,
    pool: Option<db::Db>,
    /// (table, algorithm) → its SELECT.
    sql: Vec<(Ident, Alg, Rc<str>)>,
}

thread_local! {
    static SELECTS: std::cell::RefCell<Selects> = std::cell::RefCell::default();
}

/// The pool of `url` and the SELECT of the credentials checking `alg` in
/// `table` (authorize.c get_ha1), both made once per worker and settings.
fn select(c: &Arc<Conf>, url: &str, table: &str, alg: Alg) -> Result<(db::Db, Rc<str>), db::DbError> {
    SELECTS.with_borrow_mut(|s| {
        if !s.conf.as_ref().is_some_and(|k| Arc::ptr_eq(k, c)) {
            *s = Selects {
                conf: Some(c.clone()),
                ..Selects::default()
            };
        }
        let pool = match &s.pool {
            Some(p) => p.clone(),
            None => s.pool.insert(db::open(url)?).clone(),
        };
        if let Some((_, _, sql)) = s.sql.iter().find(|(t, a, _)| t.as_str() == table && *a == alg) {
            return Ok((pool, sql.clone()));
        }
        let table = Ident::new(table)?;
        let col = cred_column(c, alg);
        let mut sql = format!("SELECT {col}");
        for (_, k) in &c.credentials {
            sql.push_str(", ");
            sql.push_str(k.as_str());
        }
        sql.push_str(&format!(" FROM {table} WHERE {} = ?", c.user_column));
        if c.use_domain {
            sql.push_str(&format!(" AND {} = ?", c.domain_column));
        }
        let sql: Rc<str> = sql.into();
        s.sql.push((table, alg, sql.clone()));
        Ok((pool, sql))
    })
}

fn authorize(lua: &Lua, st: &Rc<State>, a: Args, kind: Kind) -> mlua::Result<Step> {
    let realm = a.str(0)?;
    // Checked here, made an Ident only for a new SELECT (select).
    let table = a.str(1)?;
    if !Ident::valid(&table) {
        return Err(a.err(db::DbError::BadName(table)));
    }
    let c = conf();
    let url = c
        .db_url
        .as_deref()
        .ok_or_else(|| a.err("config.modules.auth_db.db_url is not set"))?;
    // No credentials, or credentials refused before any read (nonce,
    // algorithm, replay): answered at once.
    let p = match auth::pre_auth(st, &realm, kind) {
        Ok(Some(p)) => p,
        Ok(None) => return Step::now(coded(lua, code::AUTHORIZED)),
        Err(rc) => return Step::now(coded(lua, rc)),
    };
    a.require_suspend()?;
    let (pool, sql) = select(&c, url, &table, p.alg).map_err(|e| a.err(e))?;
    let domain = p.cred.domain().unwrap_or(&p.realm).to_string();
    let mut params = vec![Value::text(p.cred.user())];
    if c.use_domain {
        params.push(Value::text(&domain));
    }
    let fut = pool.query(&sql, params);
    let (lua, st) = (lua.clone(), st.clone());
    Step::wait(async move {
        let rows = match fut.await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("auth_db: {}: {e}", p.cred.username);
                reply::send_local_reply(&st, 500, "Server Internal Error");
                return coded(&lua, code::ERROR);
            }
        };
        let Some(secret) = rows.first().and_then(|r| r.at(0).as_text()) else {
            return coded(&lua, code::USER_UNKNOWN);
        };
        let ha1 = match c.calculate_ha1 {
            // OpenSIPS hashes the whole username with the realm argument.
            true => p.alg.ha1(&p.cred.username, &p.realm, &secret),
            false => secret,
        };
        match p.cred.check(p.alg, &ha1, &p.method, &p.body) {
            true => {
                checks::mark_authorized(&st, p.cred.user(), &domain);
                if let Some(r) = rows.first() {
                    load_credentials(&st, &c, r);
                }
                coded(&lua, code::AUTHORIZED)
            }
            false => coded(&lua, code::INVALID_PASSWORD),
        }
    })
}

/// authorize.c generate_avps: each loaded column that is not NULL or
/// empty becomes the newest value of its AVP (integers stay integers).
fn load_credentials(st: &State, c: &Conf, row: &db::Row) {
    use crate::proxy::context::Value as Pv;
    let mut call = st.call.borrow_mut();
    for (i, (avp, _)) in c.credentials.iter().enumerate() {
        let v = match row.at(i + 1) {
            Value::Null => continue,
            Value::Int(n) => Pv::Int(*n),
            other => match other.as_text() {
                Some(s) if !s.is_empty() => Pv::Str(s),
                _ => continue,
            },
        };
        call.avps.entry(avp.clone()).or_default().insert(0, v);
    }
}

fn www_authorize(lua: &Lua, st: &Rc<State>, a: Args) -> mlua::Result<Step> {
    authorize(lua, st, a, Kind::Www)
}

fn proxy_authorize(lua: &Lua, st: &Rc<State>, a: Args) -> mlua::Result<Step> {
    authorize(lua, st, a, Kind::Proxy)
}

const RETURNS: &str = "ok, code (1 authorized; -1 user unknown; -2 invalid password; -3 stale nonce; -4 no credentials; -5 error; 0 error with a 400/500 sent)";

static EXPORTS: &[Export] = &[
    Export {
        name: "www_authorize",
        args: "(realm, table)",
        returns: RETURNS,
        routes: RouteMask::REQUEST,
        doc: "Checks the Authorization credentials for `realm` (empty: the To host of a REGISTER, else the From host) against the subscriber table `table`: the nonce must be signed with auth's `secret`, unexpired, for the algorithm and qop answered, and not replayed (nc must grow); then the response is computed from the `ha1` / `ha1_sha256` / `ha1_sha512t256` column (or from `password_column` with calculate_ha1). The route waits for the database; a database error answers 500. After -3 (or -4), `sip.auth.www_challenge` sends the new challenge (stale=true after -3). On success the `load_credentials` columns of the row (default `rpid`) become AVPs.",
        func: Func::Async(www_authorize),
    },
    Export {
        name: "proxy_authorize",
        args: "(realm, table)",
        returns: RETURNS,
        routes: RouteMask::REQUEST,
        doc: "As `www_authorize` with the Proxy-Authorization header; an empty realm is the From host.",
        func: Func::Async(proxy_authorize),
    },
    Export {
        name: "db_is_to_authorized",
        args: "(table)",
        returns: "ok, code (1 allowed; -9 not; -2 no authorized credentials; -4 no user in the To URI; -8 database error; -1 bad To)",
        routes: RouteMask::REQUEST,
        doc: "Whether the user authenticated by `www_authorize`/`proxy_authorize` for this message may use the To URI's user: the `uri` table `table` must hold (`uri_user_column` = digest user, `uri_domain_column` = its domain or realm, `uri_uriuser_column` = To user). OpenSIPS 2.x's uri module called it `db_check_to`. The route waits for the database.",
        func: Func::Async(checks::db_is_to_authorized),
    },
    Export {
        name: "db_is_from_authorized",
        args: "(table)",
        returns: "ok, code (as db_is_to_authorized, for the From URI)",
        routes: RouteMask::REQUEST,
        doc: "As `db_is_to_authorized` for the From URI (2.x `db_check_from`).",
        func: Func::Async(checks::db_is_from_authorized),
    },
    Export {
        name: "db_does_uri_exist",
        args: "(uri, table)",
        returns: "ok, code (1 exists; -5 no such subscriber; -4 database error; -1 bad URI)",
        routes: RouteMask::REQUEST.or(RouteMask::FAILURE).or(RouteMask::LOCAL),
        doc: "Whether `uri` (pseudo-variables expanded: `\"$ru\"`) names a row of the subscriber table `table` (`user_column`, and `domain_column` = host with use_domain). The route waits for the database.",
        func: Func::Async(checks::db_does_uri_exist),
    },
    Export {
        name: "db_get_auth_id",
        args: "(table, uri, user_pv, realm_pv)",
        returns: "ok, code (1 found; -4 not found; -8 database error; -1 bad URI)",
        routes: RouteMask::REQUEST.or(RouteMask::FAILURE).or(RouteMask::LOCAL),
        doc: "Looks the user of `uri` up in the `uri` table `table` (`uri_uriuser_column`, and `uri_domain_column` = host with use_domain) and writes its authentication user and realm (`uri_user_column`, `uri_domain_column`) into `user_pv` and `realm_pv` (`\"$avp(au)\"`). The route waits for the database.",
        func: Func::Async(checks::db_get_auth_id),
    },
];

const S: ParamKind = ParamKind::Str;

static PARAMS: &[Param] = &[
    param("db_url", S, "none", "The database with the subscriber table (mysql://, postgres://, sqlite:///path). Each SIP worker queries it on connections of its own (MySQL: up to 8 per worker, 2 kept idle; PostgreSQL: up to 4), opened when first needed; docs/ARCHITECTURE.md, \"The database layer\"."),
    param("user_column", S, "username", "Column of the user name."),
    param("domain_column", S, "domain", "Column of the domain (matched with use_domain)."),
    param("password_column", S, "ha1", "Column of the MD5 HA1, or of the plain password with calculate_ha1."),
    param("hash_column_sha256", S, "ha1_sha256", "Column of the SHA-256 HA1."),
    param("hash_column_sha512t256", S, "ha1_sha512t256", "Column of the SHA-512/256 HA1."),
    param("calculate_ha1", ParamKind::Int, "0", "1: password_column holds plain passwords and HA1 is computed."),
    param("use_domain", ParamKind::Int, "0", "1: the user's domain (from the username, else the realm) must match domain_column."),
    param("uri_user_column", S, "username", "`uri` table column of the authentication user."),
    param("uri_domain_column", S, "domain", "`uri` table column of its domain (realm)."),
    param("load_credentials", S, "rpid", "Subscriber columns loaded into AVPs when authorize succeeds: `\"$avp(caller_uuid)=uuid;rpid\"` (a bare column goes to `$avp(column)`); empty: none."),
    param("uri_uriuser_column", S, "uri_user", "`uri` table column of the URI user it may use."),
];

pub static MODULE: Module = Module {
    name: "auth_db",
    table: Some("auth_db"),
    doc: "Digest authorization against the subscriber table (OpenSIPS auth_db). See docs/auth.md.",
    exports: EXPORTS,
    params: PARAMS,
    setup: Some(|m| crate::modules::settings(prepare(m))),
    ..Module::NONE
};

/// `lunasip db add-user`: writes `user@domain` into subscriber table
/// `table` with its HA1 for each algorithm (realm = domain, as
/// opensips-cli `user add`), replacing a row already there. The password
/// itself is stored too when it fits the column (25 characters).
pub fn add_user_wait(
    pool: &db::Db,
    table: &Ident,
    user: &str,
    domain: &str,
    password: &str,
) -> Result<(), db::DbError> {
    let plain = if password.chars().count() <= 25 { password } else { "" };
    pool.exec_wait(
        &format!("DELETE FROM {table} WHERE username = ? AND domain = ?"),
        vec![Value::text(user), Value::text(domain)],
    )?;
    pool.exec_wait(
        &format!("INSERT INTO {table} (username, domain, password, ha1, ha1_sha256, ha1_sha512t256) VALUES (?, ?, ?, ?, ?, ?)"),
        vec![
            Value::text(user),
            Value::text(domain),
            Value::text(plain),
            Value::text(Alg::Md5.ha1(user, domain, password)),
            Value::text(Alg::Sha256.ha1(user, domain, password)),
            Value::text(Alg::Sha512t256.ha1(user, domain, password)),
        ],
    )?;
    Ok(())
}

crate::modules::staged_settings!(Prepared);

#[cfg(test)]
mod tests {
    use super::parse_credentials;

    #[test]
    fn load_credentials_syntax_as_aaa_avps_h() {
        let v = parse_credentials("$avp(caller_uuid)=uuid; rpid ;").expect("parses");
        let v: Vec<(&str, &str)> = v.iter().map(|(a, c)| (a.as_str(), c.as_str())).collect();
        assert_eq!(v, [("caller_uuid", "uuid"), ("rpid", "rpid")]);
        assert!(parse_credentials("").expect("empty").is_empty());
        assert!(parse_credentials("$var(x)=uuid").is_err());
        assert!(parse_credentials("$avp(x)=uu id").is_err());
        assert!(parse_credentials("rpid; drop table").is_err());
    }
}
