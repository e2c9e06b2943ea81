//! permissions (OpenSIPS module of the same name): OpenSIPS 3.4's
//! `address` table (version 5: group, IP, mask, port, transport, pattern,
//! context info) of each partition (`partition` param; `default` is
//! `db_url` + `address_table`) read into memory at start and on MI
//! `address_reload`; `check_address`, `check_source_address` and
//! `get_source_group` answer from memory, so they never wait. The
//! allow/deny files of `allow_routing`, `allow_register` and `allow_uri`
//! are in allow.rs.

mod allow;
mod rules;
mod table;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use mlua::{Lua, MultiValue};
use serde_json::{json, Value as Json};

use crate::db::{self, version, Db, DbError, Ident};
use crate::mi::{opt, req, Command, Ctx, Kind, MiError, Params};
use crate::modules::registrar::coded;
use crate::modules::usrloc::cfg;
use crate::modules::{param, Module, Param, ParamKind};
use crate::proxy::context::Value as PvValue;
use crate::script::api::pv_fmt;
use crate::script::cfg_path;
use crate::script::exports::{Args, Export, Func};
use crate::script::host::State;
use crate::script::route::RouteMask;
use table::{Entry, Table};

/// The default partition's name (OpenSIPS def_part).
const DEFAULT: &str = "default";

/// One partition: an address table in a database.
#[derive(Clone)]
pub struct Part {
    pub name: String,
    pub db_url: String,
    pub db: Option<Db>,
    pub table: Ident,
}

impl std::fmt::Debug for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Part")
            .field("name", &self.name)
            .field("db_url", &db::redact(&self.db_url))
            .field("table", &self.table)
            .finish()
    }
}

/// The permissions settings in force.
#[derive(Debug, Clone, Default)]
pub struct PermConf {
    /// In OpenSIPS's order: `default` first.
    pub parts: Vec<Part>,
    pub files: Arc<allow::Files>,
}

/// The address tables loaded, by partition (the registry's long-lived
/// state: `address_reload` replaces one between config loads).
#[derive(Default)]
struct Loaded(RwLock<HashMap<String, Arc<Table>>>);

fn table(part: &str) -> Arc<Table> {
    crate::state::state::<Loaded>()
        .0
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(part)
        .cloned()
        .unwrap_or_default()
}

/// Reads a partition's address table (start, `address_reload`) and swaps
/// it in whole; the rows OpenSIPS skips are skipped.
pub fn reload_wait(p: &Part) -> Result<usize, DbError> {
    let db = p
        .db
        .clone()
        .ok_or_else(|| DbError::Internal("permissions: partition not opened".into()))?;
    let t = &p.table;
    version::check_wait(&db, "address", t)?;
    let rows = db.query_wait(
        &format!("SELECT ip, grp, mask, port, proto, pattern, context_info, id FROM {t}"),
        vec![],
    )?;
    let entries: Vec<Entry> = rows.iter().filter_map(Entry::from_row).collect();
    let n = entries.len();
    if n < rows.len() {
        tracing::warn!("permissions: {} rows of {t} skipped (bad ip, mask or proto)", rows.len() - n);
    }
    crate::state::state::<Loaded>()
        .0
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(p.name.clone(), Arc::new(Table::new(entries)));
    Ok(n)
}

/// The partition argument (OpenSIPS fix_part): `default` when absent; a
/// partition not configured is an error.
fn partition(a: &Args, i: usize) -> mlua::Result<String> {
    let name = a.opt_str(i)?.filter(|p| !p.is_empty()).unwrap_or_else(|| DEFAULT.into());
    let c = crate::state::module::<PermConf>();
    if name != DEFAULT && !c.parts.iter().any(|p| p.name == name) {
        return Err(a.err(format!("partition '{name}' is not defined (config.modules.permissions.partition)")));
    }
    Ok(name)
}

/// A transport argument: "any" (or empty) matches every one.
fn proto_arg(s: &str) -> Option<String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "" | "any" => None,
        p => Some(p.to_string()),
    }
}

fn write_info(st: &State, a: &Args, i: usize, info: Option<String>) -> mlua::Result<()> {
    let Some(spec) = a.opt_str(i)? else { return Ok(()) };
    let spec = st.pv.borrow_mut().spec(&spec).map_err(|e| a.err(e))?;
    crate::pv::set(&mut st.call.borrow_mut(), &spec, PvValue::Str(info.unwrap_or_default())).map_err(|e| a.err(e))
}

