//! The Lua host: one Lua state per worker with the `sip` API registered
//! from the module export tables, the user script loaded into it, and the
//! route functions looked up once.

use mlua::{Function, IntoLuaMulti, Lua, MultiValue, Table, Thread, ThreadStatus, Value};
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::exports::Suspend;
use super::route::RouteType;
use super::ScriptError;
use crate::modules::Module;
use crate::proxy::context::Current;
use crate::pv;

/// The script to run: a file, or the embedded default.
#[derive(Debug, Clone)]
pub struct Source {
    /// Name in messages: the path as given, or `default.lua`.
    pub name: String,
    pub code: String,
}

pub use crate::proxy::context::Env;

/// The state Rust functions see: the current call, caches, script variables.
pub struct State {
    /// The call the running route works on and the worker's environment
    /// (`st.call`, `st.env` through `Deref`).
    pub cur: Current,
    pub pv: RefCell<pv::Cache>,
    /// The running route is a coroutine of [`Host::start`] and may suspend.
    pub suspendable: Cell<bool>,
    /// Finished route coroutines, reused by [`Host::start`].
    threads: RefCell<Vec<Thread>>,
    /// What the route waits for next, between the Rust function that left
    /// it and the Lua wrapper that awaits it (an async or sync-after
    /// export, script/calls.rs; a `{ip.resolve}` read, resolve_wait.rs).
    waiting: RefCell<Option<Suspend>>,
    /// The error of a future the route waited for, from [`Run`] to the
    /// wrapper that raises it at the script line (script/calls.rs).
    failed: RefCell<Option<mlua::Error>>,
    /// The host that owns this state (weak: the host owns the state).
    pub(super) host: RefCell<std::rc::Weak<Host>>,
    /// Time and memory bounds of the routes.
    pub(super) watchdog: Rc<super::watchdog::Watchdog>,
}

impl State {
    /// What the next wait of the route awaits.
    pub(super) fn set_waiting(&self, f: Suspend) {
        *self.waiting.borrow_mut() = Some(f);
    }

    pub(super) fn take_waiting(&self) -> Option<Suspend> {
        self.waiting.borrow_mut().take()
    }

    pub(super) fn take_failed(&self) -> Option<mlua::Error> {
        self.failed.borrow_mut().take()
    }
}

/// Route coroutines kept for reuse per worker.
const THREADS_KEPT: usize = 64;

impl std::ops::Deref for State {
    type Target = Current;

    fn deref(&self) -> &Current {
        &self.cur
    }
}

/// A route running as a coroutine: polling resumes it, and it is ready
/// when the route returned or unwound. Dropping it abandons the route.
///
/// The coroutine yields for three reasons: `await` (script/calls.rs) left
/// a future in the worker state, which the run polls itself and resumes
/// the coroutine with its values once ready (not resuming it meanwhile);
/// `sip.exit()`/`sip.drop()` marked the unwind; or the script yielded it
/// itself, when it is resumed at the next poll.
pub struct Run {
    state: Rc<State>,
    lua: Lua,
    thread: Thread,
    /// The route function and its argument, until the first resume.
    start: Option<(Function, Value)>,
    /// What the route waits for.
    waiting: Option<Suspend>,
}

/// What a route coroutine's protected call returns: `(ok, error)`.
pub type RouteResult = mlua::Result<(bool, Value)>;

