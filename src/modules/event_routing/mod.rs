//! event_routing (OpenSIPS 3.4 modules/event_routing, "EBR"): a route
//! subscribes to an event raised anywhere in lunasip (usrloc's
//! `E_UL_CONTACT_INSERT`, the script's own through `sip.raise_event`…)
//! with `key=value` filters, and either goes on and has a route run at
//! each matching raise (`notify_on_event`), or suspends until the first
//! one (`wait_for_event`). The matching is `crate::event::routing`'s.
//!
//! As OpenSIPS's `handle_ebr_ipc`: a notification route runs with no
//! message and none of the subscriber's variables; the event's parameters
//! are its AVPs (`$avp(aor)`), and the subscribing transaction is known
//! by reference only, for `t_inject_branches`. lunasip runs it on the
//! first worker (OpenSIPS: in the process that raised the event) and also
//! gives the parameters as `$param(name)`, as `event_route` has them.

use mlua::{Lua, MultiValue, Value as Lua_};
use serde_json::{Map, Value as Json};
use std::rc::Rc;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::event::routing::{self as ebr, Deliver, Filter};
use crate::modules::sipmsgops::ret_code;
use crate::modules::Module;
use crate::proxy::context::{Call, Value};
use crate::proxy::tm::txn::Txn;
use crate::proxy::worker::Worker;
use crate::script::exports::{Args, Export, Func, Step};
use crate::script::host::State;
use crate::script::route::{RouteMask, RouteType};

/// A matching raise for a `notify_on_event` subscription.
struct Notification {
    route: String,
    txn: Option<Weak<Mutex<Box<Txn>>>>,
    params: Map<String, Json>,
}

/// Notifications waiting for the first worker (bounded: a full queue
/// drops them with a log line, counted in `evi:dropped`).
#[derive(Default)]
struct Queue(Mutex<Option<tokio::sync::mpsc::Sender<Notification>>>);

const QUEUE: usize = 4096;

fn queue() -> Option<tokio::sync::mpsc::Sender<Notification>> {
    crate::state::state::<Queue>()
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
}

fn child_init(rank: usize, worker: &Rc<Worker>) {
    if rank != 0 {
        return;
    }
    let (tx, rx) = tokio::sync::mpsc::channel(QUEUE);
    *crate::state::state::<Queue>()
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = Some(tx);
    tokio::task::spawn_local(run(worker.clone(), rx));
}

/// Runs each notification route in turn; one that waits is parked and
/// the next runs meanwhile.
async fn run(w: Rc<Worker>, mut rx: tokio::sync::mpsc::Receiver<Notification>) {
    while let Some(n) = rx.recv().await {
        let Notification { route, txn, params } = n;
        let ran = w.run_detached_route(
            &route,
            move |call| {
                push_avps(call, &params);
                call.event_params = Some(Arc::new(params));
                call.tm.remote = txn;
            },
            Box::new(|| {}),
        );
        if !ran {
            tracing::error!("event_routing: notify route [{route}] does not exist anymore");
        }
        w.flush().await;
    }
}

/// The event's parameters as AVPs named after them, ahead of the ones
/// there (OpenSIPS `pack_evi_params_as_avp_list`, `ebr_resume_from_wait`):
/// text and whole numbers as they are, other numbers as text, booleans
/// as 0/1.
fn push_avps(call: &mut Call, params: &Map<String, Json>) {
    for (k, v) in params {
        let v = match v {
            Json::Null => continue,
            Json::String(s) => Value::Str(s.clone()),
            Json::Bool(b) => Value::Int(i64::from(*b)),
            Json::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Str(n.to_string()),
            },
            other => Value::Str(other.to_string()),
        };
        call.avps.entry(k.clone()).or_default().insert(0, v);
    }
}

