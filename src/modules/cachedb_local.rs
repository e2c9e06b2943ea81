//! cachedb_local (OpenSIPS module of the same name): the in-memory cache
//! engine behind the core's `cache_*` functions (see `core (cache)`), and
//! its own `cache_remove_chunk` (3.4 `modules/cachedb_local/`).

use mlua::{Lua, MultiValue};
use serde_json::Value;

use crate::mi::{opt, req, Command, Ctx, Kind, MiError, Params};
use crate::modules::Module;
use crate::script::api::pv_fmt;
use crate::script::exports::{ret, Args, Export, Func};
use crate::script::host::State;
use crate::script::route::RouteMask;

/// `cache_remove_chunk([collection,] glob)`: with one argument the glob
/// applies to the default collection (`"local"`).
fn cache_remove_chunk(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let (collection, glob) = match a.len() {
        0 | 1 => (String::new(), a.str(0)?),
        _ => (a.opt_str(0)?.unwrap_or_default(), a.str(1)?),
    };
    let glob = pv_fmt(lua, st, &glob)?;
    let n = crate::modules::core::remove_chunk(&collection, &glob);
    tracing::debug!("cache_remove_chunk: {n} keys matching {glob} removed");
    ret(lua, true)
}

fn mi_cache_remove_chunk(_: &Ctx, p: &Params) -> Result<Value, MiError> {
    let glob = p.str("glob").unwrap_or("");
    crate::modules::core::remove_chunk(p.str("collection").unwrap_or(""), glob);
    Ok(Value::String("OK".into()))
}

pub static MODULE: Module = Module {
    name: "cachedb_local",
    table: Some("cachedb_local"),
    doc: "The in-memory cache engine of the core's `cache_*` functions (`\"local\"`, `\"local:collection\"`), shared by every worker; entries expire as stored (OpenSIPS cachedb_local).",
    exports: &[Export {
        name: "cache_remove_chunk",
        args: "([collection,] glob)",
        returns: "true",
        routes: RouteMask::ANY,
        doc: "Removes every key of the collection (the default one, `\"local\"`, when left out) that matches the shell glob (`\"ipblk_*\"`; `*`, `?`, `[a-z]`, `[!x]`, as `fnmatch`).",
        func: Func::Sync(cache_remove_chunk),
    }],
    mi: &[Command {
        name: "cache_remove_chunk",
        help: "Removes every key matching the shell glob `glob` from the local cache's collection `collection` (default: the default collection).",
        module: "cachedb_local",
        params: &[req("glob", Kind::Str), opt("collection", Kind::Str)],
        result: "`\"OK\"`",
        handler: mi_cache_remove_chunk,
    }],
    ..Module::NONE
};
