//! Bounds on a route: time and memory. A route that runs longer than
//! `config.route_timeout` (running time; waiting on I/O does not count) is
//! stopped with an error naming the script line, so one `while true do
//! end` cannot take its worker; the Lua state of a worker may not grow
//! past `config.script_memory_limit`. The caller turns both into a failed
//! route: 500 for a request, a log line, and the worker goes on.
//!
//! The clock is read from an instruction-count hook. LuaJIT never calls
//! hooks from compiled code, so with a budget set the JIT compiler is
//! turned off for the script (route code mostly calls Rust functions,
//! which the JIT does not compile anyway; bench/RESULTS.md has the cost).

use mlua::{HookTriggers, Lua, Table, VmState};
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Instructions between two looks at the clock.
const EVERY: u32 = 1000;

/// One worker's route bounds.
pub struct Watchdog {
    budget: Option<Duration>,
    limit: usize,
    deadline: Cell<Option<Instant>>,
}

impl Watchdog {
    /// Sets the bounds on `lua`: `budget` None turns the clock off,
    /// `limit` 0 the memory bound.
    pub fn install(lua: &Lua, budget: Option<Duration>, limit: usize) -> mlua::Result<Rc<Self>> {
        let dog = Rc::new(Watchdog {
            budget,
            limit,
            deadline: Cell::new(None),
        });
        if limit > 0 {
            lua.set_memory_limit(limit)?;
        }
        if budget.is_some() {
            if let Ok(jit) = lua.globals().get::<Table>("jit") {
                jit.get::<mlua::Function>("off")?.call::<()>(())?;
            }
            let d = dog.clone();
            lua.set_hook(
                HookTriggers::new().every_nth_instruction(EVERY),
                move |_, debug| d.check(&debug),
            );
        }
        Ok(dog)
    }

    /// Puts the clock on a route coroutine too (hooks are per thread).
    pub fn watch(self: &Rc<Self>, thread: &mlua::Thread) {
        if self.budget.is_some() {
            let d = self.clone();
            thread.set_hook(
                HookTriggers::new().every_nth_instruction(EVERY),
                move |_, debug| d.check(&debug),
            );
        }
    }

    /// The hook: past the deadline, stop the route naming its line.
    fn check(&self, debug: &mlua::Debug) -> mlua::Result<VmState> {
        match (self.deadline.get(), self.budget) {
            (Some(at), Some(b)) if Instant::now() >= at => {
                let src = debug.source();
                let file = src.short_src.as_deref().unwrap_or("?").to_string();
                Err(mlua::Error::RuntimeError(format!(
                    "{file}:{}: the route ran longer than route_timeout ({} ms) and was stopped",
                    debug.curr_line(),
                    b.as_millis()
                )))
            }
            _ => Ok(VmState::Continue),
        }
    }

    /// Starts the clock for a route run, unless one already runs (a branch
    /// route run from `t_relay` counts in its request route's budget).
    pub fn arm(&self) -> Armed<'_> {
        let prev = self.deadline.get();
        if prev.is_none() {
            if let Some(b) = self.budget {
                self.deadline.set(Some(Instant::now() + b));
            }
        }
        Armed { dog: self, prev }
    }

    /// After a failed route: if the state is near its memory bound, collect
    /// now (what the route built is garbage once it unwound).
    pub fn after_failure(&self, lua: &Lua) {
        if self.limit > 0 && lua.used_memory() > self.limit / 2 {
            let _ = lua.gc_collect();
            let _ = lua.gc_collect();
        }
    }
}

/// A running clock; stopped when dropped.
pub struct Armed<'a> {
    dog: &'a Watchdog,
    prev: Option<Instant>,
}

impl Drop for Armed<'_> {
    fn drop(&mut self) {
        self.dog.deadline.set(self.prev);
    }
}
