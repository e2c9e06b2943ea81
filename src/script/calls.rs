//! How Lua calls a module export, by its [`Func`]: a sync export is a
//! plain Rust function; an async one is a plain Rust function too, which
//! answers at once or leaves a future to wait on; a sync-after one asks
//! first whether it must wait. Only a call that really waits goes through
//! mlua's async machinery (a C closure, a userdata and a boxed future per
//! call, polled from a Lua loop): one shared `await` function per Lua
//! state takes the future the call left in the worker state.

use mlua::{Function, LightUserData, Lua, MultiValue, Value};
use std::rc::Rc;

use super::exports::{Args, AsyncFn, Export, Func, LuaFn, Step};
use super::host::{located, located_from, State};

/// What an async export's Rust part returns when the route must wait:
/// the address of this static, unique in the process, as a light
/// userdata no script value can equal.
static PENDING: u8 = 0;

fn pending() -> Value {
    Value::LightUserData(LightUserData(std::ptr::addr_of!(PENDING) as *mut _))
}

/// The Lua side of the call paths, compiled once per Lua state (the
/// frames are named `=prelude`, so errors name the script line above
/// them). `async` wraps an async export's Rust part: its values, or the
/// `pending` marker, upon which `await` waits for the future it left.
/// `wait_then` wraps a sync-after export: ask whether it must wait first
/// (only then the route suspends), then run it.
const WRAPPERS: &str = r#"
return function(pending, await)
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
  return async, wait_then
end
"#;

/// Makes the Lua functions of exports for one Lua state and its worker
/// state.
pub(super) struct Calls {
    st: Rc<State>,
    wrap_async: Function,
    wrap_wait_then: Function,
}

impl Calls {
    pub(super) fn new(lua: &Lua, st: &Rc<State>) -> mlua::Result<Calls> {
        let st2 = st.clone();
        // The one function that suspends: it waits for the future the
        // call before it left, and answers its values.
        let await_fn = lua.create_async_function(move |lua, ()| {
            let fut = st2.take_waiting();
            async move {
                match fut {
                    Some(f) => f.await.map_err(|e| relocate(&lua, e)),
                    None => Ok(MultiValue::new()),
                }
            }
        })?;
        let make: Function = lua.load(WRAPPERS).set_name("=prelude").eval()?;
        let (wrap_async, wrap_wait_then): (Function, Function) =
            make.call((pending(), await_fn))?;
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

/// An error raised by a future `await` waited on, with the script line:
/// the future is polled by mlua's poller, a Lua frame between `await`
/// and the wrappers. Found only when there is an error (looking at the
/// stack costs).
fn relocate(lua: &Lua, e: mlua::Error) -> mlua::Error {
    match e {
        mlua::Error::RuntimeError(m) => located_from(lua, 2, m),
        other => other,
    }
}

#[cfg(test)]
#[path = "calls_tests.rs"]
mod tests;