impl Run {
    /// Resumes the route until it ends, yields, or waits for a future
    /// that is not ready.
    fn step(&mut self, cx: &mut Context<'_>) -> Poll<RouteResult> {
        let mut ended = match self.start.take() {
            Some(start) => self.resume(start),
            None => match self.poll_waiting(cx) {
                Poll::Ready(a) => self.resume(a),
                Poll::Pending => return Poll::Pending,
            },
        };
        loop {
            if let Some(r) = ended {
                return Poll::Ready(r);
            }
            let waiting = self.state.take_waiting();
            if self.state.call.borrow().unwind.is_some() {
                return Poll::Pending;
            }
            let Some(f) = waiting else {
                // A yield of the script's own (as mlua's async thread
                // treated it): resumed at the next poll, with nothing.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            };
            self.waiting = Some(f);
            ended = match self.poll_waiting(cx) {
                Poll::Ready(a) => self.resume(a),
                Poll::Pending => return Poll::Pending,
            };
        }
    }

    /// Resumes the coroutine: what the route returned, or None when it
    /// yielded.
    fn resume(&self, args: impl IntoLuaMulti) -> Option<RouteResult> {
        let r = self.thread.resume::<(bool, Value)>(args);
        (r.is_err() || self.thread.status() != ThreadStatus::Resumable).then_some(r)
    }

    /// Polls the future the route waits for: once ready, what to resume
    /// the coroutine with (`await`'s values; after an error, the
    /// `failed` marker, upon which the wrapper raises it).
    fn poll_waiting(&mut self, cx: &mut Context<'_>) -> Poll<MultiValue> {
        let Some(f) = self.waiting.as_mut() else {
            return Poll::Ready(MultiValue::new());
        };
        let r = match f.as_mut().poll(cx) {
            Poll::Ready(r) => r,
            Poll::Pending => return Poll::Pending,
        };
        self.waiting = None;
        Poll::Ready(match r {
            Ok(v) => v,
            Err(e) => {
                *self.state.failed.borrow_mut() = Some(e);
                MultiValue::from_iter([super::calls::failed()])
            }
        })
    }
}

impl Future for Run {
    type Output = Outcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let this = self.get_mut();
        let was = this.state.suspendable.replace(true);
        let st = this.state.clone();
        let armed = st.watchdog.arm();
        st.watchdog.watch(&this.thread);
        let r = this.step(cx);
        if armed.nested() {
            // Back to the route that ran this one (a branch route from
            // `t_relay`): the clock goes back to its coroutine.
            st.watchdog.watch(&this.lua.current_thread());
        }
        drop(armed);
        this.state.watchdog.after_run(&this.lua);
        this.state.suspendable.set(was);
        let r = match r {
            // `sip.exit()`/`sip.drop()` yielded the route coroutine after
            // marking the unwind (prelude.lua): the route ends here; the
            // coroutine is never resumed, so it is not reused either.
            Poll::Pending if this.state.call.borrow().unwind.is_some() => Ok((false, Value::Nil)),
            Poll::Pending => return Poll::Pending,
            Poll::Ready(r) => r,
        };
        if this.thread.status() == ThreadStatus::Finished {
            let mut pool = this.state.threads.borrow_mut();
            if pool.len() < THREADS_KEPT {
                pool.push(this.thread.clone());
            }
        }
        let unwind = this.state.call.borrow().unwind;
        if unwind.is_none() && !matches!(r, Ok((true, _))) {
            this.state.watchdog.after_failure(&this.lua);
        }
        Poll::Ready(match (r, unwind) {
            (Ok((true, _)), _) => Outcome::Done,
            (_, Some(u)) => Outcome::Unwound(u),
            (Ok((false, e)), None) => Outcome::Failed(error_text(&e)),
            (Err(e), None) => Outcome::Failed(describe(&e)),
        })
    }
}

/// The text of an error value a protected call caught.
fn error_text(v: &Value) -> String {
    let text = match v {
        Value::Error(e) => return describe(e),
        Value::String(s) => s.to_string_lossy(),
        other => format!("{other:?}"),
    };
    text.lines().next().unwrap_or("").to_string()
}

/// Route functions looked up once after load.
pub struct Routes {
    pub main: Option<Function>,
    pub reply: Option<Function>,
    /// `error_route.main`: requests that fail RFC 3261 §16.3 validation.
    pub error: Option<Function>,
}

/// One worker's Lua state and its routes.
pub struct Host {
    pub lua: Lua,
    pub state: Rc<State>,
    pub routes: Routes,
    pub source: Source,
    /// The prelude's protected call each route coroutine starts with, so
    /// a coroutine always finishes cleanly and can be reused.
    runner: Function,
}

