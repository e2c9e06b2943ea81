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
