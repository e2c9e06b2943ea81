//! Core functions on `sip` itself: forwarding, ending the script, flags
//! and logging (OpenSIPS core: forward, drop, exit, setflag, xlog, …).

mod blacklist;
mod cache;
mod dset;
mod sending;
mod status;
mod uri;
pub use blacklist::BLACKLISTS;
pub use cache::{remove_chunk, CACHE};
pub use dset::DSET;
pub use sending::SENDING;
pub use status::{add_report, set_status, status_of, STATUS};
pub use uri::URI;

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

/// Flag number from an integer 0..63 or a name (OpenSIPS 3 named flags);
/// message and branch flags name their bits apart, as OpenSIPS's
/// `fixup_flag` keeps one table per flag type.
fn flag_bit(a: &Args, names: &NamedFlags) -> mlua::Result<u64> {
    if let Ok(Some(n)) = a.opt_int(0) {
        return if (0..64).contains(&n) {
            Ok(1u64 << n)
        } else {
            Err(a.err("flag must be 0..63"))
        };
    }
    let name = a.str(0)?;
    names
        .bit(&name)
        .map(|n| 1u64 << n)
        .ok_or_else(|| a.err("too many named flags (32 at most)"))
}

/// The bit of branch flag `name` (OpenSIPS 3 named flags), the same bit
/// `setbflag(name)` uses; module parameters such as usrloc's `nat_bflag`
/// take names through it. None past 32 names.
pub fn branch_flag_bit(name: &str) -> Option<u32> {
    BRANCH_FLAGS.bit(name)
}

/// The bit of message flag `name`, the one `setflag(name)` uses
/// (registrar's `tcp_persistent_flag` takes names through it).
pub fn msg_flag_bit(name: &str) -> Option<u32> {
    MSG_FLAGS.bit(name)
}

/// Named flags of one type. One table per process, not per registry:
/// module settings name flags while the configuration is read, before
/// any registry serves a thread, and must get the bits the script's
/// `setbflag(name)` gets later.
struct NamedFlags(std::sync::Mutex<Vec<String>>);

static MSG_FLAGS: NamedFlags = NamedFlags(std::sync::Mutex::new(Vec::new()));
static BRANCH_FLAGS: NamedFlags = NamedFlags(std::sync::Mutex::new(Vec::new()));

impl NamedFlags {
    /// Named flags get bits in order of first use, from 63 down, the same
    /// in every worker.
    fn bit(&self, name: &str) -> Option<u32> {
        let mut names = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = names.iter().position(|n| n == name) {
            return Some(63 - i as u32);
        }
        if names.len() >= 32 {
            return None;
        }
        names.push(name.to_string());
        Some(63 - (names.len() as u32 - 1))
    }
}

fn setflag(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let bit = flag_bit(&a, &MSG_FLAGS)?;
    st.call.borrow_mut().flags |= bit;
    ret(lua, true)
}

fn resetflag(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let bit = flag_bit(&a, &MSG_FLAGS)?;
    st.call.borrow_mut().flags &= !bit;
    ret(lua, true)
}

fn isflagset(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let bit = flag_bit(&a, &MSG_FLAGS)?;
    let set = st.call.borrow().flags & bit != 0;
    ret(lua, set)
}

/// The branch flags `setbflag`/`resetbflag`/`isbflagset` work on: branch
/// 0 is the R-URI's (`$bf`), branch n the n-th `append_branch` (OpenSIPS
/// `dset.c`); None past the last branch.
fn bflags_of(call: &mut crate::proxy::context::Call, idx: i64) -> Option<&mut u64> {
    match idx {
        0 => Some(&mut call.bflags),
        n if n > 0 => call
            .tm
            .branches
            .get_mut(n as usize - 1)
            .map(|b| &mut b.flags),
        _ => None,
    }
}

/// `setbflag(flag [, branch])`, `resetbflag`, `isbflagset`: OpenSIPS
/// answers -1 for a branch that does not exist.
fn bflag_op(lua: &Lua, st: &State, a: Args, op: fn(&mut u64, u64) -> bool) -> mlua::Result<MultiValue> {
    let bit = flag_bit(&a, &BRANCH_FLAGS)?;
    let idx = a.opt_int(1)?.unwrap_or(0);
    let mut call = st.call.borrow_mut();
    let ok = bflags_of(&mut call, idx).is_some_and(|f| op(f, bit));
    ret(lua, ok)
}

fn setbflag(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    bflag_op(lua, st, a, |f, bit| {
        *f |= bit;
        true
    })
}

fn resetbflag(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    bflag_op(lua, st, a, |f, bit| {
        *f &= !bit;
        true
    })
}

fn isbflagset(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    bflag_op(lua, st, a, |f, bit| *f & bit != 0)
}