pub use crate::proxy::phases::Outcome;

fn intern(s: String) -> &'static str {
    static NAMES: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(n) = names.iter().find(|n| **n == s) {
        return n;
    }
    let leaked: &'static str = Box::leak(s.into_boxed_str());
    names.push(leaked);
    leaked
}

/// Prefixes a Rust-raised error with the calling script line, so the log
/// and `check` can say `file:line: sip.x: message`. The line is the first
/// Lua frame above the Rust function that is not lunasip's prelude (its
/// pcall wrapper, the `sip.pv` read path).
pub fn located(lua: &Lua, msg: String) -> mlua::Error {
    let loc = (1..64)
        .map_while(|level| lua.inspect_stack(level))
        .find_map(|d| {
            let src = d.source();
            if src.what == "C" || src.source.as_deref() == Some("=prelude") {
                return None;
            }
            let line = d.curr_line();
            let file = src.short_src.map(|s| s.to_string())?;
            Some((line > 0).then(|| format!("{file}:{line}: ")))
        })
        .flatten();
    mlua::Error::RuntimeError(format!("{}{msg}", loc.unwrap_or_default()))
}

/// The innermost message of an mlua error, first line only.
pub fn describe(e: &mlua::Error) -> String {
    let mut e = e;
    while let mlua::Error::CallbackError { cause, .. } = e {
        e = cause;
    }
    let text = match e {
        mlua::Error::RuntimeError(m) | mlua::Error::SyntaxError { message: m, .. } => m.clone(),
        other => other.to_string(),
    };
    text.lines().next().unwrap_or("").to_string()
}

impl Host {
    /// Builds a Lua state, registers the API and loads the script.
    pub fn new(source: &Source, env: Env) -> Result<Rc<Host>, ScriptError> {
        let lua = Lua::new();
        let le = |e: mlua::Error| ScriptError::new(&source.name, None, describe(&e));
        let watchdog = super::watchdog::Watchdog::install(
            &lua,
            env.config.route_timeout,
            env.config.script_memory_limit,
            env.config.event_pkg_threshold,
        )
        .map_err(le)?;
        let state = Rc::new(State {
            cur: Current::new(env),
            pv: RefCell::new(pv::Cache::default()),
            suspendable: Cell::new(false),
            threads: RefCell::new(Vec::new()),
            waiting: RefCell::new(None),
            failed: RefCell::new(None),
            host: RefCell::new(std::rc::Weak::new()),
            watchdog,
        });
        crate::modules::register();
        register(&lua, &state, crate::modules::ALL).map_err(le)?;
        crate::script::api::register(&lua, &state).map_err(le)?;
        let runner: Function = lua
            .load(include_str!("prelude.lua"))
            .set_name("=prelude")
            .call(super::calls::route_threads(&lua).map_err(le)?)
            .map_err(le)?;
        lua.load(&source.code)
            .set_name(format!("@{}", source.name))
            .exec()
            .map_err(|e| ScriptError::from_lua(&source.name, &e))?;
        let routes = Routes {
            main: route_fn(&lua, RouteType::Request, "main"),
            reply: route_fn(&lua, RouteType::OnReply, "main"),
            error: route_fn(&lua, RouteType::Error, "main"),
        };
        let host = Rc::new(Host {
            lua,
            state,
            routes,
            source: source.clone(),
            runner,
        });
        *host.state.host.borrow_mut() = Rc::downgrade(&host);
        Ok(host)
    }

    /// Starts a route function as a coroutine for the current call. The
    /// caller polls the [`Run`]: most routes end in the first poll; one
    /// that waits on I/O is pending until its answer comes.
    pub fn start(&self, f: &Function, arg: Value) -> mlua::Result<Run> {
        let reused = self.state.threads.borrow_mut().pop();
        let thread = match reused {
            Some(t) => {
                t.reset(self.runner.clone())?;
                t
            }
            None => self.lua.create_thread(self.runner.clone())?,
        };
        Ok(Run {
            state: self.state.clone(),
            lua: self.lua.clone(),
            thread,
            start: Some((f.clone(), arg)),
            waiting: None,
        })
    }

