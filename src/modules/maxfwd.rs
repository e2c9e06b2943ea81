//! Max-Forwards (OpenSIPS maxfwd, RFC 3261 §16.3 step 3, §16.6 step 3).

use mlua::{IntoLua, Lua, MultiValue};

use crate::script::exports::{Args, Export, Func, Module};
use crate::script::host::State;
use crate::script::route::RouteMask;
use crate::sip::HeaderKind;

/// Upper bound of a decremented Max-Forwards (OpenSIPS maxfwd `max_limit`).
pub const MAX_LIMIT: u32 = 256;

/// What processing Max-Forwards found.
#[derive(Debug, PartialEq, Eq)]
pub enum MaxFwd {
    /// Decremented (or added); the request may go on.
    Ok,
    /// It was 0: the request must not be forwarded (483).
    Exhausted,
    /// Not a number.
    Bad,
}

/// Decrements Max-Forwards, capping it at `limit`, or adds it as `absent`
/// when missing. Done once per message.
pub fn process(st: &State, limit: u32, absent: u32) -> Result<MaxFwd, String> {
    let mut call = st.call.borrow_mut();
    if call.maxfwd_done {
        return Ok(MaxFwd::Ok);
    }
    let m = call.msg.as_mut().ok_or("no message")?;
    let idx = m.header_index(HeaderKind::MaxForwards);
    let r = match (m.max_forwards(), idx) {
        (None, _) | (_, None) => {
            m.prepend_header("Max-Forwards", &absent.to_string());
            MaxFwd::Ok
        }
        (Some(Ok(0)), _) => MaxFwd::Exhausted,
        (Some(Ok(n)), Some(i)) => {
            m.set_header_value(i, &(n - 1).min(limit).to_string());
            MaxFwd::Ok
        }
        (Some(Err(_)), _) => MaxFwd::Bad,
    };
    if r == MaxFwd::Ok {
        call.maxfwd_done = true;
    } else if r == MaxFwd::Exhausted {
        call.last_error = Some((483, "Too Many Hops"));
    } else {
        call.last_error = Some((400, "Bad Max-Forwards"));
    }
    Ok(r)
}

fn mf_process_maxfwd_header(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let limit = a.int(0)?;
    if !(1..=255).contains(&limit) {
        return Err(a.err("max must be 1..255"));
    }
    let r = process(st, MAX_LIMIT, limit as u32).map_err(|e| a.err(e))?;
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
    }],
    mi: &[],
    stats: &[],
    params: &[],
    init: None,
    child_init: None,
    shutdown: None,
};