fn group_arg(a: &Args, i: usize) -> mlua::Result<u32> {
    u32::try_from(a.int(i)?).map_err(|_| a.err("the group must be 0 or more"))
}

/// `check_address(group, ip, port, proto [, info_pv [, pattern [, partition]]])`.
fn check_address(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let grp = group_arg(&a, 0)?;
    let ip_text = pv_fmt(lua, st, &a.str(1)?)?;
    let port = match a.opt_int(2) {
        Ok(p) => p.unwrap_or(0),
        Err(_) => pv_fmt(lua, st, &a.str(2)?)?.trim().parse().map_err(|_| a.err("the port must be a number"))?,
    };
    let proto = proto_arg(&pv_fmt(lua, st, &a.str(3)?)?);
    let pattern = a.opt_str(5)?.map(|p| pv_fmt(lua, st, &p)).transpose()?;
    let part = partition(&a, 6)?;
    let Ok(ip) = ip_text.trim().trim_matches(['[', ']']).parse::<IpAddr>() else {
        tracing::error!("check_address: invalid ip address <{ip_text}>");
        return coded(lua, -1);
    };
    let port = u16::try_from(port).unwrap_or(0);
    match table(&part).check(grp, ip, port, proto.as_deref(), pattern.as_deref()) {
        Ok(info) => {
            write_info(st, &a, 4, info)?;
            coded(lua, 1)
        }
        Err(code) => coded(lua, code),
    }
}

/// `check_source_address(group [, info_pv [, pattern [, partition]]])`.
fn check_source_address(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let grp = group_arg(&a, 0)?;
    let pattern = a.opt_str(2)?.map(|p| pv_fmt(lua, st, &p)).transpose()?;
    let part = partition(&a, 3)?;
    let src = st.call.borrow().src;
    let r = table(&part).check(grp, src.addr.ip(), src.addr.port(), Some(src.proto.as_str()), pattern.as_deref());
    match r {
        Ok(info) => {
            write_info(st, &a, 1, info)?;
            coded(lua, 1)
        }
        Err(code) => coded(lua, code),
    }
}

/// `get_source_group(out_pv [, partition])`.
fn get_source_group(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let spec = st.pv.borrow_mut().spec(&a.str(0)?).map_err(|e| a.err(e))?;
    let part = partition(&a, 1)?;
    let src = st.call.borrow().src;
    match table(&part).group_of(src.addr.ip(), src.addr.port()) {
        Some(g) => {
            crate::pv::set(&mut st.call.borrow_mut(), &spec, PvValue::Int(i64::from(g))).map_err(|e| a.err(e))?;
            coded(lua, 1)
        }
        None => coded(lua, -1),
    }
}

/// The partitions an MI command is about: the one named, or all.
fn mi_parts(p: &Params) -> Result<Vec<Part>, MiError> {
    let c = crate::state::module::<PermConf>();
    match p.str("partition") {
        None => Ok(c.parts.clone()),
        Some(n) => match c.parts.iter().find(|x| x.name == n) {
            Some(x) => Ok(vec![x.clone()]),
            None => Err(MiError::new(404, "No such partition")),
        },
    }
}

fn address_reload(_: &Ctx, p: &Params) -> Result<Json, MiError> {
    for part in mi_parts(p)? {
        if let Err(e) = reload_wait(&part) {
            tracing::error!("address_reload of partition {}: {e}", part.name);
            return Err(MiError::new(400, "Trusted table reload failed"));
        }
    }
    Ok(Json::String("OK".into()))
}

fn entry_json(e: &Entry) -> Json {
    json!({
        "grp": e.grp,
        "ip": e.ip.to_string(),
        "mask": e.mask.to_string(),
        "port": e.port,
        "proto": e.proto.clone().unwrap_or_else(|| "any".into()),
        "pattern": e.pattern.clone().unwrap_or_default(),
        "context_info": e.info.clone().unwrap_or_default(),
    })
}

fn dump(p: &Params, subnets: bool) -> Result<Json, MiError> {
    let parts = mi_parts(p)?;
    let dests = |name: &str| -> Json {
        let t = table(name);
        let list = if subnets { &t.subnets } else { &t.exact };
        Json::Array(list.iter().map(entry_json).collect())
    };
    Ok(match (p.str("partition"), parts.first()) {
        (Some(_), Some(x)) => json!({ "part": x.name, "Destinations": dests(&x.name) }),
        _ => json!({
            "Partitions": parts
                .iter()
                .map(|x| json!({ "name": x.name, "Destinations": dests(&x.name) }))
                .collect::<Vec<_>>()
        }),
    })
}

