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
    /// `event_pkg_threshold` (percent of `limit`; 0 off) and the usage
    /// last reported.
    pkg_threshold: u64,
    pkg_last: Cell<u64>,
    /// The coroutine the hook was last set for ([`Watchdog::watch`]).
    hooked: Cell<*const std::ffi::c_void>,
}

impl Watchdog {
    /// Sets the bounds on `lua`: `budget` None turns the clock off,
    /// `limit` 0 the memory bound.
    /// `pkg_threshold` (percent, 0 off) raises E_CORE_PKG_THRESHOLD.
    pub fn install(
        lua: &Lua,
        budget: Option<Duration>,
        limit: usize,
        pkg_threshold: u8,
    ) -> mlua::Result<Rc<Self>> {
        let dog = Rc::new(Watchdog {
            budget,
            limit,
            deadline: Cell::new(None),
            pkg_threshold: if limit > 0 {
                u64::from(pkg_threshold)
            } else {
                0
            },
            pkg_last: Cell::new(0),
            hooked: Cell::new(std::ptr::null()),
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

    /// Puts the clock on the coroutine about to run, unless it has it.
    /// mlua keeps one hook, for one coroutine: LuaJIT calls it on every
    /// coroutine, and mlua drops it when it fires on another one (a
    /// waiting route resumed after a newer one started, a reused one, Lua
    /// run on the main state). [`Watchdog::arm`] forgets the coroutine at
    /// each outermost run, so a hook dropped unseen is set again; a
    /// script's own coroutines call this through `sip.__watch` (the
    /// prelude's `coroutine.resume`).
    pub fn watch(self: &Rc<Self>, thread: &mlua::Thread) {
        if self.budget.is_some() && self.hooked.get() != thread.to_pointer() {
            self.hooked.set(thread.to_pointer());
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
    /// An outermost run also forgets which coroutine has the hook: mlua
    /// may have dropped it since, and [`Watchdog::watch`] sets it again.
    pub fn arm(&self) -> Armed<'_> {
        let prev = self.deadline.get();
        if prev.is_none() {
            self.hooked.set(std::ptr::null());
            if let Some(b) = self.budget {
                self.deadline.set(Some(Instant::now() + b));
            }
        }
        Armed { dog: self, prev }
    }

    /// After a route ran: E_CORE_PKG_THRESHOLD when the script memory
    /// crossed `event_pkg_threshold` percent of the limit, moved while over
    /// it, or went back under (OpenSIPS mem.c `pkg_threshold_check`).
    pub fn after_run(&self, lua: &Lua) {
        let th = self.pkg_threshold;
        if th == 0 {
            return;
        }
        let used = lua.used_memory() as u64;
        let size = self.limit as u64;
        let perc = used * 100 / size;
        let last = self.pkg_last.get();
        if (perc < th && last <= th) || (perc >= th && last == perc) {
            return;
        }
        self.pkg_last.set(perc);
        crate::core_events::raise(crate::core_events::PKG_THRESHOLD, || {
            use serde_json::Value;
            crate::core_events::params([
                ("usage", Value::from(perc)),
                ("threshold", Value::from(th)),
                ("used", Value::from(used)),
                ("size", Value::from(size)),
                ("pid", Value::from(std::process::id())),
            ])
        });
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

impl Armed<'_> {
    /// Whether another route's clock already ran (this run is nested).
    pub fn nested(&self) -> bool {
        self.prev.is_some()
    }
}

impl Drop for Armed<'_> {
    fn drop(&mut self) {
        self.dog.deadline.set(self.prev);
    }
}
