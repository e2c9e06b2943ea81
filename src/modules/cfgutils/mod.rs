//! cfgutils (OpenSIPS module of the same name): `sleep` and `usleep`,
//! probabilities and weighted choice (`rand.rs`), clocks and memory
//! reports (`time.rs`), script locks (`locks.rs`, where lunasip differs on
//! purpose: a lock never blocks a worker).
//!
//! OpenSIPS's plain `sleep(s)`/`usleep(us)` block the worker process and
//! its `async(sleep(…), resume)` form suspends the route. In lunasip both
//! suspend the route: the worker serves other messages meanwhile, and the
//! route goes on after the pause with its message, variables and
//! transaction, as if it had slept.

mod locks;
mod prob;
mod time;
mod tmrec;

use mlua::Lua;
use std::rc::Rc;
use std::time::Duration;

use crate::modules::{cfg, param, Module, ParamKind};
use crate::script::exports::{ret, Args, Export, Func, Step};
use crate::script::host::State;
use crate::script::route::RouteMask;

/// A pause as OpenSIPS takes it: a whole non-negative number (a numeric
/// string is accepted, as a pseudo-variable's value would be).
fn pause(a: &Args, unit: fn(u64) -> Duration) -> mlua::Result<Duration> {
    let n = a.int(0)?;
    u64::try_from(n)
        .map(unit)
        .map_err(|_| a.err(format!("{n} is not a duration (a whole number >= 0)")))
}

/// A pause of 0 is over at once.
fn wait(lua: &Lua, d: Duration) -> mlua::Result<Step> {
    if d.is_zero() {
        return Step::now(ret(lua, true));
    }
    let lua = lua.clone();
    Step::wait(async move {
        tokio::time::sleep(d).await;
        ret(&lua, true)
    })
}

fn sleep(lua: &Lua, _st: &Rc<State>, a: Args) -> mlua::Result<Step> {
    a.require_suspend()?;
    wait(lua, pause(&a, Duration::from_secs)?)
}

fn usleep(lua: &Lua, _st: &Rc<State>, a: Args) -> mlua::Result<Step> {
    a.require_suspend()?;
    wait(lua, pause(&a, Duration::from_micros)?)
}

/// `check_time_rec(time_rec, [timestamp])`: true, 1 when the time (now
/// by default) matches; false, -1 when not; false, -2 (logged) when the
/// string does not parse (OpenSIPS's return codes).
fn check_time_rec(lua: &Lua, _st: &State, a: Args) -> mlua::Result<mlua::MultiValue> {
    use mlua::IntoLua;
    let rec = a.str(0)?;
    let t = match a.opt_int(1)? {
        Some(t) => t,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64),
    };
    let (ok, rc) = match tmrec::check(&rec, t) {
        Ok(true) => (true, 1),
        Ok(false) => (false, -1),
        Err(e) => {
            tracing::error!("{}: {e}", a.fname);
            (false, -2)
        }
    };
    Ok(mlua::MultiValue::from_iter([ok.into_lua(lua)?, rc.into_lua(lua)?]))
}

/// `initial_probability` and `lock_pool_size`, read from
/// `config.modules.cfgutils`.
#[derive(Debug)]
pub struct Prepared {
    initial: i64,
    pool: usize,
}

fn prepare(modules: &mlua::Table) -> Result<Prepared, String> {
    const M: &str = "cfgutils";
    let mut p = Prepared {
        initial: 10,
        pool: 32,
    };
    let Some(t) = cfg::table(modules, M)? else {
        return Ok(p);
    };
    if let Some(n) = cfg::int(&t, M, "initial_probability")? {
        if !(0..=100).contains(&n) {
            return Err(format!("config.modules.{M}.initial_probability: {n} is not 0..100"));
        }
        p.initial = n;
    }
    if let Some(n) = cfg::int(&t, M, "lock_pool_size")? {
        p.pool = usize::try_from(n)
            .ok()
            .filter(|n| (1..=65536).contains(n))
            .ok_or_else(|| format!("config.modules.{M}.lock_pool_size: {n} is not 1..65536"))?;
    }
    Ok(p)
}

/// cfgutils' settings in force (`initial_probability`, `lock_pool_size`).
#[derive(Debug, Clone)]
pub struct CfgConf {
    pub initial: i64,
    pub pool: usize,
}

impl Default for CfgConf {
    fn default() -> Self {
        CfgConf {
            initial: 10,
            pool: 32,
        }
    }
}

pub fn conf() -> std::sync::Arc<CfgConf> {
    crate::state::module::<CfgConf>()
}

impl Prepared {
    pub fn commit(self, staged: &mut crate::state::Staged) {
        staged.put(CfgConf {
            initial: self.initial,
            pool: self.pool,
        });
    }
}

crate::modules::staged_settings!(Prepared);

const ANY: RouteMask = RouteMask::ANY;

