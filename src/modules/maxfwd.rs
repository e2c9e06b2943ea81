//! Max-Forwards (OpenSIPS maxfwd, RFC 3261 §16.3 step 3, §16.6 step 3).

use mlua::{IntoLua, Lua, MultiValue};

use crate::script::exports::{Args, Export, Func};
use crate::modules::{Module};
use crate::script::host::State;
use crate::script::route::RouteMask;

pub use crate::proxy::maxfwd::{process, MaxFwd, MAX_LIMIT};

fn mf_process_maxfwd_header(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let limit = a.int(0)?;
    if !(1..=255).contains(&limit) {
        return Err(a.err("max must be 1..255"));
    }
    let r = process(&mut st.call.borrow_mut(), MAX_LIMIT, limit as u32).map_err(|e| a.err(e))?;
    let (ok, rc) = match r {
        MaxFwd::Ok => (true, 1),
        MaxFwd::Exhausted => (false, -1),
        MaxFwd::Bad => (false, -2),
    };
    Ok(MultiValue::from_iter([
        ok.into_lua(lua)?,
        rc.into_lua(lua)?,
    ]))
}

/// `is_maxfwd_lt(limit)` (OpenSIPS maxfwd.c): whether Max-Forwards, as
/// it stands now (decremented when `mf_process_maxfwd_header` ran), is
/// below `limit`. Codes as OpenSIPS: 1; -1 when it is not below; -2 when
/// the header is missing; -3 when it is not a number.
fn is_maxfwd_lt(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let limit = a.int(0)?;
    if !(1..=MAX_LIMIT as i64).contains(&limit) {
        return Err(a.err(format!("limit must be 1..{MAX_LIMIT}")));
    }
    let rc = {
        let call = st.call.borrow();
        let m = call.msg.as_ref().ok_or_else(|| a.err("no message"))?;
        match m.max_forwards() {
            None => -2,
            Some(Err(_)) => -3,
            Some(Ok(n)) => {
                // What mf_process_maxfwd_header wrote in place of `n`.
                let now = match call.maxfwd_done {
                    true if n > 0 => (n - 1).min(MAX_LIMIT),
                    _ => n,
                };
                if i64::from(now) >= limit {
                    -1
                } else {
                    1
                }
            }
        }
    };
    Ok(MultiValue::from_iter([
        (rc == 1).into_lua(lua)?,
        rc.into_lua(lua)?,
    ]))
}

pub static MODULE: Module = Module {
    name: "maxfwd",
    table: Some("maxfwd"),
    doc: "Max-Forwards processing (OpenSIPS maxfwd).",
    exports: &[Export {
        name: "mf_process_maxfwd_header",
        args: "(max)",
        returns: "true; or false, -1 when Max-Forwards is 0; false, -2 when it is not a number",
        routes: RouteMask::REQUEST,
        doc: "Decrements Max-Forwards (never above 256, OpenSIPS's `max_limit`), or adds it with value `max` when absent. When it is already 0 the request must not be forwarded: reply 483.",
        func: Func::Sync(mf_process_maxfwd_header),
    },
    Export {
        name: "is_maxfwd_lt",
        args: "(limit)",
        returns: "true, 1 when Max-Forwards is below `limit`; false, -1 when not; false, -2 when there is none; false, -3 when it is not a number",
        routes: RouteMask::REQUEST.or(RouteMask::FAILURE).or(RouteMask::BRANCH),
        doc: "Compares Max-Forwards with `limit` (1..256) without changing it, as it stands now: after `mf_process_maxfwd_header` the decremented value. E.g. answer OPTIONS addressed to the proxy when it is low.",
        func: Func::Sync(is_maxfwd_lt),
    }],    ..Module::NONE
};