fn address_dump(_: &Ctx, p: &Params) -> Result<Json, MiError> {
    dump(p, false)
}

fn subnet_dump(_: &Ctx, p: &Params) -> Result<Json, MiError> {
    dump(p, true)
}

static COMMANDS: &[Command] = &[
    Command {
        name: "address_reload",
        help: "Reads the address table again (the old contents serve until it is read).",
        module: "permissions",
        params: &[opt("partition", Kind::Str)],
        result: "`\"OK\"`; 400 \"Trusted table reload failed\"; 404 \"No such partition\"",
        handler: address_reload,
    },
    Command {
        name: "address_dump",
        help: "The exact addresses (mask 32/128) of the address table in memory.",
        module: "permissions",
        params: &[opt("partition", Kind::Str)],
        result: "`{\"Partitions\": [{\"name\", \"Destinations\": [{\"grp\", \"ip\", \"mask\", \"port\", \"proto\", \"pattern\", \"context_info\"}]}]}`",
        handler: address_dump,
    },
    Command {
        name: "allow_uri",
        help: "Whether `<basename>.allow`/`.deny` allow `uri` (the From side of a rule) to reach `contact`, as the script function allow_uri does.",
        module: "permissions",
        params: &[req("basename", Kind::Str), req("uri", Kind::Str), req("contact", Kind::Str)],
        result: "`\"OK\"`; 403 \"Forbidden\"; 404 \"Basename is empty\", \"URI is too long\", \"Contact is too long\"",
        handler: allow::mi_allow_uri,
    },
    Command {
        name: "subnet_dump",
        help: "The subnets of the address table in memory.",
        module: "permissions",
        params: &[opt("partition", Kind::Str)],
        result: "as `address_dump`",
        handler: subnet_dump,
    },
];

/// `config.modules.permissions`, read and checked.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    conf: Option<PermConf>,
    /// The rule files, read at commit.
    files: Option<FileParams>,
    /// The script's directory, without settings.
    dir: String,
}

/// The rule-file parameters, paths resolved.
#[derive(Debug, Clone)]
struct FileParams {
    allow: String,
    deny: String,
    allow_suffix: String,
    deny_suffix: String,
    check_all_branches: bool,
    /// The script's directory (`cfg_path::dir`).
    dir: String,
}

const M: &str = "permissions";

/// One `partition` value (OpenSIPS partitions.c parse_partition):
/// `name: db_url = URL; table_name = TABLE`, both optional (inherited
/// from `db_url` and `address_table`).
fn parse_partition(s: &str, db_url: Option<&str>, table: &str) -> Result<(String, String, String), String> {
    let (name, props) = s.split_once(':').unwrap_or((s, ""));
    let name = name.trim();
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(format!("'{s}': no partition name before ':'"));
    }
    let (mut url, mut tbl) = (None, None);
    for prop in props.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        match prop.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
            Some(("db_url", v)) => url = Some(v.to_string()),
            Some(("table_name", v)) => tbl = Some(v.to_string()),
            _ => return Err(format!("invalid token '{prop}' in partition '{name}' (db_url = …; table_name = …)")),
        }
    }
    let url = url
        .or_else(|| db_url.map(str::to_string))
        .ok_or_else(|| format!("partition '{name}' has no db_url"))?;
    Ok((name.to_string(), url, tbl.unwrap_or_else(|| table.to_string())))
}

/// `partition`: one string or a list of them (the modparam given again).
fn partition_values(t: &mlua::Table) -> Result<Vec<String>, String> {
    match t.get::<mlua::Value>("partition") {
        Ok(mlua::Value::Nil) => Ok(Vec::new()),
        Ok(mlua::Value::String(s)) => Ok(vec![s.to_string_lossy().to_string()]),
        Ok(mlua::Value::Table(l)) => l
            .sequence_values::<String>()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("config.modules.permissions.partition: {e}")),
        _ => Err("config.modules.permissions.partition: a string or a list of strings".into()),
    }
}

