//! RFC 3261 §17 transactions: client and server state machines (sans
//! I/O: events in, actions out), their timers, matching keys, and the
//! proxy's best-response choice (§16.7). The stateful proxy core that
//! drives them from the workers builds on these (the tm module).

pub mod actions;
pub mod client;
pub mod key;
pub mod select;
pub mod server;
pub mod timer;

pub use client::ClientTxn;
pub use key::TxnKey;
pub use server::ServerTxn;
pub use timer::{Timer, Timers};
