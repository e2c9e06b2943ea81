//! How a module declares its whole surface once (OpenSIPS
//! `module_exports` is the model): its Lua functions, MI commands,
//! statistics, `config.modules.<name>` keys and lifecycle hooks.

use std::rc::Rc;

use crate::script::exports::Export;

/// A module's whole surface, declared once (OpenSIPS `module_exports`):
/// Lua functions, MI commands, pseudo-variables, statistics,
/// `config.modules.<name>` keys and lifecycle hooks. `table` is the sub-table of `sip` (`Some("sl")` →
/// `sip.sl.*`); `None` puts functions on `sip` itself. Everything that
/// lists these (Lua registration, the MI, statistics, docs) reads
/// `crate::modules::ALL`.
pub struct Module {
    pub name: &'static str,
    pub table: Option<&'static str>,
    pub doc: &'static str,
    pub exports: &'static [Export],
    /// MI commands (after the core's, in `ALL` order).
    pub mi: &'static [crate::mi::Command],
    /// Pseudo-variables (`$T_reply_code`), found by name after the core's.
    pub pvs: &'static [crate::pv::PvDef],
    /// Statistics, shown in group `name` (`dispatcher:probes_sent`).
    pub stats: &'static [crate::stats::StatDecl],
    /// The events it raises (`events_list`, docs/modules.md).
    pub events: &'static [crate::event::EventDecl],
    /// The keys of `config.modules.<name>` it reads (docs/modules.md).
    pub params: &'static [Param],
    /// Once per registry (the daemon's), after the first config is
    /// committed, on a thread serving that registry.
    pub init: Option<fn() -> Result<(), String>>,
    /// In each SIP worker once it is ready for traffic (`rank` 0 is the
    /// worker that runs `startup_route` and timer routes).
    pub child_init: Option<ChildInit>,
    /// At shutdown, after the workers stopped.
    pub shutdown: Option<fn()>,
    /// Reads and checks its `config.modules` settings, with no side
    /// effect; what it returns is committed once the whole script passed
    /// (a refused reload changes nothing).
    pub setup: Option<Setup>,
    /// Hooks into the proxy's processing that other modules offer; see
    /// [`Hooks`].
    pub hooks: Hooks,
}

/// Where a module joins the processing of every message, besides its
/// exports (OpenSIPS modules register tm and rr callbacks for this).
#[derive(Clone, Copy)]
pub struct Hooks {
    /// A subscriber to every transaction's events (branch out, reply in,
    /// final response; `proxy::tm::hooks::Observer`), made once at start.
    /// It finds what its module attached to a request in
    /// `Txn::data`.
    pub tm: Option<fn() -> std::sync::Arc<dyn crate::proxy::tm::hooks::Observer>>,
    /// Runs after `loose_route` consumed a Route entry of this proxy (an
    /// in-dialog request; OpenSIPS rr's callbacks), in the request route
    /// with the call not borrowed; given that entry's URI parameters.
    pub loose_route: Option<fn(&crate::script::host::State, &str)>,
}

impl Hooks {
    pub const NONE: Hooks = Hooks {
        tm: None,
        loose_route: None,
    };
}

/// A module's reader of `config.modules` (the whole table: registrar
/// reads usrloc's keys too).
pub type Setup = fn(&mlua::Table) -> Result<Box<dyn Settings>, SettingsError>;

/// Why a module's settings were refused, could not be installed, or its
/// `init` failed. The messages are the modules' own.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// `config.modules` names a key or section no module declares, or a
    /// value has the wrong type.
    #[error("{0}")]
    Params(String),
    /// A module refused its settings or could not load what they name
    /// (lists, databases).
    #[error("{0}")]
    Module(String),
    /// A module's `init` failed.
    #[error("module {module}: {reason}")]
    Init {
        module: &'static str,
        reason: String,
    },
    /// One of the above, at a script position (`file:line` of the
    /// settings).
    #[error("{origin}: {error}")]
    At {
        origin: String,
        error: Box<SettingsError>,
    },
}

impl From<String> for SettingsError {
    fn from(e: String) -> SettingsError {
        SettingsError::Module(e)
    }
}

