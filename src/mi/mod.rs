//! The management interface (MI), as OpenSIPS 3.x has it: a registry of
//! commands, each declared once with its parameters, answered as JSON-RPC
//! 2.0 over HTTP (`mi_http`) and a FIFO (`mi_fifo`), and the `lunasip mi`
//! client.
//!
//! Commands run on the MI's own thread (the transports' runtime and its
//! blocking pool), never on a SIP worker: a slow command or client cannot
//! delay a message. A module adds commands by listing them in its
//! `Module::mi`; each command is a [`Command`] value and a handler function.

pub mod client;
pub mod core;
pub mod fifo;
pub mod fifo_text;
pub mod http;
pub mod jsonrpc;
pub mod metrics;
pub mod token;

use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::SystemTime;

use crate::transport::tcp::TcpTable;

/// A parameter's JSON type. Strings are accepted where numbers are
/// expected (as OpenSIPS does), and a string where an array is expected is
/// taken as a one-element array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    Int,
    /// A list of strings; as the last positional parameter it takes every
    /// remaining positional value (`get_statistics core: sl:`).
    Array,
    /// A JSON object (a string holding one is accepted too).
    Object,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Str => "string",
            Kind::Int => "integer",
            Kind::Array => "array",
            Kind::Object => "object",
        }
    }
}

/// One parameter of a command.
#[derive(Debug)]
pub struct Param {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
}

/// Declares a required parameter.
pub const fn req(name: &'static str, kind: Kind) -> Param {
    Param {
        name,
        kind,
        required: true,
    }
}

/// Declares an optional parameter (optional ones come after required ones).
pub const fn opt(name: &'static str, kind: Kind) -> Param {
    Param {
        name,
        kind,
        required: false,
    }
}

/// A command's handler: validated parameters in, result or error out.
pub type Handler = fn(&Ctx, &Params) -> Result<Value, MiError>;

/// One MI command, declared once: the registry, `which`, `help`, the
/// parameter checks and docs/mi.md all read it.
pub struct Command {
    pub name: &'static str,
    pub help: &'static str,
    /// Module that exports it (`help` shows it as "Exported by").
    pub module: &'static str,
    /// Required first, then optional, in positional order.
    pub params: &'static [Param],
    /// What the result looks like, for docs/mi.md.
    pub result: &'static str,
    pub handler: Handler,
}

impl Command {
    /// The parameter sets this command accepts, as OpenSIPS's `which CMD`
    /// lists its "recipes": the required ones, then one more optional each.
    pub fn recipes(&self) -> Vec<Vec<&'static str>> {
        let req = self.params.iter().filter(|p| p.required).count();
        (req..=self.params.len())
            .map(|n| self.params[..n].iter().map(|p| p.name).collect())
            .collect()
    }
}

/// Looks a command up by name (`log_level`, or `core:log_level` as
/// OpenSIPS 3.5+ also accepts).
pub fn lookup(name: &str) -> Option<&'static Command> {
    let (module, local) = match name.split_once(':') {
        Some((m, l)) => (Some(m), l),
        None => (None, name),
    };
    commands().find(|c| c.name == local && module.is_none_or(|m| m == c.module))
}

/// Every command in `which` order: the core's, then each module's `mi`
/// in `modules::ALL` order.
pub fn commands() -> impl Iterator<Item = &'static Command> {
    core::COMMANDS
        .iter()
        .chain(crate::modules::ALL.iter().flat_map(|m| m.mi.iter()))
}

/// A command's error: JSON-RPC error code, message and optional details
/// (`data`), as OpenSIPS's `init_mi_error_extra` builds them.
#[derive(Debug, Clone, PartialEq)]
pub struct MiError {
    pub code: i64,
    pub message: String,
    pub data: Option<String>,
}

impl MiError {
    pub fn new(code: i64, message: impl Into<String>) -> MiError {
        MiError {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// -32602 "Invalid params" with what was wrong.
    pub fn params(details: impl Into<String>) -> MiError {
        MiError {
            code: jsonrpc::INVALID_PARAMS,
            message: "Invalid params".into(),
            data: Some(details.into()),
        }
    }

    pub fn with_data(mut self, data: impl Into<String>) -> MiError {
        self.data = Some(data.into());
        self
    }
}

/// Parameters after checking against the command's declaration: every
/// value is present under its declared name with its declared type.
#[derive(Debug, Default)]
pub struct Params(Map<String, Value>);

impl Params {
    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(Value::as_str)
    }

    pub fn int(&self, name: &str) -> Option<i64> {
        self.0.get(name).and_then(Value::as_i64)
    }

    /// A parameter's value as given (an [`Kind::Object`] one).
    pub fn value(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    pub fn strings(&self, name: &str) -> Vec<&str> {
        match self.0.get(name) {
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }
}

/// A thread as `ps` shows it.
#[derive(Debug, Clone)]
pub struct Proc {
    /// Kernel thread id (what `log_level`'s `pid` names).
    pub pid: i64,
    pub kind: String,
    /// Worker index when the thread is a SIP worker.
    pub worker: Option<usize>,
}

/// What commands may touch. Built by the runtime; tests build one with
/// only what they need.
/// What `reload_routes` asks of the daemon: check the script again and,
/// when it is good, hand it to every worker.
pub trait Reloader: Send + Sync {
    fn reload(&self) -> Result<(), String>;
}

pub struct Ctx {
    /// Reloads the routing script (`reload_routes`); the runtime gives it.
    pub control: Option<Arc<dyn Reloader>>,
    pub tcp: Option<Arc<TcpTable>>,
    pub started: SystemTime,
    /// The daemon's command line (`arg`).
    pub args: Vec<String>,
    /// Threads of the daemon (`ps`, per-worker `log_level`).
    pub procs: std::sync::Mutex<Vec<Proc>>,
    /// Asks the daemon to stop (`kill`).
    pub shutdown: Option<Arc<tokio::sync::Notify>>,
    /// The modules' settings and state the commands act on (served on the
    /// thread running a command).
    pub modules: Arc<crate::state::Registry>,
}

impl Ctx {
    /// A context with no daemon behind it (unit tests, docs).
    pub fn detached() -> Ctx {
        Ctx {
            control: None,
            tcp: None,
            started: SystemTime::now(),
            args: std::env::args().collect(),
            procs: std::sync::Mutex::new(Vec::new()),
            shutdown: None,
            modules: crate::state::current(),
        }
    }

    pub fn procs(&self) -> Vec<Proc> {
        self.procs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records the calling thread under `kind` with its kernel thread id.
    pub fn add_current_thread(&self, kind: &str, worker: Option<usize>) {
        let pid = rustix::thread::gettid().as_raw_nonzero().get() as i64;
        let mut p = self.procs.lock().unwrap_or_else(|e| e.into_inner());
        p.push(Proc {
            pid,
            kind: kind.to_string(),
            worker,
        });
    }
}

/// Markdown table of every command, for docs/mi.md.
pub fn commands_markdown() -> String {
    let mut out = String::from("| command | params | result | what it does |\n|---|---|---|---|\n");
    for c in commands() {
        let params: Vec<String> = c
            .params
            .iter()
            .map(|p| {
                if p.required {
                    format!("`{}` ({})", p.name, p.kind.name())
                } else {
                    format!("[`{}` ({})]", p.name, p.kind.name())
                }
            })
            .collect();
        let params = if params.is_empty() {
            "—".to_string()
        } else {
            params.join(", ")
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            c.name,
            params,
            c.result.replace('|', "\\|"),
            c.help.replace('|', "\\|")
        ));
    }
    out
}
