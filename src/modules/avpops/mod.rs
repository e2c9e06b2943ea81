//! avpops (OpenSIPS 3.4 modules/avpops: avpops.c, avpops_impl.c,
//! avpops_db.c): AVPs from and to a database — `avp_db_query` (any SQL,
//! results into AVPs), `avp_db_load` / `avp_db_store` / `avp_db_delete`
//! on the `usr_preferences` table (version 3) — and operations on the
//! AVPs of a call (`avp_check`, `avp_copy`, `avp_subst`, `avp_op`,
//! `avp_pushto`, `avp_shuffle`, `avp_delete`, `avp_print`, `is_avp_set`).
//! Every query suspends the route, never the worker, and takes bound
//! parameters only: pseudo-variables written into `avp_db_query`'s SQL
//! are sent as parameters, not pasted into the text (see [`query`]).
//!
//! Differences from OpenSIPS: `avp_db_store` writes every value of the
//! AVP, also those `avp_db_load` read (OpenSIPS skips AVP_IS_IN_DB ones);
//! `db_scheme` and `/$scheme` are not supported; `avp_op` with an AVP as
//! operand uses its newest integer value (OpenSIPS also cycles over the
//! operand's other values); AVP names are always strings (type bit 2 is
//! written for all-digit names).

mod ops;
mod prefs;
pub mod query;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::db::{self, Ident};
use crate::modules::{cfg, param, Module, Param, ParamKind};
use crate::script::exports::{Args, Export, Func};
use crate::script::route::RouteMask;

/// avpops' settings in force.
#[derive(Debug, Clone)]
pub struct AvpConf {
    /// `db_url` by id (0 when the URL has none, as OpenSIPS's
    /// `modparam("avpops", "db_url", "1 mysql://…")`).
    pub urls: BTreeMap<i64, String>,
    pub table: Ident,
    pub use_domain: bool,
    pub uuid_column: Ident,
    pub username_column: Ident,
    pub domain_column: Ident,
    pub attribute_column: Ident,
    pub value_column: Ident,
    pub type_column: Ident,
}

fn ident(s: &str) -> Ident {
    Ident::new(s).unwrap_or_else(|_| unreachable!("constant column name"))
}

impl Default for AvpConf {
    fn default() -> AvpConf {
        AvpConf {
            urls: BTreeMap::new(),
            table: ident("usr_preferences"),
            use_domain: false,
            uuid_column: ident("uuid"),
            username_column: ident("username"),
            domain_column: ident("domain"),
            attribute_column: ident("attribute"),
            value_column: ident("value"),
            type_column: ident("type"),
        }
    }
}

/// The settings in force (the registry of this thread's environment).
pub fn conf() -> Arc<AvpConf> {
    crate::state::module::<AvpConf>()
}

/// The pool for `db_id` (the first URL when none is given), or a Lua
/// error naming the function.
fn pool(a: &Args, c: &AvpConf, db_id: Option<i64>) -> mlua::Result<db::Db> {
    let url = match db_id {
        Some(id) => c
            .urls
            .get(&id)
            .ok_or_else(|| a.err(format!("no db_url with id {id} (config.modules.avpops.db_url)")))?,
        None => c
            .urls
            .values()
            .next()
            .ok_or_else(|| a.err("config.modules.avpops.db_url is not set"))?,
    };
    db::open(url).map_err(|e| a.err(e))
}

/// `"N url"` → (N, url); a URL alone has id 0 (avpops.c add_db_url).
fn split_id(s: &str) -> Result<(i64, String), String> {
    let s = s.trim();
    match s.split_once(char::is_whitespace) {
        Some((n, url)) if n.bytes().all(|b| b.is_ascii_digit()) => n
            .parse()
            .map(|n| (n, url.trim().to_string()))
            .map_err(|_| format!("bad db_url id '{n}'")),
        _ => Ok((0, s.to_string())),
    }
}

/// `config.modules.avpops`, read and checked.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    conf: AvpConf,
}

const M: &str = "avpops";

fn add_url(c: &mut AvpConf, id: i64, url: String) -> Result<(), String> {
    db::check_url(&url).map_err(|e| format!("config.modules.avpops.db_url: {e}"))?;
    if c.urls.insert(id, url).is_some() {
        return Err(format!("config.modules.avpops.db_url: id {id} given twice"));
    }
    Ok(())
}

