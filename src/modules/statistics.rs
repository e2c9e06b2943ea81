//! Script-defined statistics (OpenSIPS statistics module): `update_stat`
//! and `reset_stat` on `sip` itself. The statistics live in the shared
//! registry (`stats/registry.rs`), so every worker adds to the same value and the
//! MI's `get_statistics` and `/metrics` show them. `stat_iter_init` and
//! `stat_iter_next` walk a group (OpenSIPS 3.4 statistics.c); iterators
//! are per worker, as OpenSIPS's are per process.

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

thread_local! {
    /// Named iterators: the group's statistic names (taken at init) and
    /// the next position; values are read when `stat_iter_next` reaches them.
    static ITERS: std::cell::RefCell<std::collections::HashMap<String, (Vec<String>, usize)>> =
        Default::default();
}

fn stat_iter_init(lua: &Lua, _st: &State, a: Args) -> mlua::Result<MultiValue> {
    let group = a.str(0)?;
    let iter = a.str(1)?;
    let mut names = Vec::new();
    crate::stats::each(|g, n, _| {
        if g == group {
            names.push(format!("{g}:{n}"));
        }
    });
    if names.is_empty() {
        tracing::error!("{}: unknown group {group}", a.fname);
        return ret(lua, false);
    }
    ITERS.with(|i| i.borrow_mut().insert(iter, (names, 0)));
    ret(lua, true)
}

/// `stat_iter_next(name_var, value_var, iter)`: the next statistic of the
/// iterator's group, written to the variables given (nil: not written);
/// returns true, name, value, or false past the last one.
fn stat_iter_next(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let iter = a.str(2)?;
    let next = ITERS.with(|i| {
        let mut i = i.borrow_mut();
        let (names, pos) = i.get_mut(&iter)?;
        let full = names.get(*pos)?.clone();
        *pos += 1;
        Some(full)
    });
    let Some(full) = next else {
        return ret(lua, false);
    };
    let name = full.split_once(':').map_or(full.as_str(), |(_, n)| n).to_string();
    let value = crate::stats::get(&full).unwrap_or(0) as i64;
    for (i, v) in [
        (0, crate::proxy::context::Value::Str(name.clone())),
        (1, crate::proxy::context::Value::Int(value)),
    ] {
        if let Some(out) = a.opt_str(i)? {
            let spec = st.pv.borrow_mut().spec(&out).map_err(|e| a.err(e))?;
            crate::pv::set(&mut st.call.borrow_mut(), &spec, v).map_err(|e| a.err(e))?;
        }
    }
    let mut out = ret(lua, true)?;
    out.extend(ret(lua, name)?);
    out.extend(ret(lua, value)?);
    Ok(out)
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
        Export {
            name: "stat_iter_init",
            args: "(group, iter)",
            returns: "true, false for an unknown group",
            routes: RouteMask::ANY,
            doc: "Starts (or restarts) the iterator named `iter` over the statistics of `group` (OpenSIPS statistics `stat_iter_init`). Iterators belong to the worker.",
            func: Func::Sync(stat_iter_init),
        },
        Export {
            name: "stat_iter_next",
            args: "(name_var, value_var, iter)",
            returns: "true, name, value; false past the last statistic",
            routes: RouteMask::ANY,
            doc: "The iterator's next statistic: its name (without the group) and value, also written to `name_var` and `value_var` when given (`while sip.stat_iter_next(\"$var(k)\", \"$var(v)\", \"it\") do … end`).",
            func: Func::Sync(stat_iter_next),
        },
    ],
    ..Module::NONE
};
