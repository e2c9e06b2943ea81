//! The call path of async exports: an answer at once, an answer after a
//! wait, errors naming the script line from the Rust part and from the
//! future, and a route that cannot suspend.

use mlua::{Function, IntoLua, Lua, MultiValue, Value};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::Calls;
use crate::script::exports::{ret, Args, Export, Func, Step};
use crate::script::host::{Host, Outcome, Source, State};
use crate::script::route::{RouteMask, RouteType};

/// Pending at its first poll (waking its waker), ready at the next.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// Whether argument `i` is `true`.
fn flag(a: &Args, i: usize) -> bool {
    matches!(a.vals.get(i), Some(Value::Boolean(true)))
}

/// `(a, b)`: answers `a + 1, nil, "now"` at once, unless `b` is true.
/// Then it waits (once) and answers `a + 2, nil, "later"`.
fn maybe_wait(lua: &Lua, _st: &Rc<State>, a: Args) -> mlua::Result<Step> {
    let n = a.int(0)?;
    if !flag(&a, 1) {
        let v = [(n + 1).into_lua(lua)?, Value::Nil, "now".into_lua(lua)?];
        return Step::now(Ok(MultiValue::from_iter(v)));
    }
    let lua = lua.clone();
    Step::wait(async move {
        YieldOnce(false).await;
        let v = [(n + 2).into_lua(&lua)?, Value::Nil, "later".into_lua(&lua)?];
        Ok(MultiValue::from_iter(v))
    })
}

/// Nothing, at once.
fn nothing(_: &Lua, _: &Rc<State>, _: Args) -> mlua::Result<Step> {
    Ok(Step::Now(MultiValue::new()))
}

/// A future that is ready at its first poll.
fn ready(lua: &Lua, _: &Rc<State>, _: Args) -> mlua::Result<Step> {
    let v = ret(lua, "ready");
    Step::wait(async move { v })
}

/// Whether the call may suspend, at once.
fn suspendable(lua: &Lua, _: &Rc<State>, a: Args) -> mlua::Result<Step> {
    Step::now(ret(lua, a.suspendable))
}

/// Refuses its argument at once, or (with `true`) after waiting.
fn fails(_: &Lua, _: &Rc<State>, a: Args) -> mlua::Result<Step> {
    if !flag(&a, 0) {
        return Err(a.err("refused at once"));
    }
    let fname = a.fname;
    Step::wait(async move {
        YieldOnce(false).await;
        Err(mlua::Error::RuntimeError(format!("{fname}: refused later")))
    })
}

/// What `after` waits for first: a future pending once, which counts
/// itself in `waited`.
fn after_wait(lua: &Lua, _: &Rc<State>) -> Option<crate::script::exports::Suspend> {
    let lua = lua.clone();
    Some(Box::pin(async move {
        YieldOnce(false).await;
        let g = lua.globals();
        g.set("waited", g.get::<i64>("waited").unwrap_or(0) + 1)?;
        Ok(MultiValue::new())
    }))
}

/// `after`'s answer, once it waited: how many waits ran before it.
fn after_now(lua: &Lua, _: &State, _: Args) -> mlua::Result<MultiValue> {
    ret(lua, lua.globals().get::<i64>("waited").unwrap_or(0))
}

const fn export(name: &'static str, f: crate::script::exports::AsyncFn) -> Export {
    Export {
        name,
        args: "",
        returns: "",
        routes: RouteMask::REQUEST,
        doc: "",
        func: Func::Async(f),
    }
}

static EXPORTS: &[Export] = &[
    export("maybe_wait", maybe_wait),
    export("nothing", nothing),
    export("ready", ready),
    export("suspendable", suspendable),
    export("fails", fails),
    Export {
        name: "after",
        args: "",
        returns: "",
        routes: RouteMask::REQUEST,
        doc: "",
        func: Func::SyncAfter {
            wait: after_wait,
            func: after_now,
        },
    },
];

const SCRIPT: &str = r#"function route.main() end
function answers(b)
  got = { sip.t.maybe_wait(1, b) }
  count = select('#', sip.t.maybe_wait(1, b))
  none = select('#', sip.t.nothing())
end
function may_suspend() got = sip.t.suspendable() end
function now_fails()
  sip.t.fails()
end
function later_fails()
  sip.t.fails(true)
end
function ready_now() got = sip.t.ready() end
function two_waits()
  local a = sip.t.maybe_wait(1, true)
  local b, c, d = sip.t.maybe_wait(a, true)
  got = { b, c, d }
end
function wait_then_exit()
  got = sip.t.maybe_wait(1, true)
  sip.exit()
  got = "after exit"
end
function wait_in_own_coroutine()
  coroutine.wrap(function() sip.t.maybe_wait(1, true) end)()