pub static MODULE: Module = Module {
    name: "cfgutils",
    table: Some("cfgutils"),
    doc: "Script utilities (OpenSIPS cfgutils)",
    exports: &[
        Export {
            name: "sleep",
            args: "(seconds)",
            returns: "true",
            routes: RouteMask::WAIT,
            doc: "Pauses the route for `seconds`. It suspends the route, never the worker: other calls go on meanwhile (OpenSIPS's `async(sleep(…))`).",
            func: Func::Async(sleep),
        },
        Export {
            name: "usleep",
            args: "(microseconds)",
            returns: "true",
            routes: RouteMask::WAIT,
            doc: "Pauses the route for `microseconds`, suspending the route, not the worker (OpenSIPS's `async(usleep(…))`).",
            func: Func::Async(usleep),
        },
        Export {
            name: "rand_set_prob",
            args: "(percent)",
            returns: "true",
            routes: ANY,
            doc: "Sets the probability (0..100) `rand_event` uses, for every worker.",
            func: Func::Sync(prob::rand_set_prob),
        },
        Export {
            name: "rand_reset_prob",
            args: "()",
            returns: "true",
            routes: ANY,
            doc: "Sets the probability back to `initial_probability`.",
            func: Func::Sync(prob::rand_reset_prob),
        },
        Export {
            name: "rand_get_prob",
            args: "()",
            returns: "the probability in percent",
            routes: ANY,
            doc: "The probability `rand_event` uses now.",
            func: Func::Sync(prob::rand_get_prob),
        },
        Export {
            name: "rand_event",
            args: "([percent])",
            returns: "true with the given (else the set) probability",
            routes: ANY,
            doc: "A random event: true with probability `percent`/100 (OpenSIPS `rand_event`).",
            func: Func::Sync(prob::rand_event),
        },
        Export {
            name: "set_count",
            args: "(var, [out_var])",
            returns: "the number of values",
            routes: ANY,
            doc: "How many values the multi-value variable `var` (`\"$avp(x)\"`) holds, also written to `out_var` when given.",
            func: Func::Sync(prob::set_count),
        },
        Export {
            name: "set_select_weight",
            args: "(var)",
            returns: "an index, or nil and -1",
            routes: ANY,
            doc: "Picks an index of `var`'s integer values with probability proportional to the value (roulette wheel); nil, -1 when `var` holds no value, a non-integer, or weights summing to 0.",
            func: Func::Sync(prob::set_select_weight),
        },
        Export {
            name: "get_accurate_time",
            args: "([sec_var], [usec_var], [sec_usec_var])",
            returns: "seconds, microseconds, \"sec.usec\"",
            routes: ANY,
            doc: "The time now with microseconds, returned and written to the variables given (OpenSIPS takes the first two as required).",
            func: Func::Sync(time::get_accurate_time),
        },
        Export {
            name: "ts_usec_delta",
            args: "(t1_sec, t1_usec, t2_sec, t2_usec, [delta_str_var], [delta_int_var])",
            returns: "the delta in microseconds (false when it is too large for `delta_int_var`)",
            routes: ANY,
            doc: "|t1 - t2| in microseconds, returned and written to the variables given.",
            func: Func::Sync(time::ts_usec_delta),
        },
        Export {
            name: "pkg_status",
            args: "()",
            returns: "true",
            routes: ANY,
            doc: "Logs the memory the worker's Lua state uses (OpenSIPS dumps its private memory).",
            func: Func::Sync(time::pkg_status),
        },
        Export {
            name: "shm_status",
            args: "()",
            returns: "true",
            routes: ANY,
            doc: "Logs the process's resident and virtual memory (OpenSIPS dumps its shared memory).",
            func: Func::Sync(time::shm_status),
        },
        Export {
            name: "abort",
            args: "()",
            returns: "never",
            routes: ANY,
            doc: "Ends the process at once with a core dump (a debugging aid, as in OpenSIPS; systemd restarts the service).",
            func: Func::Sync(time::abort),
        },
        Export {
            name: "check_time_rec",
            args: "(time_rec, [timestamp])",
            returns: "true, 1 on a match; false, -1 otherwise; false, -2 for a string that does not parse",
            routes: ANY,
            doc: "Whether the time (now, or the Unix `timestamp`) matches the recurrence `[tz|]dtstart|dtend|duration|freq|until|interval|byday|bymday|byyday|byweekno|bymonth` (RFC 2445 fields, OpenSIPS's format; trailing empty fields may be left out; the time zone defaults to the system's). Recurrences combine with `&` (and), `/` (or), `!` (not) and parentheses, one operator kind per level.",
            func: Func::Sync(check_time_rec),
        },
        Export {
            name: "get_static_lock",
            args: "(name)",
            returns: "true once held; false where the route cannot wait and it is held",
            routes: ANY,
            doc: "Takes the lock `name`, shared by every worker. Held by another route, it suspends this route (never the worker) until released; in branch, reply, local, startup and event routes it does not wait. Already held by this route: true at once. Released by `release_static_lock` or when the route's call ends.",
            func: Func::Async(locks::get_static_lock),
        },
        Export {
            name: "release_static_lock",
            args: "(name)",
            returns: "true if this route held it",
            routes: ANY,
            doc: "Releases the lock `name`; the next waiting route takes it.",
            func: Func::Sync(locks::release_static_lock),
        },
        Export {
            name: "get_dynamic_lock",
            args: "(string)",
            returns: "as get_static_lock",
            routes: ANY,
            doc: "Takes the lock of the pool (`lock_pool_size` locks) that `string` hashes onto; waits as `get_static_lock`.",
            func: Func::Async(locks::get_dynamic_lock),
        },
        Export {
            name: "release_dynamic_lock",
            args: "(string)",
            returns: "true if this route held it",
            routes: ANY,
            doc: "Releases the pool lock `string` hashes onto.",
            func: Func::Sync(locks::release_dynamic_lock),
        },
        Export {
            name: "strings_share_lock",
            args: "(s1, s2)",
            returns: "true if both map to the same dynamic lock",
            routes: ANY,
            doc: "Whether `get_dynamic_lock(s1)` and `get_dynamic_lock(s2)` take the same lock.",
            func: Func::Sync(locks::strings_share_lock),
        },
    ],
    params: &[
        param("initial_probability", ParamKind::Int, "10", "The probability (percent) `rand_event` starts with and `rand_reset_prob` goes back to."),
        param("lock_pool_size", ParamKind::Int, "32", "Dynamic locks in the pool strings hash onto (fixed once the first is used)."),
    ],
    setup: Some(|m| crate::modules::settings(prepare(m))),
    ..Module::NONE
};