fn lua_text(v: &Lua_) -> Option<String> {
    match v {
        Lua_::String(s) => Some(s.to_string_lossy()),
        Lua_::Integer(n) => Some(n.to_string()),
        Lua_::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The filters: every text value of the AVP the spec names (OpenSIPS
/// `pack_ebr_filters`; a value without `=` or without a value is logged
/// and left out), or a Lua table of `"key=value"` strings or of keys to
/// values.
fn filters(st: &State, a: &Args, i: usize) -> mlua::Result<Vec<Filter>> {
    let raw: Vec<String> = match a.vals.get(i) {
        Some(Lua_::Table(t)) => {
            let mut v = Vec::new();
            for pair in t.pairs::<Lua_, Lua_>() {
                let (k, val) = pair?;
                let val = lua_text(&val).ok_or_else(|| a.err("filter values must be strings or numbers"))?;
                match k {
                    Lua_::Integer(_) => v.push(val),
                    Lua_::String(k) => v.push(format!("{}={val}", k.to_string_lossy())),
                    _ => return Err(a.err("filter keys must be strings")),
                }
            }
            v
        }
        _ => {
            let text = a.str(i)?;
            let spec = st.pv.borrow_mut().spec(text.trim()).map_err(|e| a.err(e))?;
            if spec.def.name != "avp" {
                return Err(a.err(format!("the filter must be an AVP ($avp(name)), not '{text}'")));
            }
            let call = st.call.borrow();
            let Some(name) = spec.name(&call) else {
                return Ok(Vec::new());
            };
            call.avps
                .get(&*name)
                .map(|l| {
                    l.iter()
                        .filter_map(|v| match v {
                            Value::Str(s) => Some(s.clone()),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default()
        }
    };
    Ok(raw
        .into_iter()
        .filter_map(|s| match Filter::parse(&s) {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::error!("{}: {e}, discarding", a.fname);
                None
            }
        })
        .collect())
}

fn lifetime(a: &Args, i: usize) -> mlua::Result<Duration> {
    let n = a.int(i)?;
    u64::try_from(n)
        .map(Duration::from_secs)
        .map_err(|_| a.err(format!("timeout {n} is not a number of seconds >= 0")))
}

/// An event name a subscription can take: a declared one, or the
/// script's own (declared by naming it, as `sip.raise_event` does).
fn event_name(a: &Args) -> mlua::Result<Option<String>> {
    let name = a.str(0)?;
    match crate::event::declare_script_event(&name) {
        Ok(()) => Ok(Some(name)),
        Err(e) => {
            tracing::error!("{}: event <{name}> not available: {e}", a.fname);
            Ok(None)
        }
    }
}

/// `notify_on_event(event, filter, route, timeout)` (OpenSIPS
/// event_routing.c): 1 subscribed, -1 not (a bad event name).
fn notify_on_event(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let route = a.str(2)?;
    let secs = lifetime(&a, 3)?;
    let has_route = crate::script::phases::phases_of(st)
        .is_some_and(|h| h.route(RouteType::Request, &route).is_some());
    if !has_route {
        return Err(a.err(format!("notification route [{route}] is not defined in the script")));
    }
    let filters = filters(st, &a, 1)?;
    let Some(event) = event_name(&a)? else {
        return ret_code(lua, -1);
    };
    let Some(tx) = queue() else {
        tracing::error!("{}: no worker runs notification routes", a.fname);
        return ret_code(lua, -1);
    };
    // The transaction by reference only: the route sees no more of it.
    let txn = st.call.borrow().tm.txn.as_ref().map(Arc::downgrade);
    let deliver = Deliver::Notify(Arc::new(move |params| {
        let n = Notification {
            route: route.clone(),
            txn: txn.clone(),
            params,
        };
        if tx.try_send(n).is_err() {
            crate::event::DROPPED.inc();
            tracing::warn!("event_routing: notification queue full, dropped a notification");
        }
    }));
    ebr::subscribe(&event, filters, secs, deliver);
    ret_code(lua, 1)
}

/// Ends a waiting subscription when its route goes (timed out, or
/// abandoned at `resume_timeout`).
struct Unsubscribe(u64);

impl Drop for Unsubscribe {
    fn drop(&mut self) {
        ebr::unsubscribe(self.0);
    }
}

/// `wait_for_event(event, filter, timeout)` (OpenSIPS event_routing.c,
/// an async function): suspends the route until a matching raise, whose
/// parameters become AVPs, or the timeout. 1 either way, as OpenSIPS's
/// `ebr_resume_from_wait` (the AVPs tell which); -1 without waiting for
/// a bad event name.
fn wait_for_event(lua: &Lua, st: &Rc<State>, a: Args) -> mlua::Result<Step> {
    a.require_suspend()?;
    let filters = filters(st, &a, 1)?;
    let secs = lifetime(&a, 2)?;
    let Some(event) = event_name(&a)? else {
        return Step::now(ret_code(lua, -1));
    };
    let lua = lua.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let guard = Unsubscribe(ebr::subscribe(&event, filters, secs, Deliver::Wait(tx)));
    let st = st.clone();
    Step::wait(async move {
        let _guard = guard;
        if let Ok(Ok(params)) = tokio::time::timeout(secs, rx).await {
            push_avps(&mut st.call.borrow_mut(), &params);
        }
        ret_code(&lua, 1)
    })
}

pub static MODULE: Module = Module {
    name: "event_routing",
    table: Some("event_routing"),
    doc: "Event-based routing (OpenSIPS's event_routing, \"EBR\"): a route subscribes to an event lunasip raises (usrloc's `E_UL_*`, the script's own from `sip.raise_event`, any declared one) with `key=value` filters, each a shell wildcard pattern (`fnmatch`) for the parameter of that name (case-insensitive; a key the event lacks is ignored). `notify_on_event` has a route run at each matching raise until the subscription expires; `wait_for_event` suspends the route until the first one. The filter is an AVP holding one `key=value` per value (`sip.avp.filter = \"aor=bob@*\"`, then `\"$avp(filter)\"`), or a Lua table (`{ aor = \"bob@*\" }`).",
    exports: &[
        Export {
            name: "notify_on_event",
            args: "(event, filter, route, timeout)",
            returns: "ok, code (1 subscribed; -1 the event name cannot be subscribed to)",
            routes: RouteMask::REQUEST
                .or(RouteMask::FAILURE)
                .or(RouteMask::ONREPLY)
                .or(RouteMask::BRANCH)
                .or(RouteMask::EVENT),
            doc: "Subscribes for `timeout` seconds to `event` with the filters of `filter`; at each raise that passes them (none, one or several) `route[route]` runs on the first worker with no message and none of this route's variables: each event parameter is an AVP of its name (`$avp(aor)`, also `$param(aor)`), and the current transaction (made first with `t_newtran`) is the one `t_inject_branches` works on there — the \"call to a user who registers later\" pattern: `t_newtran`, `t_wait_for_new_branches`, `notify_on_event(\"E_UL_CONTACT_INSERT\", \"$avp(filter)\", \"fork_call\", 20)`, and `t_inject_branches(\"event\")` in `route.fork_call`. The route must exist.",
            func: Func::Sync(notify_on_event),
        },
        Export {
            name: "wait_for_event",
            args: "(event, filter, timeout)",
            returns: "ok, code (1 after the event or the timeout — the event's parameters are AVPs when it came; -1 the event name cannot be subscribed to)",
            routes: RouteMask::WAIT,
            doc: "Suspends the route (never the worker) until `event` is raised with parameters that pass the filters of `filter`, or `timeout` seconds passed (OpenSIPS's `async(wait_for_event(…), resume)`); the route then goes on with the event's parameters added as AVPs of their names. The wait is also bounded by `resume_timeout`.",
            func: Func::Async(wait_for_event),
        },
    ],
    child_init: Some(child_init),
    ..Module::NONE
};