end
function own_yield()
  coroutine.yield("ignored")
  got = sip.t.after()
end
function wait_then_fail_in_pcall()
  local ok, e = pcall(sip.t.fails, true)
  got = { tostring(ok), tostring(e), select('#', sip.t.ready()) }
end
function spin() while true do end end
function wait_then_spin() sip.t.maybe_wait(1, true) spin() end
function just_exit() sip.exit() end
function spin_in_wrap() coroutine.wrap(spin)() end
function spin_in_resume()
  local ok, e = coroutine.resume(coroutine.create(spin))
  error(e, 0)
end
function spin_after_own()
  coroutine.wrap(function() for i = 1, 5000 do end end)()
  spin()
end
"#;

fn host() -> Rc<Host> {
    host_with(crate::script::check::probe_env())
}

fn host_with(env: crate::script::host::Env) -> Rc<Host> {
    let src = Source {
        name: "t.lua".into(),
        code: SCRIPT.into(),
    };
    let host = Host::new(&src, env).expect("host");
    let calls = Calls::new(&host.lua, &host.state).expect("calls");
    let t = host.lua.create_table().expect("table");
    for e in EXPORTS {
        let fname: &'static str = Box::leak(format!("sip.t.{}", e.name).into_boxed_str());
        t.set(e.name, calls.make(&host.lua, e, fname).expect("make"))
            .expect("set");
    }
    let sip: mlua::Table = host.lua.globals().get("sip").expect("sip");
    sip.set("t", t).expect("sip.t");
    host.state.call.borrow_mut().route = RouteType::Request;
    host
}

fn global(host: &Host, name: &str) -> Function {
    host.lua.globals().get(name).expect(name)
}

/// Runs a function as a route coroutine to its end, polling it again
/// while it waits; how many polls it took.
fn run(host: &Host, f: &str, arg: Value) -> (Outcome, usize) {
    let mut run = match host.run_now(&global(host, f), arg) {
        Ok(o) => return (o, 1),
        Err(run) => run,
    };
    let mut cx = Context::from_waker(std::task::Waker::noop());
    for polls in 2..10 {
        if let Poll::Ready(o) = Pin::new(&mut run).poll(&mut cx) {
            return (o, polls);
        }
    }
    panic!("{f} never finished");
}

fn got(host: &Host) -> Vec<String> {
    let t: mlua::Table = host.lua.globals().get("got").expect("got");
    (1..=3)
        .map(|i| match t.raw_get::<Value>(i).expect("value") {
            Value::Nil => "nil".to_string(),
            v => v.to_string().expect("text"),
        })
        .collect()
}

fn count(host: &Host, name: &str) -> i64 {
    host.lua.globals().get(name).expect(name)
}

#[test]
fn an_answer_at_once_keeps_its_values_and_does_not_suspend() {
    let host = host();
    let (o, polls) = run(&host, "answers", Value::Nil);
    assert!(matches!(o, Outcome::Done), "{o:?}");
    assert_eq!(polls, 1);
    assert_eq!(got(&host), ["2", "nil", "now"]);
    assert_eq!(count(&host, "count"), 3);
    assert_eq!(count(&host, "none"), 0);
}

#[test]
fn an_answer_after_a_wait_suspends_the_route_and_keeps_its_values() {
    let host = host();
    let (o, polls) = run(&host, "answers", Value::Boolean(true));
    assert!(matches!(o, Outcome::Done), "{o:?}");
    // Two waits, one poll each, and the first.
    assert_eq!(polls, 3);
    assert_eq!(got(&host), ["3", "nil", "later"]);
    assert_eq!(count(&host, "count"), 3);
    assert!(host.state.take_waiting().is_none());
}

