//! How a module declares its Lua surface once: each [`Export`] names a
//! function, the routes it may run in, its signature and its doc. Lua
//! registration, the route-type check and `docs/lua-api.md` all derive
//! from these tables.

use mlua::{IntoLua, Lua, MultiValue, Value};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use super::host::State;
use super::route::RouteMask;

/// A Rust function exposed to Lua. It gets the worker state and raw args.
pub type LuaFn = fn(&Lua, &State, Args) -> mlua::Result<MultiValue>;

/// A future run while the route is suspended.
pub type Suspend = Pin<Box<dyn Future<Output = mlua::Result<MultiValue>>>>;

/// What an [`AsyncFn`] answers.
pub enum Step {
    /// The values, at once: nothing waits and nothing is allocated for a
    /// wait (a call answered from memory, or refused before any I/O).
    Now(MultiValue),
    /// A future to wait on: the route suspends until it is ready, and its
    /// values are the call's.
    Wait(Suspend),
}

impl Step {
    /// Answers `v` at once.
    pub fn now(v: mlua::Result<MultiValue>) -> mlua::Result<Step> {
        v.map(Step::Now)
    }

    /// Answers with what `f` gives once the route has waited for it.
    pub fn wait(f: impl Future<Output = mlua::Result<MultiValue>> + 'static) -> mlua::Result<Step> {
        Ok(Step::Wait(Box::pin(f)))
    }
}

/// A Rust function that may wait on I/O. It checks the arguments (errors
/// there name the script line at once) and answers at once when it can
/// ([`Step::Now`]); otherwise the future it returns ([`Step::Wait`]) runs
/// while the route is suspended: the worker serves other messages
/// meanwhile, and the route goes on when the future is ready. The future
/// must not hold a borrow of the call across an await.
pub type AsyncFn = fn(&Lua, &Rc<State>, Args) -> mlua::Result<Step>;

/// How an export runs.
#[derive(Clone, Copy)]
pub enum Func {
    /// Runs to its end on the worker.
    Sync(LuaFn),
    /// Answers at once or suspends the route until its future is ready
    /// (see [`AsyncFn`]).
    Async(AsyncFn),
    /// Runs to its end on the worker, but first `wait` may say it needs
    /// I/O (a name to look up): then, where the route can suspend, the
    /// route waits for that future and `func` runs after. Nothing is
    /// allocated for a call that needs no waiting.
    SyncAfter { wait: WaitFn, func: LuaFn },
}

/// What a [`Func::SyncAfter`] export must wait for first, if anything;
/// asked only where the route can suspend.
pub type WaitFn = fn(&Lua, &Rc<State>) -> Option<Suspend>;

/// One Lua-visible function.
pub struct Export {
    pub name: &'static str,
    /// Argument list as the docs show it, e.g. `(code, reason)`.
    pub args: &'static str,
    /// What it returns, for the docs.
    pub returns: &'static str,
    pub routes: RouteMask,
    pub doc: &'static str,
    pub func: Func,
}

/// Arguments of a call, with errors that name the function.
pub struct Args {
    pub fname: &'static str,
    pub vals: MultiValue,
    /// The route runs as a coroutine that may suspend (async exports only:
    /// where it cannot, they do without waiting or fail).
    pub suspendable: bool,
}

impl Args {
    /// Fails unless the route can suspend here (request, failure, timer
    /// and event routes can).
    pub fn require_suspend(&self) -> mlua::Result<()> {
        if self.suspendable {
            return Ok(());
        }
        Err(self.err("waits on I/O and cannot suspend here (only request, failure, timer and event routes can wait)"))
    }

    pub fn len(&self) -> usize {
        self.vals.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vals.is_empty()
    }

    fn at(&self, i: usize) -> Option<&Value> {
        self.vals.get(i).filter(|v| !v.is_nil())
    }

    pub fn err(&self, msg: impl std::fmt::Display) -> mlua::Error {
        mlua::Error::RuntimeError(format!("{}: {msg}", self.fname))
    }

    /// A string argument (numbers are accepted and converted).
    pub fn opt_str(&self, i: usize) -> mlua::Result<Option<String>> {
        match self.at(i) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(String::from(&*s.to_str()?))),
            Some(Value::Integer(n)) => Ok(Some(n.to_string())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(v) => Err(self.err(format!(
                "argument {} must be a string, not {}",
                i + 1,
                v.type_name()
            ))),
        }
    }

    pub fn str(&self, i: usize) -> mlua::Result<String> {
        self.opt_str(i)?
            .ok_or_else(|| self.err(format!("argument {} is missing", i + 1)))
    }

    /// An integer argument (numeric strings are accepted, as OpenSIPS does).
    pub fn opt_int(&self, i: usize) -> mlua::Result<Option<i64>> {
        match self.at(i) {
            None => Ok(None),
            Some(Value::Integer(n)) => Ok(Some(*n)),
            Some(Value::Number(n)) if n.fract() == 0.0 => Ok(Some(*n as i64)),
            Some(Value::String(s)) => match s.to_str()?.trim().parse() {
                Ok(n) => Ok(Some(n)),
                Err(_) => Err(self.err(format!("argument {} must be an integer", i + 1))),
            },
            Some(v) => Err(self.err(format!(
                "argument {} must be an integer, not {}",
                i + 1,
                v.type_name()
            ))),
        }
    }

    pub fn int(&self, i: usize) -> mlua::Result<i64> {
        self.opt_int(i)?
            .ok_or_else(|| self.err(format!("argument {} is missing", i + 1)))
    }
}

/// Returns one value.
pub fn ret<T: IntoLua>(lua: &Lua, v: T) -> mlua::Result<MultiValue> {
    Ok(MultiValue::from_iter([v.into_lua(lua)?]))
}

/// Returns nothing.
pub fn none() -> mlua::Result<MultiValue> {
    Ok(MultiValue::new())
}