    /// Runs a route to its end if it does not suspend: `Err(run)` when it
    /// did, for the caller to park and poll again.
    pub fn run_now(&self, f: &Function, arg: Value) -> Result<Outcome, Run> {
        let mut run = match self.start(f, arg) {
            Ok(r) => r,
            Err(e) => return Ok(Outcome::Failed(describe(&e))),
        };
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match Pin::new(&mut run).poll(&mut cx) {
            Poll::Ready(o) => Ok(o),
            Poll::Pending => Err(run),
        }
    }

    /// Runs one route function for the current call.
    pub fn invoke(&self, f: &Function) -> Outcome {
        self.invoke_with(f, ())
    }

    /// Runs a route function with arguments (error_route gets a table).
    pub fn invoke_with(&self, f: &Function, args: impl mlua::IntoLuaMulti) -> Outcome {
        let was = self.state.suspendable.replace(false);
        let armed = self.state.watchdog.arm();
        self.state.watchdog.watch(&self.lua.current_thread());
        let r = f.call::<()>(args);
        drop(armed);
        self.state.watchdog.after_run(&self.lua);
        self.state.suspendable.set(was);
        match r {
            Ok(()) => Outcome::Done,
            Err(e) => match self.state.call.borrow().unwind {
                Some(u) => Outcome::Unwound(u),
                None => {
                    self.state.watchdog.after_failure(&self.lua);
                    Outcome::Failed(describe(&e))
                }
            },
        }
    }

    /// `timer_route.NAME = { interval = S, fn = f }` entries, checked at load.
    pub fn timer_routes(&self) -> Vec<(String, std::time::Duration, Function)> {
        let mut out = Vec::new();
        let Ok(t) = self.lua.globals().get::<Table>(RouteType::Timer.table()) else {
            return out;
        };
        for (name, v) in t.pairs::<String, Table>().flatten() {
            let interval = v.get::<f64>("interval").unwrap_or(0.0);
            if let (true, Ok(f)) = (interval > 0.0, v.get::<Function>("fn")) {
                out.push((name, std::time::Duration::from_secs_f64(interval), f));
            }
        }
        out
    }

    /// The names of the script's `event_route` handlers.
    pub fn event_route_names(&self) -> Vec<String> {
        let Ok(t) = self.lua.globals().get::<Table>(RouteType::Event.table()) else {
            return Vec::new();
        };
        t.pairs::<String, Function>()
            .flatten()
            .map(|(n, _)| n)
            .collect()
    }

    /// A named route function, if the script defines it.
    pub fn route(&self, t: RouteType, name: &str) -> Option<Function> {
        route_fn(&self.lua, t, name)
    }
}

fn route_fn(lua: &Lua, t: RouteType, name: &str) -> Option<Function> {
    let tbl: Table = lua.globals().get(t.table()).ok()?;
    tbl.get::<Function>(name).ok()
}

/// Registers every module's exports on `sip` (creating `sip.<table>`).
fn register(lua: &Lua, state: &Rc<State>, modules: &[&'static Module]) -> mlua::Result<()> {
    let calls = super::calls::Calls::new(lua, state)?;
    let sip = lua.create_table()?;
    for m in modules {
        let target = match m.table {
            None => sip.clone(),
            Some(t) => match sip.get::<Value>(t)? {
                Value::Table(t) => t,
                _ => {
                    let tbl = lua.create_table()?;
                    sip.set(t, tbl.clone())?;
                    tbl
                }
            },
        };
        for e in m.exports {
            let fname = intern(m.full_name(e));
            target.set(e.name, calls.make(lua, e, fname)?)?;
        }
    }
    lua.globals().set("sip", sip)?;
    Ok(())
}
