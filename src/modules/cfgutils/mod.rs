//! cfgutils (OpenSIPS module of the same name): `sleep` and `usleep`.
//!
//! OpenSIPS's plain `sleep(s)`/`usleep(us)` block the worker process and
//! its `async(sleep(…), resume)` form suspends the route. In lunasip both
//! suspend the route: the worker serves other messages meanwhile, and the
//! route goes on after the pause with its message, variables and
//! transaction, as if it had slept.

use mlua::Lua;
use std::rc::Rc;
use std::time::Duration;

use crate::script::exports::{ret, Args, Export, Func, Suspend};
use crate::modules::Module;
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

fn wait(lua: &Lua, d: Duration) -> Suspend {
    let lua = lua.clone();
    Box::pin(async move {
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
        ret(&lua, true)
    })
}

fn sleep(lua: &Lua, _st: &Rc<State>, a: Args) -> mlua::Result<Suspend> {
    a.require_suspend()?;
    Ok(wait(lua, pause(&a, Duration::from_secs)?))
}

fn usleep(lua: &Lua, _st: &Rc<State>, a: Args) -> mlua::Result<Suspend> {
    a.require_suspend()?;
    Ok(wait(lua, pause(&a, Duration::from_micros)?))
}

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
    ],
    ..Module::NONE
};