/// `is_myself(host [, port])` (OpenSIPS core `check_self`): whether the
/// host names one of this proxy's sockets or aliases, on `port` or on any
/// port when it is left out. The argument expands pseudo-variables
/// (`"$rd"`); a SIP URI (`"$fu"`) is taken apart into its host and port
/// (5060 when absent), as OpenSIPS compares `uri == myself`.
fn is_myself(lua: &Lua, st: &State, a: Args) -> mlua::Result<MultiValue> {
    let text = pv_fmt(lua, st, &a.str(0)?)?;
    let port = match a.opt_int(1)? {
        Some(p) => Some(u16::try_from(p).map_err(|_| a.err(format!("port {p} out of range")))?),
        None => None,
    };
    let text = text.trim();
    let lower = text.get(..5).unwrap_or(text).to_ascii_lowercase();
    let yes = if lower.starts_with("sip:") || lower.starts_with("sips:") {
        crate::sip::Uri::parse(text).is_ok_and(|u| {
            st.env
                .sockets
                .is_myself_port(u.host, port.or(u.port).or(Some(5060)))
        })
    } else {
        // A port 0 is OpenSIPS's "any port".
        st.env.sockets.is_myself_port(text, port.filter(|p| *p != 0))
    };
    ret(lua, yes)
}

/// Logs a script line with the message's Call-ID and method and the
/// worker as structured fields (journald shows them as CALL_ID=…).
pub(crate) fn emit(st: &State, level: tracing::Level, text: &str) {
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
    let (level, number, fmt) = if a.len() >= 2 {
        let l = a.str(0)?;
        (
            crate::logging::xlog_level(&l).ok_or_else(|| a.err(format!("unknown level '{l}'")))?,
            crate::logging::xlog_number(&l).unwrap_or(-1),
            a.str(1)?,
        )
    } else {
        (tracing::Level::ERROR, -1, a.str(0)?)
    };
    // OpenSIPS xlog.c is_xlog_printable: nothing above $xlog_level.
    if number > crate::logging::xlog_level_now() {
        return ret(lua, true);
    }
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
            name: "setbflag",
            args: "(flag [, branch])",
            returns: "true; false when the branch does not exist",
            routes: RouteMask::ANY,
            doc: "Sets a branch flag (a number 0..63 or a name; branch flag names are apart from message flag names) on the R-URI branch (`branch` 0, the default, `$bf`) or on the n-th `append_branch` branch. Each branch `t_relay` sends keeps its own flags: a branch route, a reply route and the failure route see the flags of their branch (`isbflagset`, `$bf`, `$branch.flag(n)`).",
            func: Func::Sync(setbflag),
        },
        Export {
            name: "resetbflag",
            args: "(flag [, branch])",
            returns: "true; false when the branch does not exist",
            routes: RouteMask::ANY,
            doc: "Clears a branch flag (see `setbflag`).",
            func: Func::Sync(resetbflag),
        },
        Export {
            name: "isbflagset",
            args: "(flag [, branch])",
            returns: "boolean",
            routes: RouteMask::ANY,
            doc: "Whether a branch flag is set on the R-URI branch (or the n-th appended branch); in a branch, reply or failure route, on the branch being handled.",
            func: Func::Sync(isbflagset),
        },
        Export {
            name: "is_myself",
            args: "(host [, port])",
            returns: "boolean",
            routes: RouteMask::ANY,
            doc: "Whether `host` (pseudo-variables expanded: `\"$rd\"`) is one of this proxy's listening addresses, advertised names or aliases, on `port` or on any port when it is left out (OpenSIPS `check_self`). A SIP URI is taken apart into host and port (5060 when it has none).",
            func: Func::Sync(is_myself),
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
    ],
    events: EVENTS,
    ..Module::NONE
};

/// The core's events (OpenSIPS 3.4 `evi_core` and `E_CORE_LOG`), raised
/// through `crate::core_events` by the layers that see them.
static EVENTS: &[crate::event::EventDecl] = &[
    crate::event::EventDecl {
        name: crate::core_events::THRESHOLD,
        params: &["source", "time", "extra"],
        doc: "Handling a message (`exec_msg_threshold`) or a DNS lookup (`exec_dns_threshold`) took longer than its threshold: `source` (\"msg processing\", \"dns\"), `time` in µs, `extra` (the message, the name).",
    },
    crate::event::EventDecl {
        name: crate::core_events::PKG_THRESHOLD,
        params: &["usage", "threshold", "used", "size", "pid"],
        doc: "A worker's script memory crossed `event_pkg_threshold` percent of `script_memory_limit` (or moved while over it, or went back under): `usage` and `threshold` in percent, `used` and `size` in bytes.",
    },
    crate::event::EventDecl {
        name: crate::core_events::SHM_THRESHOLD,
        params: &["usage", "threshold", "used", "size"],
        doc: "The process's resident memory (lunasip has no shared memory pool: its shared tables, caches and the workers' Lua states all count) crossed `event_shm_threshold` percent of `shm_memory` (the machine's memory when 0), or moved while over it, or went back under; checked every second. `usage` and `threshold` in percent, `used` and `size` in bytes.",
    },
    crate::event::EventDecl {
        name: crate::core_events::TCP_DISCONNECT,
        params: &["src_ip", "src_port", "dst_ip", "dst_port", "proto"],
        doc: "A TCP connection closed: `src` is the peer, `dst` this proxy's end.",
    },
    crate::event::EventDecl {
        name: crate::core_events::LOG,
        params: &["time", "pid", "level", "module", "function", "message"],
        doc: "A log line at `log_event_level_filter` or more important, with `log_event_enabled`.",
    },
];