pub fn prepare(modules: &mlua::Table) -> Result<Prepared, String> {
    let mut c = AvpConf::default();
    let Some(t) = cfg::table(modules, M)? else {
        return Ok(Prepared { conf: c });
    };
    match t.get::<mlua::Value>("db_url").map_err(|e| e.to_string())? {
        mlua::Value::Table(list) => {
            for pair in list.pairs::<mlua::Value, String>() {
                let (k, v) = pair.map_err(|e| format!("config.modules.avpops.db_url: {e}"))?;
                // { [0] = "mysql://…", "2 mysql://…" }: the id written
                // before the URL, else the key.
                let explicit = v.trim().starts_with(|c: char| c.is_ascii_digit());
                let (id, url) = split_id(&v)?;
                let id = match k {
                    mlua::Value::Integer(k) if !explicit => k,
                    _ => id,
                };
                add_url(&mut c, id, url)?;
            }
        }
        _ => {
            if let Some(u) = cfg::str(&t, M, "db_url")? {
                let (id, url) = split_id(&u)?;
                add_url(&mut c, id, url)?;
            }
        }
    }
    for (key, into) in [
        ("avp_table", &mut c.table),
        ("uuid_column", &mut c.uuid_column),
        ("username_column", &mut c.username_column),
        ("domain_column", &mut c.domain_column),
        ("attribute_column", &mut c.attribute_column),
        ("value_column", &mut c.value_column),
        ("type_column", &mut c.type_column),
    ] {
        if let Some(v) = cfg::str(&t, M, key)? {
            *into = Ident::new(&v).map_err(|e| format!("config.modules.avpops.{key}: {e}"))?;
        }
    }
    c.use_domain = cfg::bool(&t, M, "use_domain")?.unwrap_or(false);
    if cfg::str(&t, M, "db_scheme")?.is_some() {
        return Err("config.modules.avpops.db_scheme: DB schemes are not supported yet (use avp_db_query)".into());
    }
    Ok(Prepared { conf: c })
}

impl Prepared {
    pub fn commit(self, staged: &mut crate::state::Staged) {
        staged.put(self.conf);
    }
}

const S: ParamKind = ParamKind::Str;

static PARAMS: &[Param] = &[
    param("db_url", S, "none", "The database (mysql://, postgres://, sqlite:///path); `\"2 mysql://…\"` gives it the id the functions' `db_id` argument names, and a list gives several. Each SIP worker queries it on connections of its own (MySQL: up to 8 per worker, 2 kept idle; PostgreSQL: up to 4), opened when first needed; docs/ARCHITECTURE.md, \"The database layer\"."),
    param("avp_table", S, "usr_preferences", "The table of `avp_db_load`, `avp_db_store` and `avp_db_delete` when the name argument names none."),
    param("use_domain", ParamKind::Bool, "false", "Compare (and store) the domain of a URI source too, not only its user."),
    param("uuid_column", S, "uuid", "Column of the unique user id."),
    param("username_column", S, "username", "Column of the user name."),
    param("domain_column", S, "domain", "Column of the domain."),
    param("attribute_column", S, "attribute", "Column of the AVP name."),
    param("value_column", S, "value", "Column of the AVP value."),
    param("type_column", S, "type", "Column of the type bits (1 the value is an integer, 2 the name is)."),
];

const ANY: RouteMask = RouteMask::ANY;

