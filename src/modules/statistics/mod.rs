//! Script-defined statistics (OpenSIPS statistics module): `update_stat`
//! and `reset_stat` on `sip` itself. The statistics live in the shared
//! registry (`stats/registry.rs`), so every worker adds to the same value and the
//! MI's `get_statistics` and `/metrics` show them. `stat_iter_init` and
//! `stat_iter_next` walk a group (OpenSIPS 3.4 statistics.c); iterators
//! are per worker, as OpenSIPS's are per process. `update_stat_series`
//! feeds the windowed series of `stat_series_profile` (series.rs).

pub mod series;

use mlua::{Lua, MultiValue};

use crate::script::exports::{ret, Args, Export, Func};
use crate::modules::{cfg, param, Module, ParamKind};
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

/// `update_stat_series(profile, name, value)` (OpenSIPS statistics.c
/// `w_update_stat_series`): true, 1; false, -1 when `name` is taken by a
/// statistic that is not this profile's series.
fn update_stat_series(lua: &Lua, _st: &State, a: Args) -> mlua::Result<MultiValue> {
    let profile = a.str(0)?;
    let name = a.str(1)?;
    let v = a.int(2)?;
    let conf = crate::state::module::<SeriesConf>();
    let p = conf
        .profiles
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(&profile))
        .ok_or_else(|| a.err(format!("unknown stat_series_profile '{profile}'")))?;
    let rc: i64 = match series::update(p, &name, v) {
        Ok(()) => 1,
        Err(e) => {
            tracing::error!("{}: {e}", a.fname);
            -1
        }
    };
    let mut out = ret(lua, rc == 1)?;
    out.extend(ret(lua, rc)?);
    Ok(out)
}

/// The profiles of `config.modules.statistics.stat_series_profile`.
#[derive(Debug, Default)]
pub struct SeriesConf {
    pub profiles: Vec<series::Profile>,
}

/// Read from `config.modules.statistics`; committed as [`SeriesConf`].
#[derive(Debug)]
pub struct Prepared(Vec<series::Profile>);

fn prepare(modules: &mlua::Table) -> Result<Prepared, String> {
    const M: &str = "statistics";
    let Some(t) = cfg::table(modules, M)? else {
        return Ok(Prepared(Vec::new()));
    };
    // One profile, or a list (OpenSIPS repeats the modparam line).
    let lines = cfg::str_list(&t, M, "stat_series_profile")?;
    let mut profiles: Vec<series::Profile> = Vec::new();
    for l in &lines {
        let p = series::parse_profile(l).map_err(|e| format!("config.modules.{M}.{e}"))?;
        if profiles.iter().any(|q| q.name.eq_ignore_ascii_case(&p.name)) {
            return Err(format!(
                "config.modules.{M}.stat_series_profile: profile {} defined twice",
                p.name
            ));
        }
        profiles.push(p);
    }
    Ok(Prepared(profiles))
}

impl Prepared {
    pub fn commit(self, staged: &mut crate::state::Staged) {
        staged.put(SeriesConf { profiles: self.0 });
    }
}

crate::modules::staged_settings!(Prepared);

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
        Export {
            name: "update_stat_series",
            args: "(profile, name, value)",
            returns: "true, 1; false, -1 when `name` is already another statistic",
            routes: RouteMask::ANY,
            doc: "Adds `value` to the series `name` of the `stat_series_profile` `profile`, creating the statistic `group:name` (group: the profile's `group`, else its name) on first use. MI `get_statistics` shows the series over its window: the sum (`accumulate`), the integer mean (`average`), or positive updates × `percentage_factor` / all updates' absolute total (`percentage`: `1` counts as success, `-1` as failure). Series cannot be reset. An unknown profile is an error.",
            func: Func::Sync(update_stat_series),
        },
    ],
    params: &[param(
        "stat_series_profile",
        ParamKind::Str,
        "none",
        "A series profile `\"name: algorithm=accumulate|average|percentage window=SECONDS slots=N percentage_factor=100 group=NAME\"`, or a list of them (defaults: accumulate, 60 s, one slot per second, 100, the profile's name). A bad value is refused (OpenSIPS logs it and keeps the default).",
    )],
    setup: Some(|m| crate::modules::settings(prepare(m))),
    ..Module::NONE
};
