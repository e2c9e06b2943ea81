//! How Lua calls a module export, by its [`Func`]: a sync export is a
//! plain Rust function; an async one is a plain Rust function too, which
//! answers at once or leaves a future to wait on; a sync-after one asks
//! first whether it must wait. Only a call that really waits goes through
//! `await`, one shared Lua function per Lua state: in a route coroutine
//! of the host it yields the coroutine, and the host's driver
//! ([`super::host::Run`]) takes the future the call left in the worker
//! state, polls it and resumes the coroutine with its values. Elsewhere
//! the future is polled once, and must be ready.

use mlua::{Function, LightUserData, Lua, MultiValue, Table, Value};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::exports::{Args, AsyncFn, Export, Func, LuaFn, Step};
use super::host::{located, State};

/// What an async export's Rust part returns when the route must wait:
/// the address of this static, unique in the process, as a light
/// userdata no script value can equal.
static PENDING: u8 = 0;

fn pending() -> Value {
    Value::LightUserData(LightUserData(std::ptr::addr_of!(PENDING) as *mut _))
}

/// What the host resumes a route with when the future it waited for
/// failed (unique the same way).
static FAILED: u8 = 0;

pub(super) fn failed() -> Value {
    Value::LightUserData(LightUserData(std::ptr::addr_of!(FAILED) as *mut _))
}

/// Where the Lua state keeps its route coroutines (a weak-keyed table,
/// filled by prelude.lua's runner).
const ROUTE_THREADS: &str = "lunasip.route_threads";
/// Where the Lua state keeps `await`.
const AWAIT: &str = "lunasip.await";

/// The Lua side of the call paths, compiled once per Lua state (the
/// frames are named `=prelude`, so errors name the script line above
/// them). `await` yields a route coroutine of the host (not a script's
/// own coroutine, nor a route run from Rust: `poll_once` polls the
/// future once there); the host resumes it with the future's values, or
/// with the `failed` marker after an error, which `fail` raises. `async`
/// wraps an async export's Rust part: its values, or the `pending`
/// marker, upon which it awaits. `wait_then` wraps a sync-after export: ask whether it
/// must wait first (only then the route suspends), then run it.
const WRAPPERS: &str = r#"
return function(pending, failed, poll_once, fail, route_threads)
  local running, yield, yieldable = coroutine.running, coroutine.yield, coroutine.isyieldable
  local function in_route()
    local co = running()
    return co ~= nil and route_threads[co] ~= nil and yieldable ~= nil and yieldable()
  end
  local function resumed(...)
    if ... == failed then return fail() end
    return ...
  end
  local function await()
    if in_route() then return resumed(yield()) end
    return poll_once()
  end
  local function finish(...)
    if ... == pending then return await() end
    return ...
  end
  local function async(f)
    return function(...)
      return finish(f(...))
    end
  end
  local function wait_then(need, now)
    return function(...)
      if need() then await() end
      return now(...)
    end
  end
  return async, wait_then, await
end
"#;

/// The route coroutines' table of a Lua state, made on first use.
pub(super) fn route_threads(lua: &Lua) -> mlua::Result<Table> {
    if let Ok(t) = lua.named_registry_value::<Table>(ROUTE_THREADS) {
        return Ok(t);
    }
    let t = lua.create_table()?;
    let meta = lua.create_table()?;
    meta.set("__mode", "k")?;
    t.set_metatable(Some(meta));
    lua.set_named_registry_value(ROUTE_THREADS, t.clone())?;
    Ok(t)
}

/// The shared `await` of a Lua state (for `{ip.resolve}` reads,
/// resolve_wait.rs), after [`Calls::new`].
pub(super) fn await_fn(lua: &Lua) -> mlua::Result<Function> {
    lua.named_registry_value(AWAIT)
}

/// Makes the Lua functions of exports for one Lua state and its worker
/// state.
pub(super) struct Calls {
    st: Rc<State>,
    wrap_async: Function,
    wrap_wait_then: Function,
}

