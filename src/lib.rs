//! lunasip: a SIP proxy whose routes are Lua scripts, speaking OpenSIPS's
//! vocabulary. See docs/ARCHITECTURE.md for the shape of the code.
#![forbid(unsafe_code)]

pub mod config;
pub mod core_events;
pub mod db;
pub mod docs;
pub mod event;
pub mod journal;
pub mod logging;
pub mod mi;
pub mod modules;
pub mod notify;
pub mod proxy;
pub mod pv;
pub mod runtime;
pub mod script;
pub mod sip;
pub mod state;
pub mod stats;
pub mod supervisor;
pub mod transaction;
pub mod transport;