pub fn prepare(modules: &mlua::Table) -> Result<Prepared, String> {
    let Some(t) = cfg::table(modules, M)? else {
        // No settings: no default pair, basenames still beside the script.
        return Ok(Prepared {
            dir: cfg_path::dir(),
            ..Prepared::default()
        });
    };
    let db_url = cfg::str(&t, M, "db_url")?;
    let address_table = cfg::str(&t, M, "address_table")?.unwrap_or_else(|| "address".into());
    let mut parts = Vec::new();
    for v in partition_values(&t)? {
        let (name, url, tbl) = parse_partition(&v, db_url.as_deref(), &address_table)
            .map_err(|e| format!("config.modules.permissions.partition: {e}"))?;
        if parts.iter().any(|p: &(String, String, String)| p.0 == name) {
            return Err(format!("config.modules.permissions.partition: '{name}' given twice"));
        }
        parts.push((name, url, tbl));
    }
    // init_address_df_part: db_url makes the default partition unless one
    // is named so.
    if let Some(u) = &db_url {
        if !parts.iter().any(|p| p.0 == DEFAULT) {
            parts.insert(0, (DEFAULT.into(), u.clone(), address_table.clone()));
        }
    }
    let mut out = Vec::new();
    for (name, url, tbl) in parts {
        db::check_url(&url).map_err(|e| format!("config.modules.permissions: partition '{name}': db_url: {e}"))?;
        let table = Ident::new(&tbl).map_err(|e| format!("config.modules.permissions: partition '{name}': table: {e}"))?;
        out.push(Part { name, db_url: url, db: None, table });
    }
    let file = |key: &str, def: &str| cfg::str(&t, M, key).map(|v| v.unwrap_or_else(|| def.into()));
    let check_all_branches = match cfg::int(&t, M, "check_all_branches") {
        Ok(v) => v.is_none_or(|n| n != 0),
        Err(_) => cfg::bool(&t, M, "check_all_branches")?.unwrap_or(true),
    };
    // permissions.c get_pathname: a name without '/' is in the script's
    // directory (basename arguments too, at their first use).
    let dir = cfg_path::dir();
    let files = FileParams {
        allow: cfg_path::get_pathname(&dir, &file("default_allow_file", "permissions.allow")?),
        deny: cfg_path::get_pathname(&dir, &file("default_deny_file", "permissions.deny")?),
        allow_suffix: file("allow_suffix", ".allow")?,
        deny_suffix: file("deny_suffix", ".deny")?,
        check_all_branches,
        dir,
    };
    Ok(Prepared {
        conf: Some(PermConf {
            parts: out,
            files: Arc::default(),
        }),
        files: Some(files),
        dir: String::new(),
    })
}

impl Prepared {
    /// Opens the pool and reads the table (a failure stops the start or
    /// the reload, as in OpenSIPS).
    pub fn commit(self, staged: &mut crate::state::Staged) -> Result<(), String> {
        let Some(mut c) = self.conf else {
            staged.put(PermConf {
                files: Arc::new(allow::Files::default().in_dir(&self.dir)),
                ..PermConf::default()
            });
            return Ok(());
        };
        if let Some(f) = self.files {
            let default = allow::Pair {
                allow: allow::read_rules(&f.allow),
                deny: allow::read_rules(&f.deny),
            };
            c.files = Arc::new(
                allow::Files::new(default, &f.allow_suffix, &f.deny_suffix, f.check_all_branches)
                    .in_dir(&f.dir),
            );
        }
        for p in &mut c.parts {
            p.db = Some(db::open(&p.db_url).map_err(|e| format!("permissions: partition {}: {e}", p.name))?);
            let n = reload_wait(p).map_err(|e| {
                format!("permissions: partition {}: loading the address table: {e}", p.name)
            })?;
            tracing::info!("permissions: partition {}: {n} addresses loaded", p.name);
        }
        staged.put(c);
        Ok(())
    }
}

const S: ParamKind = ParamKind::Str;

