//! Core functions on `sip` itself: forwarding, ending the script, flags
//! and logging (OpenSIPS core: forward, drop, exit, setflag, xlog, …).

use mlua::{Lua, MultiValue};

use crate::proxy;
use crate::proxy::context::Unwind;
use crate::script::api::pv_fmt;
use crate::script::exports::{none, ret, Args, Export, Func};
use crate::modules::{Module};
use crate::script::host::State;
use crate::script::route::RouteMask;

fn forward(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let uri = a.opt_str(0)?;
    match proxy::stateless::forward(st, uri.as_deref()) {
        Ok(sent) => ret(lua, sent),
        Err(e) => {
            tracing::warn!("{}: {e}", a.fname);
            st.call.borrow_mut().last_error = Some(e.reply());
            ret(lua, false)
        }
    }
}

fn unwind(st: &State, how: Unwind, fname: &str) -> mlua::Error {
    st.call.borrow_mut().unwind = Some(how);
    mlua::Error::RuntimeError(format!("{fname}: unwinding"))
}

fn drop_(_: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    Err(unwind(st, Unwind::Drop, a.fname))
}

fn exit(_: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    Err(unwind(st, Unwind::Exit, a.fname))
}

/// Flag number from an integer 0..63 or a name (OpenSIPS 3 named flags).
fn flag_bit(a: &Args) -> mlua::Result<u64> {
    if let Ok(Some(n)) = a.opt_int(0) {
        return if (0..64).contains(&n) {
            Ok(1u64 << n)
        } else {
            Err(a.err("flag must be 0..63"))
        };
    }
    let name = a.str(0)?;
    named_flag(&name)
        .map(|n| 1u64 << n)
        .ok_or_else(|| a.err("too many named flags (64 at most)"))
}

/// Named flags get bits in order of first use, the same in every worker.
fn named_flag(name: &str) -> Option<u32> {
    static NAMES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(i) = names.iter().position(|n| n == name) {
        return Some(63 - i as u32);
    }
    if names.len() >= 32 {
        return None;
    }
    names.push(name.to_string());
    Some(63 - (names.len() as u32 - 1))
}

fn setflag(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let bit = flag_bit(&a)?;
    st.call.borrow_mut().flags |= bit;
    ret(lua, true)
}

fn resetflag(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let bit = flag_bit(&a)?;
    st.call.borrow_mut().flags &= !bit;
    ret(lua, true)
}

fn isflagset(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let bit = flag_bit(&a)?;
    let set = st.call.borrow().flags & bit != 0;
    ret(lua, set)
}

/// Logs a script line with the message's Call-ID and method and the
/// worker as structured fields (journald shows them as CALL_ID=…).
fn emit(st: &State, level: tracing::Level, text: &str) {
    macro_rules! at {
        ($lvl:expr) => {{
            let call = st.call.borrow();
            let worker = st.env.worker;
            match call.msg.as_ref() {
                Some(m) => tracing::event!(
                    $lvl,
                    call_id = m.call_id().unwrap_or(""),
                    method = m.method(),
                    worker,
                    "{text}"
                ),
                None => tracing::event!($lvl, worker, "{text}"),
            }
        }};
    }
    match level {
        tracing::Level::ERROR => at!(tracing::Level::ERROR),
        tracing::Level::WARN => at!(tracing::Level::WARN),
        tracing::Level::INFO => at!(tracing::Level::INFO),
        tracing::Level::DEBUG => at!(tracing::Level::DEBUG),
        tracing::Level::TRACE => at!(tracing::Level::TRACE),
    }
}

/// `xlog([level,] format)`: one argument logs at L_ERR, as OpenSIPS does.
fn xlog(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let (level, fmt) = if a.len() >= 2 {
        let l = a.str(0)?;
        (
            crate::logging::xlog_level(&l).ok_or_else(|| a.err(format!("unknown level '{l}'")))?,
            a.str(1)?,
        )
    } else {
        (tracing::Level::ERROR, a.str(0)?)
    };
    let text = pv_fmt(lua, st, &fmt)?;
    emit(st, level, text.trim_end_matches('\n'));
    ret(lua, true)
}

