//! `sip.launch(f)`: OpenSIPS 3.x `launch(func(...), report_route)`
//! (async.c `async_script_launch`). `f` runs at once as a route of its
//! own, on a call with no message (OpenSIPS's dummy message), and the
//! route that launched it goes on without waiting: when `f` waits on I/O
//! the worker parks it (`Current::launched`) and resumes it when the
//! answer comes. The translator puts the function and the report route
//! in `f`, so the report route runs when the function's work is done.

use mlua::{Function, Lua, Table, Value};
use std::rc::Rc;

use super::host::{located, State};
use super::route::RouteType;
use crate::proxy::context::{Call, Launched};
use crate::proxy::phases::Outcome;

fn launch(lua: &Lua, st: &State, f: Function) -> mlua::Result<bool> {
    let Some(host) = st.host.borrow().upgrade() else {
        return Err(located(lua, "sip.launch: no script host".into()));
    };
    let mut job = Box::new(Call::new());
    job.reset_empty(RouteType::Request);
    // The job's call in the slot while it runs; the launcher's after.
    st.exchange(&mut job);
    let started = host.run_now(&f, Value::Nil);
    st.exchange(&mut job);
    match started {
        Ok(outcome) => {
            if let Outcome::Failed(e) = &outcome {
                tracing::error!("launched route failed: {e}");
            }
            // What it queued leaves with what the launcher queues.
            let mut out = std::mem::take(&mut job.outbox);
            st.call.borrow_mut().outbox.append(&mut out);
        }
        Err(run) => st.launched.borrow_mut().push(Launched {
            call: job,
            run: Box::pin(run),
        }),
    }
    Ok(true)
}

/// Registers `sip.launch` on the `sip` table.
pub fn register(lua: &Lua, state: &Rc<State>, sip: &Table) -> mlua::Result<()> {
    let st = state.clone();
    sip.set(
        "launch",
        lua.create_function(move |lua, f: Value| match f {
            Value::Function(f) => launch(lua, &st, f),
            other => Err(located(
                lua,
                format!(
                    "sip.launch: a function is needed, not {}",
                    other.type_name()
                ),
            )),
        })?,
    )
}
