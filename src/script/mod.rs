//! The Lua host: one Lua state per worker, loading and checking scripts,
//! the per-call context, and `exit`/`drop` unwinding.

pub mod api;
mod bit;
mod calls;
pub mod cfg_path;
pub mod check;
mod config_blacklists;
pub mod config_table;
pub mod exports;
pub mod host;
mod launch;
pub mod phases;
mod resolve_wait;
pub mod route;
mod route_args;
mod watchdog;

pub use host::{Env, Host, Outcome, Source};

/// A script that cannot run, with `file:line: message` where known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptError(pub String);

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScriptError {}

impl ScriptError {
    pub fn new(file: &str, line: Option<usize>, msg: impl std::fmt::Display) -> ScriptError {
        match line {
            Some(l) => ScriptError(format!("{file}:{l}: {msg}")),
            None => ScriptError(format!("{file}: {msg}")),
        }
    }

    /// From a Lua load error, whose message already starts `file:line:`.
    pub fn from_lua(file: &str, e: &mlua::Error) -> ScriptError {
        let msg = host::describe(e);
        if msg.starts_with(file) || msg.starts_with("...") {
            ScriptError(msg)
        } else {
            ScriptError(format!("{file}: {msg}"))
        }
    }
}

/// The embedded default script (lua/default.lua).
pub const DEFAULT_SCRIPT: &str = include_str!("../../lua/default.lua");