#[test]
fn errors_name_the_script_line_from_the_rust_part_and_from_the_future() {
    let host = host();
    let (o, _) = run(&host, "now_fails", Value::Nil);
    match o {
        Outcome::Failed(m) => assert_eq!(m, "t.lua:9: sip.t.fails: refused at once"),
        other => panic!("{other:?}"),
    }
    let (o, polls) = run(&host, "later_fails", Value::Nil);
    assert_eq!(polls, 2);
    match o {
        Outcome::Failed(m) => assert_eq!(m, "t.lua:12: sip.t.fails: refused later"),
        other => panic!("{other:?}"),
    }
    // From a route run from Rust as well.
    match host.invoke(&global(&host, "now_fails")) {
        Outcome::Failed(m) => assert_eq!(m, "t.lua:9: sip.t.fails: refused at once"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_route_that_cannot_suspend_gets_answers_and_ready_futures_only() {
    let host = host();
    let (o, _) = run(&host, "may_suspend", Value::Nil);
    assert!(matches!(o, Outcome::Done), "{o:?}");
    assert!(host.lua.globals().get::<bool>("got").expect("got"));
    // Run from Rust: the function is told, answers at once work, and a
    // future ready at its first poll too.
    let o = host.invoke(&global(&host, "may_suspend"));
    assert!(matches!(o, Outcome::Done), "{o:?}");
    assert!(!host.lua.globals().get::<bool>("got").expect("got"));
    let o = host.invoke(&global(&host, "answers"));
    assert!(matches!(o, Outcome::Done), "{o:?}");
    assert_eq!(got(&host), ["2", "nil", "now"]);
    let o = host.invoke(&global(&host, "ready_now"));
    assert!(matches!(o, Outcome::Done), "{o:?}");
    assert_eq!(
        host.lua.globals().get::<String>("got").expect("got"),
        "ready"
    );
    // A future that is not ready cannot be waited for: an error naming
    // the line.
    let o = host.invoke_with(&global(&host, "answers"), true);
    assert!(matches!(o, Outcome::Failed(_)), "{o:?}");
    assert!(host.state.take_waiting().is_none());
}

#[test]
fn an_export_outside_its_routes_is_refused_with_the_line() {
    let host = host();
    host.state.call.borrow_mut().route = RouteType::OnReply;
    let (o, _) = run(&host, "now_fails", Value::Nil);
    match o {
        Outcome::Failed(m) => assert_eq!(m, "t.lua:9: sip.t.fails: not allowed in onreply_route"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn two_waits_in_one_route_each_give_their_values_back() {
    let host = host();
    let (o, polls) = run(&host, "two_waits", Value::Nil);
    assert!(matches!(o, Outcome::Done), "{o:?}");
    assert_eq!(polls, 3);
    // 1 + 2, then 3 + 2.
    assert_eq!(got(&host), ["5", "nil", "later"]);
    assert!(host.state.take_waiting().is_none());
    assert!(host.state.take_failed().is_none());
}

#[test]
fn exit_after_a_wait_ends_the_route_there() {
    let host = host();
    let (o, polls) = run(&host, "wait_then_exit", Value::Nil);
    assert!(
        matches!(o, Outcome::Unwound(crate::proxy::context::Unwind::Exit)),
        "{o:?}"
    );
    assert_eq!(polls, 2);
    assert_eq!(host.lua.globals().get::<i64>("got").expect("got"), 3);
}

#[test]
fn an_error_after_a_wait_can_be_caught_and_the_route_goes_on() {
    let host = host();
    let (o, polls) = run(&host, "wait_then_fail_in_pcall", Value::Nil);
    assert!(matches!(o, Outcome::Done), "{o:?}");
    assert_eq!(polls, 2);
    let t: mlua::Table = host.lua.globals().get("got").expect("got");
    assert_eq!(t.get::<String>(1).expect("ok"), "false");
    let e = t.get::<String>(2).expect("error");
    assert!(e.contains("sip.t.fails: refused later"), "{e}");
    // A future ready at once after it: its value, no error left over.
    assert_eq!(t.get::<i64>(3).expect("count"), 1);
}

#[test]
fn a_wait_in_a_scripts_own_coroutine_fails_naming_the_line() {
    // Only the host's route coroutine yields for a wait: a script's own
    // coroutine would get the wait's marker back instead.
    let host = host();
    let (o, _) = run(&host, "wait_in_own_coroutine", Value::Nil);
    match o {
        Outcome::Failed(m) => assert!(m.starts_with("t.lua:26: cannot wait for I/O here"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(host.state.take_waiting().is_none());
}

#[test]
fn a_scripts_own_yield_resumes_and_a_sync_after_export_waits_first() {
    let host = host();
    let (o, polls) = run(&host, "own_yield", Value::Nil);
    assert!(matches!(o, Outcome::Done), "{o:?}");
    // The script's yield, then `after`'s wait.
    assert_eq!(polls, 3);
    assert_eq!(host.lua.globals().get::<i64>("got").expect("got"), 1);
    // Run from Rust `after` does not wait.
    let o = host.invoke(&global(&host, "own_yield"));
    assert!(matches!(o, Outcome::Failed(_)), "{o:?}");
    host.lua.globals().set("waited", 0).expect("reset");
    let o = host.invoke(
        &host
            .lua
            .load("got = sip.t.after()")
            .into_function()
            .expect("f"),
    );
    assert!(matches!(o, Outcome::Done), "{o:?}");
    assert_eq!(host.lua.globals().get::<i64>("got").expect("got"), 0);
}

#[test]
fn a_route_dropped_while_it_waits_leaves_nothing_behind() {
    let host = host();
    let Err(r) = host.run_now(&global(&host, "two_waits"), Value::Nil) else {
        panic!("did not wait");
    };
    drop(r);
    assert!(host.state.take_waiting().is_none());
    // The next route runs on a coroutine of its own, as usual.
    let (o, _) = run(&host, "two_waits", Value::Nil);
    assert!(matches!(o, Outcome::Done), "{o:?}");
}

/// A host whose routes may run 50 ms.
fn hurried() -> Rc<Host> {
    let mut env = crate::script::check::probe_env();
    let mut config = (*env.config).clone();
    config.route_timeout = Some(std::time::Duration::from_millis(50));
    env.config = std::sync::Arc::new(config);
    host_with(env)
}

fn timed_out(o: &Outcome) -> bool {
    matches!(o, Outcome::Failed(m) if m.contains("ran longer than route_timeout (50 ms)"))
}

/// Runs `routes` on a hurried host in a thread of its own; each of the
/// `n` outcomes must be a timeout. A loop the clock misses never ends:
/// give up after 20 s.
fn all_timed_out(n: usize, routes: impl FnOnce(Rc<Host>) -> Vec<Outcome> + Send + 'static) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(routes(hurried()));
    });
    let outcomes = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("a loop ran past route_timeout");
    assert_eq!(outcomes.len(), n);
    for o in &outcomes {
        assert!(timed_out(o), "{o:?}");
    }
}

#[test]
fn the_clock_stops_a_loop_on_any_coroutine_new_reused_or_resumed() {
    all_timed_out(5, |host| {
        let mut outcomes = Vec::new();
        // A new coroutine, then a reused one.
        outcomes.push(run(&host, "spin", Value::Nil).0);
        outcomes.push(run(&host, "spin", Value::Nil).0);
        // A route waits; others take new coroutines meanwhile; it
        // resumes and spins.
        let Err(mut waiting) = host.run_now(&global(&host, "wait_then_spin"), Value::Nil) else {
            panic!("did not wait");
        };
        for _ in 0..40 {
            let (o, _) = run(&host, "just_exit", Value::Nil);
            assert!(matches!(o, Outcome::Unwound(_)), "{o:?}");
            host.state.call.borrow_mut().unwind = None;
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        outcomes.push(loop {
            if let Poll::Ready(o) = Pin::new(&mut waiting).poll(&mut cx) {
                break o;
            }
        });
        // A route run from Rust, then one on a coroutine again.
        outcomes.push(host.invoke(&global(&host, "spin")));
        outcomes.push(run(&host, "spin", Value::Nil).0);
        outcomes
    });
}

#[test]
fn the_clock_stops_a_loop_in_a_scripts_own_coroutine_and_after_it() {
    all_timed_out(9, |host| {
        let mut outcomes = Vec::new();
        for f in ["spin_in_wrap", "spin_in_resume", "spin_after_own"] {
            outcomes.push(run(&host, f, Value::Nil).0);
            outcomes.push(host.invoke(&global(&host, f)));
        }
        // A route on the main state between two on the same coroutine.
        outcomes.push(run(&host, "spin", Value::Nil).0);
        outcomes.push(host.invoke(&global(&host, "spin_after_own")));
        outcomes.push(run(&host, "spin", Value::Nil).0);
        outcomes
    });
}

/// What a script's coroutine.wrap and coroutine.resume give back, on the
/// host (with the prelude's clock-carrying versions) or on bare LuaJIT.
const COROUTINES: &str = r##"
local out = {}
local function add(...) for i = 1, select("#", ...) do out[#out + 1] = tostring((select(i, ...))) end end
add(pcall(coroutine.wrap(function() error("boom") end)))
add(pcall(coroutine.wrap(function() error({}) end)))
add(pcall(coroutine.wrap(function() error("flat", 0) end)))
local co = coroutine.create(function(a, b) local c = coroutine.yield(a + b, "y") return c * 2, nil, "end" end)
add(coroutine.resume(co, 1, 2))
add(coroutine.resume(co, 21))
add(coroutine.resume(co))
add(coroutine.status(co))
local gen = coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i) end end)
add(gen(), gen(), gen())
add(pcall(coroutine.resume, 42))
add(pcall(function() coroutine.wrap(function() error("deep") end)() end))
add(pcall(function() local g = coroutine.wrap(function() error({}) end) g() end))
return (table.concat(out, "|"):gsub("table: 0x%x+", "table"))
"##;

#[test]
fn a_scripts_coroutines_answer_as_on_bare_luajit() {
    let host = host();
    let ours: String = host
        .lua
        .load(COROUTINES)
        .set_name("=t")
        .eval()
        .expect("on the host");
    let bare: String = Lua::new()
        .load(COROUTINES)
        .set_name("=t")
        .eval()
        .expect("bare");
    assert_eq!(ours, bare);
    assert!(
        ours.starts_with("false|t:4: boom|false|table|false|flat|"),
        "{ours}"
    );
    assert!(ours.contains("|t:15: t:15: deep|"), "{ours}");
}