/// A [`Setup`]'s answer from a module's own `prepare` (`setup: Some(|m|
/// settings(prepare(m)))`).
pub fn settings<T: Settings + 'static>(
    r: Result<T, String>,
) -> Result<Box<dyn Settings>, SettingsError> {
    r.map(|s| Box::new(s) as Box<dyn Settings>)
        .map_err(SettingsError::Module)
}

/// A module's settings, read by its [`Setup`] and not applied yet.
pub trait Settings: std::fmt::Debug {
    /// Loads what they name and puts them in `staged` (installed with
    /// every other module's in one step); `listen`: the sockets in force.
    fn commit(
        self: Box<Self>,
        listen: &[crate::config::Listen],
        staged: &mut crate::state::Staged,
    ) -> Result<(), SettingsError>;

    /// Loads what `commit` would and installs nothing (`lunasip check`;
    /// databases only with `connect`): lines to print.
    fn verify(
        &self,
        _listen: &[crate::config::Listen],
        _connect: bool,
    ) -> Result<Vec<String>, SettingsError> {
        Ok(Vec::new())
    }
}

/// What a module's own `commit(self, staged)` returns: nothing, or an
/// error message.
pub trait Committed {
    fn into_result(self) -> Result<(), SettingsError>;
}

impl Committed for () {
    fn into_result(self) -> Result<(), SettingsError> {
        Ok(())
    }
}

impl Committed for Result<(), String> {
    fn into_result(self) -> Result<(), SettingsError> {
        self.map_err(SettingsError::Module)
    }
}

/// `impl Settings` for a module's settings type whose own
/// `commit(self, staged)` puts them in the registry's staged map
/// (`crate::modules::staged_settings!(Prepared);`).
macro_rules! staged_settings {
    ($t:ty) => {
        impl $crate::modules::Settings for $t {
            fn commit(
                self: Box<Self>,
                _: &[$crate::config::Listen],
                staged: &mut $crate::state::Staged,
            ) -> Result<(), $crate::modules::SettingsError> {
                $crate::modules::Committed::into_result(<$t>::commit(*self, staged))
            }
        }
    };
}
pub(crate) use staged_settings;

/// A `child_init` hook: the worker's rank and the worker itself.
pub type ChildInit = fn(rank: usize, worker: &Rc<crate::proxy::worker::Worker>);

/// A `config.modules.<module>` key's value type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    Int,
    Str,
    Bool,
    Table,
}

impl ParamKind {
    pub fn name(self) -> &'static str {
        match self {
            ParamKind::Int => "int",
            ParamKind::Str => "str",
            ParamKind::Bool => "bool",
            ParamKind::Table => "table",
        }
    }
}

/// One `config.modules.<module>` key: the docs list it and
/// `modules::params::check` refuses keys no module declares.
pub struct Param {
    pub name: &'static str,
    /// Other names accepted for it (OpenSIPS's older spellings).
    pub also: &'static [&'static str],
    pub kind: ParamKind,
    /// The default as the docs show it (`"5"`, `"OPTIONS"`, `"none"`).
    pub default: &'static str,
    pub doc: &'static str,
}

/// Declares a module parameter.
pub const fn param(
    name: &'static str,
    kind: ParamKind,
    default: &'static str,
    doc: &'static str,
) -> Param {
    Param {
        name,
        also: &[],
        kind,
        default,
        doc,
    }
}

impl Param {
    /// The same parameter, also accepted under `names`.
    pub const fn also(self, names: &'static [&'static str]) -> Param {
        Param {
            also: names,
            ..self
        }
    }
}

impl Module {
    /// A module with nothing declared: the fields a module leaves empty
    /// come from here (`Module { name, table, doc, exports, ..Module::NONE }`).
    pub const NONE: Module = Module {
        name: "",
        table: None,
        doc: "",
        exports: &[],
        mi: &[],
        pvs: &[],
        stats: &[],
        events: &[],
        params: &[],
        init: None,
        child_init: None,
        shutdown: None,
        setup: None,
        hooks: Hooks::NONE,
    };

    /// `sip.sl.sl_send_reply` style full name of an export.
    pub fn full_name(&self, e: &Export) -> String {
        match self.table {
            Some(t) => format!("sip.{t}.{}", e.name),
            None => format!("sip.{}", e.name),
        }
    }
}