impl Calls {
    pub(super) fn new(lua: &Lua, st: &Rc<State>) -> mlua::Result<Calls> {
        // Where the route cannot yield: the future polled once.
        let st2 = st.clone();
        let poll_once = lua.create_function(move |lua, ()| {
            let Some(mut fut) = st2.take_waiting() else {
                return Ok(MultiValue::new());
            };
            let mut cx = Context::from_waker(Waker::noop());
            match fut.as_mut().poll(&mut cx) {
                Poll::Ready(r) => r.map_err(|e| relocate(lua, e)),
                Poll::Pending => Err(located(
                    lua,
                    "cannot wait for I/O here (not in a route that can suspend)".into(),
                )),
            }
        })?;
        // After the host resumed the route with a future's error.
        let st2 = st.clone();
        let fail = lua.create_function(move |lua, ()| match st2.take_failed() {
            Some(e) => Err(relocate(lua, e)),
            None => Ok(()),
        })?;
        let make: Function = lua.load(WRAPPERS).set_name("=prelude").eval()?;
        let (wrap_async, wrap_wait_then, await_fn): (Function, Function, Function) =
            make.call((pending(), failed(), poll_once, fail, route_threads(lua)?))?;
        lua.set_named_registry_value(AWAIT, await_fn)?;
        Ok(Calls {
            st: st.clone(),
            wrap_async,
            wrap_wait_then,
        })
    }

    /// The Lua function of export `e`, named `fname` in messages.
    pub(super) fn make(
        &self,
        lua: &Lua,
        e: &'static Export,
        fname: &'static str,
    ) -> mlua::Result<Function> {
        let st = self.st.clone();
        match e.func {
            Func::Sync(func) => sync_fn(lua, st, e, fname, func),
            Func::Async(func) => {
                let f = async_fn(lua, st, e, fname, func)?;
                self.wrap_async.call(f)
            }
            Func::SyncAfter { wait, func } => {
                let now = sync_fn(lua, st.clone(), e, fname, func)?;
                let need = lua.create_function(move |lua, ()| {
                    if !st.suspendable.get() {
                        return Ok(false);
                    }
                    Ok(match wait(lua, &st) {
                        Some(f) => {
                            st.set_waiting(f);
                            true
                        }
                        None => false,
                    })
                })?;
                self.wrap_wait_then.call((need, now))
            }
        }
    }
}

/// The route check, then the function; errors get the script line, and
/// unwinding (exit/drop) passes through untouched.
fn check_then<R>(
    lua: &Lua,
    st: &State,
    e: &'static Export,
    fname: &'static str,
    suspendable: bool,
    vals: MultiValue,
    func: impl FnOnce(Args) -> mlua::Result<R>,
) -> mlua::Result<R> {
    let route = st.call.borrow().route;
    if !e.routes.allows(route) {
        return Err(located(
            lua,
            format!("{fname}: not allowed in {}", route.table()),
        ));
    }
    let a = Args {
        fname,
        vals,
        suspendable,
    };
    match func(a) {
        Ok(v) => Ok(v),
        Err(e) if st.call.borrow().unwind.is_some() => Err(e),
        Err(mlua::Error::RuntimeError(m)) => Err(located(lua, m)),
        Err(other) => Err(other),
    }
}

/// A synchronous export.
fn sync_fn(
    lua: &Lua,
    st: Rc<State>,
    e: &'static Export,
    fname: &'static str,
    func: LuaFn,
) -> mlua::Result<Function> {
    lua.create_function(move |lua, vals: MultiValue| {
        check_then(lua, &st, e, fname, false, vals, |a| func(lua, &st, a))
    })
}

/// The Rust part of an async export (wrapped by `async` of
/// [`WRAPPERS`]): the route check and the function run at once; its
/// values are returned, or its future is left for `await` with the
/// `pending` marker. Where the route cannot suspend the future is
/// awaited the same way: polled once, and an error if it is not ready
/// (the function itself says "cannot suspend here" before that where it
/// would need I/O).
fn async_fn(
    lua: &Lua,
    st: Rc<State>,
    e: &'static Export,
    fname: &'static str,
    func: AsyncFn,
) -> mlua::Result<Function> {
    lua.create_function(move |lua, vals: MultiValue| {
        let suspendable = st.suspendable.get();
        match check_then(lua, &st, e, fname, suspendable, vals, |a| func(lua, &st, a))? {
            Step::Now(v) => Ok(v),
            Step::Wait(f) => {
                st.set_waiting(f);
                Ok(MultiValue::from_iter([pending()]))
            }
        }
    })
}

/// An error a waited future raised, with the script line (raised by
/// `poll_once` or `fail`, called from the wrappers).
fn relocate(lua: &Lua, e: mlua::Error) -> mlua::Error {
    match e {
        mlua::Error::RuntimeError(m) => located(lua, m),
        other => other,
    }
}

#[cfg(test)]
#[path = "calls_tests.rs"]
mod tests;