static PARAMS: &[Param] = &[
    param("db_url", S, "none", "The database with the `address` table (mysql://, postgres://, sqlite:///path); read at start and by MI `address_reload`."),
    param("address_table", S, "address", "The table's name."),
    param("partition", S, "none", "More address tables: `\"name: db_url = URL; table_name = TABLE\"` (each part optional, inherited from db_url and address_table), or a list of such strings; `check_address`, `check_source_address`, `get_source_group` and the MI commands take the name. `default` is db_url + address_table."),
    param("default_allow_file", S, "permissions.allow", "Allow rules of `allow_routing()` without argument (a missing file is an empty rule set; a name without '/' is in the script's directory, as OpenSIPS's permissions.c get_pathname puts it in its config file's; a name with '/' is used as given)."),
    param("default_deny_file", S, "permissions.deny", "Deny rules of `allow_routing()` without argument (found as `default_allow_file`)."),
    param("check_all_branches", ParamKind::Int, "1", "1: `allow_routing` checks every branch too, and an allow rule lets `allow_register` skip the deny file for that contact."),
    param("allow_suffix", S, ".allow", "Suffix of the allow file of a basename argument."),
    param("deny_suffix", S, ".deny", "Suffix of the deny file of a basename argument."),
];

const ROUTES: RouteMask = RouteMask::REQUEST
    .or(RouteMask::FAILURE)
    .or(RouteMask::LOCAL)
    .or(RouteMask::BRANCH);

static EXPORTS: &[Export] = &[
    Export {
        name: "check_address",
        args: "(group, ip, port, proto [, info_pv [, pattern [, partition]]])",
        returns: "ok, code (1 match; -1 none; -2 the group has no entry)",
        routes: ROUTES.or(RouteMask::TIMER),
        doc: "Whether `ip` (pseudo-variables expanded: `\"$si\"`) with `port` and `proto` (`\"udp\"`, `\"any\"`) is in address group `group` (0: any group) of `partition` (default: `default`): an exact address or a subnet, table port 0 and proto `any` matching all, and when both the row and `pattern` have one, the row's shell pattern must match `pattern`. `info_pv` gets the row's context_info.",
        func: Func::Sync(check_address),
    },
    Export {
        name: "check_source_address",
        args: "(group [, info_pv [, pattern [, partition]]])",
        returns: "ok, code (as check_address)",
        routes: ROUTES,
        doc: "`check_address` for the source address, port and transport of the message.",
        func: Func::Sync(check_source_address),
    },
    Export {
        name: "get_source_group",
        args: "(out_pv [, partition])",
        returns: "ok, code (1 found; -1 not)",
        routes: ROUTES,
        doc: "Writes the group of the first address-table entry holding the source address (and port) into `out_pv` (`\"$var(grp)\"`).",
        func: Func::Sync(get_source_group),
    },
    Export {
        name: "allow_routing",
        args: "([basename])",
        returns: "ok, code (1 allowed; -1 denied)",
        routes: RouteMask::REQUEST.or(RouteMask::FAILURE).or(RouteMask::LOCAL),
        doc: "Judges From URI : `sip:user@host` of the R-URI by the rules of `default_allow_file`/`default_deny_file` (or `basename.allow`/`basename.deny`): an allow rule allows, else a deny rule denies, else allowed; with check_all_branches each appended branch must not be denied either. No rules at all: allowed. File syntax of OpenSIPS: `left : right` of `ALL` or comma-separated POSIX regular expressions, `EXCEPT` lists, `#` comments.",
        func: Func::Sync(allow::allow_routing),
    },
    Export {
        name: "allow_register",
        args: "(basename)",
        returns: "ok, code (1 allowed; -1 denied)",
        routes: RouteMask::REQUEST.or(RouteMask::FAILURE).or(RouteMask::LOCAL),
        doc: "Judges To URI : `sip:user@host` of each Contact of a REGISTER by `basename.allow`/`basename.deny`; a REGISTER without Contact or with `*` is allowed.",
        func: Func::Sync(allow::allow_register),
    },
    Export {
        name: "allow_uri",
        args: "(basename, uri)",
        returns: "ok, code (1 allowed; -1 denied)",
        routes: ROUTES.or(RouteMask::TIMER),
        doc: "Judges From URI : `uri` (pseudo-variables expanded, compared as given) by `basename.allow`/`basename.deny`.",
        func: Func::Sync(allow::allow_uri),
    },
];

crate::modules::staged_settings!(Prepared);

pub static MODULE: Module = Module {
    name: "permissions",
    table: Some("permissions"),
    doc: "Permissions (OpenSIPS permissions): address tables in partitions, allow/deny rule files.",
    exports: EXPORTS,
    mi: COMMANDS,
    params: PARAMS,
    setup: Some(|m| crate::modules::settings(prepare(m))),
    ..Module::NONE
};