/// `log([level,] text)`: plain text, no pseudo-variables; default L_ERR.
fn log(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let (level, text) = if a.len() >= 2 {
        let l = a.str(0)?;
        let level = match a.opt_int(0) {
            Ok(Some(n)) => crate::logging::xlog_level(crate::logging::opensips_level_name(n)),
            _ => crate::logging::xlog_level(&l),
        };
        (
            level.ok_or_else(|| a.err(format!("unknown level '{l}'")))?,
            a.str(1)?,
        )
    } else {
        (tracing::Level::ERROR, a.str(0)?)
    };
    emit(st, level, text.trim_end_matches('\n'));
    ret(lua, true)
}

fn force_rport(_: &Lua, st: &State, _a: Args) -> mlua::Result<MultiValue> {
    st.call.borrow_mut().force_rport = true;
    none()
}

fn add_local_rport(_: &Lua, st: &State, _a: Args) -> mlua::Result<MultiValue> {
    st.call.borrow_mut().add_local_rport = true;
    none()
}

pub static MODULE: Module = Module {
    name: "core",
    table: None,
    doc: "Core functions (OpenSIPS core).",
    exports: &[
        Export {
            name: "forward",
            args: "([uri])",
            returns: "true if the request was handed to the transport",
            routes: RouteMask::REQUEST.or(RouteMask::FAILURE).or(RouteMask::BRANCH),
            doc: "Forwards the request statelessly (RFC 3261 §16.11) to `uri`, else `$du`, else the R-URI. Adds a Via with a hash-derived branch, decrements Max-Forwards unless `mf_process_maxfwd_header` ran (483 when it is 0), answers 482 on a loop. Host names are resolved with A/AAAA lookups when sending.",
            func: Func::Sync(forward),
        },
        Export {
            name: "drop",
            args: "()",
            returns: "does not return",
            routes: RouteMask::ANY,
            doc: "Stops the script; nothing more is sent for this message (a reply is not forwarded). Not caught by `pcall`.",
            func: Func::Sync(drop_),
        },
        Export {
            name: "exit",
            args: "()",
            returns: "does not return",
            routes: RouteMask::ANY,
            doc: "Stops the script from any depth, keeping what was done. Not caught by `pcall`.",
            func: Func::Sync(exit),
        },
        Export {
            name: "setflag",
            args: "(flag)",
            returns: "true",
            routes: RouteMask::MSG,
            doc: "Sets a message flag: a number 0..63 or a name (named flags take bits from 63 down).",
            func: Func::Sync(setflag),
        },
        Export {
            name: "resetflag",
            args: "(flag)",
            returns: "true",
            routes: RouteMask::MSG,
            doc: "Clears a message flag.",
            func: Func::Sync(resetflag),
        },
        Export {
            name: "isflagset",
            args: "(flag)",
            returns: "boolean",
            routes: RouteMask::MSG,
            doc: "Whether a message flag is set.",
            func: Func::Sync(isflagset),
        },
        Export {
            name: "xlog",
            args: "([level,] format)",
            returns: "true",
            routes: RouteMask::ANY,
            doc: "Logs `format` with pseudo-variables expanded (`\"$rm from $si\"`). Levels `L_ALERT`, `L_CRIT`, `L_ERR` (the default), `L_WARN`, `L_NOTICE`, `L_INFO`, `L_DBG`.",
            func: Func::Sync(xlog),
        },
        Export {
            name: "log",
            args: "([level,] text)",
            returns: "true",
            routes: RouteMask::ANY,
            doc: "Logs plain text (no pseudo-variables) at an OpenSIPS level number or name; default L_ERR.",
            func: Func::Sync(log),
        },
        Export {
            name: "force_rport",
            args: "()",
            returns: "nothing",
            routes: RouteMask::REQ,
            doc: "Adds `rport` to the top Via as if the client asked for it (RFC 3581), so replies go to the source port.",
            func: Func::Sync(force_rport),
        },
        Export {
            name: "add_local_rport",
            args: "()",
            returns: "nothing",
            routes: RouteMask::REQ,
            doc: "Adds `;rport` to the Via lunasip inserts when forwarding this request.",
            func: Func::Sync(add_local_rport),
        },
    ],    ..Module::NONE
};
