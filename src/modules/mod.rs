//! OpenSIPS modules, each declaring its whole Lua surface once in an
//! [`Module`] table. [`ALL`] is the list the Lua host registers and the
//! docs table is generated from.

pub mod cfgutils;
pub mod core;
pub mod dispatcher;
pub mod maxfwd;
pub mod rr;
pub mod sipmsgops;
pub mod sl;
pub mod statistics;
pub mod tm;

use crate::script::exports::Module;

/// Every module, in registration order.
pub static ALL: &[&Module] = &[
    &core::MODULE,
    &sipmsgops::MODULE,
    &sl::MODULE,
    &maxfwd::MODULE,
    &rr::MODULE,
    &statistics::MODULE,
    &tm::MODULE,
    &tm::BRANCHES,
    &dispatcher::MODULE,
    &cfgutils::MODULE,
];

/// Module settings read from a script's `config.modules`, checked but not
/// applied: [`Prepared::commit`] applies them once the whole script passed,
/// so a refused reload changes nothing.
#[derive(Debug, Clone, Default)]
pub struct Prepared {
    pub dispatcher: dispatcher::Prepared,
}

/// Reads `config.modules` (no side effect: nothing loaded or connected).
pub fn prepare(modules: &mlua::Table) -> Result<Prepared, String> {
    Ok(Prepared {
        dispatcher: dispatcher::prepare(modules)?,
    })
}

impl Prepared {
    /// Loads what the modules read from outside (dispatcher list files and
    /// databases) and installs everything; on an error nothing changes.
    /// `listen`: the sockets in force.
    pub fn commit(self, listen: &[crate::config::Listen]) -> Result<(), String> {
        self.dispatcher.commit(listen)
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
