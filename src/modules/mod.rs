//! OpenSIPS modules, each declaring its whole surface once in a
//! [`Module`] value: Lua functions, MI commands, statistics, config keys
//! and lifecycle hooks. [`ALL`] is the list the Lua host registers and the
//! MI, the statistics and the docs are derived from.
//!
//! A new module is a file or folder here plus one line in the
//! `modules!` list below.

use std::rc::Rc;
use std::sync::OnceLock;

mod module;
pub mod params;
pub use module::{param, ChildInit, Hooks, Module, Param, ParamKind};

/// Declares each module's Rust module and [`ALL`] from one list: a line
/// is `file_or_folder: STATIC, …;` naming its [`Module`] values.
macro_rules! modules {
    ($($m:ident: $($s:ident),+;)*) => {
        $(pub mod $m;)*
        /// Every module, in registration order.
        pub static ALL: &[&Module] = &[$($(&$m::$s,)+)*];
    };
}

modules! {
    core: MODULE, CACHE, URI, SENDING, DSET;
    sipmsgops: MODULE;
    sl: MODULE;
    signaling: MODULE;
    maxfwd: MODULE;
    rr: MODULE;
    statistics: MODULE;
    tm: MODULE, BRANCHES;
    dispatcher: MODULE;
    cfgutils: MODULE;
    usrloc: MODULE;
    registrar: MODULE;
    cachedb_local: MODULE;
    textops: MODULE;
    evi: MODULE;
    auth: MODULE;
    auth_db: MODULE;
    dialog: MODULE;
    acc: MODULE;
}

#[cfg(test)]
mod tests;

/// Hands every module's statistics groups and pseudo-variables to their
/// registries (once; later calls do nothing). The daemon, the script host,
/// `lunasip eval` and the generated docs call it first.
pub fn register() {
    crate::pv::register_module_pvs(ALL.iter().flat_map(|m| m.pvs.iter()));
    register_stats();
}

fn register_stats() {
    crate::stats::register_module_groups(ALL.iter().filter(|m| !m.stats.is_empty()).map(|m| {
        crate::stats::StatGroup {
            name: m.name,
            stats: m.stats,
        }
    }));
}

static INIT: OnceLock<Result<(), String>> = OnceLock::new();

/// Runs every module's `init` once per process (later calls return the
/// first result); [`Prepared::commit`] calls it after the first commit.
pub fn init_all() -> Result<(), String> {
    INIT.get_or_init(|| {
        ALL.iter()
            .filter_map(|m| m.init.map(|f| (m.name, f)))
            .try_for_each(|(name, f)| f().map_err(|e| format!("module {name}: {e}")))
    })
    .clone()
}

/// Runs every module's `child_init` in worker `rank` (the daemon calls it
/// once the worker is ready for traffic).
pub fn child_init_all(rank: usize, worker: &Rc<crate::proxy::worker::Worker>) {
    for f in ALL.iter().filter_map(|m| m.child_init) {
        f(rank, worker);
    }
}

/// The tm observers the modules declare (`Hooks::tm`), made once; the
/// runtime subscribes them before traffic.
pub fn tm_observers() -> Vec<std::sync::Arc<dyn crate::proxy::tm::hooks::Observer>> {
    ALL.iter().filter_map(|m| m.hooks.tm).map(|f| f()).collect()
}

/// Runs the modules' `Hooks::loose_route` (rr's `loose_route` calls it
/// after it consumed a Route entry of this proxy).
pub fn after_loose_route(st: &crate::script::host::State, params: &str) {
    for f in ALL.iter().filter_map(|m| m.hooks.loose_route) {
        f(st, params);
    }
}

/// Runs every module's `shutdown` (the daemon calls it once the workers
/// stopped).
pub fn shutdown_all() {
    for f in ALL.iter().filter_map(|m| m.shutdown) {
        f();
    }
}

/// Module settings read from a script's `config.modules`, checked but not
/// applied: [`Prepared::commit`] applies them once the whole script passed,
/// so a refused reload changes nothing.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    pub dispatcher: dispatcher::Prepared,
    pub usrloc: usrloc::Prepared,
    pub registrar: registrar::Prepared,
    pub auth: auth::Prepared,
    pub auth_db: auth_db::Prepared,
    pub dialog: dialog::Prepared,
    pub acc: acc::Prepared,
}

/// Sections of `config.modules` the core reads itself (the MI transports).
const CORE_SECTIONS: &[&str] = &["mi_http", "mi_fifo"];

/// Checks `config.modules` against the modules' declared parameters and
/// reads it (no side effect: nothing loaded or connected).
pub fn prepare(modules: &mlua::Table) -> Result<Prepared, String> {
    params::check(modules, CORE_SECTIONS)?;
    Ok(Prepared {
        dispatcher: dispatcher::prepare(modules)?,
        usrloc: usrloc::prepare(modules)?,
        registrar: registrar::prepare(modules)?,
        auth: auth::prepare(modules)?,
        auth_db: auth_db::prepare(modules)?,
        dialog: dialog::prepare(modules)?,
        acc: acc::prepare(modules)?,
    })
}

impl Prepared {
    /// Loads what the modules read from outside (dispatcher list files and
    /// databases) and installs everything; on an error nothing changes.
    /// `listen`: the sockets in force.
    /// Runs the modules' `init` hooks after the first commit.
    pub fn commit(self, listen: &[crate::config::Listen]) -> Result<(), String> {
        register();
        self.dispatcher.commit(listen)?;
        self.usrloc.commit()?;
        self.registrar.commit();
        self.auth.commit();
        self.auth_db.commit();
        self.dialog.commit()?;
        self.acc.commit()?;
        init_all()
    }

    /// Loads what `commit` would, installing nothing (`lunasip check`);
    /// databases are opened only with `connect`. Returns lines to print.
    pub fn verify(
        &self,
        listen: &[crate::config::Listen],
        connect: bool,
    ) -> Result<Vec<String>, String> {
        let db = match connect {
            true => dispatcher::DbLoad::Required,
            false => dispatcher::DbLoad::Skip,
        };
        self.dispatcher.verify(listen, db)
    }
}

/// Runs `f` on the current message, or fails naming the function.
pub fn with_msg<T>(
    st: &crate::script::host::State,
    fname: &str,
    f: impl FnOnce(&crate::sip::Message) -> T,
) -> mlua::Result<T> {
    let call = st.call.borrow();
    match call.msg.as_ref() {
        Some(m) => Ok(f(m)),
        None => Err(mlua::Error::RuntimeError(format!(
            "{fname}: no message in this route"
        ))),
    }
}