static EXPORTS: &[Export] = &[
    Export {
        name: "avp_db_query",
        args: "(query [, dest [, db_id]])",
        returns: "ok, code (1 rows came back; -2 none, also for statements without rows; -1 error)",
        routes: RouteMask::WAIT,
        doc: "Runs `query` (any SQL) and writes each column of the result into the next variable of `dest` (`\"$avp(a);$avp(b)\"`; `$avp(1)`, `$avp(2)`… when absent); several rows make several AVP values, the first row newest. Pseudo-variables in the query are sent as bound parameters: a quoted literal that holds one (`'$fU'`, `'%$rU%'`) becomes one parameter with its text, a bare one (`id = $var(n)`) one parameter with its value — data never becomes SQL. The route waits for the database.",
        func: Func::Async(query::avp_db_query),
    },
    Export {
        name: "avp_db_load",
        args: "(source, name [, db_id [, prefix]])",
        returns: "ok, code (1 AVPs loaded; -1 none, or an error)",
        routes: RouteMask::WAIT,
        doc: "Loads the preferences of `source` from `avp_table`: `source` is a pseudo-variable or a string, with `/uuid`, `/uri`, `/username` or `/domain` for the columns compared (`$ru`, `$fu`, `$tu`, `$ou` default to the URI's user, and its domain with `use_domain`; other values are a uuid). `name` is `$avp(x)` (that attribute only), or `*`/`s`/`a` (every attribute, named as in the table, after `prefix`); `/table` after it names another table. The route waits for the database.",
        func: Func::Async(prefs::avp_db_load),
    },
    Export {
        name: "avp_db_store",
        args: "(source, name [, db_id])",
        returns: "ok, code (1 rows written; -1 none, or an error)",
        routes: RouteMask::WAIT,
        doc: "Writes the values of `$avp(x)` (or, with `*`, of every AVP) as rows of `source` (as `avp_db_load`) into `avp_table` (or `/table`), with the type bits OpenSIPS writes. The route waits for the database.",
        func: Func::Async(prefs::avp_db_store),
    },
    Export {
        name: "avp_db_delete",
        args: "(source, name [, db_id])",
        returns: "ok, code (1 done, also when no row matched; -1 error)",
        routes: RouteMask::WAIT,
        doc: "Deletes the rows of `source` (as `avp_db_load`) for attribute `$avp(x)` (or every attribute with `*`) from `avp_table` (or `/table`). The route waits for the database.",
        func: Func::Async(prefs::avp_db_delete),
    },
    Export {
        name: "avp_delete",
        args: "(name)",
        returns: "ok, code (1 removed; -1 nothing was)",
        routes: ANY,
        doc: "Removes the newest value of `$avp(x)`, every value with `$avp(x)/g`; `*` (or `s`, `a`) removes every AVP, `i` those with numeric names.",
        func: Func::Sync(ops::avp_delete),
    },
    Export {
        name: "avp_copy",
        args: "(src, dst)",
        returns: "ok, code (1 copied; -1 nothing to copy)",
        routes: ANY,
        doc: "Adds the newest value of `$avp(src)` to `$avp(dst)`. Flags after `dst/`: `g` every value, `d` delete what was copied, `n` as an integer, `s` as a string.",
        func: Func::Sync(ops::avp_copy),
    },
    Export {
        name: "avp_shuffle",
        args: "(name)",
        returns: "ok, code (1)",
        routes: ANY,
        doc: "Puts the values of `$avp(name)` in a random order.",
        func: Func::Sync(ops::avp_shuffle),
    },
    Export {
        name: "avp_pushto",
        args: "(dst, src)",
        returns: "ok, code (1 done; -1 no value, or it does not fit)",
        routes: ANY,
        doc: "Writes the value of `src` (any pseudo-variable) into `$ru`, `$ru/username`, `$ru/domain`, `$du` or `$br` (a new branch). With `src/g` every value of an AVP: into `$ru` the first rewrites the R-URI and each next one moves the current R-URI into a branch first; into `$br` each is a branch.",
        func: Func::Sync(ops::avp_pushto),
    },
    Export {
        name: "avp_check",
        args: "(param, check)",
        returns: "ok, code (1 matched; -1 not)",
        routes: ANY,
        doc: "Compares `param` (any pseudo-variable; `$avp` values one by one with `g`) with `op/value[/flags]`: op `eq`, `ne`, `lt`, `le`, `gt`, `ge` (strings compared without case for the orderings, with `i` for eq/ne), `re` (POSIX extended, no case), `fm` (shell glob, `i` no case), `and`, `or`, `xor` (integers). The value is a literal (`i:5`, `s:5`, or a number or text as written) or a pseudo-variable; a string is never equal to an integer.",
        func: Func::Sync(ops::avp_check),
    },
    Export {
        name: "avp_op",
        args: "(param, op)",
        returns: "ok, code (1 done; -1 no integer value, or an error)",
        routes: ANY,
        doc: "Integer arithmetic on `$avp(src)[/$avp(dst)]` (the result is added to dst, or to src): `op/value[/flags]` with op `add`, `sub`, `mul`, `div`, `mod`, `and`, `or`, `xor`, `not`; the value an integer or a pseudo-variable; flags `g` every value of src, `d` delete the values used.",
        func: Func::Sync(ops::avp_op),
    },
    Export {
        name: "avp_subst",
        args: "(param, subst)",
        returns: "ok, code (1 replaced; -1 no match)",
        routes: ANY,
        doc: "Applies `/re/replacement/flags` to the newest string value of `$avp(src)` (every one with `g`), writing the result to `$avp(dst)` when given as `$avp(src)/$avp(dst)[/flags]`, else replacing the value; flag `d` deletes the source values.",
        func: Func::Sync(ops::avp_subst),
    },
    Export {
        name: "is_avp_set",
        args: "(name)",
        returns: "ok, code (1 set; -1 not)",
        routes: ANY,
        doc: "Whether `$avp(x)` (or its `[n]`-th value) exists; with flags after `/`: `e` it is empty (\"\" or 0), `s` it is a string, `n` it is an integer.",
        func: Func::Sync(ops::is_avp_set),
    },
    Export {
        name: "avp_print",
        args: "()",
        returns: "ok, code (1)",
        routes: ANY,
        doc: "Logs every AVP of the call (name, type, value) at level info.",
        func: Func::Sync(ops::avp_print),
    },
];

crate::modules::staged_settings!(Prepared);

pub static MODULE: Module = Module {
    name: "avpops",
    table: Some("avpops"),
    doc: "AVPs from and to a database and operations on them (OpenSIPS avpops).",
    exports: EXPORTS,
    params: PARAMS,
    setup: Some(|m| crate::modules::settings(prepare(m))),
    ..Module::NONE
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_ids() {
        assert_eq!(split_id("mysql://h/db"), Ok((0, "mysql://h/db".into())));
        assert_eq!(split_id(" 2  mysql://h/db"), Ok((2, "mysql://h/db".into())));
    }
}
