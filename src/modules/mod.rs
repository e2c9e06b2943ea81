//! OpenSIPS modules, each declaring its whole surface once in a
//! [`Module`] value: Lua functions, MI commands, statistics, config keys
//! and lifecycle hooks. [`ALL`] is the list the Lua host registers and the
//! MI, the statistics and the docs are derived from.
//!
//! A new module is a file or folder here plus one line in the
//! `modules!` list below.

use std::rc::Rc;
use std::sync::OnceLock;

pub mod cfg;
mod module;
pub mod params;
pub(crate) use module::staged_settings;
pub use module::{
    param, settings, ChildInit, Committed, Hooks, Module, Param, ParamKind, Settings,
    SettingsError, Setup,
};

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
    core: MODULE, CACHE, URI, SENDING, DSET, BLACKLISTS, STATUS;
    sipmsgops: MODULE;
    sl: MODULE;
    signaling: MODULE;
    maxfwd: MODULE;
    rr: MODULE;
    statistics: MODULE;
    clusterer: MODULE;
    tm: MODULE, BRANCHES;
    dispatcher: MODULE;
    cfgutils: MODULE;
    usrloc: MODULE;
    registrar: MODULE;
    cachedb_local: MODULE;
    textops: MODULE;
    evi: MODULE;
    event_routing: MODULE;
    auth: MODULE;
    auth_db: MODULE;
    event_flatstore: MODULE;
    event_rabbitmq: MODULE;
    rabbitmq: MODULE;
    nathelper: MODULE;
    domain: MODULE;
    alias_db: MODULE;
    avpops: MODULE;
    permissions: MODULE;
    dialog: MODULE;
    acc: MODULE;
    topology_hiding: MODULE;
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

/// Whether the modules' `init` ran for a registry (its long-lived state).
#[derive(Default)]
struct Inited(OnceLock<Result<(), SettingsError>>);

/// Runs every module's `init` once per registry (later calls return the
/// first result), on a thread serving `reg`; [`Prepared::commit`] calls it
/// after the first commit.
pub fn init_all(reg: &std::sync::Arc<crate::state::Registry>) -> Result<(), SettingsError> {
    let _in = crate::state::enter(reg.clone());
    reg.state::<Inited>()
        .0
        .get_or_init(|| {
            ALL.iter()
                .filter_map(|m| m.init.map(|f| (m.name, f)))
                .try_for_each(|(module, f)| {
                    f().map_err(|reason| SettingsError::Init { module, reason })
                })
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

/// Module settings read from a script's `config.modules` (each module's
/// [`Module::setup`], in [`ALL`] order), checked but not applied:
/// [`Prepared::commit`] applies them once the whole script passed, so a
/// refused reload changes nothing.
#[derive(Debug, Default)]
pub struct Prepared(Vec<(&'static str, Box<dyn Settings>)>);

/// Sections of `config.modules` the core reads itself (the MI transports).
const CORE_SECTIONS: &[&str] = &["mi_http", "mi_fifo"];

/// Checks `config.modules` against the modules' declared parameters and
/// reads it (no side effect: nothing loaded or connected).
pub fn prepare(modules: &mlua::Table) -> Result<Prepared, SettingsError> {
    params::check(modules, CORE_SECTIONS).map_err(SettingsError::Params)?;
    ALL.iter()
        .filter_map(|m| Some((m.name, m.setup?)))
        .map(|(name, setup)| Ok((name, setup(modules)?)))
        .collect::<Result<_, SettingsError>>()
        .map(Prepared)
}

impl Prepared {
    /// Loads what the modules read from outside (dispatcher list files and
    /// databases), then installs every module's settings in `reg` in one
    /// step (an error before that leaves `reg` as it was); `listen`: the
    /// sockets in force. Runs the modules' `init` hooks after the first
    /// commit.
    pub fn commit(
        self,
        listen: &[crate::config::Listen],
        reg: &std::sync::Arc<crate::state::Registry>,
    ) -> Result<(), SettingsError> {
        register();
        let _in = crate::state::enter(reg.clone());
        let mut staged = crate::state::Staged::default();
        for (_, s) in self.0 {
            s.commit(listen, &mut staged)?;
        }
        reg.install(staged);
        init_all(reg)
    }

    /// Loads what `commit` would, installing nothing (`lunasip check`);
    /// databases are opened only with `connect`. Returns lines to print.
    pub fn verify(
        &self,
        listen: &[crate::config::Listen],
        connect: bool,
    ) -> Result<Vec<String>, SettingsError> {
        let mut lines = Vec::new();
        for (_, s) in &self.0 {
            lines.extend(s.verify(listen, connect)?);
        }
        Ok(lines)
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

thread_local! {
    static RNG: std::cell::Cell<u64> = std::cell::Cell::new({
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x9e37_79b9);
        h.finish() | 1
    });
}

/// A fast per-thread pseudo-random number (xorshift, seeded from the
/// std hasher's random keys): dispatcher's random pick, cfgutils' draws.
pub fn random() -> u32 {
    RNG.with(|r| {
        let mut x = r.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        r.set(x);
        (x >> 32) as u32
    })
}
