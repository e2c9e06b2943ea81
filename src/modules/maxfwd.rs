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
    }],    ..Module::NONE
};
