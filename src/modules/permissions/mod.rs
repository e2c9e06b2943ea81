//! permissions (OpenSIPS module of the same name), the address part:
//! OpenSIPS 3.4's `address` table (version 5: group, IP, mask, port,
//! transport, pattern, context info) read into memory at start and on MI
//! `address_reload`; `check_address`, `check_source_address` and
//! `get_source_group` answer from memory, so they never wait.

mod table;

use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use mlua::{Lua, MultiValue};
use serde_json::{json, Value as Json};

use crate::db::{self, version, Db, DbError, Ident};
use crate::mi::{opt, Command, Ctx, Kind, MiError, Params};
use crate::modules::registrar::coded;
use crate::modules::usrloc::cfg;
use crate::modules::{param, Module, Param, ParamKind};
use crate::proxy::context::Value as PvValue;
use crate::script::api::pv_fmt;
use crate::script::exports::{Args, Export, Func};
use crate::script::host::State;
use crate::script::route::RouteMask;
use table::{Entry, Table};

/// The permissions settings in force.
#[derive(Clone, Default)]
pub struct PermConf {
    pub db_url: Option<String>,
    pub db: Option<Db>,
    pub table: Option<Ident>,
}

impl std::fmt::Debug for PermConf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PermConf")
            .field("db_url", &self.db_url.as_deref().map(db::redact))
            .field("table", &self.table)
            .finish()
    }
}

/// The address table loaded (the registry's long-lived state:
/// `address_reload` replaces it between config loads).
#[derive(Default)]
struct Loaded(RwLock<Option<Arc<Table>>>);

fn table() -> Arc<Table> {
    crate::state::state::<Loaded>()
        .0
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_default()
}

/// Reads the address table (start, `address_reload`) and swaps it in
/// whole; the rows OpenSIPS skips are skipped.
pub fn reload_wait(c: &PermConf) -> Result<usize, DbError> {
    let missing = || DbError::Internal("permissions: no db_url".into());
    let db = c.db.clone().ok_or_else(missing)?;
    let t = c.table.as_ref().ok_or_else(missing)?;
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
    *crate::state::state::<Loaded>()
        .0
        .write()
        .unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(Table::new(entries)));
    Ok(n)
}

/// The partition argument: only `default` exists here.
fn partition(a: &Args, i: usize) -> mlua::Result<()> {
    match a.opt_str(i)?.as_deref() {
        None | Some("") | Some("default") => Ok(()),
        Some(p) => Err(a.err(format!("no partition '{p}' (lunasip has the default one)"))),
    }
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
    partition(&a, 6)?;
    let Ok(ip) = ip_text.trim().trim_matches(['[', ']']).parse::<IpAddr>() else {
        tracing::error!("check_address: invalid ip address <{ip_text}>");
        return coded(lua, -1);
    };
    let port = u16::try_from(port).unwrap_or(0);
    match table().check(grp, ip, port, proto.as_deref(), pattern.as_deref()) {
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
    partition(&a, 3)?;
    let src = st.call.borrow().src;
    let r = table().check(grp, src.addr.ip(), src.addr.port(), Some(src.proto.as_str()), pattern.as_deref());
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
    partition(&a, 1)?;
    let src = st.call.borrow().src;
    match table().group_of(src.addr.ip(), src.addr.port()) {
        Some(g) => {
            crate::pv::set(&mut st.call.borrow_mut(), &spec, PvValue::Int(i64::from(g))).map_err(|e| a.err(e))?;
            coded(lua, 1)
        }
        None => coded(lua, -1),
    }
}

fn mi_partition(p: &Params) -> Result<(), MiError> {
    match p.str("partition") {
        None | Some("default") => Ok(()),
        Some(_) => Err(MiError::new(404, "No such partition")),
    }
}

fn address_reload(_: &Ctx, p: &Params) -> Result<Json, MiError> {
    mi_partition(p)?;
    match reload_wait(&crate::state::module::<PermConf>()) {
        Ok(_) => Ok(Json::String("OK".into())),
        Err(e) => {
            tracing::error!("address_reload: {e}");
            Err(MiError::new(400, "Trusted table reload failed"))
        }
    }
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
    mi_partition(p)?;
    let t = table();
    let list = if subnets { &t.subnets } else { &t.exact };
    let dests: Vec<Json> = list.iter().map(entry_json).collect();
    let part = json!({ "name": "default", "Destinations": dests });
    Ok(match p.str("partition") {
        Some(_) => json!({ "part": "default", "Destinations": part["Destinations"] }),
        None => json!({ "Partitions": [part] }),
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
}

const M: &str = "permissions";

pub fn prepare(modules: &mlua::Table) -> Result<Prepared, String> {
    let Some(t) = cfg::table(modules, M)? else {
        return Ok(Prepared::default());
    };
    let db_url = cfg::str(&t, M, "db_url")?;
    if let Some(u) = &db_url {
        db::check_url(u).map_err(|e| format!("config.modules.permissions.db_url: {e}"))?;
    }
    let name = cfg::str(&t, M, "address_table")?.unwrap_or_else(|| "address".into());
    let table = Ident::new(&name).map_err(|e| format!("config.modules.permissions.address_table: {e}"))?;
    Ok(Prepared {
        conf: Some(PermConf {
            db_url,
            db: None,
            table: Some(table),
        }),
    })
}

impl Prepared {
    /// Opens the pool and reads the table (a failure stops the start or
    /// the reload, as in OpenSIPS).
    pub fn commit(self, staged: &mut crate::state::Staged) -> Result<(), String> {
        let Some(mut c) = self.conf else {
            staged.put(PermConf::default());
            return Ok(());
        };
        if let Some(u) = &c.db_url {
            c.db = Some(db::open(u).map_err(|e| format!("permissions: {e}"))?);
            let n = reload_wait(&c).map_err(|e| format!("permissions: loading the address table: {e}"))?;
            tracing::info!("permissions: {n} addresses loaded");
        }
        staged.put(c);
        Ok(())
    }
}

const S: ParamKind = ParamKind::Str;

static PARAMS: &[Param] = &[
    param("db_url", S, "none", "The database with the `address` table (mysql://, postgres://, sqlite:///path); read at start and by MI `address_reload`."),
    param("address_table", S, "address", "The table's name."),
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
        doc: "Whether `ip` (pseudo-variables expanded: `\"$si\"`) with `port` and `proto` (`\"udp\"`, `\"any\"`) is in address group `group` (0: any group): an exact address or a subnet, table port 0 and proto `any` matching all, and when both the row and `pattern` have one, the row's shell pattern must match `pattern`. `info_pv` gets the row's context_info. Only the `default` partition exists.",
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
];

crate::modules::staged_settings!(Prepared);

pub static MODULE: Module = Module {
    name: "permissions",
    table: Some("permissions"),
    doc: "Address-based permissions (OpenSIPS permissions: the address table; allow_* files not there yet).",
    exports: EXPORTS,
    mi: COMMANDS,
    params: PARAMS,
    setup: Some(|m| crate::modules::settings(prepare(m))),
    ..Module::NONE
};
