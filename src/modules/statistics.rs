//! Script-defined statistics (OpenSIPS statistics module): `update_stat`
//! and `reset_stat` on `sip` itself. The statistics live in the shared
//! registry (`stats/registry.rs`), so every worker adds to the same value and the
//! MI's `get_statistics` and `/metrics` show them.

use mlua::{Lua, MultiValue};

use crate::script::exports::{ret, Args, Export, Func};
use crate::modules::{Module};
use crate::script::host::State;
use crate::script::route::RouteMask;

fn update_stat(lua: &Lua, _st: &State, a: Args) -> mlua::Result<MultiValue> {
    let name = a.str(0)?;
    let n = a.int(1)?;
    let v = crate::stats::update(&name, n).map_err(|e| a.err(e))?;
    ret(lua, v)
}

fn reset_stat(lua: &Lua, _st: &State, a: Args) -> mlua::Result<MultiValue> {
    let name = a.str(0)?;
    ret(lua, crate::stats::reset(&name))
}

pub static MODULE: Module = Module {
    name: "statistics",
    table: None,
    doc: "Script-defined statistics (OpenSIPS statistics).",
    exports: &[
        Export {
            name: "update_stat",
            args: "(name, n)",
            returns: "the new value",
            routes: RouteMask::ANY,
            doc: "Adds `n` (may be negative) to the statistic `name` or `group:name`, creating it on first use (in group `dynamic` when no group is given). Names use letters, digits, `_`, `-`, `.`. Built-in statistics cannot be changed. Shown by the MI `get_statistics` and `GET /metrics`.",
            func: Func::Sync(update_stat),
        },
        Export {
            name: "reset_stat",
            args: "(name)",
            returns: "true if the statistic exists and was reset",
            routes: RouteMask::ANY,
            doc: "Sets a statistic back to 0 (as the MI `reset_statistics`).",
            func: Func::Sync(reset_stat),
        },
    ],    ..Module::NONE
};
